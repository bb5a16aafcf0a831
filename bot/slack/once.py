"""Posting a message exactly once, across retries, restarts and lost answers.

Before a post the caller records a PostRecord (a random marker and the time) in its own state
document; the post carries the marker in its metadata; the answer's ts completes the record.
When a record has no ts, an earlier attempt's outcome is unknown (the bot died, or Slack's answer
was lost after it had posted): the channel or thread is searched for the marker first, and only
if it is not there is the message posted again. So a message appears once, whatever failed.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bot.slack.poster import Poster


@dataclass(frozen=True)
class PostRecord:
    """A message the bot posts once.

    marker  a random id sent in the message's metadata, searched for after an unknown outcome
    at      when the first attempt was made (clock seconds): the search starts a little before
    ts      the message's ts once known; "" while the outcome of the attempt is unknown
    channel the channel ID Slack answered ("" until then)
    """

    marker: str
    at: float
    ts: str = ""
    channel: str = ""

    @classmethod
    def new(cls, now: float) -> "PostRecord":
        return cls(marker=uuid.uuid4().hex, at=now)


@dataclass(frozen=True)
class Posted:
    ts: str
    channel: str  # the channel's ID


async def post_once(
    poster: Poster,
    channel: str,
    text: str,
    blocks: list[dict[str, Any]] | None,
    *,
    record: PostRecord | None,
    begin: Callable[[PostRecord], Awaitable[PostRecord]],
    done: Callable[[PostRecord], Awaitable[None]],
    now: float,
    thread_ts: str | None = None,
    fresh: bool = False,
) -> Posted:
    """Post `text`/`blocks` unless `record` shows it was posted.

    `record`: what the caller's state says of this message (None: never attempted).
    `begin(new_record)`: store the attempt before posting; returns the record as stored (an
    attempt recorded by someone else in between wins, and its marker is searched for).
    `done(record_with_ts)`: store the outcome.
    `fresh`: the caller has just stored `record` itself, so nothing can have been posted with it.
    """
    if record is not None and record.ts:
        return Posted(record.ts, record.channel or channel)
    if record is None:
        attempt = PostRecord.new(now)
        record = await begin(attempt)
        if record.ts:
            return Posted(record.ts, record.channel or channel)
        fresh = record.marker == attempt.marker  # ours: nothing can have been posted with it yet
    if not fresh:
        found = await poster.find(channel, record.marker, since=record.at, thread_ts=thread_ts)
        if found is not None:
            complete = PostRecord(record.marker, record.at, found["ts"], found["channel"])
            await done(complete)
            return Posted(complete.ts, complete.channel)
    answer = await poster.post(channel, text, blocks, thread_ts=thread_ts, marker=record.marker)
    complete = PostRecord(record.marker, record.at, str(answer["ts"]), str(answer.get("channel") or channel))
    await done(complete)
    return Posted(complete.ts, complete.channel)
