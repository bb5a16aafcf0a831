"""Kubernetes: the `config` diagnostic — a ConfigMap's keys and values.

Secrets are never read: nothing here (or anywhere in the bot) calls the Secrets API, and
the command refuses a `secret/` name. Each value is shown on one line, cut at
MAX_VALUE_CHARS; a multi-line value (a whole config file) shows its first line and its
size. binaryData keys are listed with their sizes only. A key named like a credential
(password, token, api_key, …) has its value hidden and is flagged: a ConfigMap is no place
for one, but people put them there. `summarise_configmap` is pure.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime, timezone

from kubernetes.aio import client
from kubernetes.aio.client import ApiClient, V1ConfigMap

from diagnostics.cache import QueryCache
from diagnostics.kubernetes._text import truncate
from diagnostics.kubernetes.client import call_api
from diagnostics.kubernetes.deploy import missing, read_or_none
from diagnostics.kubernetes.pod_health import humanise_age
from diagnostics.result import Result, Row, Status

CONFIG_COLUMNS = ("Key", "Value")
MAX_VALUE_CHARS = 120
MAX_KEYS = 40
CREDENTIAL_KEY = re.compile(r"pass(word|wd)?|secret|token|api[-_.]?key|credential|private[-_.]?key",
                            re.IGNORECASE)


# ---------------------------------------------------------------------------------------
# Keys and values: pure
# ---------------------------------------------------------------------------------------


def summarise_configmap(cm: V1ConfigMap, *, now: datetime, title: str, max_keys: int = MAX_KEYS) -> Result:
    data = cm.data or {}
    binary = cm.binary_data or {}
    rows = [_row(key, value) for key, value in data.items()]
    rows += [Row(cells=(key, f"binary, {_size(_binary_size(value))}")) for key, value in binary.items()]
    rows.sort(key=lambda r: r.cells[0])
    hidden = sum(1 for r in rows if r.status is not Status.OK)

    parts = [f"{len(data)} key{'s' if len(data) != 1 else ''}"] if data or not binary else []
    if binary:
        parts.append(f"{len(binary)} binary key{'s' if len(binary) != 1 else ''}")
    if hidden:
        parts.append(f"{hidden} named like a credential (value hidden; keep it in a Secret)")
    meta = cm.metadata or client.V1ObjectMeta()
    fields = {"Age": humanise_age(meta.creation_timestamp, now)}
    if cm.immutable:
        fields["Immutable"] = "yes"
    return Result(
        status=Status.WARNING if hidden else Status.OK,
        title=title,
        summary=" · ".join(parts),
        fields=fields,
        columns=CONFIG_COLUMNS,
        rows=rows[:max_keys],
        folded_rows_note=f"… and {len(rows) - max_keys} more keys" if len(rows) > max_keys else "",
    )


def _row(key: str, value: str) -> Row:
    if CREDENTIAL_KEY.search(key):
        return Row(cells=(key, f"hidden ({len(value)} character{'s' if len(value) != 1 else ''})"),
                   status=Status.WARNING,
                   detail="named like a credential: it belongs in a Secret")
    return Row(cells=(key, preview(value)))


def preview(value: str, limit: int = MAX_VALUE_CHARS) -> str:
    """One line: the value, or a multi-line value's first line with its size."""
    if value == "":
        return '""'
    lines = value.splitlines()
    if len(lines) <= 1:
        return truncate(value.strip("\n"), limit)
    first = next((line for line in lines if line.strip()), "")
    return f"{truncate(first, limit)} … ({len(lines)} lines, {_size(len(value.encode()))})"


def _binary_size(value: str | bytes) -> int:
    if isinstance(value, bytes):
        return len(value)
    try:
        return len(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError):
        return len(value)


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n / 1024 / 1024:.1f} MiB"


# ---------------------------------------------------------------------------------------
# The `config` diagnostic: API call
# ---------------------------------------------------------------------------------------


async def configmap_contents(
    api: ApiClient,
    name: str,
    namespace: str,
    *,
    timeout: float = 8.0,
    now: datetime | None = None,
    cache: QueryCache | None = None,
) -> Result:
    """A ConfigMap's keys and (cut) values. Only ever the ConfigMaps API, never Secrets."""
    title = f"ConfigMap · {name} ({namespace})"
    core = client.CoreV1Api(api)

    async def fetch() -> Result:
        cm = await read_or_none(
            cache, ("k8s.configmap", api.configuration.host, namespace, name),
            lambda: core.read_namespaced_config_map(name, namespace, _request_timeout=timeout),
        )
        if cm is None:
            return await missing(api, title, f"ConfigMap `{name}`", namespace, timeout=timeout, cache=cache)
        return summarise_configmap(cm, now=now or datetime.now(timezone.utc), title=title)

    return await call_api(api, title, fetch, timeout=timeout)
