"""The bot as real processes, stopped in the middle of a 200-alert storm by SIGTERM or SIGKILL.

Alertmanager sends the storm; 25 alerts in, the bot (or, on Redis, one of two replicas) is stopped
and started again on the same STATE_URL, and Alertmanager sends every alert again (its retry and
repeat). Then every alert is in Slack exactly once, each with its finished investigation, and
nothing is left in the store.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp
import pytest
import yaml

from bot.state.store import open_store
from tests.plugins.kube import seed_checkout_prod
from tests.servers.process import free_port
from tests.storms import (
    assert_each_alert_posted_once_with_its_investigation,
    fingerprints,
    is_finished_investigation,
    split,
    storm,
)

# Each test runs one or two bots through a 200-alert storm: under pytest-xdist they take turns on
# one worker (make test runs with --dist loadgroup) instead of starving each other of CPU.
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("bot-processes")]

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "am-webhook-token-123"
STORM = 200


class BotProcess:
    def __init__(self, env: dict[str, str], port: int, log: Path) -> None:
        self.env = {**env, "PORT": str(port)}
        self.port = port
        self.log = log
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> BotProcess:
        base = {k: v for k, v in os.environ.items()
                if not k.startswith(("SLACK_", "KUBE", "PROMETHEUS", "CHATOPS", "ALERTMANAGER", "STATE_"))}
        with open(self.log, "ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, str(ROOT / "app.py"), env={**base, **self.env}, cwd=ROOT,
                stdout=log, stderr=log)
        deadline = asyncio.get_running_loop().time() + 60  # a loaded CI machine starts Python slowly
        async with aiohttp.ClientSession() as http:
            while asyncio.get_running_loop().time() < deadline:
                try:
                    async with http.get(f"http://127.0.0.1:{self.port}/healthz") as response:
                        if response.status == 200:
                            return self
                except aiohttp.ClientConnectionError:
                    pass
                assert self.proc.returncode is None, self.log.read_text()[-3000:]
                await asyncio.sleep(0.05)
        raise AssertionError(f"the bot never answered /healthz:\n{self.log.read_text()[-3000:]}")

    async def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        return await asyncio.wait_for(self.proc.wait(), 30)

    def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()


async def send(http: aiohttp.ClientSession, bot: BotProcess, body: dict) -> None:
    async with http.post(f"http://127.0.0.1:{bot.port}/alertmanager", json=body,
                         headers={"Authorization": f"Bearer {TOKEN}"}) as response:
        assert response.status == 200, await response.text()


async def send_storm(http: aiohttp.ClientSession, bots: list[BotProcess], body: dict) -> None:
    """Alertmanager sends the storm, each replica a share."""
    parts = split(body, len(bots))  # a notification per alert: a route grouping by instance
    await asyncio.gather(*(send(http, bot, one) for bot, part in zip(bots, parts, strict=True) for one in part))


@pytest.fixture(params=["sqlite", "redis-2-replicas"])
def state(request, tmp_path) -> tuple[str, int]:
    """(STATE_URL, how many replicas share it)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/state.db", 1
    return request.getfixturevalue("redis_server").url, 2


async def store_drained(state_url: str, timeout: float) -> None:
    """Wait until the store holds no work (the bots took and finished all of it)."""
    store = open_store(state_url)
    try:
        async with asyncio.timeout(timeout):
            while await store.pending():
                await asyncio.sleep(0.1)
    finally:
        await store.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
async def test_a_restart_in_the_middle_of_a_storm_posts_every_alert_once_with_its_investigation(
    sig, state, kube, fake_slack, signing_secret, tmp_path
):
    seed_checkout_prod(kube)
    state_url, replicas = state
    config = tmp_path / "chatops.yaml"
    config.write_text(yaml.safe_dump({
        "shutdown_grace_seconds": 1,
        "alerts": {"post_interval": 0, "edit_interval": 0.2},
        "delivery": {"lease_seconds": 2, "poll_seconds": 0.1, "retry_initial_seconds": 0.1,
                     "retry_max_seconds": 0.5, "slack_timeout_seconds": 2},
        "playbooks": {"HighErrorRate": {"steps": ["pods checkout -n prod"]}},
    }))
    env = {"STATE_URL": state_url, "SLACK_BOT_TOKEN": fake_slack.bot_token, "SLACK_SIGNING_SECRET": signing_secret,
           "SLACK_API_URL": fake_slack.api_url, "KUBECONFIG": kube.kubeconfig_path,
           "ALERTMANAGER_WEBHOOK_TOKEN": TOKEN, "CHATOPS_CONFIG": str(config)}
    bots = [BotProcess(env, free_port(), tmp_path / f"bot-{i}.log") for i in range(replicas)]
    body = storm(STORM)
    try:
        await asyncio.gather(*(bot.start() for bot in bots))
        async with aiohttp.ClientSession() as http:
            await send_storm(http, bots, body)
            await fake_slack.wait_for_message("#alerts-critical", count=25, where=lambda m: m.thread_ts is None,
                                              timeout=30)
            code = await bots[0].stop(sig)
            assert code == (0 if sig == signal.SIGTERM else -signal.SIGKILL), bots[0].log.read_text()[-3000:]
            # The stop came in the middle: work was still to be done (the test would prove nothing else).
            assert len([m for m in fake_slack.messages("#alerts-critical") if is_finished_investigation(m)]) < STORM
            await bots[0].start()  # same port, same STATE_URL
            # Alertmanager sends everything again: its retry of what it thinks failed, and its repeat.
            await send_storm(http, bots, body)
            await fake_slack.wait_for_message("#alerts-critical", count=STORM, where=is_finished_investigation,
                                              timeout=90)
            # The re-sent storm's jobs find their threads done; let them finish before stopping (a stop
            # would hand them back to the store, correctly, and the barrier below could not tell).
            await store_drained(state_url, timeout=60)
        for bot in bots:
            assert await bot.stop(signal.SIGTERM) == 0, bot.log.read_text()[-3000:]
    finally:
        for bot in bots:
            bot.kill()
    # Barrier: the bots are gone and the store holds no work, so nothing more will be posted.
    store = open_store(state_url)
    try:
        assert await store.pending() == 0
    finally:
        await store.close()
    assert_each_alert_posted_once_with_its_investigation(fake_slack, fingerprints(body))
