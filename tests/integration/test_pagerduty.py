"""The PagerDuty client against the loopback Events API v2 fake, over HTTP: trigger, acknowledge
and resolve by dedup_key; 429/5xx/timeouts are temporary (retried by the worker), a 400 is
permanent and names PagerDuty's errors; the routing key is never in a message, a log or a repr."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from datetime import datetime, timezone

import aiohttp
import pytest
from aiohttp import web

from bot.errors import PermanentError, TemporaryError
from bot.incidents.pagerduty import PagerDuty, PagerDutyEvent, dedup_key
from tests.fakes.loopback import serve
from tests.fakes.pagerduty import FakePagerDuty

pytestmark = pytest.mark.integration

GROUP = dedup_key("group", '{}:{alertname="HighErrorRate"}')
THREAD = "https://example.slack.com/archives/C0ALERTS/p1714560000000100"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def trigger(key: str = GROUP, **kw: object) -> PagerDutyEvent:
    return PagerDutyEvent.trigger(key, "HighErrorRate: checkout 7% 5xx", "prod", "critical",
                                  links=[(THREAD, "Slack thread")], **kw)  # type: ignore[arg-type]


async def test_a_trigger_opens_an_incident_with_its_payload_and_returns_pagerdutys_dedup_key(pagerduty, http):
    client = PagerDuty(http, pagerduty.routing_key, url=pagerduty.url)
    when = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
    assert await client.send(trigger(custom_details={"alerts": ["checkout"]}, timestamp=when)) == GROUP

    incident = pagerduty.incident(GROUP)
    assert (incident.status, incident.summary, incident.severity, incident.source) == (
        "triggered", "HighErrorRate: checkout 7% 5xx", "critical", "prod")
    assert incident.links == [{"href": THREAD, "text": "Slack thread"}]
    [event] = pagerduty.events
    assert event["payload"]["custom_details"] == {"alerts": ["checkout"]}
    assert event["payload"]["timestamp"] == "2024-05-01T12:00:00+00:00"


async def test_escalating_twice_pages_once_then_acknowledge_and_resolve_by_dedup_key(pagerduty, http):
    client = PagerDuty(http, pagerduty.routing_key, url=pagerduty.url)
    await client.send(trigger())
    await client.send(trigger())
    assert len(pagerduty.incidents) == 1 and pagerduty.incident(GROUP).alerts == 2

    assert await client.send(PagerDutyEvent.acknowledge(GROUP)) == GROUP
    assert pagerduty.incident(GROUP).status == "acknowledged"
    assert await client.send(PagerDutyEvent.resolve(GROUP)) == GROUP
    assert pagerduty.incident(GROUP).status == "resolved"
    assert [e["event_action"] for e in pagerduty.events] == ["trigger", "trigger", "acknowledge", "resolve"]


async def test_a_summary_longer_than_pagerdutys_limit_is_cut_and_accepted(pagerduty, http):
    client = PagerDuty(http, pagerduty.routing_key, url=pagerduty.url)
    await client.send(PagerDutyEvent.trigger(GROUP, "x" * 5000, "prod", "warning"))
    assert len(pagerduty.incident(GROUP).summary) == 1024


async def test_429_is_temporary_with_pagerdutys_retry_after_then_the_retry_goes_through(pagerduty, http):
    client = PagerDuty(http, pagerduty.routing_key, url=pagerduty.url)
    pagerduty.rate_limit(times=1, retry_after=7)
    with pytest.raises(TemporaryError) as caught:
        await client.send(trigger())
    assert caught.value.delay == 7.0
    assert "429" in str(caught.value) and pagerduty.incidents == []

    await client.send(trigger())
    assert pagerduty.incident(GROUP).status == "triggered"


@pytest.mark.parametrize("status, retry_after, delay", [(500, None, None), (502, None, None), (503, 30, 30.0)])
async def test_5xx_is_temporary(pagerduty, http, status, retry_after, delay):
    client = PagerDuty(http, pagerduty.routing_key, url=pagerduty.url)
    pagerduty.fail(times=2, status=status, retry_after=retry_after)
    for _ in range(2):
        with pytest.raises(TemporaryError) as caught:
            await client.send(trigger())
        assert f"HTTP {status}" in str(caught.value) and caught.value.delay == delay
    await client.send(trigger())
    assert [r.status for r in pagerduty.requests] == [status, status, 202]


async def test_400_is_permanent_and_names_pagerdutys_message_and_errors_without_the_key(pagerduty, http):
    wrong = "WR0NGKEY000000000000000000000000"
    client = PagerDuty(http, wrong, url=pagerduty.url)
    with pytest.raises(PermanentError) as caught:
        await client.send(trigger())
    message = str(caught.value)
    assert "HTTP 400" in message and "Event object is invalid" in message and "'routing_key' is invalid" in message
    assert "\n" not in message
    assert wrong not in message and wrong not in repr(caught.value)
    assert pagerduty.requests[0].status == 400 and pagerduty.incidents == []


async def test_a_timeout_is_temporary_and_the_fake_sees_the_request_abandoned(pagerduty, http):
    client = PagerDuty(http, pagerduty.routing_key, url=pagerduty.url, timeout=0.3)
    pagerduty.hang()
    with pytest.raises(TemporaryError) as caught:
        await client.send(trigger())
    assert "timed out" in str(caught.value) and caught.value.delay is None
    await pagerduty.wait_abandoned()
    pagerduty.recover()
    await client.send(trigger())
    assert pagerduty.incident(GROUP).alerts == 1  # the abandoned request was never carried out


async def test_a_held_request_released_by_recover_is_carried_out(pagerduty, http):
    client = PagerDuty(http, pagerduty.routing_key, url=pagerduty.url)
    pagerduty.hang()
    sending = asyncio.ensure_future(client.send(trigger()))
    await pagerduty.wait_held()
    pagerduty.recover()
    assert await sending == GROUP
    assert pagerduty.incident(GROUP).status == "triggered"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_the_routing_key_is_in_no_message_log_or_repr_whatever_happens(pagerduty, http, caplog):
    caplog.set_level(logging.DEBUG)
    key = pagerduty.routing_key
    seen: list[str] = []

    def look(error: BaseException) -> None:
        seen.extend([str(error), repr(error), *map(str, error.args)])

    client = PagerDuty(http, key, url=pagerduty.url, timeout=0.3)
    seen.append(repr(client))
    await client.send(trigger())
    await client.send(PagerDutyEvent.resolve(GROUP))
    pagerduty.rate_limit()
    pagerduty.fail(status=500)
    for _ in range(2):
        with pytest.raises(TemporaryError) as temporary:
            await client.send(trigger())
        look(temporary.value)
    pagerduty.hang()
    with pytest.raises(TemporaryError) as timed_out:
        await client.send(trigger())
    look(timed_out.value)
    await pagerduty.wait_abandoned()
    pagerduty.recover()

    unreachable = PagerDuty(http, key, url=f"http://127.0.0.1:{free_port()}/v2/enqueue")
    with pytest.raises(TemporaryError) as refused:
        await unreachable.send(trigger())
    assert "cannot connect" in str(refused.value)
    look(refused.value)

    wrong = PagerDuty(http, key + "x", url=pagerduty.url)
    with pytest.raises(PermanentError) as invalid:
        await wrong.send(trigger())
    look(invalid.value)

    seen += [r.getMessage() for r in caplog.records] + [caplog.text]
    assert any("PagerDuty" in text for text in seen)
    assert not [text for text in seen if key in text]


async def test_an_answer_that_echoes_the_key_has_it_redacted(http):
    """A proxy's error page (or a future PagerDuty message) quoting the body never carries the key out."""
    key = "ECH0EDKEY00000000000000000000000"

    async def echo(request: web.Request) -> web.Response:
        text = await request.text()
        status = 400 if "resolve" in text else 502
        return web.json_response({"message": "bad", "errors": [text]}, status=status)

    app = web.Application()
    app.router.add_post("/v2/enqueue", echo)
    runner, port = await serve(app)
    try:
        client = PagerDuty(http, key, url=f"http://127.0.0.1:{port}/v2/enqueue")
        with pytest.raises(TemporaryError) as bad_gateway:
            await client.send(trigger())
        with pytest.raises(PermanentError) as refused:
            await client.send(PagerDutyEvent.resolve(GROUP))
    finally:
        await runner.cleanup()
    for error in (bad_gateway.value, refused.value):
        assert key not in str(error) and "[redacted]" in str(error)


async def test_the_fixture_is_a_fresh_fake_per_test(pagerduty: FakePagerDuty):
    assert pagerduty.events == [] and pagerduty.url.startswith("http://127.0.0.1:")
