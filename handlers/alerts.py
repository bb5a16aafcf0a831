"""Alerts arriving: Alertmanager's webhook (`POST /alertmanager`) and its posts in Slack.

Both record the work in the store (bot.alerting.threads) and only then answer: 200 means the
alert will be posted and investigated whatever happens next; if it can't be recorded the webhook
answers 503 and Alertmanager sends it again. Recording is one transaction for a whole storm, so
Alertmanager's webhook timeout and Slack's 3-second rule are met.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any, Awaitable, Callable

from aiohttp import web
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.alerting.ingest import AlertPayloadError, parse_post, parse_webhook
from bot.alerting.threads import AlertThreads
from bot.commands.report import describe_exception
from bot.runtime.runtime import Runtime

log = logging.getLogger(__name__)

# conversations.info answers that won't change by asking again (the event is not retried for them).
_CANNOT_READ_NAMES = {"missing_scope", "channel_not_found", "not_in_channel", "invalid_auth"}
# Message subtypes that are edits, deletions or joins, never a new alert post.
_IGNORED_SUBTYPES = {"message_changed", "message_deleted", "channel_join", "channel_leave", "thread_broadcast"}


def webhook_handler(runtime: Runtime, threads: AlertThreads) -> Callable[[web.Request], Awaitable[web.Response]]:
    token = runtime.settings.alertmanager_webhook_token

    async def alertmanager(request: web.Request) -> web.Response:
        if not token:
            # Off unless configured: an open endpoint would let anyone post "alerts".
            return web.json_response({"error": "the Alertmanager webhook is off (set ALERTMANAGER_WEBHOOK_TOKEN)"},
                                     status=404)
        if runtime.draining:
            # Alertmanager retries a failed webhook; a bot that is stopping shouldn't take work.
            return web.json_response({"error": "the bot is restarting; retry"}, status=503)
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            runtime.metrics.requests.labels(kind="alertmanager", outcome="rejected").inc()
            return web.json_response({"error": "missing or wrong bearer token"}, status=401)
        try:
            notification = parse_webhook(json.loads(await request.text()))
        except (ValueError, AlertPayloadError) as e:
            runtime.metrics.requests.labels(kind="alertmanager", outcome="invalid").inc()
            message = str(e) if isinstance(e, AlertPayloadError) else "body is not valid JSON"
            return web.json_response({"error": f"not an Alertmanager webhook body: {message}"}, status=400)
        try:
            accepted = await threads.accept_notification(notification)
        except Exception as e:  # noqa: BLE001 - not recorded, so not accepted: Alertmanager retries
            log.error("could not record %d alert(s): %s", len(notification.alerts), describe_exception(e))
            runtime.metrics.requests.labels(kind="alertmanager", outcome="unavailable").inc()
            return web.json_response({"error": "the bot's state store is unavailable; retry"}, status=503)
        runtime.metrics.requests.labels(kind="alertmanager", outcome="ok").inc()
        return web.json_response({"accepted": accepted})

    return alertmanager


class _Listening:
    """alerts.listen: the channels whose posts are read, by ID or #name (names looked up once)."""

    def __init__(self, listen: tuple[str, ...]) -> None:
        self.listen = set(listen)
        self.names: dict[str, str] = {}

    async def allows(self, channel: str, client: AsyncWebClient) -> bool:
        if not self.listen or channel in self.listen:
            return True
        if channel not in self.names:
            try:
                info = await client.conversations_info(channel=channel)
            except SlackApiError as e:
                if e.response.get("error") not in _CANNOT_READ_NAMES:
                    raise  # Slack failing for now: answered 500, so Slack delivers the event again
                log.warning("alerts.listen names channels, but the name of %s could not be read (%s); "
                            "list channel IDs instead, or grant channels:read and groups:read", channel,
                            describe_exception(e))
                return False
            self.names[channel] = "#" + str(info["channel"]["name"])
        return self.names[channel] in self.listen


def register(app: AsyncApp, runtime: Runtime, threads: AlertThreads) -> None:
    listening = _Listening(threads.config.listen)

    @app.event("message")
    async def on_message(event: dict[str, Any], body: dict[str, Any], client: AsyncWebClient) -> None:
        if event.get("subtype") in _IGNORED_SUBTYPES or (event.get("thread_ts") not in (None, event.get("ts"))):
            return
        post = parse_post(event)
        if post is None:
            return
        channel, ts = str(event.get("channel", "")), str(event.get("ts", ""))
        if not await listening.allows(channel, client):
            return
        # Slack delivers an event again when it thinks we missed it; the post (channel, ts) is
        # the work's identity, so a second delivery merges into the recorded job or finds it done.
        # An exception here answers Slack 500, and Slack delivers the event again later.
        if not await threads.accept_post(post, channel, ts):
            runtime.metrics.requests.labels(kind="event", outcome="duplicate").inc()
            return
        runtime.metrics.requests.labels(kind="event", outcome="alert").inc()
