import asyncio

import pytest

from diagnostics.cache import QueryCache


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def counting_factory(calls: list[str], value: str = "answer", delay: float = 0.05, fail: bool = False):
    async def factory():
        calls.append(value)
        await asyncio.sleep(delay)
        if fail:
            raise RuntimeError("backend down")
        return value
    return factory


async def test_identical_queries_in_flight_make_one_backend_call():
    cache, calls = QueryCache(ttl=5), []
    answers = await asyncio.gather(*(cache.get(("pods", "prod"), counting_factory(calls)) for _ in range(50)))
    assert answers == ["answer"] * 50
    assert calls == ["answer"]
    assert cache.stats.backend_calls == 1 and cache.stats.coalesced == 49


async def test_different_keys_are_not_shared():
    cache, calls = QueryCache(ttl=5), []
    await asyncio.gather(cache.get("a", counting_factory(calls, "a")), cache.get("b", counting_factory(calls, "b")))
    assert sorted(calls) == ["a", "b"]


async def test_answers_are_served_from_memory_until_the_ttl_passes():
    clock = Clock()
    cache, calls = QueryCache(ttl=5, clock=clock), []
    await cache.get("k", counting_factory(calls, delay=0))
    clock.now = 4.9
    await cache.get("k", counting_factory(calls, delay=0))
    assert len(calls) == 1 and cache.stats.hits == 1
    clock.now = 5.1
    await cache.get("k", counting_factory(calls, delay=0))
    assert len(calls) == 2


async def test_errors_reach_every_waiter_but_are_not_cached():
    cache, calls = QueryCache(ttl=5), []
    results = await asyncio.gather(*(cache.get("k", counting_factory(calls, fail=True)) for _ in range(3)),
                                   return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    assert len(calls) == 1
    assert await cache.get("k", counting_factory(calls, delay=0)) == "answer"
    assert len(calls) == 2


async def test_a_waiter_that_times_out_does_not_cancel_the_shared_call():
    cache, calls = QueryCache(ttl=5), []
    first = asyncio.create_task(cache.get("k", counting_factory(calls, delay=0.2)))
    await asyncio.sleep(0.01)
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(cache.get("k", counting_factory(calls)), 0.05)
    assert await first == "answer"
    assert len(calls) == 1


async def test_when_the_first_caller_gives_up_the_others_still_get_the_answer():
    cache, calls = QueryCache(ttl=5), []
    first = asyncio.create_task(asyncio.wait_for(cache.get("k", counting_factory(calls, delay=0.2)), 0.05))
    await asyncio.sleep(0.01)
    second = asyncio.create_task(cache.get("k", counting_factory(calls)))
    with pytest.raises(asyncio.TimeoutError):
        await first
    assert await second == "answer"  # not CancelledError
    assert len(calls) == 1


async def test_expired_answers_are_dropped_not_kept_until_the_count_limit():
    clock = Clock()
    cache, calls = QueryCache(ttl=5, clock=clock), []
    for i in range(10):
        await cache.get(f"pod-log-{i}", counting_factory(calls, delay=0))
    clock.now = 6
    await cache.get("new", counting_factory(calls, delay=0))
    assert len(cache._answers) == 1
