"""The Bolt app and its Slack Web API client."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import AsyncIterator

from slack_bolt.async_app import AsyncApp
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.clients import Clients
from bot.commands.parser import CommandTable
from bot.commands.model import Context
from bot.settings import Settings
from bot.runtime.metrics import Metrics
from bot.state.store import Store

log = logging.getLogger(__name__)

SLACK_TIMEOUT = 10  # seconds for one Web API call; retries come on top


def build_web_client(settings: Settings) -> AsyncWebClient:
    # Passing retry_handlers replaces slack_sdk's default (connection errors only).
    return AsyncWebClient(
        token=settings.slack_bot_token,
        base_url=settings.slack_api_url,
        timeout=SLACK_TIMEOUT,
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(max_retry_count=2),
            AsyncRateLimitErrorRetryHandler(max_retry_count=5),
            AsyncServerErrorRetryHandler(max_retry_count=2),
        ],
    )


def build_app(runtime: Runtime, client: AsyncWebClient) -> AsyncApp:
    """The Bolt app without listeners; handlers.register_all adds them (imports point inward)."""
    settings = runtime.settings
    app = AsyncApp(
        client=client,
        # Socket Mode requests come over an authenticated websocket and carry no signature.
        signing_secret=settings.slack_signing_secret,
        request_verification_enabled=not settings.socket_mode,
        # Alertmanager may post with the bot's own token; its posts must reach the alert
        # listener, which recognises (and skips) the bot's own messages by their content.
        ignoring_self_events_enabled=False,
        logger=logging.getLogger("slack_bolt"),
    )
    @app.error
    async def on_error(error: Exception, body: dict) -> None:
        log.error("unhandled error in a Slack handler: %s", error, exc_info=error)

    return app
