"""The `deps` diagnostic against a local aiohttp server (200, 401, 500, slow) and a closed port,
and the validation of chatops.yaml's `dependencies:` list."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.checks.http import load as dependencies
from bot.errors import ConfigError
from diagnostics.cache import QueryCache
from diagnostics.http import DEFAULT_DEPENDENCIES, Dependency, check_dependencies
from diagnostics.result import Result, Status
from tests.servers.background import BackgroundServer

pytestmark = pytest.mark.integration


class Upstream:
    """A dependency to probe: /ok 200, /auth 401, /broken 500, /slow answers after 1 s."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        app = web.Application()
        app.router.add_route("*", "/{name}", self._handle)
        self.server = BackgroundServer(app)

    async def _handle(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self.hits.append(f"{request.method} /{name}")
        if name == "slow":
            await asyncio.sleep(1)
        return web.Response(status={"ok": 200, "auth": 401, "broken": 500}.get(name, 200))

    def url(self, path: str) -> str:
        return f"{self.server.url}/{path}"


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream()
    server.server.start()
    yield server
    server.server.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def probe(session, *deps: Dependency, timeout: float = 1.0, **kw: Any) -> Result:
    return await check_dependencies(session, list(deps), timeout=timeout, **kw)


def row(result: Result, name: str):
    (found,) = [r for r in result.rows if r.cells[0] == name]
    return found


async def test_answering_dependencies_are_ok_with_status_and_latency(upstream, session):
    result = await probe(session, Dependency("api", upstream.url("ok")), Dependency("openai", upstream.url("auth")))
    assert result.status is Status.OK
    assert result.summary == "2/2 reachable"
    api = row(result, "api")
    assert api.cells[1] == "HTTP 200" and api.cells[2].endswith(" ms") and api.cells[3] == upstream.url("ok")
    assert row(result, "openai").cells[1] == "HTTP 401" and row(result, "openai").status is Status.OK
    assert "below 500" in result.fields["reachable means"]


async def test_a_5xx_dependency_is_critical(upstream, session):
    result = await probe(session, Dependency("api", upstream.url("ok")), Dependency("broken", upstream.url("broken")))
    assert result.status is Status.CRITICAL
    assert result.summary == "1/2 reachable"
    assert result.rows[0].cells[0] == "broken"  # not reachable first
    assert result.rows[0].detail == "server error HTTP 500"


async def test_a_slow_dependency_times_out_on_its_own_timeout(upstream, session):
    started = time.monotonic()
    result = await probe(session, Dependency("slow", upstream.url("slow"), timeout=0.3),
                         Dependency("api", upstream.url("ok")), timeout=5)
    assert time.monotonic() - started < 1.5
    slow = row(result, "slow")
    assert slow.status is Status.CRITICAL and slow.cells[1] == "unreachable"
    assert slow.detail == "timed out after 0.3 s"
    assert row(result, "api").status is Status.OK


async def test_a_closed_port_is_unreachable_with_the_reason(session, unused_tcp_port):
    result = await probe(session, Dependency("gone", f"http://127.0.0.1:{unused_tcp_port}/"))
    assert result.status is Status.CRITICAL
    assert result.rows[0].detail.startswith("cannot connect: ")
    assert result.rows[0].detail == "cannot connect: Connection refused"


async def test_expect_status_overrides_the_below_500_rule(upstream, session):
    result = await probe(session, Dependency("needs-200", upstream.url("auth"), expect_status=200),
                         Dependency("wants-500", upstream.url("broken"), expect_status=500))
    assert row(result, "needs-200").status is Status.CRITICAL
    assert row(result, "needs-200").detail == "expected HTTP 200, got 401"
    assert row(result, "wants-500").status is Status.OK


async def test_dependencies_are_asked_concurrently(upstream, session):
    deps = [Dependency(f"slow{i}", upstream.url("slow"), timeout=0.5) for i in range(4)]
    started = time.monotonic()
    await probe(session, *deps)
    assert time.monotonic() - started < 1.2  # four 0.5 s timeouts, at once


async def test_the_configured_method_is_used(upstream, session):
    await probe(session, Dependency("head", upstream.url("ok"), method="HEAD"))
    assert upstream.hits == ["HEAD /ok"]


async def test_identical_probes_within_the_cache_ttl_reach_the_dependency_once(upstream, session):
    cache = QueryCache(ttl=5)
    await asyncio.gather(*(probe(session, Dependency("api", upstream.url("ok")), cache=cache) for _ in range(3)))
    assert upstream.hits == ["GET /ok"]


# --- chatops.yaml `dependencies:` ----------------------------------------------------------------


def test_without_a_dependencies_section_the_runbook_default_is_used():
    assert dependencies(None) == DEFAULT_DEPENDENCIES
    assert DEFAULT_DEPENDENCIES[0].url == "https://api.openai.com/v1/models"


def test_a_dependency_list_is_read_with_its_options():
    (dep,) = dependencies([
        {"name": "payments", "url": "https://pay.internal/healthz", "method": "head", "expect_status": 204,
         "timeout": 2},
    ])  # fmt: skip
    assert dep == Dependency("payments", "https://pay.internal/healthz", "HEAD", 204, 2.0)


@pytest.mark.parametrize("deps, message", [
    ([], "chatops.yaml: dependencies: is empty"),
    ({"name": "x"}, "chatops.yaml: dependencies: must be a list, not {'name': 'x'}"),
    (["https://x"], "chatops.yaml: dependencies[0]: must be a mapping with the keys name, url, method,"),
    ([{"url": "https://x"}], "chatops.yaml: dependencies[0].name: missing (required)"),
    ([{"name": "x", "url": "ftp://x"}], "chatops.yaml: dependencies[0].url: must be an http(s) URL, not 'ftp://x'"),
    ([{"name": "x", "url": "https://x", "method": "DELETE"}],
     "dependencies[0].method: must be one of GET, HEAD, POST, OPTIONS, not 'DELETE'"),
    ([{"name": "x", "url": "https://x", "expect_status": "200"}],
     "dependencies[0].expect_status: must be an HTTP status 100-599, not '200'"),
    ([{"name": "x", "url": "https://x", "timeout": 0}], "dependencies[0].timeout: must be a number of seconds"),
    ([{"name": "x", "url": "https://x", "expect": 200}],
     "chatops.yaml: dependencies[0].expect: unknown key (did you mean expect_status?)"),
    ([{"name": "x", "url": "https://a"}, {"name": "x", "url": "https://b"}],
     "chatops.yaml: dependencies[1].name: 'x' is used twice"),
])  # fmt: skip
def test_a_bad_dependency_entry_is_a_one_line_config_error(deps, message):
    with pytest.raises(ConfigError) as caught:
        dependencies(deps)
    assert message in str(caught.value) and "\n" not in str(caught.value)


async def test_a_host_name_that_does_not_resolve_says_the_dns_lookup_failed(session):
    result = await probe(session, Dependency("nowhere", "http://no-such-host.invalid/", timeout=5))
    assert result.rows[0].detail == "cannot connect: DNS lookup failed for no-such-host.invalid"


async def test_an_api_backend_whose_name_does_not_resolve_says_the_dns_lookup_failed(session):
    from diagnostics.http_api import BackendError, request

    with pytest.raises(BackendError, match="cannot connect to http://no-such-host.invalid: DNS lookup failed for "
                                           "no-such-host.invalid$"):
        await request(session, "http://no-such-host.invalid/api", backend="Prometheus",
                      location="http://no-such-host.invalid", timeout=5)
