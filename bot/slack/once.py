"""Posting a message exactly once, across retries, restarts and lost answers.

Before a post the caller records a PostRecord (a random marker and the time) in its own state
document, by compare-and-set; the post carries the marker in its metadata; the answer's ts
completes the record. When a record has no ts, an earlier attempt's outcome is unknown (the bot
died, its lease ran out, or Slack's answer was lost after it had posted). Once that attempt can
no longer land (its client has given up), the channel or thread is searched for the marker, and
only if it is not there is the message posted again. So a message appears once, whatever failed.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.errors import TemporaryError
from bot.slack.poster import Poster
from bot.state.store import Store

MAX_SWAP_ATTEMPTS = 50


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


class StoreLedger:
    """The PostRecord of one message, kept at `path` inside a versioned document of the store
    (an alert thread's `posts.<name>`, a command's `answer`), changed by compare-and-set."""

    def __init__(self, store: Store, key: str, path: tuple[str, ...], ttl: float | None) -> None:
        self.store, self.key, self.path, self.ttl = store, key, path, ttl

    async def record(self) -> PostRecord | None:
        current = await self.store.get(self.key)
        return _at(current.value, self.path) if current is not None else None

    async def swap(self, expected: PostRecord | None, new: PostRecord | None) -> PostRecord | None:
        """Put `new` (None: remove) where `expected` still is; returns what is there afterwards."""
        for _ in range(MAX_SWAP_ATTEMPTS):
            current = await self.store.get(self.key)
            doc = dict(current.value) if current is not None else {}
            stored = _at(doc, self.path)
            if stored != expected:
                return stored
            parent = doc  # copied along the path only: the rest of the document is written back as read
            for part in self.path[:-1]:
                parent[part] = dict(parent.get(part) or {})
                parent = parent[part]
            if new is None:
                parent.pop(self.path[-1], None)
            else:
                parent[self.path[-1]] = dataclasses.asdict(new)
            if await self.store.put_if(self.key, doc, current.version if current else None, ttl=self.ttl):
                return new
        raise RuntimeError(f"{self.key}: gave up after {MAX_SWAP_ATTEMPTS} conflicting writes")


def _at(doc: dict[str, Any], path: tuple[str, ...]) -> PostRecord | None:
    for part in path:
        doc = doc.get(part) if isinstance(doc, dict) else None  # type: ignore[assignment]
    return PostRecord(**doc) if isinstance(doc, dict) else None


def _known_not_posted(error: BaseException) -> bool:
    """Slack answered and said no (an API error, or 429): nothing was posted. A 5xx, a timeout or a
    dropped connection say nothing of whether the message went out."""
    if isinstance(error, SlackApiError):
        status = getattr(error.response, "status_code", 0)
        return status == 200 or status == 429
    return False


async def post_once(
    poster: Poster,
    ledger: StoreLedger,
    channel: str,
    text: str,
    blocks: list[dict[str, Any]] | None,
    *,
    now: float,
    thread_ts: str | None = None,
    fresh: bool = False,
) -> Posted:
    """Post `text`/`blocks` once: unless the ledger shows it was posted, or it is found.

    `fresh`: the caller has just put the ledger's record there itself, so nothing can have been
    posted with it yet.

    Raises TemporaryError (the job retries later) while an earlier attempt may still land: its
    outcome is known only once its client has given up (`poster.settle_seconds` after it began).
    Looking for it sooner could miss a post still in flight, and post it twice.
    """
    record = await ledger.record()
    if record is not None and record.ts:
        return Posted(record.ts, record.channel or channel)
    if record is not None and not fresh:
        settle = record.at + poster.settle_seconds - now
        if settle > 0:
            raise TemporaryError(f"an earlier attempt to post may still land; looking for it in {settle:.1f} s",
                                 delay=settle)
        found = await poster.find(channel, record.marker, since=record.at, thread_ts=thread_ts)
        if found is not None:
            complete = PostRecord(record.marker, record.at, found["ts"], found["channel"])
            await ledger.swap(record, complete)
            return Posted(complete.ts, complete.channel)
    if record is None or not fresh:
        # Record this attempt (same marker as the one that never landed, so a search finds either).
        attempt = PostRecord(record.marker if record else uuid.uuid4().hex, now)
        stored = await ledger.swap(record, attempt)
        if stored is not None and stored.ts:
            return Posted(stored.ts, stored.channel or channel)
        if stored != attempt:
            raise TemporaryError("another worker is posting this message; looking again shortly",
                                 delay=poster.settle_seconds)
        record = attempt
    try:
        answer = await poster.post(channel, text, blocks, thread_ts=thread_ts, marker=record.marker)
    except Exception as e:
        if _known_not_posted(e):
            await ledger.swap(record, None)  # nothing to look for: the next attempt posts at once
        raise
    complete = PostRecord(record.marker, record.at, str(answer["ts"]), str(answer.get("channel") or channel))
    await ledger.swap(record, complete)
    return Posted(complete.ts, complete.channel)
