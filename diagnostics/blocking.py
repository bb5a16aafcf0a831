"""Run a blocking client call (boto3, prometheus-api-client, matplotlib) off the event loop.

A bounded pool of its own, so that a backend that hangs can tie up at most `workers`
threads and never the loop or the default executor other libraries use. Give each blocking
backend its own pool (bot.clients.Clients.pool): threads held by one that hangs must not
delay the others' calls past their timeouts.

The pool's threads are daemon threads: a call stuck on a backend that trickles a byte
before each read timeout can hold its thread for minutes, and the process must still exit
when the bot stops (concurrent.futures.ThreadPoolExecutor's threads are joined at exit).
"""

from __future__ import annotations

import asyncio
import functools
import queue
import threading
from concurrent.futures import Executor, Future
from typing import Any, Callable, TypeVar

T = TypeVar("T")

_Work = tuple["Future[Any]", Callable[[], Any]]


class DaemonThreadPool(Executor):
    """At most `workers` daemon threads, started as work comes; nothing joins them at exit."""

    def __init__(self, workers: int, name: str) -> None:
        self._workers = workers
        self._name = name
        self._queue: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = threading.Semaphore(0)
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> "Future[T]":
        future: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError(f"pool {self._name!r} is shut down")
            self._queue.put((future, functools.partial(fn, *args, **kwargs)))
            if not self._idle.acquire(timeout=0) and len(self._threads) < self._workers:
                thread = threading.Thread(target=self._work, name=f"{self._name}_{len(self._threads)}", daemon=True)
                thread.start()
                self._threads.append(thread)
        return future

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            future, call = item
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(call())
                except BaseException as e:  # noqa: BLE001 - handed to whoever waits on the future
                    future.set_exception(e)
            del item, future, call
            self._idle.release()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._closed = True
            if cancel_futures:
                while True:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is not None:
                        item[0].cancel()
            for _ in self._threads:
                self._queue.put(None)
        if wait:
            for thread in self._threads:
                thread.join()


class BlockingPool:
    def __init__(self, workers: int = 8, name: str = "blocking") -> None:
        self._executor = DaemonThreadPool(workers, name)

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.wrap_future(self._executor.submit(fn, *args, **kwargs))

    def close(self) -> None:
        # Don't wait: a call stuck on a dead backend would hold up shutdown; its daemon thread
        # ends with the process.
        self._executor.shutdown(wait=False, cancel_futures=True)


# Inputs smaller than this are parsed on the event loop (a few milliseconds at most): handing
# them to a thread would cost more than the work. Larger ones are worked on in a thread.
OFF_LOOP_SIZE = 64 * 1024
# One thread for all of it, in turn: CPU-bound threads only take turns on the GIL anyway, and each
# more of them makes the loop wait longer for it every time it gives it up (a socket write, a read).
_CPU_WORK = DaemonThreadPool(1, name="cpu-work")


async def off_loop(size: int, work: Callable[..., T], *args: Any, threshold: int = OFF_LOOP_SIZE,
                   **kwargs: Any) -> T:
    """`work(*args, **kwargs)`, CPU-bound work on an input of `size` (bytes, or whatever unit
    `threshold` is in): inline when it is small, else in a thread, so that a large backend answer
    (a pod's log, a node list, a log file to redact) never blocks the loop for long. The thread
    still takes the GIL, but gives it back every few milliseconds (sys.getswitchinterval), where
    work on the loop would hold it to the end. A daemon thread: nothing waits for it at exit."""
    if size < threshold:
        return work(*args, **kwargs)
    return await asyncio.wrap_future(_CPU_WORK.submit(work, *args, **kwargs))
