"""The PagerDuty fake refuses what PagerDuty's Events API v2 refuses (400, PagerDuty's error shape)
and models incidents by dedup_key, over plain HTTP (not through the bot's client, so a client bug
cannot hide a fake that accepts too much)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.fakes.pagerduty import ROUTING_KEY, FakePagerDuty

pytestmark = pytest.mark.integration

PAYLOAD = {"summary": "HighErrorRate", "source": "prod", "severity": "critical"}


@pytest.fixture
async def post(pagerduty: FakePagerDuty) -> AsyncIterator[Any]:
    async with aiohttp.ClientSession() as http:

        async def send(body: Any) -> tuple[int, dict[str, Any]]:
            data = body if isinstance(body, str) else None
            async with http.post(pagerduty.url, data=data, json=None if data else body) as response:
                return response.status, await response.json()

        yield send


def event(action: str = "trigger", **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"routing_key": ROUTING_KEY, "event_action": action, "dedup_key": "k1"}
    if action == "trigger":
        body["payload"] = dict(PAYLOAD)
    body.update(fields)
    return {k: v for k, v in body.items() if v is not None}


@pytest.mark.parametrize("body, error", [
    ("not json", "Event object must be a JSON object"),
    (event(routing_key=None), "'routing_key' is missing or blank"),
    (event(routing_key="0" * 32), "'routing_key' is invalid"),
    (event(event_action=None), "'event_action' is missing or blank"),
    (event(event_action="escalate"), "'event_action' is invalid"),
    (event("acknowledge", dedup_key=None), "'dedup_key' is required for event_action acknowledge"),
    (event("resolve", dedup_key=None), "'dedup_key' is required for event_action resolve"),
    (event("resolve", dedup_key="k" * 256), "'dedup_key' must be a string"),
    (event(payload=None), "'payload' is missing"),
    (event(payload={**PAYLOAD, "summary": ""}), "'payload.summary' is missing or blank"),
    (event(payload={"summary": "s", "severity": "info"}), "'payload.source' is missing or blank"),
    (event(payload={"summary": "s", "source": "p"}), "'payload.severity' is missing or blank"),
    (event(payload={**PAYLOAD, "severity": "high"}), "'payload.severity' is invalid"),
    (event(payload={**PAYLOAD, "summary": "x" * 1025}), "'payload.summary' is too long"),
    (event(payload={**PAYLOAD, "timestamp": "yesterday"}), "'payload.timestamp' is not a valid ISO 8601"),
    (event(payload={**PAYLOAD, "custom_details": "text"}), "'payload.custom_details' must be an object"),
    (event(links=[{"text": "no href"}]), "'links' must be a list of objects with an 'href'"),
])  # fmt: skip
async def test_the_fake_refuses_what_pagerduty_refuses(pagerduty, post, body, error):
    status, answer = await post(body)
    assert status == 400
    assert answer["status"] == "invalid event" and answer["message"] == "Event object is invalid"
    assert any(e.startswith(error) for e in answer["errors"]), answer["errors"]
    assert ROUTING_KEY not in str(answer)
    assert pagerduty.events == [] and pagerduty.incidents == []
    assert pagerduty.requests[0].status == 400


async def test_a_valid_trigger_is_accepted_with_pagerdutys_answer(pagerduty, post):
    status, answer = await post(event(payload={**PAYLOAD, "summary": "x" * 1024, "timestamp": "2024-05-01T12:00:00Z"}))
    assert (status, answer) == (202, {"status": "success", "message": "Event processed", "dedup_key": "k1"})
    assert pagerduty.incident("k1").status == "triggered"


async def test_a_trigger_without_a_dedup_key_gets_one_as_pagerduty_does(pagerduty, post):
    status, answer = await post(event(dedup_key=None))
    assert status == 202 and answer["dedup_key"] and pagerduty.incident(answer["dedup_key"]).open


async def test_incidents_by_dedup_key_trigger_joins_ack_and_resolve_change_it_then_a_new_one(pagerduty, post):
    for body in (event(), event(), event("acknowledge"), event("acknowledge"), event("trigger", dedup_key="k2")):
        assert (await post(body))[0] == 202
    assert [(i.dedup_key, i.status, i.alerts) for i in pagerduty.incidents] == [
        ("k1", "acknowledged", 2), ("k2", "triggered", 1)]
    await post(event("resolve"))
    await post(event("acknowledge"))  # after the resolution: accepted, changes nothing
    assert pagerduty.incident("k1").status == "resolved"
    await post(event())  # the same dedup_key after the resolution opens a new incident
    assert [(i.dedup_key, i.status) for i in pagerduty.incidents] == [
        ("k1", "resolved"), ("k2", "triggered"), ("k1", "triggered")]
    await post(event("resolve", dedup_key="never-triggered"))
    assert len(pagerduty.incidents) == 3
    assert len(await pagerduty.wait_for(3, action="acknowledge")) == 3


async def test_arranged_failures_answer_in_turn_then_the_fake_recovers(pagerduty, post):
    pagerduty.rate_limit(times=1, retry_after=3)
    pagerduty.fail(times=2, status=503)
    assert [(await post(event()))[0] for _ in range(4)] == [429, 503, 503, 202]
    assert [r.fault for r in pagerduty.requests] == ["rate_limit", "fail", "fail", None]
    assert len(pagerduty.incidents) == 1


async def test_a_429_carries_retry_after(pagerduty):
    pagerduty.rate_limit(retry_after=3)
    async with aiohttp.ClientSession() as http, http.post(pagerduty.url, json=event()) as response:
        assert response.status == 429 and response.headers["Retry-After"] == "3"
