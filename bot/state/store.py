"""Where the bot keeps what must survive a restart: SQLite by default, Redis for replicas.

STATE_URL: `sqlite:///relative.db`, `sqlite:////absolute/path.db`, `redis://host:6379/0`.
Both backends keep the same contract, pinned by tests/integration/test_store.py on SQLite and on a
real Redis (including two store instances on one Redis racing each other):

- claims: `claim(key, ttl)` sets a key only if absent; exactly one caller wins, across replicas.
  A claim means "done" (taken when the work is done) or is a lease that expires.
- documents: versioned JSON objects. `get` returns value + version; `put_if(key, value, version)`
  writes only if nobody wrote in between (compare-and-set; version None = only if absent).
- sets: `add`, `discard`, `members`, each atomic.
- jobs: durable work and timers. `enqueue` records work (idempotent by id: a second enqueue of a
  pending id merges into it); `lease` hands each due job to exactly one worker for a while, with a
  fencing token; `finish`, `retry`, `release` and `extend` act only with the current token, so a
  worker whose lease ran out (and whose job another worker took) changes nothing. A timer is a job
  whose `due` is in the future; `cancel` deletes one.
- log: append-only entries per stream, read back by time range; kept forever unless a retention
  is configured.

Every time the store reads (due jobs, lease expiry, log times, SQLite expiry) comes from one
injectable clock, so lease and timer tests run in milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

from bot.state.clock import Clock

JSON = dict[str, Any]


@dataclass(frozen=True)
class Versioned:
    """A document as stored: its value and its version (1 after the first write, +1 per write)."""

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
    due: float
    attempts: int  # leases taken so far, this one included when it comes from lease()
    created: float  # when this job was first recorded (give-up is measured from here)


@dataclass(frozen=True)
class Lease:
    """A job handed to one worker until `expires`. Only this token may finish, retry, release or
    extend it; a lease that expired and was taken by another worker is dead (calls return False)."""

    job: Job
    token: str
    expires: float
    triggers: int  # how many times the job was enqueued again while leased, as of the lease


@dataclass(frozen=True)
class LogEntry:
    id: str  # increasing within a stream
    at: float  # clock seconds when appended
    entry: JSON


class Store(Protocol):
    clock: Clock

    # --- claims -------------------------------------------------------------------------
    async def claim(self, key: str, ttl: float) -> bool:
        """Set `key` if absent (or expired); True for exactly one caller."""
        ...

    async def unclaim(self, key: str) -> None: ...

    # --- versioned documents ------------------------------------------------------------
    async def get(self, key: str) -> Versioned | None: ...

    async def put(self, key: str, value: JSON, ttl: float | None = None) -> int:
        """Write unconditionally; returns the new version."""
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
        merged: its payload is replaced; if it is not leased its due becomes the earlier of the
        two; if it is leased, its trigger count goes up, so `finish` runs it once more."""
        ...

    async def lease(self, owner: str, lane: str, limit: int, seconds: float) -> list[Lease]:
        """Up to `limit` due jobs of `lane` (earliest due first), each to this caller alone
        for `seconds`. A job whose lease expired is due again. `attempts` goes up by one."""
        ...

    async def extend(self, leases: Sequence[Lease], seconds: float) -> list[Lease | None]:
        """Renew leases still held (None for each one lost)."""
        ...

    async def finish(self, lease: Lease) -> bool:
        """Done: the job is deleted, unless it was enqueued again while leased; then it stays,
        unleased and due now, to run once more. False if the lease was lost."""
        ...

    async def retry(self, lease: Lease, delay: float) -> bool:
        """Hand the job back, due again in `delay` seconds. False if the lease was lost."""
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
        """Entries with since <= at < until, oldest first, at most `limit`."""
        ...

    # --- the store itself ---------------------------------------------------------------
    async def ping(self) -> None: ...

    async def close(self) -> None: ...


# ---- OLD IMPLEMENTATIONS (to be replaced) ----
import json, sqlite3, time
from pathlib import Path
from diagnostics.blocking import BlockingPool

def open_store(url: str) -> Store:
    if url.startswith("sqlite:///"):
        return SQLiteStore(url[len("sqlite:///"):])
    if url.startswith(("redis://", "rediss://")):
        return RedisStore(url)
    raise ValueError(f"unsupported STATE_URL {url!r}")  # config validation rejects it first


class SQLiteStore:
    """A local file. Every call runs on one dedicated thread: sqlite3 blocks, the loop must not."""

    PURGE_EVERY = 500  # writes between sweeps of expired rows (claims are never read again)

    def __init__(self, path: str) -> None:
        self.path = path
        self._writes = 0
        self._pool = BlockingPool(workers=1)  # one thread: one connection, calls in order
        self._db: sqlite3.Connection | None = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=5, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL, expires_at REAL)"
            )
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS sets (key TEXT NOT NULL, member TEXT NOT NULL, PRIMARY KEY (key, member))"
            )
        return self._db

    def _purge(self, db: sqlite3.Connection, key: str) -> None:
        db.execute("DELETE FROM kv WHERE key = ? AND expires_at IS NOT NULL AND expires_at <= ?", (key, time.time()))

    def _wrote(self, db: sqlite3.Connection) -> None:
        self._writes += 1
        if self._writes % self.PURGE_EVERY == 0:
            db.execute("DELETE FROM kv WHERE expires_at IS NOT NULL AND expires_at <= ?", (time.time(),))

    async def claim(self, key: str, ttl: float, value: dict[str, Any] | None = None) -> bool:
        def run() -> bool:
            db = self._conn()
            self._purge(db, key)
            cursor = db.execute(
                "INSERT OR IGNORE INTO kv (key, value, expires_at) VALUES (?, ?, ?)",
                (key, json.dumps(value or {}), time.time() + ttl),
            )
            self._wrote(db)
            return cursor.rowcount == 1

        return await self._pool.run(run)

    async def get(self, key: str) -> dict[str, Any] | None:
        def run() -> dict[str, Any] | None:
            db = self._conn()
            self._purge(db, key)
            row = db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
            return json.loads(row[0]) if row else None

        return await self._pool.run(run)

    async def put(self, key: str, value: dict[str, Any], ttl: float | None = None) -> None:
        expires = None if ttl is None else time.time() + ttl

        def run() -> None:
            db = self._conn()
            db.execute("INSERT OR REPLACE INTO kv (key, value, expires_at) VALUES (?, ?, ?)",
                       (key, json.dumps(value), expires))
            self._wrote(db)

        await self._pool.run(run)

    async def delete(self, key: str) -> None:
        await self._pool.run(lambda: self._conn().execute("DELETE FROM kv WHERE key = ?", (key,)))

    async def add(self, key: str, member: str) -> None:
        await self._pool.run(
            lambda: self._conn().execute("INSERT OR IGNORE INTO sets (key, member) VALUES (?, ?)", (key, member)))

    async def discard(self, key: str, member: str) -> None:
        await self._pool.run(
            lambda: self._conn().execute("DELETE FROM sets WHERE key = ? AND member = ?", (key, member)))

    async def members(self, key: str) -> set[str]:
        def run() -> set[str]:
            return {row[0] for row in self._conn().execute("SELECT member FROM sets WHERE key = ?", (key,))}

        return await self._pool.run(run)

    async def ping(self) -> None:
        await self._pool.run(lambda: self._conn().execute("SELECT 1").fetchone())

    async def close(self) -> None:
        def run() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        await self._pool.run(run)
        self._pool.close()


class RedisStore:
    """Shared by every replica; expiry is Redis's own."""

    PREFIX = "chatops:"

    def __init__(self, url: str) -> None:
        import redis.asyncio as redis

        self._redis = redis.from_url(url, socket_timeout=5, socket_connect_timeout=5, decode_responses=True)

    async def claim(self, key: str, ttl: float, value: dict[str, Any] | None = None) -> bool:
        done = await self._redis.set(self.PREFIX + key, json.dumps(value or {}), nx=True, px=int(ttl * 1000))
        return bool(done)

    async def get(self, key: str) -> dict[str, Any] | None:
        raw = await self._redis.get(self.PREFIX + key)
        return json.loads(raw) if raw is not None else None

    async def put(self, key: str, value: dict[str, Any], ttl: float | None = None) -> None:
        px = None if ttl is None else int(ttl * 1000)
        await self._redis.set(self.PREFIX + key, json.dumps(value), px=px)

    async def delete(self, key: str) -> None:
        await self._redis.delete(self.PREFIX + key)

    async def add(self, key: str, member: str) -> None:
        await self._redis.sadd(self.PREFIX + key, member)

    async def discard(self, key: str, member: str) -> None:
        await self._redis.srem(self.PREFIX + key, member)

    async def members(self, key: str) -> set[str]:
        return set(await self._redis.smembers(self.PREFIX + key))

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()
