"""Coalesce identical backend queries and keep their answers for a few seconds.

When fifty alerts about one namespace arrive together, their playbooks ask the same
questions (list the pods of `prod`, query the error rate) at the same moment. The first
caller of a key makes the backend call; everyone who asks for that key while it is in
flight awaits the same answer, and for `ttl` seconds afterwards it is served from memory.
Errors are shared with the callers already waiting but never cached.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Hashable, TypeVar

T = TypeVar("T")


@dataclass
class CacheStats:
    backend_calls: int = 0  # factories actually run
    coalesced: int = 0  # callers who joined a call already in flight
    hits: int = 0  # callers served a fresh cached answer


class QueryCache:
    def __init__(self, ttl: float = 5.0, max_entries: int = 2048, clock: Callable[[], float] = time.monotonic):
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._inflight: dict[Hashable, asyncio.Task[Any]] = {}
        self._answers: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self.stats = CacheStats()

    async def get(self, key: Hashable, factory: Callable[[], Awaitable[T]]) -> T:
        now = self._clock()
        cached = self._answers.get(key)
        if cached is not None and now - cached[0] < self.ttl:
            self.stats.hits += 1
            return cached[1]
        task = self._inflight.get(key)
        if task is None:
            self.stats.backend_calls += 1
            # The call runs in a task of its own: whoever started it may time out or be
            # cancelled, and the others waiting for the same answer still get it.
            task = asyncio.get_running_loop().create_task(self._call(key, factory))
            task.add_done_callback(_retrieve)
            self._inflight[key] = task
        else:
            self.stats.coalesced += 1
        return await asyncio.shield(task)

    async def _call(self, key: Hashable, factory: Callable[[], Awaitable[Any]]) -> Any:
        try:
            value = await factory()
            self._store(key, value)
            return value
        finally:
            self._inflight.pop(key, None)

    def clear(self) -> None:
        """Forget the answers kept (calls in flight still finish and are shared)."""
        self._answers.clear()

    def _store(self, key: Hashable, value: Any) -> None:
        if self.ttl <= 0:
            return
        now = self._clock()
        self._answers[key] = (now, value)
        self._answers.move_to_end(key)
        # Oldest first: drop what has expired (large answers, such as logs, must not pile up),
        # then whatever is over the count.
        while self._answers and (len(self._answers) > self.max_entries
                                 or now - next(iter(self._answers.values()))[0] >= self.ttl):
            self._answers.popitem(last=False)


def _retrieve(task: "asyncio.Task[Any]") -> None:
    # Everyone waiting may have given up; the outcome is still read so asyncio doesn't warn.
    if not task.cancelled():
        task.exception()


async def cached(cache: QueryCache | None, key: Hashable, factory: Callable[[], Awaitable[T]]) -> T:
    """`cache.get(key, factory)`, or just `factory()` when there is no cache."""
    if cache is None:
        return await factory()
    return await cache.get(key, factory)
