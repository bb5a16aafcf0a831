"""Readiness: does Slack accept our token, and does each configured backend answer?"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable

import aiohttp
from slack_sdk.web.async_client import AsyncWebClient

from bot.clients import Clients
from bot.commands.report import describe_exception
from bot.slack.mrkdwn import redact
from bot.state.store import Store

CHECK_TIMEOUT = 3.0


async def readiness(clients: Clients, slack: AsyncWebClient | None, store: Store | None = None
                    ) -> dict[str, dict[str, Any]]:
    """Each check's outcome, run concurrently, each bounded by CHECK_TIMEOUT."""
    checks: dict[str, Callable[[], Awaitable[None]]] = {}
    if store is not None:
        checks["state"] = store.ping
    if slack is not None:
        checks["slack"] = lambda: _slack(slack)
    s = clients.settings
    if clients.kubernetes is not None:
        checks["kubernetes"] = lambda: _kubernetes(clients)
    for name, url in (
        ("prometheus", s.prometheus_url and s.prometheus_url + "/-/ready"),
        ("alertmanager", s.alertmanager_url and s.alertmanager_url + "/-/ready"),
        ("grafana", s.grafana_url and s.grafana_url + "/api/health"),
    ):
        if url:
            checks[name] = (lambda u: lambda: _http(clients, u))(url)
    if clients.elasticsearch is not None:
        checks["elasticsearch"] = lambda: _elasticsearch(clients)
    if s.aws_configured:
        checks["aws"] = lambda: _aws(clients)
    if s.database_url:
        checks["database"] = lambda: _database(s.database_url)
    names = list(checks)
    outcomes = await asyncio.gather(*(_timed(checks[n], s.secrets()) for n in names))
    return dict(zip(names, outcomes, strict=True))


async def _timed(check: Callable[[], Awaitable[None]], secrets: tuple[str, ...]) -> dict[str, Any]:
    start = time.monotonic()
    try:
        await asyncio.wait_for(check(), CHECK_TIMEOUT)
        outcome: dict[str, Any] = {"ok": True}
    except asyncio.TimeoutError:
        outcome = {"ok": False, "error": f"timed out after {CHECK_TIMEOUT:g} s"}
    except Exception as e:  # noqa: BLE001 - a failed check is a result, not a crash
        outcome = {"ok": False, "error": redact(describe_exception(e), secrets)}
    outcome["ms"] = round((time.monotonic() - start) * 1000, 1)
    return outcome


async def _slack(client: AsyncWebClient) -> None:
    await client.auth_test()


async def _kubernetes(clients: Clients) -> None:
    await clients.kubernetes_ready()
    from kubernetes.aio.client import VersionApi

    await VersionApi(clients.kubernetes).get_code(_request_timeout=CHECK_TIMEOUT)


async def _http(clients: Clients, url: str) -> None:
    async with clients.http.get(url, timeout=aiohttp.ClientTimeout(total=CHECK_TIMEOUT)) as response:
        if response.status >= 400:
            raise RuntimeError(f"HTTP {response.status}")


async def _elasticsearch(clients: Clients) -> None:
    health = await clients.elasticsearch.options(request_timeout=CHECK_TIMEOUT).cluster.health()
    if health.get("status") == "red":
        raise RuntimeError("cluster health is red")


async def _aws(clients: Clients) -> None:
    # The same client and bounded pool as the diagnostics: a probe builds nothing new.
    sts = await clients.aws("sts")
    await clients.pool("aws").run(sts.get_caller_identity)



async def _database(url: str) -> None:
    import psycopg

    async with await psycopg.AsyncConnection.connect(url, connect_timeout=int(CHECK_TIMEOUT)) as conn:
        await conn.execute("SELECT 1")
