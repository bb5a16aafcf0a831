"""The store in a local SQLite file (the default; one replica, or several sharing one file).

Every call runs on one dedicated thread (sqlite3 blocks; the event loop must not), with its own
connection in autocommit mode (isolation_level=None): each read-modify-write is an explicit
`BEGIN IMMEDIATE` transaction, which takes the write lock before reading, so two SQLiteStore
instances on one file (two processes, two replicas on a shared volume) never interleave; the
busy timeout makes the second one wait instead of failing. WAL lets readers run meanwhile.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

from bot.state.clock import SYSTEM_CLOCK, Clock
from bot.state.store import (
    JSON,
    Job,
    Lease,
    LogEntry,
    NewJob,
    Versioned,
    dumps,
    log_id,
    log_since_ms,
    to_ms,
)
from diagnostics.blocking import BlockingPool

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS claims (key TEXT PRIMARY KEY, expires REAL NOT NULL);
CREATE TABLE IF NOT EXISTS docs (
    key TEXT PRIMARY KEY, value TEXT NOT NULL, version INTEGER NOT NULL, expires REAL
);
CREATE TABLE IF NOT EXISTS sets (key TEXT NOT NULL, member TEXT NOT NULL, PRIMARY KEY (key, member));
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    lane TEXT NOT NULL,
    due REAL NOT NULL,             -- while leased: the lease's expiry
    attempts INTEGER NOT NULL,
    created REAL NOT NULL,
    token TEXT,                    -- NULL when not leased
    lease_expires REAL,
    triggers INTEGER NOT NULL,     -- enqueued again while leased (cumulative)
    owner TEXT                     -- who holds the lease (for people reading the file)
);
CREATE INDEX IF NOT EXISTS jobs_lane_due ON jobs (lane, due, id);
CREATE TABLE IF NOT EXISTS log (
    stream TEXT NOT NULL, ms INTEGER NOT NULL, seq INTEGER NOT NULL, entry TEXT NOT NULL,
    PRIMARY KEY (stream, ms, seq)
) WITHOUT ROWID;
"""

JOB_COLUMNS = "id, kind, payload, lane, due, attempts, created, token, lease_expires, triggers, owner"
MAX_VARIABLES = 500  # per IN (...) list; SQLite's limit is 999 on old builds


def _job(row: Sequence[Any]) -> Job:
    return Job(id=row[0], kind=row[1], payload=json.loads(row[2]), lane=row[3], due=row[4],
               attempts=row[5], created=row[6])


class SQLiteStore:
    PURGE_EVERY = 500  # writes between sweeps of expired claims and documents
    TRIM_EVERY = 60.0  # at most, seconds between two trims of one log stream (with a retention)

    def __init__(self, path: str, clock: Clock = SYSTEM_CLOCK, log_retention: float | None = None,
                 busy_timeout: float = 5.0) -> None:
        self.path = path
        self.clock = clock
        self.log_retention = log_retention
        self.busy_timeout = busy_timeout
        self._writes = 0
        self._trimmed: dict[str, float] = {}  # stream -> clock time of its last trim
        self._pool = BlockingPool(workers=1, name="sqlite-store")  # one thread: one connection
        self._db: sqlite3.Connection | None = None

    # --- plumbing (all of it on the store's thread) -------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None,
                                 check_same_thread=False)
            try:
                self._use_wal(db)
                # In WAL mode NORMAL still survives the bot's process dying at any point (SIGKILL
                # included); only the OS crashing can lose the last transactions. FULL would fsync
                # every commit, which a storm of hundreds of writes a second pays for dearly.
                db.execute("PRAGMA synchronous=NORMAL")
                db.execute("BEGIN IMMEDIATE")
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute("COMMIT")
            except BaseException:
                db.close()
                raise
            self._db = db
        return self._db

    def _use_wal(self, db: sqlite3.Connection) -> None:
        """WAL is a property of the file, set once. Setting it needs the file to itself, and the busy
        timeout does not apply: another store opening the same new file at once gets "locked"."""
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                db.execute("PRAGMA journal_mode=WAL")  # a no-op once the file is in WAL
                return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() > deadline:
                    raise
            time.sleep(0.01)

    def _transaction(self, fn: Callable[[sqlite3.Connection, float], T]) -> T:
        """fn(db, now) inside BEGIN IMMEDIATE: the write lock is held from the first read, and
        `now` is read once the lock is ours."""
        db = self._conn()
        db.execute("BEGIN IMMEDIATE")
        try:
            now = self.clock.now()
            result = fn(db, now)
            self._writes += 1
            if self._writes % self.PURGE_EVERY == 0:
                db.execute("DELETE FROM claims WHERE expires <= ?", (now,))
                db.execute("DELETE FROM docs WHERE expires IS NOT NULL AND expires <= ?", (now,))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return result

    async def _write(self, fn: Callable[[sqlite3.Connection, float], T]) -> T:
        return await self._pool.run(self._transaction, fn)

    async def _read(self, fn: Callable[[sqlite3.Connection, float], T]) -> T:
        return await self._pool.run(lambda: fn(self._conn(), self.clock.now()))

    # --- claims -------------------------------------------------------------------------------
    async def claim(self, key: str, ttl: float) -> bool:
        def run(db: sqlite3.Connection, now: float) -> bool:
            cursor = db.execute(
                "INSERT INTO claims (key, expires) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET expires = excluded.expires WHERE claims.expires <= ?",
                (key, now + ttl, now),
            )
            return cursor.rowcount == 1

        return await self._write(run)

    async def unclaim(self, key: str) -> None:
        await self._write(lambda db, now: db.execute("DELETE FROM claims WHERE key = ?", (key,)))

    # --- versioned documents ------------------------------------------------------------------
    @staticmethod
    def _live_version(db: sqlite3.Connection, key: str, now: float) -> int | None:
        row = db.execute("SELECT version FROM docs WHERE key = ? AND (expires IS NULL OR expires > ?)",
                         (key, now)).fetchone()
        return None if row is None else int(row[0])

    @staticmethod
    def _store(db: sqlite3.Connection, key: str, value: JSON, version: int, expires: float | None) -> None:
        db.execute("INSERT OR REPLACE INTO docs (key, value, version, expires) VALUES (?, ?, ?, ?)",
                   (key, dumps(value), version, expires))

    async def get(self, key: str) -> Versioned | None:
        def run(db: sqlite3.Connection, now: float) -> Versioned | None:
            row = db.execute("SELECT value, version FROM docs WHERE key = ? AND (expires IS NULL OR expires > ?)",
                             (key, now)).fetchone()
            return None if row is None else Versioned(json.loads(row[0]), int(row[1]))

        return await self._read(run)

    async def put(self, key: str, value: JSON, ttl: float | None = None) -> int:
        def run(db: sqlite3.Connection, now: float) -> int:
            current = self._live_version(db, key, now)
            version = 1 if current is None else current + 1
            self._store(db, key, value, version, None if ttl is None else now + ttl)
            return version

        return await self._write(run)

    async def put_if(self, key: str, value: JSON, version: int | None, ttl: float | None = None) -> int | None:
        def run(db: sqlite3.Connection, now: float) -> int | None:
            if self._live_version(db, key, now) != version:
                return None
            new = 1 if version is None else version + 1
            self._store(db, key, value, new, None if ttl is None else now + ttl)
            return new

        return await self._write(run)

    async def delete(self, key: str) -> None:
        await self._write(lambda db, now: db.execute("DELETE FROM docs WHERE key = ?", (key,)))

    # --- sets ---------------------------------------------------------------------------------
    async def add(self, key: str, member: str) -> None:
        await self._write(
            lambda db, now: db.execute("INSERT OR IGNORE INTO sets (key, member) VALUES (?, ?)", (key, member)))

    async def discard(self, key: str, member: str) -> None:
        await self._write(
            lambda db, now: db.execute("DELETE FROM sets WHERE key = ? AND member = ?", (key, member)))

    async def members(self, key: str) -> set[str]:
        return await self._read(
            lambda db, now: {row[0] for row in db.execute("SELECT member FROM sets WHERE key = ?", (key,))})

    # --- jobs and timers ----------------------------------------------------------------------
    async def enqueue(self, jobs: Sequence[NewJob]) -> list[bool]:
        jobs = list(jobs)

        def run(db: sqlite3.Connection, now: float) -> list[bool]:
            ids = list(dict.fromkeys(job.id for job in jobs))
            existing: set[str] = set()
            for start in range(0, len(ids), MAX_VARIABLES):
                chunk = ids[start:start + MAX_VARIABLES]
                marks = ",".join("?" * len(chunk))
                existing.update(row[0] for row in db.execute(f"SELECT id FROM jobs WHERE id IN ({marks})", chunk))
            new: list[bool] = []
            for job in jobs:
                due = now if job.due is None else job.due
                if job.id in existing:
                    db.execute(
                        "UPDATE jobs SET payload = ?, created = ?,"
                        " due = CASE WHEN token IS NULL THEN min(due, ?) ELSE due END,"
                        " triggers = triggers + (token IS NOT NULL)"
                        " WHERE id = ?",
                        (dumps(job.payload), now, due, job.id),
                    )
                    new.append(False)
                else:
                    db.execute(
                        f"INSERT INTO jobs ({JOB_COLUMNS}) VALUES (?, ?, ?, ?, ?, 0, ?, NULL, NULL, 0, NULL)",
                        (job.id, job.kind, dumps(job.payload), job.lane, due, now),
                    )
                    existing.add(job.id)
                    new.append(True)
            return new

        return await self._write(run) if jobs else []

    async def lease(self, owner: str, lane: str, limit: int, seconds: float) -> list[Lease]:
        def run(db: sqlite3.Connection, now: float) -> list[Lease]:
            ids = [row[0] for row in db.execute(
                "SELECT id FROM jobs WHERE lane = ? AND due <= ? ORDER BY due, id LIMIT ?", (lane, now, limit))]
            expires = now + seconds
            leases = []
            for job_id in ids:
                token = secrets.token_hex(16)
                db.execute("UPDATE jobs SET token = ?, lease_expires = ?, due = ?, attempts = attempts + 1,"
                           " owner = ? WHERE id = ?", (token, expires, expires, owner, job_id))
                row = db.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
                leases.append(Lease(job=_job(row), token=token, expires=expires, triggers=row[9]))
            return leases

        return await self._write(run) if limit > 0 else []

    async def extend(self, leases: Sequence[Lease], seconds: float) -> list[Lease | None]:
        leases = list(leases)

        def run(db: sqlite3.Connection, now: float) -> list[Lease | None]:
            expires = now + seconds
            renewed: list[Lease | None] = []
            for lease in leases:
                cursor = db.execute("UPDATE jobs SET lease_expires = ?, due = ? WHERE id = ? AND token = ?",
                                    (expires, expires, lease.job.id, lease.token))
                renewed.append(replace(lease, expires=expires, job=replace(lease.job, due=expires))
                               if cursor.rowcount == 1 else None)
            return renewed

        return await self._write(run) if leases else []

    async def finish(self, lease: Lease) -> bool:
        def run(db: sqlite3.Connection, now: float) -> bool:
            cursor = db.execute("DELETE FROM jobs WHERE id = ? AND token = ? AND triggers = ?",
                                (lease.job.id, lease.token, lease.triggers))
            if cursor.rowcount == 1:
                return True
            return self._hand_back(db, lease, now)  # enqueued again meanwhile: once more, now

        return await self._write(run)

    @staticmethod
    def _hand_back(db: sqlite3.Connection, lease: Lease, due: float) -> bool:
        cursor = db.execute("UPDATE jobs SET token = NULL, lease_expires = NULL, owner = NULL, due = ?"
                            " WHERE id = ? AND token = ?",
                            (due, lease.job.id, lease.token))
        return cursor.rowcount == 1

    async def retry(self, lease: Lease, delay: float) -> bool:
        return await self._write(lambda db, now: self._hand_back(db, lease, now + delay))

    async def release(self, lease: Lease) -> bool:
        return await self.retry(lease, 0)

    async def cancel(self, job_id: str) -> bool:
        return await self._write(
            lambda db, now: db.execute("DELETE FROM jobs WHERE id = ?", (job_id,)).rowcount == 1)

    async def job(self, job_id: str) -> Job | None:
        def run(db: sqlite3.Connection, now: float) -> Job | None:
            row = db.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
            return None if row is None else _job(row)

        return await self._read(run)

    async def pending(self, lane: str | None = None) -> int:
        def run(db: sqlite3.Connection, now: float) -> int:
            if lane is None:
                return int(db.execute("SELECT count(*) FROM jobs").fetchone()[0])
            return int(db.execute("SELECT count(*) FROM jobs WHERE lane = ?", (lane,)).fetchone()[0])

        return await self._read(run)

    # --- append-only log ----------------------------------------------------------------------
    async def append(self, stream: str, entry: JSON) -> LogEntry:
        def run(db: sqlite3.Connection, now: float) -> LogEntry:
            last = db.execute("SELECT ms, seq FROM log WHERE stream = ? ORDER BY ms DESC, seq DESC LIMIT 1",
                              (stream,)).fetchone()
            ms, seq = to_ms(now), 0
            if last is not None and last[0] >= ms:
                ms, seq = last[0], last[1] + 1  # the clock stood still or went back
            db.execute("INSERT INTO log (stream, ms, seq, entry) VALUES (?, ?, ?, ?)",
                       (stream, ms, seq, dumps(entry)))
            if self.log_retention is not None:
                # Occasionally: read_log already hides what is older than the retention.
                if now - self._trimmed.get(stream, float("-inf")) >= min(self.TRIM_EVERY, self.log_retention / 10):
                    db.execute("DELETE FROM log WHERE stream = ? AND ms < ?",
                               (stream, to_ms(now - self.log_retention)))
                    self._trimmed[stream] = now
            return LogEntry(id=log_id(ms, seq), at=ms / 1000, entry=entry)

        return await self._write(run)

    async def read_log(self, stream: str, since: float | None = None, until: float | None = None,
                       limit: int = 1000) -> list[LogEntry]:
        def run(db: sqlite3.Connection, now: float) -> list[LogEntry]:
            if limit <= 0:
                return []  # (SQLite reads LIMIT -1 as no limit)
            start = log_since_ms(now, since, self.log_retention)
            end = (1 << 62) if until is None else to_ms(until)
            rows = db.execute("SELECT ms, seq, entry FROM log WHERE stream = ? AND ms >= ? AND ms < ?"
                              " ORDER BY ms, seq LIMIT ?", (stream, start, end, limit))
            return [LogEntry(id=log_id(ms, seq), at=ms / 1000, entry=json.loads(raw)) for ms, seq, raw in rows]

        return await self._read(run)

    # --- the store itself ---------------------------------------------------------------------
    async def ping(self) -> None:
        await self._read(lambda db, now: db.execute("SELECT 1").fetchone())

    async def close(self) -> None:
        def run() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        try:
            await self._pool.run(run)
        finally:
            self._pool.close()
