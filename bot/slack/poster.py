"""Posting to Slack at the pace Slack allows.

chat.postMessage allows about one message per second per channel, with short bursts;
beyond that Slack answers 429 with Retry-After, which the client's retry handler waits
out. Pacing each channel here keeps an alert storm from running into 429s at all, and
keeps one busy channel from slowing the others (a slash command's answer in #ops never
waits behind 300 alerts in #alerts-critical).
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.mrkdwn import safe_file
from diagnostics.result import FileAttachment


class Poster:
    def __init__(self, client: AsyncWebClient, interval: float = 1.0) -> None:
        self.client = client
        self.interval = interval
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
                   thread_ts: str | None = None, **extra: Any) -> dict[str, Any]:
        """chat.postMessage, paced; returns Slack's answer (its `channel` is the channel ID)."""
        pace = self._ids.get(channel, channel)
        async with self._locks[pace]:
            await self._turn(pace)
            response = await self.client.chat_postMessage(channel=channel, text=text, blocks=blocks,
                                                          thread_ts=thread_ts, **extra)
        self.posted += 1
        data = dict(response.data) if isinstance(response.data, dict) else {}
        if data.get("channel") and data["channel"] != channel and channel not in self._ids:
            self._ids[channel] = str(data["channel"])
            # Carry the pace over, so the first post under the ID still waits its turn.
            self._last[self._ids[channel]] = max(self._last.get(self._ids[channel], 0.0), self._last[pace])
        return data

    async def update(self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]] | None = None) -> None:
        # Edits are rate-limited per workspace method tier, not per channel; the retry handler
        # covers a 429. They don't take a channel's posting turn.
        await self.client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks)
        self.updated += 1

    async def upload(self, channel: str, file: FileAttachment, thread_ts: str | None = None) -> None:
        file = safe_file(file)
        pace = self._ids.get(channel, channel)
        async with self._locks[pace]:
            await self._turn(pace)
            await self.client.files_upload_v2(channel=channel, file=file.content, filename=file.filename,
                                              title=file.title or file.filename, thread_ts=thread_ts)
