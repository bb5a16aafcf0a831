"""Fixtures that run the bot itself, in-process, on a free loopback port.

* `bot_env` — the environment a test starts the bot with: the fake Slack's URL and tokens,
  the signing secret, PORT=0; tests add backend variables (KUBECONFIG, PROMETHEUS_URL, …).
* `start_bot` — `await start_bot(env)` builds Settings from `env` exactly as `python app.py`
  does and starts the real server; every bot started is stopped at teardown.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

import app
from bot.settings import load_settings
from bot.state.clock import Clock


@pytest.fixture
def bot_env(fake_slack: Any, signing_secret: str, tmp_path: Any) -> dict[str, str]:
    return {
        "STATE_URL": f"sqlite:///{tmp_path}/chatops-state.db",
        "SLACK_BOT_TOKEN": fake_slack.bot_token,
        "SLACK_SIGNING_SECRET": signing_secret,
        "SLACK_API_URL": fake_slack.api_url,
        "PORT": "0",
        "CHATOPS_CONFIG": "",
    }


@pytest.fixture
async def start_bot() -> AsyncIterator[Callable[[dict[str, str]], Awaitable[app.RunningBot]]]:
    running: list[app.RunningBot] = []

    async def start(env: dict[str, str], clock: Clock | None = None) -> app.RunningBot:
        settings = load_settings(env, mode="serve")
        bot = await app.start_bot(settings, host="127.0.0.1", clock=clock)
        running.append(bot)
        return bot

    yield start
    for bot in running:
        if not bot.runtime.draining:
            await bot.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session:
        yield session
