"""Benchmark: durable work through the store, on SQLite and on a real Redis.

    .venv/bin/python -m bench.bench_work [--jobs 2000] [--concurrency 32]

1. Recording: one enqueue() of a webhook's worth of jobs (300), the time Alertmanager waits.
2. Throughput: jobs with a handler that does nothing, run by one worker and by two workers
   (two replicas) sharing the store: jobs per second through lease -> run -> finish.
3. Takeover: a worker dies holding a job; how long until another runs it (the lease).

Redis is started from the redis-server binary (Debian's redis-server) on a free port.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.state.config import DeliveryConfig  # noqa: E402
from bot.state.store import Job, NewJob, open_store  # noqa: E402
from bot.state.worker import Worker  # noqa: E402
from tests.servers.missing import require_binary  # noqa: E402
from tests.servers.redis import start_redis  # noqa: E402

CONFIG = DeliveryConfig(lease_seconds=2, poll_seconds=0.05)


async def recording(url: str) -> float:
    store = open_store(url)
    try:
        jobs = [NewJob(id=f"rec-{time.time_ns()}-{i}", kind="noop", lane="bench") for i in range(300)]
        start = time.perf_counter()
        await store.enqueue(jobs)
        took = time.perf_counter() - start
        for job in jobs:
            await store.cancel(job.id)
        return took
    finally:
        await store.close()


async def throughput(url: str, jobs: int, concurrency: int, replicas: int) -> float:
    stores = [open_store(url) for _ in range(replicas)]
    done = 0

    async def noop(job: Job) -> None:
        nonlocal done
        done += 1

    workers = []
    for i, store in enumerate(stores):
        worker = Worker(store, CONFIG, owner=f"bench-{i}")
        worker.lane("bench", concurrency)
        worker.handle("noop", noop)
        workers.append(worker)
    run = time.time_ns()
    await stores[0].enqueue([NewJob(id=f"tp-{run}-{i}", kind="noop", lane="bench") for i in range(jobs)])
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    await asyncio.gather(*(worker.idle(["bench"]) for worker in workers))
    took = time.perf_counter() - start
    for worker in workers:
        await worker.stop(grace=1)
    for store in stores:
        await store.close()
    assert done == jobs, (done, jobs)
    return jobs / took


async def takeover(url: str) -> float:
    dead_store, live_store = open_store(url), open_store(url)
    started, ran = asyncio.Event(), asyncio.Event()
    taken_at = 0.0

    async def hang(job: Job) -> None:
        started.set()
        await asyncio.Event().wait()

    async def finish(job: Job) -> None:
        nonlocal taken_at
        taken_at = time.perf_counter()
        ran.set()

    dead = Worker(dead_store, CONFIG, owner="dead")
    dead.lane("bench", 1)
    dead.handle("noop", hang)
    dead.start()
    await dead.submit([NewJob(id=f"to-{time.time_ns()}", kind="noop", lane="bench")])
    await started.wait()
    for task in dead._tasks:  # the process dies: no heartbeat, nothing handed back
        task.cancel()
    died = time.perf_counter()
    live = Worker(live_store, CONFIG, owner="live")
    live.lane("bench", 1)
    live.handle("noop", finish)
    live.start()
    await asyncio.wait_for(ran.wait(), 30)
    await live.stop(grace=1)
    for lane in dead._lanes.values():  # bury the dead worker's hung handler without touching the store
        for task in list(lane.running):
            dead._lost.add(task)
            task.cancel()
    await asyncio.sleep(0)
    await live_store.close()
    await dead_store.close()
    return taken_at - died


async def main(jobs: int, concurrency: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-work-"))
    redis = start_redis(require_binary("redis-server", package="redis-server"), workdir)
    try:
        for name, url in (("sqlite", f"sqlite:///{workdir}/state.db"), ("redis", redis.url)):
            print(f"{name}: 300 jobs recorded in {await recording(url) * 1000:.1f} ms")
            for replicas in (1, 2):
                rate = await throughput(url, jobs, concurrency, replicas)
                print(f"{name}: {jobs} no-op jobs, {replicas} worker(s) x {concurrency}: {rate:.0f} jobs/s")
            print(f"{name}: a dead worker's job taken over after {await takeover(url):.2f} s "
                  f"(lease {CONFIG.lease_seconds:g} s)")
    finally:
        redis.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    options = parser.parse_args()
    asyncio.run(main(options.jobs, options.concurrency))
