"""The state store, the same contract on SQLite and on a real Redis.

Time is a FakeClock everywhere (leases, timers, expiry, log ranges): nothing sleeps. The races
run two store instances on one Redis, and on one SQLite file, against each other."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from contextlib import closing

import pytest
import redis.asyncio as aioredis

from bot.state.clock import FakeClock
from bot.state.store import Job, NewJob, Store, Versioned, open_store, parse_log_id

pytestmark = pytest.mark.integration

ROUNDS = 5  # each race runs this many times


@pytest.fixture(params=["sqlite", "redis"])
async def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/state/chatops.db"
    return request.getfixturevalue("redis_server").url


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
async def store(store_url, clock):
    s = open_store(store_url, clock=clock)
    yield s
    await s.close()


@pytest.fixture
async def other(store_url, clock):
    """A second store instance on the same Redis / the same SQLite file (another replica)."""
    s = open_store(store_url, clock=clock)
    yield s
    await s.close()


async def raw_log_length(store_url: str, stream: str) -> int:
    """Entries physically kept (trimmed or not), looking under the store."""
    if store_url.startswith("sqlite:///"):
        with closing(sqlite3.connect(store_url[len("sqlite:///"):])) as db:
            return int(db.execute("SELECT count(*) FROM log WHERE stream = ?", (stream,)).fetchone()[0])
    client = aioredis.from_url(store_url)
    try:
        return int(await client.xlen(f"chatops:log:{stream}"))
    finally:
        await client.aclose()


def jobs(*ids: str, lane: str = "default", due: float | None = None, **payload) -> list[NewJob]:
    return [NewJob(id=i, kind="test", payload=dict(payload), lane=lane, due=due) for i in ids]


# --- claims --------------------------------------------------------------------------------------
async def test_claim_is_won_exactly_once_among_concurrent_callers(store):
    wins = await asyncio.gather(*(store.claim("event:Ev123", ttl=60) for _ in range(20)))
    assert wins.count(True) == 1


async def test_a_claim_lives_until_the_clock_passes_its_ttl_or_it_is_unclaimed(store, clock):
    assert await store.claim("event:short", ttl=60)
    clock.advance(59.9)
    assert not await store.claim("event:short", ttl=60)
    clock.advance(0.1)
    assert await store.claim("event:short", ttl=60)
    assert not await store.claim("event:short", ttl=60)
    await store.unclaim("event:short")
    assert await store.claim("event:short", ttl=60)


async def test_claims_and_documents_do_not_share_keys(store):
    assert await store.claim("k", ttl=60)
    assert await store.get("k") is None
    assert await store.put_if("k", {"doc": True}, None) == 1
    await store.unclaim("k")
    assert await store.get("k") == Versioned({"doc": True}, 1)
    await store.delete("k")
    assert await store.claim("k", ttl=60)


# --- documents -----------------------------------------------------------------------------------
async def test_document_versions_and_compare_and_set(store):
    assert await store.get("thread:fp1") is None
    assert await store.put("thread:fp1", {"ts": "1.2"}) == 1
    assert await store.put("thread:fp1", {"ts": "1.2", "n": 2}) == 2
    assert await store.get("thread:fp1") == Versioned({"ts": "1.2", "n": 2}, 2)

    assert await store.put_if("thread:fp1", {"n": 3}, version=2) == 3
    assert await store.put_if("thread:fp1", {"stale": True}, version=2) is None  # somebody wrote meanwhile
    assert await store.put_if("thread:fp1", {"stale": True}, version=None) is None  # it exists
    assert await store.get("thread:fp1") == Versioned({"n": 3}, 3)  # the conflicts changed nothing

    await store.delete("thread:fp1")
    assert await store.get("thread:fp1") is None
    assert await store.put_if("thread:fp1", {"again": True}, version=3) is None
    assert await store.put_if("thread:fp1", {"again": True}, version=None) == 1


async def test_documents_expire_by_the_clock(store, clock):
    assert await store.put("tmp", {"x": 1}, ttl=10) == 1
    clock.advance(9.9)
    assert await store.get("tmp") == Versioned({"x": 1}, 1)
    clock.advance(0.1)
    assert await store.get("tmp") is None
    assert await store.put_if("tmp", {"x": 2}, version=1) is None  # expired is absent
    assert await store.put_if("tmp", {"x": 2}, version=None, ttl=10) == 1
    assert await store.put("tmp", {"x": 3}) == 2  # no ttl: no expiry any more
    clock.advance(10_000)
    assert await store.get("tmp") == Versioned({"x": 3}, 2)


async def test_concurrent_put_if_on_one_version_has_exactly_one_winner(store):
    await store.put("doc", {"writer": None})
    results = await asyncio.gather(*(store.put_if("doc", {"writer": i}, version=1) for i in range(20)))
    winners = [i for i, version in enumerate(results) if version is not None]
    assert len(winners) == 1 and results[winners[0]] == 2
    assert await store.get("doc") == Versioned({"writer": winners[0]}, 2)


# --- sets ----------------------------------------------------------------------------------------
async def test_sets_change_atomically_under_concurrent_adds(store):
    await asyncio.gather(*(store.add("open", f"fp{i}") for i in range(50)))
    await store.discard("open", "fp7")
    members = await store.members("open")
    assert len(members) == 49 and "fp7" not in members and "fp8" in members
    assert await store.members("nothing") == set()


# --- jobs ----------------------------------------------------------------------------------------
async def test_enqueue_is_idempotent_and_merges_into_a_pending_job(store, clock):
    t0 = clock.now()
    assert await store.enqueue(jobs("a", due=t0 + 100, v=1)) == [True]
    clock.advance(1)
    assert await store.enqueue(jobs("a", due=t0 + 50, v=2)) == [False]
    # Merged: the newest payload, the earlier due, and the give-up clock restarted (newly accepted work).
    assert await store.job("a") == Job("a", "test", {"v": 2}, "default", due=t0 + 50, attempts=0, created=t0 + 1)
    assert await store.enqueue(jobs("a", due=t0 + 200, v=3)) == [False]
    assert await store.job("a") == Job("a", "test", {"v": 3}, "default", due=t0 + 50, attempts=0, created=t0 + 1)
    assert await store.pending() == 1
    assert await store.enqueue(jobs("b", "b", v=1) + jobs("c")) == [True, False, True]
    assert await store.enqueue([]) == []


async def test_enqueue_while_leased_runs_the_job_once_more_with_the_newest_payload(store, clock):
    await store.enqueue(jobs("a", v=1))
    [lease] = await store.lease("w1", "default", 10, seconds=30)
    assert lease.job.payload == {"v": 1} and lease.triggers == 0
    await store.enqueue(jobs("a", due=clock.now() - 100, v=2))  # an earlier due does not cut the lease short
    assert (await store.job("a")).due == lease.expires
    assert await store.lease("w2", "default", 10, seconds=30) == []
    clock.advance(5)
    assert await store.finish(lease)
    again = await store.job("a")
    assert again is not None and again.payload == {"v": 2} and again.due == clock.now()
    [second] = await store.lease("w2", "default", 10, seconds=30)
    assert second.job.payload == {"v": 2} and second.job.attempts == 2
    assert await store.finish(second)
    assert await store.job("a") is None and await store.pending() == 0


async def test_one_enqueue_records_a_whole_webhook(store):
    batch = [NewJob(id=f"alert:{i}", kind="alert", payload={"i": i}, lane="alerts") for i in range(300)]
    assert await store.enqueue(batch) == [True] * 300
    assert await store.pending("alerts") == 300
    assert await store.enqueue(batch) == [False] * 300
    assert await store.pending() == 300


async def test_concurrent_leasers_never_share_a_job(store):
    await store.enqueue(jobs(*(f"j{i:02}" for i in range(50))))
    batches = await asyncio.gather(*(store.lease(f"w{i}", "default", 5, seconds=30) for i in range(20)))
    leased = [lease.job.id for batch in batches for lease in batch]
    assert sorted(leased) == [f"j{i:02}" for i in range(50)]  # each exactly once
    assert len({lease.token for batch in batches for lease in batch}) == 50


async def test_lanes_are_separate_queues(store):
    await store.enqueue(jobs("a1", "a2", lane="alerts") + jobs("c1", lane="commands"))
    assert [lease.job.id for lease in await store.lease("w", "commands", 10, 30)] == ["c1"]
    assert await store.lease("w", "commands", 10, 30) == []
    assert await store.lease("w", "nothing", 10, 30) == []
    assert await store.pending("alerts") == 2 and await store.pending("commands") == 1
    assert await store.pending() == 3
    assert {lease.job.lane for lease in await store.lease("w", "alerts", 10, 30)} == {"alerts"}


async def test_due_jobs_are_leased_earliest_first_up_to_the_limit(store, clock):
    now = clock.now()
    await store.enqueue(jobs("late", due=now - 1) + jobs("early", due=now - 3) + jobs("middle", due=now - 2))
    first = await store.lease("w", "default", 2, seconds=30)
    assert [lease.job.id for lease in first] == ["early", "middle"]
    assert all(lease.expires == now + 30 and lease.job.due == now + 30 for lease in first)
    assert [lease.job.id for lease in await store.lease("w", "default", 2, seconds=30)] == ["late"]


async def test_a_timer_is_leased_only_once_its_time_has_come(store, clock):
    await store.enqueue(jobs("timer", due=clock.now() + 30))
    assert await store.lease("w", "default", 10, 30) == []
    clock.advance(29.9)
    assert await store.lease("w", "default", 10, 30) == []
    clock.advance(0.1)
    [lease] = await store.lease("w", "default", 10, 30)
    assert lease.job.id == "timer" and lease.job.attempts == 1


async def test_an_expired_lease_goes_to_another_worker_and_the_old_token_changes_nothing(store, clock):
    t0 = clock.now()
    await store.enqueue(jobs("a"))
    [old] = await store.lease("w1", "default", 10, seconds=10)
    clock.advance(9.9)
    assert await store.lease("w2", "default", 10, seconds=10) == []
    clock.advance(0.1)
    [new] = await store.lease("w2", "default", 10, seconds=10)
    assert new.token != old.token and new.job.attempts == 2 and new.job.created == t0
    before = await store.job("a")
    assert not await store.finish(old)
    assert not await store.retry(old, 60)
    assert not await store.release(old)
    assert await store.extend([old], 10) == [None]
    assert await store.job("a") == before  # nothing changed
    [renewed] = await store.extend([new], 20)
    assert renewed is not None and renewed.expires == clock.now() + 20 and renewed.token == new.token
    assert await store.finish(renewed)
    assert await store.job("a") is None


async def test_extend_keeps_a_lease_alive_and_reports_lost_ones(store, clock):
    await store.enqueue(jobs("a", "b"))
    a, b = await store.lease("w1", "default", 10, seconds=10)
    assert await store.cancel("b")
    clock.advance(5)
    renewed_a, lost_b = await store.extend([a, b], 10)
    assert lost_b is None
    assert renewed_a is not None and renewed_a.expires == clock.now() + 10 and renewed_a.job.due == renewed_a.expires
    clock.advance(6)  # past the first expiry, not the renewed one
    assert await store.lease("w2", "default", 10, seconds=10) == []
    assert (await store.job("a")).due == renewed_a.expires
    assert await store.extend([], 10) == []


async def test_retry_hands_the_job_back_after_a_delay_and_release_at_once(store, clock):
    t0 = clock.now()
    await store.enqueue(jobs("a"))
    [lease] = await store.lease("w", "default", 10, seconds=30)
    assert await store.retry(lease, 60)
    assert await store.job("a") == Job("a", "test", {}, "default", due=t0 + 60, attempts=1, created=t0)
    assert not await store.finish(lease)  # handed back: the token is spent
    clock.advance(59)
    assert await store.lease("w", "default", 10, seconds=30) == []
    clock.advance(1)
    [lease] = await store.lease("w", "default", 10, seconds=30)
    assert lease.job.attempts == 2 and lease.job.created == t0
    assert await store.release(lease)
    assert (await store.job("a")).due == clock.now()
    [lease] = await store.lease("w", "default", 10, seconds=30)
    assert lease.job.attempts == 3


async def test_cancel_deletes_a_job_leased_or_not(store, clock):
    await store.enqueue(jobs("timer", due=clock.now() + 3600) + jobs("now"))
    assert await store.cancel("timer")
    assert await store.job("timer") is None
    [lease] = await store.lease("w", "default", 10, seconds=30)
    assert await store.cancel("now")
    assert not await store.finish(lease) and not await store.release(lease)
    assert await store.extend([lease], 30) == [None]
    assert not await store.cancel("now")
    assert await store.pending() == 0
    clock.advance(7200)
    assert await store.lease("w", "default", 10, seconds=30) == []


async def test_pending_counts_leased_and_unleased_jobs_until_finished(store):
    await store.enqueue(jobs("a", "b", "c") + jobs("x", lane="other"))
    assert await store.pending() == 4 and await store.pending("default") == 3
    leases = await store.lease("w", "default", 2, seconds=30)
    assert await store.pending("default") == 3
    for lease in leases:
        assert await store.finish(lease)
    assert await store.pending("default") == 1 and await store.pending("other") == 1
    assert await store.pending("nothing") == 0


async def test_jobs_and_documents_survive_closing_and_reopening(store_url, clock):
    first = open_store(store_url, clock=clock)
    await first.put("thread:fp2", {"ts": "9.9"})
    assert await first.claim("event:Ev9", ttl=60)
    await first.enqueue(jobs("work", v=1) + jobs("timer", due=clock.now() + 60))
    [lease] = await first.lease("w1", "default", 1, seconds=30)
    await first.append("audit", {"n": 1})
    await first.close()

    second = open_store(store_url, clock=clock)
    try:
        assert await second.get("thread:fp2") == Versioned({"ts": "9.9"}, 1)
        assert not await second.claim("event:Ev9", ttl=60)
        assert await second.pending() == 2
        assert [e.entry for e in await second.read_log("audit")] == [{"n": 1}]
        assert await second.lease("w2", "default", 10, seconds=30) == []
        clock.advance(60)
        leased = await second.lease("w2", "default", 10, seconds=30)
        assert sorted(le.job.id for le in leased) == ["timer", "work"]
        assert not await second.finish(lease)  # the first one's lease expired and was taken
    finally:
        await second.close()


# --- log -----------------------------------------------------------------------------------------
async def test_log_is_read_back_by_time_range_oldest_first(store, clock):
    t0 = clock.now()
    for i in range(3):
        entry = await store.append("audit", {"i": i})
        assert entry.at == t0 + i and entry.entry == {"i": i}
        clock.advance(1)
    await store.append("elsewhere", {"other": True})
    read = store.read_log
    assert [e.entry["i"] for e in await read("audit")] == [0, 1, 2]
    assert [e.entry["i"] for e in await read("audit", since=t0 + 1)] == [1, 2]
    assert [e.entry["i"] for e in await read("audit", until=t0 + 2)] == [0, 1]
    assert [e.entry["i"] for e in await read("audit", since=t0 + 0.5, until=t0 + 1.5)] == [1]
    assert [e.entry["i"] for e in await read("audit", since=t0 + 2)] == [2]  # since is inclusive
    assert await read("audit", since=t0 + 3) == []
    assert await read("audit", since=t0 + 2, until=t0 + 1) == []
    assert [e.entry["i"] for e in await read("audit", limit=2)] == [0, 1]
    assert await read("nothing") == []


async def test_log_ids_increase_while_the_clock_stands_still_or_goes_back(store, clock):
    entries = [await store.append("s", {"i": i}) for i in range(5)]
    clock.advance(-10)
    entries.append(await store.append("s", {"i": 5}))
    ids = [parse_log_id(e.id) for e in entries]
    assert ids == sorted(ids) and len(set(ids)) == 6
    assert {e.at for e in entries} == {entries[0].at}
    assert [e.id for e in await store.read_log("s")] == [e.id for e in entries]


async def test_log_retention_trims_old_entries(store_url, clock):
    retained = open_store(store_url, clock=clock, log_retention=3600)
    try:
        for i in range(250):
            await retained.append("audit", {"old": i})
        clock.advance(3601)
        for i in range(150):
            await retained.append("audit", {"new": i})
        assert [e.entry for e in await retained.read_log("audit")] == [{"new": i} for i in range(150)]
        # Physically gone too (Redis trims whole stream nodes of ~100 entries: allow one).
        assert await raw_log_length(store_url, "audit") <= 150 + 100
    finally:
        await retained.close()


# --- two instances racing ------------------------------------------------------------------------
async def test_two_instances_racing_put_if_on_one_version(store, other):
    for round_ in range(ROUNDS):
        current = await store.put(f"doc{round_}", {"writer": None})
        attempts = [(s, i) for i in range(10) for s in (store, other)]
        results = await asyncio.gather(*(s.put_if(f"doc{round_}", {"writer": i}, current) for s, i in attempts))
        assert sum(version is not None for version in results) == 1
        assert (await other.get(f"doc{round_}")).version == current + 1


async def _lease_everything(stores: list[Store], lane: str) -> Counter[str]:
    """Ten leasers per instance at once; then every lease is finished (by the other instance)."""
    batches = await asyncio.gather(*(s.lease(f"w{i}", lane, 3, seconds=30) for i in range(10) for s in stores))
    leases = [(stores[n % len(stores) - 1], lease) for n, batch in enumerate(batches) for lease in batch]
    assert all(await asyncio.gather(*(s.finish(lease) for s, lease in leases)))
    return Counter(lease.job.id for _, lease in leases)


async def test_two_instances_racing_to_lease_the_same_due_jobs(store, other):
    for round_ in range(ROUNDS):
        ids = [f"r{round_}-{i:02}" for i in range(20)]
        await store.enqueue(jobs(*ids))
        leased = await _lease_everything([store, other], "default")
        assert sorted(leased) == ids and set(leased.values()) == {1}
    assert await store.pending() == 0


async def test_two_instances_racing_for_the_same_timers(store, other, clock):
    for round_ in range(ROUNDS):
        ids = [f"t{round_}-{i:02}" for i in range(10)]
        await other.enqueue(jobs(*ids, lane="timers", due=clock.now() + 60))
        assert not await _lease_everything([store, other], "timers")
        clock.advance(60)
        leased = await _lease_everything([store, other], "timers")
        assert sorted(leased) == ids and set(leased.values()) == {1}
    assert await other.pending() == 0


async def test_two_instances_racing_for_one_claim(store, other, clock):
    for round_ in range(ROUNDS):
        wins = await asyncio.gather(*(s.claim(f"event:{round_}", ttl=60) for _ in range(10) for s in (store, other)))
        assert wins.count(True) == 1
    clock.advance(60)
    wins = await asyncio.gather(*(s.claim("event:0", ttl=60) for _ in range(10) for s in (other, store)))
    assert wins.count(True) == 1


async def test_more_concurrent_calls_than_the_pool_has_connections_wait_for_one_rather_than_fail(store):
    # A storm is Alertmanager notifying every group at once: hundreds of webhook calls, each recording its
    # job. Redis's client refused the 101st concurrent call ("Too many connections") before the bounded,
    # blocking pool.
    from bot.state.redis import MAX_CONNECTIONS

    jobs = [NewJob(id=f"storm-{i}", kind="k", lane="alerts", payload={"i": i}) for i in range(3 * MAX_CONNECTIONS)]
    answers = await asyncio.gather(*(store.enqueue([job]) for job in jobs))
    assert answers == [[True]] * len(jobs)
    assert await store.pending("alerts") == len(jobs)
