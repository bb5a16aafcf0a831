"""Start-up warms the bot up before it takes work (issue 10, "The loop never stalls"): the
Kubernetes client's classes load before the worker starts and before /readyz says ready, so no
loading thread competes with the loop for the GIL once commands come in, and the first
Kubernetes command waits for nothing. /healthz (liveness) answers meanwhile."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator

import aiohttp
import pytest

import bot.clients
import diagnostics.kubernetes.client as kubernetes_client

pytestmark = pytest.mark.integration


@pytest.fixture
def held_loading(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[threading.Event, threading.Event]]:
    """load_models held until the test sets `release` (the `kube` fixture has loaded the real
    classes already); (started, release)."""
    started, release = threading.Event(), threading.Event()

    def load(roots: tuple[str, ...] = kubernetes_client.USED_TYPES) -> int:
        started.set()
        release.wait(30)
        return 0

    monkeypatch.setattr(kubernetes_client, "load_models", load)
    yield started, release
    release.set()


async def _get(http: aiohttp.ClientSession, url: str) -> aiohttp.ClientResponse:
    """GET `url`, retrying while nothing listens yet (10 s at most)."""
    deadline = time.monotonic() + 10
    while True:
        try:
            return await http.get(url)
        except aiohttp.ClientConnectionError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.02)


def _returns_at_once(coroutine) -> bool:
    """True when the coroutine finishes without suspending (waits for nothing)."""
    try:
        coroutine.send(None)
    except StopIteration:
        return True
    coroutine.close()
    return False


async def test_the_bot_is_live_but_not_ready_and_takes_no_work_until_warmed_up(
    start_bot, bot_env, http, kube, held_loading, unused_tcp_port, caplog
):
    caplog.set_level(logging.INFO, logger="app")
    started, release = held_loading
    url = f"http://127.0.0.1:{unused_tcp_port}"
    starting = asyncio.create_task(
        start_bot({**bot_env, "KUBECONFIG": kube.kubeconfig_path, "PORT": str(unused_tcp_port)}))

    live = await _get(http, f"{url}/healthz")

    assert started.is_set() and live.status == 200
    assert not starting.done()  # start_bot (the worker, Socket Mode) waits for the warm-up
    ready = await http.get(f"{url}/readyz")
    assert ready.status == 503 and (await ready.json())["starting"] is True

    release.set()
    running = await asyncio.wait_for(starting, 10)

    assert _returns_at_once(running.runtime.clients.kubernetes_ready())  # the first Kubernetes command
    ready = await http.get(f"{url}/readyz")
    assert ready.status == 200, await ready.text()
    assert "warmed up in" in caplog.text


async def test_a_warm_up_that_takes_too_long_does_not_hold_the_start(
    start_bot, bot_env, kube, held_loading, monkeypatch, caplog
):
    monkeypatch.setattr(bot.clients, "WARM_UP_SECONDS", 0.2)
    started, _ = held_loading

    running = await asyncio.wait_for(start_bot({**bot_env, "KUBECONFIG": kube.kubeconfig_path}), 10)

    assert started.is_set() and not running.runtime.starting
    assert "still loading after 0.2 s; serving anyway" in caplog.text
