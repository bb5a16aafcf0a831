"""The store in Redis, shared by every replica.

Each read-modify-write is one Lua script (atomic on the server), and every time it compares comes
from the store's clock as an argument, never Redis's TIME: times are stored as the exact decimal
strings Python wrote (repr of a float), so what goes in comes back bit for bit. Keys with a TTL
also get a PEXPIRE a minute after the clock's expiry, as garbage collection only.

Keys (prefix `chatops:`; claims, documents and sets are separate namespaces):
    claim:<key>    string: the claim's expiry (clock seconds)
    doc:<key>      hash {v: version, d: JSON, exp: expiry or absent}
    set:<key>      set
    job:<id>       hash {id, kind, payload, lane, due, attempts, created, triggers,
                         token, lease_expires, owner} (the last three only while leased)
    lane:<lane>    sorted set of job ids, score = due (while leased: the lease's expiry)
    lanes          set of lane names (for pending() over all lanes)
    log:<stream>   stream, ids <ms>-<seq> from the store's clock, field e = JSON

Scripts build job keys from ids, so this needs a single Redis (or Sentinel), not Redis Cluster.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import replace
from typing import Any, Sequence, cast

import redis.asyncio as aioredis

from bot.state.clock import SYSTEM_CLOCK, Clock
from bot.state.store import (
    JSON,
    Job,
    Lease,
    LogEntry,
    NewJob,
    Versioned,
    dumps,
    log_since_ms,
    parse_log_id,
    to_ms,
)

GC_GRACE_MS = 60_000  # keys with a TTL outlive the clock's expiry by this much, then Redis drops them

CLAIM = """
local held = redis.call('GET', KEYS[1])
if held and tonumber(held) > tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""

# ARGV: now, value, expected version ('any', 'absent' or a number), expires ('' = none), gc ms
PUT_DOC = """
local now = tonumber(ARGV[1])
local cur = redis.call('HMGET', KEYS[1], 'v', 'exp')
local version = nil
if cur[1] and (not cur[2] or tonumber(cur[2]) > now) then version = tonumber(cur[1]) end
if ARGV[3] == 'absent' then
  if version then return false end
elseif ARGV[3] ~= 'any' then
  if version ~= tonumber(ARGV[3]) then return false end
end
local new = (version or 0) + 1
redis.call('DEL', KEYS[1])
if ARGV[4] == '' then
  redis.call('HSET', KEYS[1], 'v', new, 'd', ARGV[2])
else
  redis.call('HSET', KEYS[1], 'v', new, 'd', ARGV[2], 'exp', ARGV[4])
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
end
return new
"""

# ARGV: prefix, now, then per job: id, kind, payload, lane, due
ENQUEUE = """
local p, now = ARGV[1], ARGV[2]
local out = {}
for i = 3, #ARGV, 5 do
  local id, kind, payload, lane, due = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local k = p .. 'job:' .. id
  local cur = redis.call('HMGET', k, 'lane', 'due', 'token')
  if not cur[1] then
    redis.call('HSET', k, 'id', id, 'kind', kind, 'payload', payload, 'lane', lane, 'due', due,
               'attempts', '0', 'created', now, 'triggers', '0')
    redis.call('ZADD', p .. 'lane:' .. lane, due, id)
    redis.call('SADD', p .. 'lanes', lane)
    out[#out + 1] = 1
  else
    redis.call('HSET', k, 'payload', payload, 'created', now)
    if cur[3] then
      redis.call('HINCRBY', k, 'triggers', 1)
    elseif tonumber(due) < tonumber(cur[2]) then
      redis.call('HSET', k, 'due', due)
      redis.call('ZADD', p .. 'lane:' .. cur[1], due, id)
    end
    out[#out + 1] = 0
  end
end
return out
"""

# KEYS[1]: the lane; ARGV: prefix, now, limit, expires, owner, then one fresh token per job
LEASE = """
local p, expires = ARGV[1], ARGV[4]
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for n, id in ipairs(ids) do
  local k = p .. 'job:' .. id
  if redis.call('EXISTS', k) == 1 then
    redis.call('HSET', k, 'token', ARGV[5 + n], 'lease_expires', expires, 'due', expires, 'owner', ARGV[5])
    redis.call('HINCRBY', k, 'attempts', 1)
    redis.call('ZADD', KEYS[1], expires, id)
    out[#out + 1] = redis.call('HGETALL', k)
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return out
"""

# ARGV: prefix, expires, then per lease: id, token
EXTEND = """
local p, expires = ARGV[1], ARGV[2]
local out = {}
for i = 3, #ARGV, 2 do
  local k = p .. 'job:' .. ARGV[i]
  local cur = redis.call('HMGET', k, 'token', 'lane')
  if cur[1] == ARGV[i + 1] then
    redis.call('HSET', k, 'lease_expires', expires, 'due', expires)
    redis.call('ZADD', p .. 'lane:' .. cur[2], expires, ARGV[i])
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
"""

# ARGV: prefix, id, token, due, triggers as of the lease ('' = hand back, never delete)
# Deletes the job if its triggers are unchanged; else clears the lease and makes it due at `due`.
HAND_BACK = """
local p, id = ARGV[1], ARGV[2]
local k = p .. 'job:' .. id
local cur = redis.call('HMGET', k, 'token', 'triggers', 'lane')
if cur[1] ~= ARGV[3] then return 0 end
local lane = p .. 'lane:' .. cur[3]
if ARGV[5] ~= '' and tonumber(cur[2]) == tonumber(ARGV[5]) then
  redis.call('DEL', k)
  redis.call('ZREM', lane, id)
else
  redis.call('HDEL', k, 'token', 'lease_expires', 'owner')
  redis.call('HSET', k, 'due', ARGV[4])
  redis.call('ZADD', lane, ARGV[4], id)
end
return 1
"""

CANCEL = """
local k = ARGV[1] .. 'job:' .. ARGV[2]
local lane = redis.call('HGET', k, 'lane')
if not lane then return 0 end
redis.call('DEL', k)
redis.call('ZREM', ARGV[1] .. 'lane:' .. lane, ARGV[2])
return 1
"""

PENDING_ALL = """
local total = 0
for _, lane in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  total = total + redis.call('ZCARD', ARGV[1] .. 'lane:' .. lane)
end
return total
"""

# KEYS[1]: the stream; ARGV: the clock in ms, the entry, the oldest ms to keep ('' = all)
APPEND = """
local ms, seq = ARGV[1], 0
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
if last then
  local last_ms, last_seq = string.match(last[1], '^(%d+)-(%d+)$')
  if tonumber(last_ms) >= tonumber(ms) then
    ms, seq = last_ms, tonumber(last_seq) + 1   -- the clock stood still or went back
  end
end
local id = ms .. '-' .. seq
if ARGV[3] == '' then
  return redis.call('XADD', KEYS[1], id, 'e', ARGV[2])
end
return redis.call('XADD', KEYS[1], 'MINID', '~', ARGV[3], id, 'e', ARGV[2])
"""


def _time(seconds: float) -> str:
    return repr(float(seconds))  # exact round trip: float(repr(x)) == x


def _gc_ms(ttl: float) -> int:
    return max(1, int(ttl * 1000)) + GC_GRACE_MS


def _job(fields: dict[str, str]) -> Job:
    return Job(id=fields["id"], kind=fields["kind"], payload=json.loads(fields["payload"]), lane=fields["lane"],
               due=float(fields["due"]), attempts=int(fields["attempts"]), created=float(fields["created"]))


def _pairs(flat: list[str]) -> dict[str, str]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


MAX_CONNECTIONS = 50  # per bot process


class RedisStore:
    PREFIX = "chatops:"

    def __init__(self, url: str, clock: Clock = SYSTEM_CLOCK, log_retention: float | None = None) -> None:
        self.clock = clock
        self.log_retention = log_retention
        # A storm is many concurrent requests (Alertmanager notifies each group at once): past
        # MAX_CONNECTIONS they wait up to 5 s for a connection, instead of failing at once.
        pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=MAX_CONNECTIONS, timeout=5,
                                                        socket_timeout=5, socket_connect_timeout=5,
                                                        decode_responses=True)
        self._redis = aioredis.Redis.from_pool(pool)  # closed with the client
        script = self._redis.register_script
        self._claim, self._put_doc, self._enqueue = script(CLAIM), script(PUT_DOC), script(ENQUEUE)
        self._lease, self._extend, self._hand_back = script(LEASE), script(EXTEND), script(HAND_BACK)
        self._cancel, self._pending_all, self._append = script(CANCEL), script(PENDING_ALL), script(APPEND)

    def _key(self, kind: str, name: str) -> str:
        return f"{self.PREFIX}{kind}:{name}"

    # --- claims -------------------------------------------------------------------------------
    async def claim(self, key: str, ttl: float) -> bool:
        now = self.clock.now()
        won = await self._claim(keys=[self._key("claim", key)], args=[_time(now), _time(now + ttl), _gc_ms(ttl)])
        return bool(won)

    async def unclaim(self, key: str) -> None:
        await self._redis.delete(self._key("claim", key))

    # --- versioned documents ------------------------------------------------------------------
    async def get(self, key: str) -> Versioned | None:
        reply = await self._redis.hmget(self._key("doc", key), ["v", "d", "exp"])
        version, value, expires = cast(list[str | None], reply)
        if version is None or (expires is not None and float(expires) <= self.clock.now()):
            return None
        return Versioned(json.loads(cast(str, value)), int(version))

    async def _write_doc(self, key: str, value: JSON, expected: str, ttl: float | None) -> int | None:
        now = self.clock.now()
        expires, gc = ("", "") if ttl is None else (_time(now + ttl), str(_gc_ms(ttl)))
        version = await self._put_doc(keys=[self._key("doc", key)], args=[_time(now), dumps(value), expected,
                                                                            expires, gc])
        return None if version is None else int(version)

    async def put(self, key: str, value: JSON, ttl: float | None = None) -> int:
        version = await self._write_doc(key, value, "any", ttl)
        assert version is not None
        return version

    async def put_if(self, key: str, value: JSON, version: int | None, ttl: float | None = None) -> int | None:
        return await self._write_doc(key, value, "absent" if version is None else str(int(version)), ttl)

    async def delete(self, key: str) -> None:
        await self._redis.delete(self._key("doc", key))

    # --- sets ---------------------------------------------------------------------------------
    async def add(self, key: str, member: str) -> None:
        await self._redis.sadd(self._key("set", key), member)

    async def discard(self, key: str, member: str) -> None:
        await self._redis.srem(self._key("set", key), member)

    async def members(self, key: str) -> set[str]:
        return cast(set[str], set(await self._redis.smembers(self._key("set", key))))

    # --- jobs and timers ----------------------------------------------------------------------
    async def enqueue(self, jobs: Sequence[NewJob]) -> list[bool]:
        if not jobs:
            return []
        now = self.clock.now()
        args: list[Any] = [self.PREFIX, _time(now)]
        for job in jobs:
            args += [job.id, job.kind, dumps(job.payload), job.lane, _time(now if job.due is None else job.due)]
        return [bool(new) for new in await self._enqueue(args=args)]

    async def lease(self, owner: str, lane: str, limit: int, seconds: float) -> list[Lease]:
        if limit <= 0:
            return []
        now = self.clock.now()
        expires = now + seconds
        tokens = [secrets.token_hex(16) for _ in range(limit)]
        rows = await self._lease(keys=[self._key("lane", lane)],
                                 args=[self.PREFIX, _time(now), limit, _time(expires), owner, *tokens])
        leases = []
        for row in rows:
            fields = _pairs(row)
            leases.append(Lease(job=_job(fields), token=fields["token"], expires=float(fields["lease_expires"]),
                                triggers=int(fields["triggers"])))
        return leases

    async def extend(self, leases: Sequence[Lease], seconds: float) -> list[Lease | None]:
        if not leases:
            return []
        expires = self.clock.now() + seconds
        args: list[Any] = [self.PREFIX, _time(expires)]
        for lease in leases:
            args += [lease.job.id, lease.token]
        held = await self._extend(args=args)
        return [replace(lease, expires=expires, job=replace(lease.job, due=expires)) if ok else None
                for lease, ok in zip(leases, held, strict=True)]

    async def _give_back(self, lease: Lease, due: float, triggers: str) -> bool:
        done = await self._hand_back(args=[self.PREFIX, lease.job.id, lease.token, _time(due), triggers])
        return bool(done)

    async def finish(self, lease: Lease) -> bool:
        return await self._give_back(lease, self.clock.now(), str(lease.triggers))

    async def retry(self, lease: Lease, delay: float) -> bool:
        return await self._give_back(lease, self.clock.now() + delay, "")

    async def release(self, lease: Lease) -> bool:
        return await self.retry(lease, 0)

    async def cancel(self, job_id: str) -> bool:
        return bool(await self._cancel(args=[self.PREFIX, job_id]))

    async def job(self, job_id: str) -> Job | None:
        fields = cast(dict[str, str], await self._redis.hgetall(self._key("job", job_id)))
        return _job(fields) if fields else None

    async def pending(self, lane: str | None = None) -> int:
        if lane is None:
            return int(await self._pending_all(keys=[self.PREFIX + "lanes"], args=[self.PREFIX]))
        return int(await self._redis.zcard(self._key("lane", lane)))

    # --- append-only log ----------------------------------------------------------------------
    async def append(self, stream: str, entry: JSON) -> LogEntry:
        now = self.clock.now()
        keep = "" if self.log_retention is None else str(to_ms(now - self.log_retention))
        entry_id = await self._append(keys=[self._key("log", stream)], args=[to_ms(now), dumps(entry), keep])
        return LogEntry(id=entry_id, at=parse_log_id(entry_id)[0] / 1000, entry=entry)

    async def read_log(self, stream: str, since: float | None = None, until: float | None = None,
                       limit: int = 1000) -> list[LogEntry]:
        start = log_since_ms(self.clock.now(), since, self.log_retention)
        end = "+" if until is None else str(to_ms(until) - 1)  # XRANGE's end is inclusive
        if limit <= 0 or (until is not None and to_ms(until) <= start):
            return []
        reply = await self._redis.xrange(self._key("log", stream), min=str(start), max=end, count=limit)
        rows = cast(list[tuple[str, dict[str, str]]], reply)
        return [LogEntry(id=entry_id, at=parse_log_id(entry_id)[0] / 1000, entry=json.loads(fields["e"]))
                for entry_id, fields in rows]

    # --- the store itself ---------------------------------------------------------------------
    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()
