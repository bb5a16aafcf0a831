"""Run a blocking client call (boto3, prometheus-api-client, matplotlib) off the event loop.

A bounded pool of its own, so that a backend that hangs can tie up at most `workers`
threads and never the loop or the default executor other libraries use. Give each blocking
backend its own pool (bot.clients.Clients.pool): threads held by one that hangs must not
delay the others' calls past their timeouts.
"""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, TypeVar

T = TypeVar("T")


class BlockingPool:
    def __init__(self, workers: int = 8, name: str = "blocking") -> None:
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    def close(self) -> None:
        # Don't wait: a call stuck on a dead backend would hold up shutdown.
        self._executor.shutdown(wait=False, cancel_futures=True)
