"""One injectable clock: everything that reads the time for state (leases, timers, retries, the
log, expiry) asks a Clock, so tests can move time instead of sleeping."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch (wall time: it is stored and compared across replicas)."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()


SYSTEM_CLOCK = SystemClock()


class FakeClock:
    """A clock that moves only when told: `advance(30)` is thirty seconds later, at once.

    `sleep(s)` waits until someone advances the clock by `s`; code that sleeps on the clock
    (the worker's poll) therefore wakes exactly when a test moves time past its deadline.
    """

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._now = start
        self._changed: asyncio.Condition | None = None

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds
        if self._changed is not None:
            loop_condition = self._changed

            async def notify() -> None:
                async with loop_condition:
                    loop_condition.notify_all()

            asyncio.get_event_loop().create_task(notify())

    async def sleep(self, seconds: float) -> None:
        if self._changed is None:
            self._changed = asyncio.Condition()
        deadline = self._now + seconds
        async with self._changed:
            await self._changed.wait_for(lambda: self._now >= deadline)
