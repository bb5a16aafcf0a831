"""GET a JSON API with aiohttp, every failure turned into one line naming the backend and where.

Shared by the Alertmanager diagnostics and Prometheus' HTTP endpoints that prometheus-api-client
does not cover (targets). Also: timestamps as these APIs send them (RFC 3339, nanoseconds).
"""

from __future__ import annotations

import asyncio
import errno
import json
import re
import socket
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import aiohttp

from diagnostics.blocking import off_loop

SNIPPET_CHARS = 200


class BackendError(Exception):
    """A backend could not answer. The message is one line: "Alertmanager: HTTP 503 at http://…"."""


Params = Mapping[str, str] | Sequence[tuple[str, str]]  # pairs: a name may repeat (filter=…&filter=…)


async def request(session: aiohttp.ClientSession, url: str, *, backend: str, location: str, timeout: float,
                  params: Params | None = None, method: str = "GET", body: Any = None) -> tuple[int, bytes]:
    """`method` `url` (with `body` as JSON, if any): its status and body, whatever the status;
    BackendError if there is no answer."""
    try:
        async with asyncio.timeout(timeout):
            call = session.request(method, url, params=params, json=body, timeout=aiohttp.ClientTimeout(total=timeout))
            async with call as response:
                return response.status, await response.read()
    except TimeoutError:
        raise BackendError(f"{backend}: timed out after {timeout:g} s at {location}") from None
    except aiohttp.ClientConnectorError as e:
        reason = connection_reason(e.os_error, e.host)
        raise BackendError(f"{backend}: cannot connect to {location}: {reason}") from None
    except aiohttp.ClientError as e:
        detail = f"{type(e).__name__}: {one_line(str(e))}"
        raise BackendError(f"{backend}: request to {location} failed: {detail}") from None


async def get_json(session: aiohttp.ClientSession, url: str, *, backend: str, location: str, timeout: float,
                   params: Params | None = None) -> Any:
    status, body = await request(session, url, backend=backend, location=location, timeout=timeout, params=params)
    if status != 200:
        raise BackendError(f"{backend}: HTTP {status} at {location}: {snippet(body)}")
    try:
        return await off_loop(len(body), json.loads, body)  # a storm's alert list: megabytes
    except ValueError:
        raise BackendError(f"{backend}: answer from {location} is not JSON: {snippet(body)}") from None


def connection_reason(error: BaseException | None, host: str = "") -> str:
    """"connection refused", "DNS lookup failed for <host>", or the OS's words."""
    if isinstance(error, ConnectionRefusedError) or getattr(error, "errno", None) == errno.ECONNREFUSED:
        return "connection refused"
    if isinstance(error, socket.gaierror):
        return f"DNS lookup failed for {host}" if host else "DNS lookup failed"
    text = one_line(getattr(error, "strerror", None) or str(error or ""))
    return text or "cannot connect"


def one_line(text: str) -> str:
    return " ".join(text.split())


def snippet(body: bytes | str) -> str:
    text = one_line(body.decode("utf-8", "replace") if isinstance(body, bytes) else body)
    if not text:
        return "(empty body)"
    return text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 1] + "…"


_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_time(text: str | None) -> datetime | None:
    """RFC 3339 as Go writes it ("2024-05-01T10:00:00.123456789Z") -> aware datetime; None if absent."""
    if not text or text.startswith("0001-01-01"):  # Go's zero time: "never"
        return None
    try:
        value = datetime.fromisoformat(_FRACTION.sub(r"\1", text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def age(since: datetime | None, now: datetime) -> str:
    """"3h12m ago" (kubectl's style, shared with the pods diagnostic); "never" without a time."""
    if since is None:
        return "never"
    # Imported here: the Kubernetes package is heavy and these diagnostics don't otherwise need it.
    from diagnostics.kubernetes.pod_health import humanise_age

    return f"{humanise_age(since, now)} ago"
