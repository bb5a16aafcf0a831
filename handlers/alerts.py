"""Alerts arriving: Alertmanager's webhook (`POST /alertmanager`) and its posts in Slack.

Both record the work in the store (bot.alerting.threads) and only then answer: 200 means the
alert will be posted and investigated whatever happens next; if it can't be recorded the webhook
answers 503 and Alertmanager sends it again. Recording is one transaction for a whole storm, so
Alertmanager's webhook timeout and Slack's 3-second rule are met.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any, Awaitable, Callable

from aiohttp import web
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.alerting.ingest import AlertPayloadError, TooManyAlerts, parse_post, parse_webhook
from bot.alerting.model import Notification
from bot.alerting.threads import AlertThreads
from bot.commands.report import describe_exception
from bot.runtime.intake import Refused, ascii_header, decode_text, loads, read_capped
from bot.runtime.runtime import Runtime
from bot.slack.poster import slack_error

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
        try:
            notification = await _read_notification(request, token)
        except Refused as refused:
            outcome = {401: "rejected", 503: "unavailable"}.get(refused.status, "invalid")
            runtime.metrics.requests.labels(kind="alertmanager", outcome=outcome).inc()
            log.warning("refused an Alertmanager webhook (%d): %s", refused.status, refused.reason)
            return refused.response()
        try:
            accepted = await threads.accept_notification(notification)
        except Exception as e:  # noqa: BLE001 - not recorded, so not accepted: Alertmanager retries
            log.error("could not record %d alert(s): %s", len(notification.alerts), describe_exception(e))
            runtime.metrics.requests.labels(kind="alertmanager", outcome="unavailable").inc()
            return web.json_response({"error": "the bot's state store is unavailable; retry"}, status=503)
        runtime.metrics.requests.labels(kind="alertmanager", outcome="ok").inc()
        return web.json_response({"accepted": accepted})

    return alertmanager


async def _read_notification(request: web.Request, token: str) -> Notification:
    """The webhook's notification: bearer token, then the capped body, parsed. Refused otherwise:
    401, 413, 400 with the reason, or 503 for more alerts than one request may enqueue."""
    given = ascii_header(request.headers, "Authorization") or ""
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        raise Refused(401, "a missing or wrong bearer token", "missing or wrong bearer token")
    body = loads(decode_text(await read_capped(request), request.charset))
    try:
        return parse_webhook(body)
    except TooManyAlerts as e:
        raise Refused(503, str(e), f"{e}; narrow the route's group_by") from None
    except AlertPayloadError as e:
        raise Refused(400, f"not an Alertmanager webhook body: {e}") from None


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
                if slack_error(e) not in _CANNOT_READ_NAMES:
                    raise  # Slack failing for now: answered 500, so Slack delivers the event again
                log.warning("alerts.listen names channels, but the name of %s could not be read (%s); "
                            "list channel IDs instead, or grant channels:read and groups:read", channel,
                            describe_exception(e))
                return False
            self.names[channel] = "#" + str(info["channel"]["name"])
        return self.names[channel] in self.listen


def _is_new_post(event: dict[str, Any]) -> bool:
    subtype, thread_ts = event.get("subtype"), event.get("thread_ts")
    if subtype is not None and (not isinstance(subtype, str) or subtype in _IGNORED_SUBTYPES):
        return False
    return thread_ts is None or thread_ts == event.get("ts")


def register(app: AsyncApp, runtime: Runtime, threads: AlertThreads) -> None:
    listening = _Listening(threads.config.listen)

    @app.event("message")
    async def on_message(event: dict[str, Any], body: dict[str, Any], client: AsyncWebClient) -> None:
        channel, ts = event.get("channel"), event.get("ts")
        if not isinstance(channel, str) or not isinstance(ts, str) or not _is_new_post(event):
            return  # an edit, a reply, or not shaped like a post at all: not ours
        if not isinstance(event.get("attachments"), (list, type(None))):
            log.warning("ignored a message event in %s whose attachments are not a list", channel)
            return
        post = parse_post(event)
        if post is None:
            return
        if not await listening.allows(channel, client):
            return
        # Slack delivers an event again when it thinks we missed it; the post (channel, ts) is
        # the work's identity, so a second delivery merges into the recorded job or finds it done.
        # An exception here answers Slack 500, and Slack delivers the event again later.
        if not await threads.accept_post(post, channel, ts):
            runtime.metrics.requests.labels(kind="event", outcome="duplicate").inc()
            return
        runtime.metrics.requests.labels(kind="event", outcome="alert").inc()
