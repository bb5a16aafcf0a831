"""Where the bot keeps what must survive a restart: SQLite by default, Redis for replicas.

One small interface, keyed JSON documents with optional expiry:
- `claim(key, ttl)` sets a key only if it is absent: exactly one caller wins, across
  replicas with Redis (Slack's event retries, a button clicked twice, a thread opened once);
- `get`, `put`, `delete` for the documents themselves (alert threads, approvals);
- `add`, `discard`, `members`: sets, changed atomically (the open threads of a kind).

STATE_URL: `sqlite:///relative.db`, `sqlite:////absolute/path.db`, `redis://host:6379/0`.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any, Protocol

from diagnostics.blocking import BlockingPool


class Store(Protocol):
    async def claim(self, key: str, ttl: float, value: dict[str, Any] | None = None) -> bool: ...

    async def get(self, key: str) -> dict[str, Any] | None: ...

    async def put(self, key: str, value: dict[str, Any], ttl: float | None = None) -> None: ...

    async def delete(self, key: str) -> None: ...

    async def add(self, key: str, member: str) -> None: ...

    async def discard(self, key: str, member: str) -> None: ...

    async def members(self, key: str) -> set[str]: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


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
