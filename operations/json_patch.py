"""A conditional write as an RFC 6902 JSON Patch: `test` ops on what was read, then the changes. Pure.

The API server applies a JSON Patch atomically and answers 422 when a `test` op fails, so a patch
that first tests the values the preview read changes nothing if anyone wrote them in between.
The test is on the previewed fields themselves, never on the object's resourceVersion, which
controllers bump all the time on a Deployment that is crash-looping (exactly when the bot is used).

RFC 6902 has no "absent" test. For a field that is not set, the test is on its nearest existing
parent's whole value as read (the container's `resources` when it has no `limits`, the pod
template's `metadata` when it has no annotations); when that parent is the object itself (a
ConfigMap with no `data`), on its `metadata.resourceVersion`, which for a ConfigMap only moves when
someone writes it. A field present with a JSON null counts as not set.

Paths are tuples of keys and list indexes: ("spec", "template", "spec", "containers", 0, "name").
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from typing import Any

JSON = Any
Path = tuple[str | int, ...]
ROOT_VERSION: Path = ("metadata", "resourceVersion")


def pointer(path: Path) -> str:
    """The RFC 6901 pointer: ("metadata", "annotations", "a/b") -> "/metadata/annotations/a~1b"."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


def value_at(document: JSON, path: Path) -> JSON:
    """The value at `path`, or None when it (or a parent) is not there or is null."""
    return document if not path else _walk(document, path)[1]


def conditional_patch(document: JSON, changes: Sequence[tuple[Path, JSON]],
                      guards: Iterable[tuple[Path, JSON]] = ()) -> list[dict[str, JSON]]:
    """The JSON Patch that sets each (path, value) of `changes` in `document` (None: removes it)
    if, and only if, every changed field and every guard still holds what `document` holds.

    `guards` are (path, value) tested without being changed: the container's name at the index
    the change addresses, say, so that a reordered list fails the patch instead of changing
    another container. The tests come first, computed on `document` as read; the changes are
    computed in order on a working copy, so two fields under one missing parent (a container's
    first memory and cpu limits) are one `add` of the parent and then one of the second field.
    """
    tests: list[dict[str, JSON]] = []
    for path, value in guards:
        _append_once(tests, {"op": "test", "path": pointer(path), "value": value})
    for path, _ in changes:
        anchor = _existing(document, path)
        if not anchor:
            anchor = ROOT_VERSION
        _append_once(tests, {"op": "test", "path": pointer(anchor), "value": copy.deepcopy(value_at(document, anchor))})
    working = copy.deepcopy(document)
    writes = [op for path, value in changes for op in _set(working, path, value)]
    return tests + writes


def _append_once(ops: list[dict[str, JSON]], op: dict[str, JSON]) -> None:
    if op not in ops:
        ops.append(op)


def _walk(document: JSON, path: Path) -> tuple[int, JSON]:
    """How many parts of `path` exist (non-null) in `document`, and the value at the last of them
    (None when not all of them exist)."""
    node = document
    for depth, part in enumerate(path):
        if isinstance(node, dict) and isinstance(part, str) and node.get(part) is not None:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node) and node[part] is not None:
            node = node[part]
        else:
            return depth, None
    return len(path), node


def _existing(document: JSON, path: Path) -> Path:
    """`path` itself if it is set, else its nearest ancestor that is (() for the document)."""
    depth, _ = _walk(document, path)
    return path[:depth]


def _set(working: JSON, path: Path, value: JSON) -> list[dict[str, JSON]]:
    """The op that sets (or, for None, removes) `path`, applied to `working` as well."""
    depth, _ = _walk(working, path)
    if depth == len(path):
        parent = value_at(working, path[:-1])
        if value is None:
            del parent[path[-1]]
            return [{"op": "remove", "path": pointer(path)}]
        parent[path[-1]] = copy.deepcopy(value)
        return [{"op": "replace", "path": pointer(path), "value": value}]
    if value is None:
        return []  # nothing there to remove
    # `add` the first missing part with everything below it; `add` also replaces a JSON null.
    nested: JSON = copy.deepcopy(value)
    for part in reversed(path[depth + 1:]):
        nested = {part: nested}
    parent = working if depth == 0 else value_at(working, path[:depth])
    parent[path[depth]] = nested
    return [{"op": "add", "path": pointer(path[:depth + 1]), "value": copy.deepcopy(nested)}]
