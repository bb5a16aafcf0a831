"""Slack fixtures.

fake_slack      a started tests.fakes.slack.FakeSlack (Web API, response_url, file uploads,
                Socket Mode) on a free 127.0.0.1 port, one per test, stopped afterwards.
                Point the bot at it with AsyncWebClient(base_url=fake_slack.api_url,
                token=fake_slack.bot_token); Socket Mode uses fake_slack.app_token.
signing_secret  the fixed signing secret the bot is configured with in tests; sign requests to
                its HTTP endpoint with tests.slack_requests (send_slash_command, send_event, ...).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fakes.slack import FakeSlack

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"  # the shape of Slack's example secret


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        yield fake


@pytest.fixture
def signing_secret() -> str:
    return SIGNING_SECRET
