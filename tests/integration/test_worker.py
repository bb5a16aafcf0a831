"""The worker: durable jobs leased from the store, retried, resumed, handed back, on SQLite and Redis.

Time that matters to the store (leases, due times, give-up) is a FakeClock moved by the test; the
worker's own waiting is real but short (poll_seconds 0.02).
"""

from __future__ import annotations

import asyncio

import pytest

from bot.errors import PermanentError, TemporaryError
from bot.state.clock import FakeClock
from bot.state.config import DeliveryConfig
from bot.state.store import Job, NewJob, open_store
from bot.state.worker import FAILED_LOG, Worker

pytestmark = pytest.mark.integration

CONFIG = DeliveryConfig(lease_seconds=30, poll_seconds=0.02, retry_initial_seconds=1, retry_max_seconds=8,
                        give_up_after_minutes=60)


@pytest.fixture(params=["sqlite", "redis"])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/state.db"
    return request.getfixturevalue("redis_server").url


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
async def stores(store_url, clock):
    """open() -> a store on the same URL and clock (a replica, or the bot after a restart)."""
    opened = []

    def open_() :
        store = open_store(store_url, clock=clock)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        await store.close()


@pytest.fixture
async def workers():
    started: list[Worker] = []

    def start(worker: Worker) -> Worker:
        worker.start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        await worker.stop(grace=0)


def kill(worker: Worker) -> None:
    """As if the process died: its loops and heartbeat stop and nothing is handed back."""
    for task in worker._tasks:
        task.cancel()


async def bury(worker: Worker) -> None:
    """Clean up a killed worker's hung handlers without touching the store."""
    for lane in worker._lanes.values():
        for task in list(lane.running):
            worker._lost.add(task)
            task.cancel()
    await asyncio.sleep(0)


def job(n: int, lane: str = "alerts", kind: str = "echo") -> NewJob:
    return NewJob(id=f"job-{n}", kind=kind, lane=lane, payload={"n": n})


async def until(condition, timeout: float = 5.0) -> None:
    async def wait() -> None:
        while not condition():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(wait(), timeout)


async def test_submitted_jobs_run_once_each_and_leave_nothing_behind(stores, workers):
    store = stores()
    ran: list[int] = []
    worker = Worker(store, CONFIG)
    worker.lane("alerts", 4)

    async def echo(j: Job) -> None:
        ran.append(j.payload["n"])

    worker.handle("echo", echo)
    workers(worker)
    assert await worker.submit([job(i) for i in range(20)]) == [True] * 20
    await asyncio.wait_for(worker.idle(), 5)
    assert sorted(ran) == list(range(20))
    assert await store.pending() == 0


async def test_a_failing_job_is_retried_with_backoff_until_it_succeeds(stores, workers, clock):
    store = stores()
    attempts: list[float] = []
    retried: list[str] = []
    worker = Worker(store, CONFIG, on_outcome=lambda kind, outcome: retried.append(outcome))

    async def flaky(j: Job) -> None:
        attempts.append(clock.now())
        if len(attempts) < 3:
            raise TemporaryError("Slack is down")

    worker.lane("alerts", 1)
    worker.handle("echo", flaky)
    workers(worker)
    await worker.submit([job(1)])
    for attempt in (1, 2):
        await until(lambda n=attempt: retried.count("retried") == n)  # the failure is recorded
        # Not run again before its backoff is over (the store says it is not due), then run.
        stored = await store.job("job-1")
        assert stored is not None and stored.due > clock.now()
        assert len(attempts) == attempt
        clock.advance(stored.due - clock.now())
    await asyncio.wait_for(worker.idle(), 5)
    assert len(attempts) == 3 and retried == ["retried", "retried", "done"]
    assert await store.pending() == 0


async def test_a_job_still_failing_after_the_give_up_time_is_dropped_and_logged(stores, workers, clock):
    store = stores()
    outcomes: list[str] = []
    worker = Worker(store, CONFIG, on_outcome=lambda kind, outcome: outcomes.append(outcome))
    worker.lane("alerts", 1)
    calls = []

    async def broken(j: Job) -> None:
        calls.append(j.attempts)
        raise TemporaryError("Alertmanager unreachable")

    worker.handle("echo", broken)
    workers(worker)
    await worker.submit([job(1)])
    await until(lambda: outcomes == ["retried"])  # the first failure is recorded, with its backoff
    clock.advance(CONFIG.give_up_after_minutes * 60 + 1)
    await asyncio.wait_for(worker.idle(), 5)
    assert len(calls) == 2 and outcomes == ["retried", "given_up"]
    (failed,) = await store.read_log(FAILED_LOG)
    assert failed.entry["job"] == "job-1" and "Alertmanager unreachable" in failed.entry["error"]


async def test_a_permanent_error_gives_up_at_once(stores, workers):
    store = stores()
    worker = Worker(store, CONFIG)
    worker.lane("alerts", 1)

    async def impossible(j: Job) -> None:
        raise PermanentError("no such channel")

    worker.handle("echo", impossible)
    workers(worker)
    await worker.submit([job(1)])
    await asyncio.wait_for(worker.idle(), 5)
    assert [e.entry["job"] for e in await store.read_log(FAILED_LOG)] == ["job-1"]


async def test_a_job_whose_worker_died_is_taken_by_another_when_its_lease_expires(stores, workers, clock):
    dead_store, live_store = stores(), stores()
    started = asyncio.Event()

    async def hang(j: Job) -> None:
        started.set()
        await asyncio.Event().wait()  # the process "dies" here: it never finishes

    dead = Worker(dead_store, CONFIG, owner="dead")
    dead.lane("alerts", 1)
    dead.handle("echo", hang)
    dead.start()
    await dead.submit([job(1)])
    await asyncio.wait_for(started.wait(), 5)
    kill(dead)

    done = []
    live = Worker(live_store, CONFIG, owner="live")
    live.lane("alerts", 1)

    async def finish(j: Job) -> None:
        done.append(j.attempts)

    live.handle("echo", finish)
    workers(live)
    await asyncio.sleep(0.1)  # several polls: the lease still holds
    assert not done
    clock.advance(CONFIG.lease_seconds + 1)
    await until(lambda: done == [2])
    await asyncio.wait_for(live.idle(), 5)
    assert await live_store.pending() == 0
    await bury(dead)


async def test_stop_waits_for_running_jobs_then_hands_the_rest_back_at_once(stores, workers):
    store = stores()
    quick_done, slow_started = asyncio.Event(), asyncio.Event()

    async def run(j: Job) -> None:
        if j.payload["n"] == 1:
            await asyncio.sleep(0.05)
            quick_done.set()
        else:
            slow_started.set()
            await asyncio.Event().wait()

    worker = Worker(store, CONFIG)
    worker.lane("alerts", 2)
    worker.handle("echo", run)
    worker.start()
    await worker.submit([job(1), job(2)])
    await asyncio.wait_for(slow_started.wait(), 5)
    await worker.stop(grace=1)
    assert quick_done.is_set()
    # The slow job is due again right now (handed back), not after its lease: the next start runs it.
    again = Worker(stores(), CONFIG)
    again.lane("alerts", 1)
    ran = []

    async def record(j: Job) -> None:
        ran.append(j.id)

    again.handle("echo", record)
    workers(again)
    await asyncio.wait_for(again.idle(), 5)
    assert ran == ["job-2"]


async def test_lanes_do_not_wait_for_each_other(stores, workers):
    store = stores()
    blocked = asyncio.Event()

    async def slow(j: Job) -> None:
        await blocked.wait()

    answered = asyncio.Event()

    async def answer(j: Job) -> None:
        answered.set()

    worker = Worker(store, CONFIG)
    worker.lane("alerts", 2)
    worker.lane("commands", 1)
    worker.handle("echo", slow)
    worker.handle("answer", answer)
    workers(worker)
    await worker.submit([job(i) for i in range(10)])
    await worker.submit([job(99, lane="commands", kind="answer")])
    await asyncio.wait_for(answered.wait(), 5)
    blocked.set()
    await asyncio.wait_for(worker.idle(), 5)


async def test_work_enqueued_again_while_it_runs_runs_once_more_with_the_newest_payload(stores, workers):
    store = stores()
    seen: list[int] = []
    release = asyncio.Event()

    async def run(j: Job) -> None:
        seen.append(j.payload["n"])
        if len(seen) == 1:
            await release.wait()

    worker = Worker(store, CONFIG)
    worker.lane("alerts", 4)
    worker.handle("echo", run)
    workers(worker)
    await worker.submit([NewJob(id="thread", kind="echo", lane="alerts", payload={"n": 1})])
    await until(lambda: seen == [1])
    assert await worker.submit([NewJob(id="thread", kind="echo", lane="alerts", payload={"n": 2})]) == [False]
    await asyncio.sleep(0.05)  # polls: the job is leased, so the merged work is not run beside it
    assert seen == [1]
    release.set()
    await asyncio.wait_for(worker.idle(), 5)
    assert seen == [1, 2]


async def test_two_workers_on_one_store_run_each_job_once(stores, workers):
    counts: dict[int, int] = {}

    async def count(j: Job) -> None:
        counts[j.payload["n"]] = counts.get(j.payload["n"], 0) + 1
        await asyncio.sleep(0)

    pair = []
    for name in ("a", "b"):
        worker = Worker(stores(), CONFIG, owner=name)
        worker.lane("alerts", 8)
        worker.handle("echo", count)
        pair.append(workers(worker))
    await pair[0].submit([job(i) for i in range(100)])
    await asyncio.wait_for(asyncio.gather(pair[0].idle(), pair[1].idle()), 10)
    assert counts == {i: 1 for i in range(100)}


class _CannotRenew:
    """The store, except that leases can't be renewed (the replica lost its connection to Redis)."""

    def __init__(self, store) -> None:
        self._store = store

    def __getattr__(self, name):
        return getattr(self._store, name)

    async def extend(self, leases, seconds):
        raise ConnectionError("the store is unreachable")


async def test_a_job_whose_lease_cannot_be_renewed_is_stopped_before_the_lease_runs_out(store_url):
    from bot.state.clock import SYSTEM_CLOCK

    store = open_store(store_url, clock=SYSTEM_CLOCK)  # real time: the lease really runs out
    # Beats every second: a loop that lags up to a beat (four test workers on two cores) still stops
    # the job in time.
    config = DeliveryConfig(lease_seconds=3.0, poll_seconds=0.02)
    started, stopped = asyncio.Event(), asyncio.Event()
    outcomes: list[str] = []

    async def long_job(j: Job) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            stopped.set()

    worker = Worker(_CannotRenew(store), config, on_outcome=lambda kind, outcome: outcomes.append(outcome))
    worker.lane("alerts", 1)
    worker.handle("echo", long_job)
    worker.start()
    try:
        await worker.submit([job(1)])
        await asyncio.wait_for(started.wait(), 5)
        leased = await store.job("job-1")
        assert leased is not None
        await asyncio.wait_for(stopped.wait(), 5)
        # Stopped while its lease still held: nobody else could have been running it meanwhile.
        assert SYSTEM_CLOCK.now() < leased.due
        await until(lambda: outcomes == ["lost"])
    finally:
        await worker.stop(grace=0)
        await store.close()
