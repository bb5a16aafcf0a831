"""Posting a message exactly once, across retries, restarts and lost answers.

Before a post the caller records a PostRecord (a random marker and the time) in its own state
document, by compare-and-set; the post carries the marker in its metadata; the answer's ts
completes the record. When a record has no ts, an earlier attempt's outcome is unknown (the bot
died, its lease ran out, or Slack's answer was lost after it had posted). Once that attempt can
no longer land (its client has given up), the channel or thread is searched for the marker, and
only if it is not there is the message posted again. So a message appears once, whatever failed.
Only an answer that says for certain that nothing was posted (REFUSED) skips the search.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.errors import PermanentError, TemporaryError
from bot.slack.mrkdwn import truncate
from bot.slack.poster import Poster, slack_error
from bot.state.clock import Clock
from bot.state.store import Store

MAX_SWAP_ATTEMPTS = 50


@dataclass(frozen=True)
class PostRecord:
    """A message the bot posts once.

    marker  a random id sent in the message's metadata, searched for after an unknown outcome
    at      when the latest attempt was sent (clock seconds): the search starts a little before
    ts      the message's ts once known; "" while the outcome of the attempt is unknown
    channel the channel ID Slack answered ("" until then)
    refused Slack said no to the latest attempt (not in the channel, 429, …): nothing was posted,
            so the next attempt posts without searching first
    """

    marker: str
    at: float
    ts: str = ""
    channel: str = ""
    refused: bool = False

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


# Slack's answers that say for certain that nothing was posted. Any other error (internal_error,
# fatal_error, a 5xx, a timeout, a dropped connection) may have come after the message went out.
REFUSED = frozenset({
    "channel_not_found", "not_in_channel", "is_archived", "invalid_auth", "not_authed", "account_inactive",
    "token_revoked", "token_expired", "missing_scope", "restricted_action", "team_access_not_granted",
    "ratelimited", "invalid_blocks", "invalid_blocks_format", "msg_too_long", "no_text", "too_many_attachments",
    "invalid_metadata_format", "invalid_metadata_schema", "metadata_too_large", "invalid_arguments",
})
# Refusals of the message itself: the same message will never be taken; a plain-text one may.
MESSAGE_REFUSED = frozenset({"invalid_blocks", "invalid_blocks_format", "msg_too_long", "too_many_attachments"})
# An attempt queued longer than this for its channel's turn records when it is really sent.
REQUEUED_AFTER = 1.0
PLAIN_TEXT_LIMIT = 3000


def refusal(error: BaseException) -> str:
    """Slack's error code when it said for certain that nothing was posted, else ""."""
    if not isinstance(error, SlackApiError):
        return ""
    if getattr(error.response, "status_code", 0) == 429:
        return "ratelimited"
    code = slack_error(error)  # "HTTP 500" when Slack answered with no JSON (a 5xx's HTML page)
    return code if code in REFUSED else ""


def retry_after(error: BaseException) -> float | None:
    headers = getattr(getattr(error, "response", None), "headers", None) or {}
    value = headers.get("Retry-After") or headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


async def post_once(
    poster: Poster,
    ledger: StoreLedger,
    channel: str,
    text: str,
    blocks: list[dict[str, Any]] | None,
    *,
    clock: Clock,
    thread_ts: str | None = None,
    fresh: bool = False,
) -> Posted:
    """Post `text`/`blocks` once: unless the ledger shows it was posted, or it is found.

    `fresh`: the caller has just put the ledger's record there itself, so nothing can have been
    posted with it yet.

    Raises TemporaryError (the job retries later) while an earlier attempt may still land: its
    outcome is known only once its client has given up (`poster.settle_seconds` after it was
    sent). Looking for it sooner could miss a post still in flight, and post it twice. Slack's
    429 becomes a TemporaryError after its Retry-After; a message Slack will never take (bad
    blocks, too long) is posted as plain text instead; a refusal that waiting may fix (not in the
    channel) is raised as Slack's error, and the next attempt posts without searching.
    """
    record = await ledger.record()
    if record is not None and record.ts:
        return Posted(record.ts, record.channel or channel)
    if record is not None and not fresh and not record.refused:
        found = await _find_earlier(poster, ledger, record, channel, clock, thread_ts)
        if found is not None:
            return found
    if record is None or not fresh:
        # Record this attempt (same marker as the one that never landed, so a search finds either).
        attempt = PostRecord(record.marker if record else uuid.uuid4().hex, clock.now())
        stored = await ledger.swap(record, attempt)
        if stored is not None and stored.ts:
            return Posted(stored.ts, stored.channel or channel)
        if stored != attempt:
            raise TemporaryError("another worker is posting this message; looking again shortly",
                                 delay=poster.settle_seconds)
        record = attempt
    sending = _Sending(ledger, record, clock)
    try:
        answer = await poster.post(channel, text, blocks, thread_ts=thread_ts, marker=record.marker,
                                   before_send=sending)
    except Exception as error:
        code = refusal(error)
        if not code:
            raise  # unknown outcome: the record stays, and the next attempt searches first
        await ledger.swap(sending.record, dataclasses.replace(sending.record, refused=True))
        if code in MESSAGE_REFUSED and blocks:  # the same words, without the blocks Slack refused
            return await post_once(poster, ledger, channel, truncate(text, PLAIN_TEXT_LIMIT), None, clock=clock,
                                   thread_ts=thread_ts)
        raise _after_refusal(code, error) from error
    record = sending.record
    complete = PostRecord(record.marker, record.at, str(answer["ts"]), str(answer.get("channel") or channel))
    await ledger.swap(record, complete)
    return Posted(complete.ts, complete.channel)


async def _find_earlier(poster: Poster, ledger: StoreLedger, record: PostRecord, channel: str, clock: Clock,
                        thread_ts: str | None) -> Posted | None:
    """The earlier attempt's message, if it landed; TemporaryError while it still may."""
    settle = record.at + poster.settle_seconds - clock.now()
    if settle > 0:
        raise TemporaryError(f"an earlier attempt to post may still land; looking for it in {settle:.1f} s",
                             delay=settle)
    found = await poster.find(channel, record.marker, since=record.at, thread_ts=thread_ts)
    if found is None:
        return None
    complete = PostRecord(record.marker, record.at, found["ts"], found["channel"])
    await ledger.swap(record, complete)
    return Posted(complete.ts, complete.channel)


def _after_refusal(code: str, error: Exception) -> Exception:
    """What the job learns from a refusal: wait for Slack's rate limit, give up on a message Slack
    will never take, or Slack's own error (not in the channel: retried until someone invites the bot)."""
    if code == "ratelimited":
        return TemporaryError("Slack's rate limit", delay=retry_after(error))
    if code in MESSAGE_REFUSED or code in ("no_text", "invalid_arguments"):
        return PermanentError(f"Slack will never take this message ({code})")
    return error


class _Sending:
    """Called by the poster right before the request goes out: an attempt that waited its
    channel's turn (a storm, a 429) records when it is really sent, so that the wait before a
    search for it is counted from then."""

    def __init__(self, ledger: StoreLedger, record: PostRecord, clock: Clock) -> None:
        self.ledger, self.record, self.clock = ledger, record, clock

    async def __call__(self, waited: float) -> None:
        if waited < REQUEUED_AFTER:
            return
        sent = dataclasses.replace(self.record, at=self.clock.now())
        if await self.ledger.swap(self.record, sent) != sent:
            raise TemporaryError("another worker took this message over while it waited its turn")
        self.record = sent
