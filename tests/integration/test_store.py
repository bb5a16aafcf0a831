"""The state store, the same contract on SQLite and on a real Redis."""

from __future__ import annotations

import asyncio

import pytest

from bot.state.store import open_store


@pytest.fixture(params=["sqlite", "redis"])
async def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/state/chatops.db"
    return request.getfixturevalue("redis_server").url


@pytest.fixture
async def store(store_url):
    s = open_store(store_url)
    yield s
    await s.close()


async def test_claim_is_won_exactly_once_among_concurrent_callers(store):
    wins = await asyncio.gather(*(store.claim("event:Ev123", ttl=60) for _ in range(20)))
    assert wins.count(True) == 1


async def test_a_claim_can_be_made_again_after_it_expires(store):
    assert await store.claim("event:short", ttl=0.2)
    assert not await store.claim("event:short", ttl=0.2)
    await asyncio.sleep(0.3)
    assert await store.claim("event:short", ttl=0.2)


async def test_documents_are_stored_replaced_and_deleted(store):
    assert await store.get("thread:fp1") is None
    await store.put("thread:fp1", {"channel": "C1", "ts": "1.2"})
    await store.put("thread:fp1", {"channel": "C1", "ts": "1.2", "resolved": True})
    assert await store.get("thread:fp1") == {"channel": "C1", "ts": "1.2", "resolved": True}
    await store.delete("thread:fp1")
    assert await store.get("thread:fp1") is None


async def test_documents_expire_after_their_ttl(store):
    await store.put("tmp", {"x": 1}, ttl=0.2)
    assert await store.get("tmp") == {"x": 1}
    await asyncio.sleep(0.3)
    assert await store.get("tmp") is None


async def test_state_survives_a_restart(store_url):
    first = open_store(store_url)
    await first.put("thread:fp2", {"ts": "9.9"})
    assert await first.claim("event:Ev9", ttl=60)
    await first.close()
    second = open_store(store_url)
    try:
        assert await second.get("thread:fp2") == {"ts": "9.9"}
        assert not await second.claim("event:Ev9", ttl=60)
    finally:
        await second.close()


async def test_sets_change_atomically_under_concurrent_adds(store):
    await asyncio.gather(*(store.add("open", f"fp{i}") for i in range(50)))
    await store.discard("open", "fp7")
    members = await store.members("open")
    assert len(members) == 49 and "fp7" not in members and "fp8" in members
    assert await store.members("nothing") == set()
