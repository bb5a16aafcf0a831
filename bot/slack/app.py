"""The Bolt app and its Slack Web API clients."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.authorization.async_authorize import AsyncAuthorize
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


class BackgroundAuthorization(AsyncAuthorize):
    """The app's one bot token, with what auth.test says about it asked in the background.

    Bolt's default asks auth.test inside the first request, and again in every request while it
    fails: with Slack unreachable at start (auth.test hanging) no request could be acknowledged in
    Slack's 3 seconds, not even `/ops help`. Here a request waits at most `wait` seconds for the
    answer, then goes on with the token alone (nothing the listeners do needs the bot's user ID);
    the answer, once it comes, is kept.
    """

    def __init__(self, client: AsyncWebClient, wait: float = 0.5) -> None:
        super().__init__()
        self.client, self.wait = client, wait
        self._result: AuthorizeResult | None = None
        self._asking: asyncio.Task[AuthorizeResult] | None = None

    async def __call__(self, *, context: AsyncBoltContext, enterprise_id: str | None, team_id: str | None,
                       user_id: str | None, actor_enterprise_id: str | None = None, actor_team_id: str | None = None,
                       actor_user_id: str | None = None) -> AuthorizeResult:
        if self._result is not None:
            return self._result
        if self._asking is None or self._asking.done():
            self._asking = asyncio.get_running_loop().create_task(self._ask(), name="slack-auth-test")
        try:
            return await asyncio.wait_for(asyncio.shield(self._asking), self.wait)
        except Exception as e:  # noqa: BLE001 - Slack slow or failing: the token alone will do for now
            log.info("auth.test not answered yet (%s); going on with the bot token", describe(e))
            return AuthorizeResult(enterprise_id=enterprise_id, team_id=team_id, bot_token=self.client.token)

    async def _ask(self) -> AuthorizeResult:
        answer = await self.client.auth_test()
        self._result = AuthorizeResult.from_auth_test_response(bot_token=self.client.token,
                                                               auth_test_response=answer)
        return self._result


def describe(error: BaseException) -> str:
    return type(error).__name__ if isinstance(error, TimeoutError) else f"{type(error).__name__}: {error}"


def build_app(settings: Settings, client: AsyncWebClient) -> AsyncApp:
    """The Bolt app without listeners; handlers.register_all adds them (imports point inward)."""
    # Bolt's own client carries no token: BackgroundAuthorization gives each request the bot token
    # (a token here too would make Bolt warn at every start that it ignores it).
    tokenless = AsyncWebClient(base_url=client.base_url, timeout=client.timeout, retry_handlers=client.retry_handlers)
    app = AsyncApp(
        client=tokenless,
        authorize=BackgroundAuthorization(client),
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
