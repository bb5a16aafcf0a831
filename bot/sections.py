"""The one reader for a section of chatops.yaml.

A section is declared as a frozen dataclass whose fields are its keys; each field says its
default and the converter that checks and converts its value (`key(convert, default)`).
`read` holds raw YAML against that declaration:

    an unknown key   chatops.yaml: alerts.cooldown: unknown key (did you mean cooldown_minutes?)
    a wrong value    chatops.yaml: alerts.concurrency: must be a whole number of at least 1, not 0

Every message is one line that starts with the file (as the user named it) and the path of
the key (`playbooks.DiskFull.step`, `dependencies[1].methd`). Converters take the raw value
and its `Where` and return the typed value or raise `where.wrong(...)`; `entry`, `list_of`
and `mapping_of` nest them. A leaf module: nothing here knows any particular section.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import math
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, TypeVar

from bot.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T")
D = TypeVar("D", bound="DataclassInstance")  # a section's (or an entry's) dataclass
Converter = Callable[[Any, "Where"], Any]

DEFAULT_FILE = "chatops.yaml"
_CONVERT = "chatops.yaml converter"
_SHOWN = 60  # characters of a bad value quoted in a message


class Unset(enum.Enum):
    """A key that was not given, where None means something (`warning: null` removes a level)."""

    UNSET = "unset"


UNSET = Unset.UNSET


@dataclass(frozen=True)
class Where:
    """A place in chatops.yaml, for messages: the file and the path of a key in it."""

    file: str = DEFAULT_FILE
    path: str = ""

    def key(self, name: object) -> "Where":
        return Where(self.file, f"{self.path}.{name}" if self.path else str(name))

    def item(self, index: int) -> "Where":
        return Where(self.file, f"{self.path}[{index}]")

    @property
    def name(self) -> str:
        """The last key of the path: `cache_cluster` for aws.cache_cluster."""
        return self.path.rsplit(".", 1)[-1]

    def error(self, message: str) -> ConfigError:
        return ConfigError(f"{self.file}: {self.path}: {message}" if self.path else f"{self.file}: {message}")

    def wrong(self, must: str, value: Any) -> ConfigError:
        """`must` says what the value must be: `must be a number`."""
        return self.error(f"{must}, not {show(value)}")


def show(value: Any) -> str:
    """A value as a message quotes it: its repr, on one line, cut if long."""
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


def unknown_key(where: Where, key: object, known: Iterable[str]) -> ConfigError:
    """`<file>: <path>.<key>: unknown key (did you mean <closest>?)`, or the known keys."""
    known = list(known)
    close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}?" if close else f"known: {', '.join(known)}"
    return where.key(key).error(f"unknown key ({hint})")


def key(convert: Converter, default: Any = dataclasses.MISSING, *,
        factory: Callable[[], Any] | None = None) -> Any:
    """A section's key: its converter and its default (none: the key is required)."""
    metadata = {_CONVERT: convert}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def keys(spec: type) -> list[str]:
    return [f.name for f in dataclasses.fields(spec)]


def read(spec: type[D], raw: Any, where: Where, converters: Mapping[str, Converter] | None = None,
         *, absent_ok: bool = False) -> D:
    """`raw` checked against `spec`'s keys and converted: an instance of `spec`.

    `converters` gives (or replaces) the converters of a dataclass declared elsewhere, which
    has no `key(...)` of its own. `absent_ok`: None (a section left out, or `alerts:` with
    nothing under it) gives the defaults.
    """
    fields = {f.name: f for f in dataclasses.fields(spec)}
    if raw is None and absent_ok:
        raw = {}
    if not isinstance(raw, Mapping):
        raise where.wrong(f"must be a mapping with the keys {', '.join(fields)}", raw)
    values: dict[str, Any] = {}
    for name, value in raw.items():
        found = fields.get(name) if isinstance(name, str) else None
        if found is None:
            raise unknown_key(where, name, fields)
        convert = (converters or {}).get(found.name) or found.metadata.get(_CONVERT)
        assert convert is not None, f"{spec.__name__}.{found.name} declares no converter"
        values[found.name] = convert(value, where.key(found.name))
    for f in fields.values():
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if required and f.name not in values:
            raise where.key(f.name).error("missing (required)")
    return spec(**values)


# --------------------------------------------------------------------------- converters


def entry(spec: type[D], converters: Mapping[str, Converter] | None = None) -> Callable[[Any, Where], D]:
    """A nested mapping read against `spec` (a playbook, a preset, a dependency)."""

    def convert(value: Any, where: Where) -> D:
        return read(spec, value, where, converters)

    return convert


def list_of(item: Converter, *, nonempty: bool = False) -> Converter:
    """A list, each item converted (paths `steps[0]`), as a tuple."""

    def convert(value: Any, where: Where) -> tuple[Any, ...]:
        if not isinstance(value, list) or (nonempty and not value):
            raise where.wrong(f"must be a{' non-empty' if nonempty else ''} list", value)
        return tuple(item(v, where.item(i)) for i, v in enumerate(value))

    return convert


def mapping_of(value_convert: Converter, *, name: Callable[[str, Where], None] | None = None,
               what: str = "names") -> Converter:
    """A mapping of free names (alertnames, preset names) to values, read-only.

    `name` checks each name (raising ConfigError); `what` says what the names are.
    """

    def convert(value: Any, where: Where) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise where.wrong(f"must be a mapping of {what} to values", value)
        out: dict[str, Any] = {}
        for k, v in value.items():
            if not isinstance(k, str) or not k.strip():
                raise where.wrong(f"{what} must be non-empty strings", k)
            if name is not None:
                name(k, where)
            out[k] = value_convert(v, where.key(k))
        return MappingProxyType(out)

    return convert


def optional(convert: Converter) -> Converter:
    """None (YAML `null` or `~`) stays None; anything else is converted."""

    def optional_convert(value: Any, where: Where) -> Any:
        return None if value is None else convert(value, where)

    return optional_convert


def text(value: Any, where: Where) -> str:
    """A non-empty string, without surrounding white space."""
    if not isinstance(value, str) or not value.strip():
        raise where.wrong("must be a non-empty string", value)
    return value.strip()


def string(value: Any, where: Where) -> str:
    """Any string, even empty (a title, a unit)."""
    if not isinstance(value, str):
        raise where.wrong("must be a string", value)
    return value


def number(*, at_least: float | None = None, above: float | None = None, at_most: float | None = None,
           below: float | None = None, must: str = "") -> Callable[[Any, Where], float]:
    """A finite int or float (not a boolean) within the bounds given, as a float."""
    bounds = [f"{word} {limit:g}" for word, limit in
              (("of at least", at_least), ("more than", above), ("at most", at_most), ("less than", below))
              if limit is not None]
    must = must or " ".join(["must be a number", " and ".join(bounds)]).strip()

    def convert(value: Any, where: Where) -> float:
        if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
                or (at_least is not None and value < at_least) or (above is not None and value <= above)
                or (at_most is not None and value > at_most) or (below is not None and value >= below)):
            raise where.wrong(must, value)
        return float(value)

    return convert


def positive(value: Any, where: Where) -> float:
    return number(above=0)(value, where)


def whole(*, at_least: int | None = None, at_most: int | None = None,
          must: str = "") -> Callable[[Any, Where], int]:
    """An int (not a boolean, not 2.5) within the bounds given."""
    bounds = [f"{word} {limit}" for word, limit in (("of at least", at_least), ("at most", at_most))
              if limit is not None]
    must = must or " ".join(["must be a whole number", " and ".join(bounds)]).strip()

    def convert(value: Any, where: Where) -> int:
        if (type(value) is not int or (at_least is not None and value < at_least)
                or (at_most is not None and value > at_most)):
            raise where.wrong(must, value)
        return value

    return convert


def one_of(*options: str, upper: bool = False) -> Callable[[Any, Where], str]:
    """One of a few words; `upper`: any case, given back in upper case (HTTP methods)."""

    def convert(value: Any, where: Where) -> str:
        word = value.strip().upper() if upper and isinstance(value, str) else value
        if word not in options:
            raise where.wrong(f"must be one of {', '.join(options)}", value)
        return str(word)

    return convert


def argument(convert: Callable[[str, str], T]) -> Callable[[Any, Where], T]:
    """A string an /ops argument converter checks (bot.commands.args style: UsageError on a bad
    value), so that chatops.yaml and the command line accept the same names."""

    def checked(value: Any, where: Where) -> T:
        word = text(value, where)
        try:
            return convert(word, where.name)
        except UsageError as e:
            raise where.error(e.message) from None

    return checked


__all__ = [
    "DEFAULT_FILE", "UNSET", "Converter", "Unset", "Where", "argument", "entry", "key", "keys", "list_of", "mapping_of",
    "number", "one_of", "optional", "positive", "read", "show", "string", "text", "unknown_key", "whole",
]
