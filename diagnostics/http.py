"""External HTTP dependencies: is each one reachable, with what status and how fast.

Every dependency is asked at once, each under its own timeout. "Reachable" means any HTTP
answer below 500: an API asked without credentials (the runbook's
https://api.openai.com/v1/models answers 401) still proves it is up and answering. With
`expect_status` set, only that status counts. Any dependency not reachable is CRITICAL.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from dataclasses import dataclass

import aiohttp

from diagnostics.cache import QueryCache, cached
from diagnostics.result import Result, Row, Status

RULE = "any HTTP answer below 500 (a 401 without credentials still proves it answers), or expect_status when set"


@dataclass(frozen=True)
class Dependency:
    name: str
    url: str
    method: str = "GET"
    expect_status: int | None = None
    timeout: float | None = None  # seconds; None: the caller's default


DEFAULT_DEPENDENCIES = (Dependency("OpenAI API", "https://api.openai.com/v1/models"),)


async def check_dependencies(
    session: aiohttp.ClientSession,
    dependencies: tuple[Dependency, ...] | list[Dependency],
    *,
    timeout: float,
    cache: QueryCache | None = None,
) -> Result:
    rows = await asyncio.gather(*(_probe(session, d, d.timeout or timeout, cache) for d in dependencies))
    up = sum(row.status is Status.OK for row in rows)
    return Result(
        status=Status.OK if up == len(rows) else Status.CRITICAL,
        title="Dependencies",
        summary=f"{up}/{len(rows)} reachable",
        fields={"reachable means": RULE},
        columns=("dependency", "", "latency", "url"),
        rows=sorted(rows, key=lambda r: -r.status.rank),  # stable: config order within a status
    )


async def _probe(session: aiohttp.ClientSession, dep: Dependency, timeout: float, cache: QueryCache | None) -> Row:
    async def ask() -> tuple[int, float]:
        start = time.perf_counter()
        async with session.request(dep.method, dep.url, allow_redirects=False,
                                   timeout=aiohttp.ClientTimeout(total=timeout)) as response:
            return response.status, (time.perf_counter() - start) * 1000

    start = time.perf_counter()
    try:
        status, ms = await cached(cache, ("http", dep.method, dep.url, timeout), ask)
    except asyncio.TimeoutError:
        return _down(dep, time.perf_counter() - start, f"timed out after {timeout:g} s")
    except aiohttp.ClientConnectorError as e:
        return _down(dep, time.perf_counter() - start, f"cannot connect: {connect_reason(e)}")
    except aiohttp.ClientError as e:
        return _down(dep, time.perf_counter() - start, f"{type(e).__name__}: {e}")
    cells = (dep.name, f"HTTP {status}", f"{ms:.0f} ms", dep.url)
    if dep.expect_status is not None and status != dep.expect_status:
        return Row(cells, Status.CRITICAL, f"expected HTTP {dep.expect_status}, got {status}")
    if dep.expect_status is None and status >= 500:
        return Row(cells, Status.CRITICAL, f"server error HTTP {status}")
    return Row(cells)


def connect_reason(error: BaseException | None, fallback: str = "") -> str:
    """Why a connection failed, as the OS says it ("Connection refused"), not asyncio's wording;
    a name that does not resolve says so (the OS's words would be `Unknown error -2`)."""
    os_error = getattr(error, "os_error", None)
    if isinstance(os_error, socket.gaierror):
        host = getattr(error, "host", "")
        return f"DNS lookup failed for {host}" if host else "DNS lookup failed"
    errno = getattr(os_error, "errno", None)
    return os.strerror(errno) if errno else fallback or str(error)


def _down(dep: Dependency, seconds: float, reason: str) -> Row:
    return Row((dep.name, "unreachable", f"{seconds * 1000:.0f} ms", dep.url), Status.CRITICAL, reason)
