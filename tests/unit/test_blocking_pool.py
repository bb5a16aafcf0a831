"""diagnostics.blocking: bounded daemon threads that never hold up the process's exit."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time

import pytest

from diagnostics.blocking import OFF_LOOP_SIZE, BlockingPool, DaemonThreadPool, off_loop


async def test_calls_run_in_daemon_threads_and_errors_reach_the_caller():
    pool = BlockingPool(2, name="t")
    assert await pool.run(lambda: threading.current_thread().daemon)
    assert await pool.run(lambda a, b=0: a + b, 1, b=2) == 3
    with pytest.raises(ZeroDivisionError):
        await pool.run(lambda: 1 / 0)
    pool.close()


def test_at_most_workers_threads_and_close_neither_waits_nor_runs_queued_work():
    pool = DaemonThreadPool(2, name="t")
    release = threading.Event()
    ran: list[int] = []
    held = [pool.submit(release.wait) for _ in range(2)]
    queued = pool.submit(ran.append, 1)
    time.sleep(0.05)
    assert len(pool._threads) == 2 and not queued.running()
    started = time.monotonic()
    pool.shutdown(wait=False, cancel_futures=True)
    assert time.monotonic() - started < 0.5
    assert queued.cancelled()
    with pytest.raises(RuntimeError):
        pool.submit(ran.append, 2)
    release.set()
    assert all(f.result(timeout=2) for f in held)
    assert ran == []


def test_idle_threads_are_reused():
    pool = DaemonThreadPool(4, name="t")
    for i in range(5):
        assert pool.submit(lambda x: x, i).result(timeout=2) == i
    assert len(pool._threads) == 1
    pool.shutdown(wait=True)
    assert not any(t.is_alive() for t in pool._threads)


async def test_a_cancelled_wait_cancels_the_queued_call():
    pool = BlockingPool(1, name="t")
    release = threading.Event()
    ran: list[int] = []
    started = threading.Event()

    def hold() -> None:
        started.set()
        release.wait()

    busy = asyncio.ensure_future(pool.run(hold))
    await asyncio.to_thread(started.wait, 5)  # the only thread is busy: the next call waits in the queue
    waiting = asyncio.ensure_future(pool.run(ran.append, 1))
    await asyncio.sleep(0)  # it is submitted
    waiting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await waiting  # the cancel has reached the queued call
    release.set()
    await busy
    await pool.run(ran.append, 2)  # barrier: one thread, in order, so the cancelled call was passed over
    assert ran == [2]
    pool.close()


async def test_a_large_input_is_parsed_in_a_thread_a_small_one_on_the_loop():
    def where(text: str, *, tag: str) -> tuple[int, str]:
        return threading.get_ident(), f"{tag}{len(text)}"

    loop_thread = threading.get_ident()
    large = "x" * OFF_LOOP_SIZE
    thread, parsed = await off_loop(len(large), where, large, tag="n=")
    assert thread != loop_thread and parsed == f"n={OFF_LOOP_SIZE}"
    assert await off_loop(3, where, "abc", tag="n=") == (loop_thread, "n=3")
    with pytest.raises(ValueError):
        await off_loop(len(large), int, large)
