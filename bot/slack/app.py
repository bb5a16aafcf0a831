"""The Bolt app and its Slack Web API clients."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.settings import Settings

log = logging.getLogger(__name__)


def build_web_client(settings: Settings, timeout: float) -> AsyncWebClient:
    """For calls that may be repeated safely (edits, reads, auth.test): retried on 429, 5xx and
    connection errors. Passing retry_handlers replaces slack_sdk's default (connection errors only)."""
    return AsyncWebClient(
        token=settings.slack_bot_token,
        base_url=settings.slack_api_url,
        timeout=timeout,  # type: ignore[arg-type]  # a float works: it becomes aiohttp.ClientTimeout(total=)
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(max_retry_count=2),
            AsyncRateLimitErrorRetryHandler(max_retry_count=5),
            AsyncServerErrorRetryHandler(max_retry_count=2),
        ],
    )


def build_posting_client(settings: Settings, timeout: float) -> AsyncWebClient:
    """For chat.postMessage: no retries of its own. A 5xx, a timeout or a dropped connection may
    come after Slack posted, so those go back to the job, which looks for the post before posting
    again (bot.slack.once); a 429 holds the channel back and the job tries again after it. So an
    attempt lasts at most `timeout`, which is what the search waits for."""
    return AsyncWebClient(
        token=settings.slack_bot_token,
        base_url=settings.slack_api_url,
        timeout=timeout,  # type: ignore[arg-type]  # a float works: it becomes aiohttp.ClientTimeout(total=)
        retry_handlers=[],
    )


def build_app(settings: Settings, client: AsyncWebClient) -> AsyncApp:
    """The Bolt app without listeners; handlers.register_all adds them (imports point inward)."""
    app = AsyncApp(
        client=client,
        # Socket Mode requests come over an authenticated websocket and carry no signature.
        signing_secret=settings.slack_signing_secret,
        request_verification_enabled=not settings.socket_mode,
        # Alertmanager may post with the bot's own token; its posts must reach the alert
        # listener, which recognises (and skips) the bot's own messages by their content.
        ignoring_self_events_enabled=False,
        # Acknowledge only after the listener returns: every listener records its work in the
        # store and returns (milliseconds), so an acknowledged request is never lost. (Bolt's
        # default acknowledges events first and runs the listener afterwards.)
        process_before_response=True,
        logger=logging.getLogger("slack_bolt"),
    )

    @app.error
    async def on_error(error: Exception, body: dict[str, Any]) -> None:
        log.error("unhandled error in a Slack handler: %s", error, exc_info=error)

    return app
