"""Durable work: jobs recorded in the store, run by whichever replica leases them.

Work the bot accepts is recorded as a job (bot.state.store) before the request that brought it is
answered. A Worker serves lanes: for each it keeps up to `concurrency` jobs running. It leases due
jobs, runs each job's handler while renewing the lease, then

- finishes the job (done; or runs it once more if it was enqueued again meanwhile),
- retries it later with backoff, on any failure (Slack, Alertmanager or a backend down), or
- gives up on it when it still fails `give_up_after_minutes` after it was accepted (logged,
  counted, and appended to the store's `work-failed` log), or at once on a PermanentError.

A worker that dies loses its leases when they expire and another replica (or the restarted bot)
takes the work. `stop()` stops leasing, lets running jobs finish for a grace period, and hands the
rest back at once so that nothing waits for a lease to expire. Handlers must therefore be safe to
run again: each records its progress in the store (compare-and-set) as it goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from bot.errors import PermanentError, TemporaryError
from bot.state import keys
from bot.state.config import DeliveryConfig
from bot.state.store import Job, Lease, NewJob, Store

log = logging.getLogger(__name__)

Handler = Callable[[Job], Awaitable[None]]
# Told the job kind and how it ended: done, retried, given_up, failed, released, lost.
OutcomeHook = Callable[[str, str], None]
FAILED_LOG = keys.FAILED_WORK_LOG


@dataclass
class _Lane:
    name: str
    concurrency: int
    running: dict[asyncio.Task[None], Lease] = field(default_factory=dict)
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class Worker:
    def __init__(self, store: Store, config: DeliveryConfig, *, owner: str = "",
                 on_outcome: OutcomeHook | None = None,
                 expected: tuple[type[BaseException], ...] = ()) -> None:
        """`expected`: failures of a backend or of Slack, logged in one line; anything else is
        taken for a bug and logged with its traceback (both are retried)."""
        self.store = store
        self.config = config
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.on_outcome = on_outcome
        self.expected = (TemporaryError, asyncio.TimeoutError, ConnectionError, *expected)
        self._handlers: dict[str, Handler] = {}
        self._lanes: dict[str, _Lane] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._lost: set[asyncio.Task[None]] = set()
        self._active: set[asyncio.Task[None]] = set()  # every job task until it has fully ended
        self._stopping = False
        self._progress = asyncio.Event()  # set whenever a job ends (idle() waits on it)

    # ------------------------------------------------------------------ set-up

    def lane(self, name: str, concurrency: int) -> None:
        self._lanes[name] = _Lane(name, max(1, concurrency))

    def handle(self, kind: str, handler: Handler) -> None:
        self._handlers[kind] = handler

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._serve(lane), name=f"worker:{lane.name}")
                       for lane in self._lanes.values()]
        self._tasks.append(loop.create_task(self._heartbeat(), name="worker:heartbeat"))

    # ------------------------------------------------------------------ accepting work

    async def submit(self, jobs: Sequence[NewJob]) -> list[bool]:
        """Record jobs in the store (one transaction) and wake the lanes that run them.

        Raises whatever the store raises: the caller has NOT accepted the work then, and says so
        (a 503 to Alertmanager, which retries; a clear message to a person).
        """
        if not jobs:
            return []
        new = await self.store.enqueue(jobs)
        for name in {job.lane for job in jobs}:
            lane = self._lanes.get(name)
            if lane is not None:
                lane.wake.set()
        return new

    # ------------------------------------------------------------------ running

    async def _serve(self, lane: _Lane) -> None:
        failures = 0
        while not self._stopping:
            free = lane.concurrency - len(lane.running)
            leased: list[Lease] = []
            # Cleared before leasing: work submitted (or a slot freed) from here on wakes the wait.
            lane.wake.clear()
            if free > 0:
                try:
                    leased = await self.store.lease(self.owner, lane.name, free, self.config.lease_seconds)
                    failures = 0
                except Exception as e:  # noqa: BLE001 - the store is down: say so once in a while, keep trying
                    failures += 1
                    if failures == 1 or failures % 30 == 0:
                        log.warning("cannot lease %s work from the store (%s); retrying", lane.name, _one_line(e))
                for lease in leased:
                    task = asyncio.get_running_loop().create_task(self._run(lane, lease),
                                                                  name=f"{lane.name}|{lease.job.id}")
                    lane.running[task] = lease
                    self._active.add(task)
            if free > 0 and leased and len(leased) == free:
                continue  # every slot filled: there may be more due right now, once one frees up
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(lane.wake.wait(), self.config.poll_seconds)

    async def _run(self, lane: _Lane, lease: Lease) -> None:
        job = lease.job
        task = asyncio.current_task()
        assert task is not None
        outcome = "done"
        try:
            handler = self._handlers.get(job.kind)
            if handler is None:
                raise PermanentError(f"no handler for jobs of kind {job.kind!r}")
            await handler(job)
        except asyncio.CancelledError:
            current = lane.running.pop(task, lease)
            if task in self._lost:
                outcome = "lost"  # another worker has it now: touch nothing
            else:
                outcome = "released"
                with contextlib.suppress(Exception):
                    await asyncio.shield(self.store.release(current))
        except Exception as e:  # noqa: BLE001 - every failure is retried or given up, never lost
            outcome = await self._failed(lane.running.pop(task, lease), job, e)
        else:
            # Out of the heartbeat's hands first: a job deleted by finish() is not a lost lease.
            current = lane.running.pop(task, lease)
            try:
                if not await self.store.finish(current):
                    log.warning("job %s finished after its lease was lost; another worker may run it again",
                                job.id)
            except Exception as e:  # noqa: BLE001 - the lease expires and the job runs again (idempotent)
                log.warning("job %s done but not recorded as done (%s); it will run again", job.id, _one_line(e))
        finally:
            lane.running.pop(task, None)
            self._active.discard(task)
            self._lost.discard(task)
            lane.wake.set()
            self._progress.set()
            if self.on_outcome is not None:
                self.on_outcome(job.kind, outcome)

    async def _failed(self, current: Lease, job: Job, error: Exception) -> str:
        age = self.store.clock.now() - job.created
        give_up = isinstance(error, PermanentError) or age >= self.config.give_up_after_minutes * 60
        try:
            if give_up:
                why = "it cannot succeed" if isinstance(error, PermanentError) else \
                    f"still failing after {age / 60:.0f} min"
                log.error("gave up on job %s (%s, %d attempts): %s", job.id, why, job.attempts, _one_line(error))
                await self.store.append(FAILED_LOG, {"job": job.id, "kind": job.kind, "attempts": job.attempts,
                                                     "error": _one_line(error)})
                await self.store.finish(current)
                return "failed" if isinstance(error, PermanentError) else "given_up"
            delay = self.backoff(job.attempts, error)
            if isinstance(error, self.expected):
                log.warning("job %s failed (attempt %d), retrying in %.1f s: %s", job.id, job.attempts, delay,
                            _one_line(error))
            else:
                log.warning("job %s failed (attempt %d), retrying in %.1f s", job.id, job.attempts, delay,
                            exc_info=error)
            await self.store.retry(current, delay)
            return "retried"
        except Exception as e:  # noqa: BLE001 - the lease expires and the job runs again
            log.warning("job %s: cannot record the failure in the store (%s); it runs again when its lease "
                        "expires", job.id, _one_line(e))
            return "retried"

    def backoff(self, attempts: int, error: Exception | None = None) -> float:
        """Doubling from retry_initial_seconds to retry_max_seconds, with jitter; a TemporaryError's
        own delay (Slack's Retry-After) when it gives one."""
        if isinstance(error, TemporaryError) and error.delay is not None:
            return error.delay  # known: Slack's Retry-After, or when an earlier attempt has settled
        base = min(self.config.retry_max_seconds, self.config.retry_initial_seconds * 2 ** max(attempts - 1, 0))
        return base * (0.5 + random.random() / 2)

    async def _heartbeat(self) -> None:
        """Renew the leases of running jobs; a job whose lease was lost is cancelled."""
        interval = self.config.lease_seconds / 3
        delay = interval
        while True:
            await asyncio.sleep(delay)
            delay = interval
            held = [(lane, task, lease) for lane in self._lanes.values() for task, lease in lane.running.items()]
            if not held:
                continue
            try:
                renewed = await self.store.extend([lease for _, _, lease in held], self.config.lease_seconds)
            except Exception as e:  # noqa: BLE001 - try again soon; the lease outlives several tries
                log.warning("cannot renew %d lease(s) (%s)", len(held), _one_line(e))
                # Try again four times as often; a lease left with less than half a beat may run out
                # before the next try (or a late one) and go to another worker: stop its job here
                # first, so that two workers never do the same work at once.
                delay = interval / 4
                deadline = self.store.clock.now() + interval / 2
                for lane, task, lease in held:
                    if lease.expires <= deadline and task in lane.running:
                        log.warning("job %s: its lease runs out and cannot be renewed; stopping it here",
                                    lease.job.id)
                        self._lost.add(task)
                        task.cancel()
                continue
            for (lane, task, old), new in zip(held, renewed, strict=False):
                if task not in lane.running:
                    continue  # it ended meanwhile (a finished job has no lease to renew)
                if new is None:
                    log.warning("lost the lease of job %s (another worker took it); stopping it here", old.job.id)
                    self._lost.add(task)
                    task.cancel()
                else:
                    lane.running[task] = new

    # ------------------------------------------------------------------ stopping and waiting

    @property
    def running(self) -> int:
        return len(self._active)

    async def stop(self, grace: float) -> None:
        """Stop leasing; let running jobs finish for up to `grace` seconds; hand back the rest."""
        self._stopping = True
        for lane in self._lanes.values():
            lane.wake.set()
        serving = [t for t in self._tasks if t.get_name() != "worker:heartbeat"]
        await asyncio.gather(*serving, return_exceptions=True)
        tasks = list(self._active)
        if tasks:
            log.info("stopping: %d job(s) running, waiting up to %g s", len(tasks), grace)
            _, late = await asyncio.wait(tasks, timeout=grace)
            if late:
                log.warning("handing %d unfinished job(s) back to the store", len(late))
                for task in late:
                    task.cancel()
                await asyncio.wait(late, timeout=5)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def idle(self, lanes: Sequence[str] | None = None) -> None:
        """Wait until nothing is running here and the store holds no job in these lanes (default:
        every lane this worker serves), whichever replica ran them. For tests and benchmarks."""
        names = list(lanes or self._lanes)
        while True:
            self._progress.clear()
            busy = any(task.get_name().split("|")[0] in names for task in self._active)
            if not busy and all([await self.store.pending(n) == 0 for n in names]):
                return
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._progress.wait(), self.config.poll_seconds)


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


