"""Where the bot keeps what must survive a restart: SQLite by default, Redis for replicas.

STATE_URL: `sqlite:///relative.db`, `sqlite:////absolute/path.db`, `redis://host:6379/0`.
Both backends keep the same contract, pinned by tests/integration/test_store.py on SQLite and on a
real Redis (including two store instances on one Redis, and on one SQLite file, racing each other):

- claims: `claim(key, ttl)` sets a key only if absent; exactly one caller wins, across replicas.
  A claim means "done" (taken when the work is done) or is a lease that expires.
- documents: versioned JSON objects. `get` returns value + version; `put_if(key, value, version)`
  writes only if nobody wrote in between (compare-and-set; version None = only if absent).
  Claims and documents are separate namespaces: a claim never hides or replaces a document.
- sets: `add`, `discard`, `members`, each atomic.
- jobs: durable work and timers. `enqueue` records work (idempotent by id: a second enqueue of a
  pending id merges into it); `lease` hands each due job to exactly one worker for a while, with a
  fencing token; `finish`, `retry`, `release` and `extend` act only with the current token, so a
  worker whose lease ran out (and whose job another worker took) changes nothing. A timer is a job
  whose `due` is in the future; `cancel` deletes one.
- log: append-only entries per stream, read back by time range; kept forever unless a retention
  is configured.

Every time the store reads (due jobs, lease expiry, `created`, log times, claim and document
expiry) comes from one injectable clock, passed to SQL and Lua as an argument (never Redis's TIME,
never time.time() directly), so lease and timer tests run in milliseconds. On Redis, keys with a
TTL also get a PEXPIRE a minute after the clock's expiry: garbage collection only, the clock
decides.

Implementations: bot.state.sqlite.SQLiteStore, bot.state.redis.RedisStore; `open_store` picks one.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

from bot.state.clock import SYSTEM_CLOCK, Clock

JSON = dict[str, Any]


@dataclass(frozen=True)
class Versioned:
    """A document as stored: its value and its version (1 after the first write, +1 per write).
    A document that was deleted or expired starts again at 1."""

    value: JSON
    version: int


@dataclass(frozen=True)
class NewJob:
    """Work to record. `id` makes enqueueing idempotent; `lane` keeps kinds of work apart (a
    slash command never waits behind an alert storm); `due` (clock seconds) None means now."""

    id: str
    kind: str
    payload: JSON = field(default_factory=dict)
    lane: str = "default"
    due: float | None = None


@dataclass(frozen=True)
class Job:
    id: str
    kind: str
    payload: JSON
    lane: str
    due: float  # while leased: the lease's expiry (then it is due again for anybody)
    attempts: int  # leases taken so far, this one included when it comes from lease()
    created: float  # when this job was last recorded (first enqueue or latest merge): give-up counts from here


@dataclass(frozen=True)
class Lease:
    """A job handed to one worker until `expires`. Only this token may finish, retry, release or
    extend it; a lease that expired and was taken by another worker is dead (calls return False).
    (A lease that ran out but whose job nobody took yet still holds: its token is still current.)"""

    job: Job
    token: str
    expires: float
    triggers: int  # how many times the job was enqueued again while leased, as of the lease


@dataclass(frozen=True)
class LogEntry:
    """`id` is `<ms>-<seq>` (a Redis stream id, on both backends): increasing within a stream when
    compared as the pair of integers (ms, seq), not as a string. `at` is ms / 1000: the clock at
    the append rounded up to the millisecond, and never less than the previous entry's `at`
    (if the clock stands still or goes back, entries share the previous millisecond)."""

    id: str
    at: float  # clock seconds when appended (millisecond precision, never decreasing)
    entry: JSON


class Store(Protocol):
    clock: Clock

    # --- claims -------------------------------------------------------------------------
    async def claim(self, key: str, ttl: float) -> bool:
        """Set `key` for `ttl` seconds if absent (or expired); True for exactly one caller."""
        ...

    async def unclaim(self, key: str) -> None: ...

    # --- versioned documents ------------------------------------------------------------
    async def get(self, key: str) -> Versioned | None:
        """The document, or None if absent or expired."""
        ...

    async def put(self, key: str, value: JSON, ttl: float | None = None) -> int:
        """Write unconditionally (ttl None: no expiry); returns the new version."""
        ...

    async def put_if(self, key: str, value: JSON, version: int | None, ttl: float | None = None) -> int | None:
        """Write only if the document is still at `version` (None: only if absent or expired).
        Returns the new version, or None when somebody wrote in between (nothing changed)."""
        ...

    async def delete(self, key: str) -> None: ...

    # --- sets ---------------------------------------------------------------------------
    async def add(self, key: str, member: str) -> None: ...

    async def discard(self, key: str, member: str) -> None: ...

    async def members(self, key: str) -> set[str]: ...

    # --- jobs and timers ----------------------------------------------------------------
    async def enqueue(self, jobs: Sequence[NewJob]) -> list[bool]:
        """Record jobs, all in one transaction. Per job: True if new. An id already pending is
        merged: its payload is replaced and `created` becomes now (newly accepted work restarts the
        give-up clock; kind and lane stay); if it is not leased its due becomes the earlier of the
        two; if it is leased, its trigger count goes up, so `finish` runs it once more."""
        ...

    async def lease(self, owner: str, lane: str, limit: int, seconds: float) -> list[Lease]:
        """Up to `limit` due jobs of `lane` (earliest due first, then by id), each to this caller
        alone for `seconds`, with a fresh random token. A job whose lease expired is due again.
        `attempts` goes up by one. `owner` (who leases) is recorded with the lease, for people
        reading the store; the token, not the owner, decides who may act on it."""
        ...

    async def extend(self, leases: Sequence[Lease], seconds: float) -> list[Lease | None]:
        """Renew leases still held: `seconds` from now (None for each one lost). A renewed lease
        keeps its token and its `triggers`; its job's `due` is the new expiry."""
        ...

    async def finish(self, lease: Lease) -> bool:
        """Done: the job is deleted, unless it was enqueued again while leased; then it stays,
        unleased and due now, to run once more. False if the lease was lost."""
        ...

    async def retry(self, lease: Lease, delay: float) -> bool:
        """Hand the job back, due again in `delay` seconds (attempts kept). False if the lease
        was lost."""
        ...

    async def release(self, lease: Lease) -> bool:
        """Hand the job back due now (shutdown). False if the lease was lost."""
        ...

    async def cancel(self, job_id: str) -> bool:
        """Delete a job (a timer no longer wanted), leased or not. True if it existed."""
        ...

    async def job(self, job_id: str) -> Job | None: ...

    async def pending(self, lane: str | None = None) -> int:
        """Jobs recorded and not finished (leased or not), in `lane` or in all lanes."""
        ...

    # --- append-only log ----------------------------------------------------------------
    async def append(self, stream: str, entry: JSON) -> LogEntry: ...

    async def read_log(self, stream: str, since: float | None = None, until: float | None = None,
                       limit: int = 1000) -> list[LogEntry]:
        """Entries with since <= at < until, oldest first, at most `limit`. With a log retention,
        entries older than the retention are never returned (even before they are trimmed)."""
        ...

    # --- the store itself ---------------------------------------------------------------
    async def ping(self) -> None: ...

    async def close(self) -> None: ...


MAX_CHANGE_ATTEMPTS = 50


async def change_document(store: Store, key: str, change: Callable[[JSON | None], JSON | None],
                          ttl: float | None = None) -> JSON | None:
    """Apply `change` to the document at `key` by compare-and-set, reading again after a conflict;
    returns the document as stored afterwards. `change` gets the current value (None when there is
    none) and returns the new one, or the same object (or None) to leave it: it may run several
    times, so keep it pure."""
    for _ in range(MAX_CHANGE_ATTEMPTS):
        current = await store.get(key)
        value = current.value if current is not None else None
        changed = change(value)
        if changed is None or changed is value:
            return value
        if await store.put_if(key, changed, current.version if current is not None else None, ttl=ttl):
            return changed
    raise RuntimeError(f"{key}: gave up after {MAX_CHANGE_ATTEMPTS} conflicting writes")


def open_store(url: str, clock: Clock = SYSTEM_CLOCK, log_retention: float | None = None) -> Store:
    """The store STATE_URL names. `log_retention` (seconds): trim log entries older than that."""
    if url.startswith("sqlite:///"):
        from bot.state.sqlite import SQLiteStore

        return SQLiteStore(url[len("sqlite:///"):], clock=clock, log_retention=log_retention)
    if url.startswith(("redis://", "rediss://")):
        from bot.state.redis import RedisStore

        return RedisStore(url, clock=clock, log_retention=log_retention)
    raise ValueError(f"unsupported STATE_URL {url!r}")  # config validation rejects it first


# ---- shared by the implementations ------------------------------------------------------------
def dumps(value: JSON) -> str:
    return json.dumps(value, separators=(",", ":"))


def to_ms(seconds: float) -> int:
    """Clock seconds to whole milliseconds, rounded up, ignoring float noise below a microsecond
    (so that `to_ms(entry.at) == ms` for every `at` the log returned)."""
    return math.ceil(round(seconds * 1000, 3))


def log_id(ms: int, seq: int) -> str:
    return f"{ms}-{seq}"


def parse_log_id(entry_id: str) -> tuple[int, int]:
    ms, seq = entry_id.split("-")
    return int(ms), int(seq)


def log_since_ms(now: float, since: float | None, retention: float | None) -> int:
    """The first millisecond read_log may return (inclusive)."""
    start = 0 if since is None else to_ms(since)
    if retention is not None:
        start = max(start, to_ms(now - retention))
    return start
