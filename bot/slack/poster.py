"""Posting to Slack at the pace Slack allows, and at most once.

Pace: chat.postMessage allows about one message per second per channel, with short bursts;
beyond that Slack answers 429 with Retry-After, which the client's retry handler waits out.
Pacing each channel here keeps an alert storm from running into 429s at all, and keeps one busy
channel from slowing the others (a slash command's answer in #ops never waits behind 300 alerts
in #alerts-critical). Alert posts and command answers share the pace.

Once: a post whose answer was lost (a timeout, a 5xx after Slack had in fact posted) must not be
posted again blindly. So chat.postMessage goes through a client that retries nothing by itself,
every post can carry a marker in its metadata, and `find` looks for a marker in a channel's
history or a thread's replies before a post is attempted again (see bot.slack.once). A 429 holds
the channel back for its Retry-After here, and the caller's job tries again after it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.mrkdwn import safe_file
from bot.state import keys
from bot.state.store import Store
from diagnostics.blocking import off_loop
from diagnostics.result import FileAttachment

log = logging.getLogger(__name__)

METADATA_EVENT = "chatops_post"  # metadata.event_type of every marked post
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{6,}$")
# Errors that mean "this lookup can't be done", not "Slack is down": the caller posts anyway.
_LOOKUP_IMPOSSIBLE = {"missing_scope", "not_in_channel", "channel_not_found", "thread_not_found"}
LOOKUP_SLACK_SECONDS = 120.0  # a post's ts may be a little before the attempt was recorded


def slack_error(error: SlackApiError) -> str:
    """Slack's error code ("not_in_channel"), or "HTTP 500" when Slack answered with no JSON (a
    5xx's HTML page, where `error.response.get` would fail)."""
    data = getattr(error.response, "data", None)
    if isinstance(data, dict):
        return str(data.get("error", "")) or f"HTTP {getattr(error.response, 'status_code', '?')}"
    return f"HTTP {getattr(error.response, 'status_code', '?')}"


class Poster:
    def __init__(self, client: AsyncWebClient, interval: float = 1.0, *, store: Store | None = None,
                 reader: AsyncWebClient | None = None) -> None:
        """`client` posts (it must not retry 5xx or timeouts by itself: those may have posted);
        `reader` edits, uploads and reads history (it may retry anything); `store` keeps the
        channel IDs Slack answered for channel names, across restarts."""
        self.client = client
        self.reader = reader or client
        # After this long an attempt to post has landed or its client has given up on it.
        self.settle_seconds = float(getattr(client, "timeout", 30) or 30) + 1.0
        self.interval = interval
        self.store = store
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._last: dict[str, float] = {}
        # "#alerts-critical" and its ID are one channel: both are paced under the ID.
        self._ids: dict[str, str] = {}
        self.posted = 0
        self.updated = 0

    async def _turn(self, channel: str) -> None:
        """Wait until this channel may take another message; callers hold the channel's lock."""
        last = self._last.get(channel)
        if last is not None:
            wait = self.interval - (time.monotonic() - last)
            if wait > 0:
                await asyncio.sleep(wait)
        self._last[channel] = time.monotonic()

    async def post(self, channel: str, text: str, blocks: list[dict[str, Any]] | None = None,
                   thread_ts: str | None = None, marker: str = "",
                   before_send: Callable[[float], Awaitable[None]] | None = None, **extra: Any) -> dict[str, Any]:
        """chat.postMessage, paced; returns Slack's answer (its `channel` is the channel ID).

        `marker` goes into the message's metadata so that `find` can tell later whether this
        very post went out. `before_send(waited)` is awaited in the channel's turn, right before
        the request, with the seconds spent waiting for that turn. A 429 holds the channel back
        for its Retry-After (every post to it waits) and is raised: Slack posted nothing.
        """
        if marker:
            extra["metadata"] = {"event_type": METADATA_EVENT, "event_payload": {"marker": marker}}
        asked = time.monotonic()
        while True:
            pace = self._ids.get(channel, channel)
            async with self._locks[pace]:
                if self._ids.get(channel, channel) != pace:
                    continue  # its ID was learned while this waited: take a turn under the ID
                await self._turn(pace)
                if before_send is not None:
                    await before_send(time.monotonic() - asked)
                try:
                    response = await self.client.chat_postMessage(channel=channel, text=text, blocks=blocks,
                                                                  thread_ts=thread_ts, **extra)
                except SlackApiError as e:
                    if getattr(e.response, "status_code", 0) == 429:
                        self._hold(pace, e)
                    raise
                data = dict(response.data) if isinstance(response.data, dict) else {}
                answered = str(data.get("channel") or "")
                learned = bool(answered and answered != channel and channel not in self._ids)
                if learned:  # in the turn: no post to the name can slip past posts to the ID
                    self._adopt(channel, answered)
                break
        self.posted += 1
        if learned:
            await self._remember(channel, answered)
        return data

    def _hold(self, pace: str, error: SlackApiError) -> None:
        """Slack answered 429: the channel's next turn comes after Retry-After (default 1 s)."""
        try:
            wait = float((error.response.headers or {}).get("Retry-After", 1))
        except (TypeError, ValueError):
            wait = 1.0
        self._last[pace] = time.monotonic() + wait - self.interval

    def _adopt(self, name: str, channel_id: str) -> None:
        """From now on the name is paced under its ID, carrying its pace over (so the first post
        under the ID still waits its turn); posts waiting under the name move to the ID."""
        self._ids[name] = channel_id
        self._last[channel_id] = max(self._last.get(channel_id, 0.0), self._last.get(name, 0.0))

    async def _remember(self, name: str, channel_id: str) -> None:
        """Keep a channel's ID, learned from a post to its name, for later lookups."""
        if self.store is not None:
            try:
                await self.store.put(keys.slack_channel(name), {"id": channel_id})
            except Exception as e:  # noqa: BLE001 - only an optimisation for a later lookup
                log.warning("could not remember the ID of %s: %s", name, e)

    async def channel_id(self, channel: str) -> str | None:  # noqa: C901 - 4 places in turn; kept as rewritten
        """The channel's ID: itself if it is one, else what Slack answered for the name before
        (this process or, through the store, an earlier one), else conversations.list."""
        if _CHANNEL_ID.match(channel):
            return channel
        if channel in self._ids:
            return self._ids[channel]
        if self.store is not None:
            known = await self.store.get(keys.slack_channel(channel))
            if known is not None:
                self._adopt(channel, str(known.value["id"]))
                return self._ids[channel]
        name, cursor = channel.lstrip("#"), None
        for _ in range(20):  # 20 pages of 1000 channels
            try:
                page = await self.reader.conversations_list(types="public_channel,private_channel",
                                                            exclude_archived=True, limit=1000, cursor=cursor)
            except SlackApiError as e:
                if slack_error(e) in _LOOKUP_IMPOSSIBLE:
                    return None
                raise
            for item in page.get("channels") or []:
                if item.get("name") == name:
                    self._adopt(channel, str(item["id"]))
                    await self._remember(channel, str(item["id"]))
                    return self._ids[channel]
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                break
        return None

    async def find(self, channel: str, marker: str, since: float, thread_ts: str | None = None
                   ) -> dict[str, Any] | None:
        """The message carrying `marker` (posted at or after `since`, epoch seconds), in the
        thread `thread_ts` or else at the channel's top level; None if there is none, or if
        Slack won't let the bot look (then the caller posts: a lost post is worse than a twin).

        Raises when Slack fails: the caller retries later rather than risk a duplicate.
        """
        channel_id = await self.channel_id(channel)
        if channel_id is None:
            log.warning("cannot check whether a post to %s went out (its ID is unknown; grant channels:read "
                        "or configure the channel by ID); posting again", channel)
            return None
        oldest = f"{max(since - LOOKUP_SLACK_SECONDS, 0):.6f}"
        cursor = None
        for _ in range(10):
            try:
                if thread_ts:
                    page = await self.reader.conversations_replies(channel=channel_id, ts=thread_ts, oldest=oldest,
                                                                   include_all_metadata=True, limit=200,
                                                                   cursor=cursor)
                else:
                    page = await self.reader.conversations_history(channel=channel_id, oldest=oldest,
                                                                   include_all_metadata=True, limit=200,
                                                                   cursor=cursor)
            except SlackApiError as e:
                if slack_error(e) in _LOOKUP_IMPOSSIBLE:
                    log.warning("cannot check whether a post to %s went out (%s); posting again", channel,
                                slack_error(e))
                    return None
                raise
            for message in page.get("messages") or []:
                payload = (message.get("metadata") or {}).get("event_payload") or {}
                if payload.get("marker") == marker:
                    return {"channel": channel_id, "ts": str(message.get("ts")), "message": message}
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return None
        return None

    async def update(self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]] | None = None) -> None:
        # Edits are rate-limited per workspace method tier, not per channel; the retry handler
        # covers a 429. They don't take a channel's posting turn. An edit is idempotent.
        await self.reader.chat_update(channel=channel, ts=ts, text=text, blocks=blocks)
        self.updated += 1

    async def upload(self, channel: str, file: FileAttachment, thread_ts: str | None = None) -> None:
        file = await off_loop(len(file.content), safe_file, file)  # a log file: megabytes to redact
        pace = self._ids.get(channel, channel)
        async with self._locks[pace]:
            await self._turn(pace)
            await self.reader.files_upload_v2(channel=channel, file=file.content, filename=file.filename,
                                              title=file.title or file.filename, thread_ts=thread_ts)
