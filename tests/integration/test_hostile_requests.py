"""Hostile and malformed requests, over real HTTP to the real server: each one gets a clear 4xx
(or 503), exactly one log line at WARNING or below without a traceback, nothing recorded, and the
bot still answers /healthz and a signed `/ops help` afterwards."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest

from tests.slack_requests import FORM, JSON, block_action_body, event_body, post_signed, send_slash_command

pytestmark = pytest.mark.integration

TOKEN = "am-webhook-token-123"
MB = 1024 * 1024
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "alertmanager"


@pytest.fixture
async def bot(start_bot, bot_env, caplog):
    bot = await start_bot({**bot_env, "ALERTMANAGER_WEBHOOK_TOKEN": TOKEN})
    caplog.set_level(logging.INFO)
    caplog.clear()
    return bot


def url(bot, path: str = "/slack/events") -> str:
    return f"http://127.0.0.1:{bot.port}{path}"


async def assert_refused_quietly_and_still_healthy(bot, http, fake_slack, signing_secret, caplog) -> None:
    """One line from the bot about the request, no traceback, nothing recorded, nothing sent to
    Slack; then /healthz and a signed /ops help are answered."""
    await bot.worker.idle()  # barrier: a listener that wrongly ran would have recorded a job
    assert await bot.runtime.store.pending() == 0
    assert not [c for c in fake_slack.calls if c.method != "auth.test"], fake_slack.describe_calls()
    assert not [r for r in caplog.records if r.exc_info or r.levelno > logging.WARNING], caplog.text
    ours = [r for r in caplog.records if r.name.split(".")[0] in ("bot", "handlers")]
    assert len(ours) == 1, caplog.text
    async with http.get(url(bot, "/healthz")) as response:
        assert response.status == 200
    result = await send_slash_command(http, url(bot), signing_secret, text="help")
    assert result.status == 200 and "/ops pods" in json.dumps(result.json)


# --------------------------------------------------------------------------- malformed bodies

DEEP = b"[" * 100_000 + b"]" * 100_000
MALFORMED = {
    "not-utf8": (b'{"type": "event_callback", "x": "\xff\xfe"}', JSON),
    "unknown-charset": (b'{"type": "url_verification"}', "application/json; charset=x-klingon"),
    "truncated-json": (b'{"type": "event_callback", "event": {"type": "mess', JSON),
    "100k-deep-json": (DEEP, JSON),
    "payload-not-json": (b"payload=not-json", FORM),
}


def raw_signature(secret: str, timestamp: int, body: bytes) -> str:
    """Slack's v0 signature over any bytes (slack_sdk's generator decodes them as UTF-8 first)."""
    base = b"v0:" + str(timestamp).encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


@pytest.mark.parametrize("name", list(MALFORMED))
async def test_a_signed_malformed_body_gets_400(bot, http, fake_slack, signing_secret, caplog, name):
    body, content_type = MALFORMED[name]
    now = int(time.time())
    result = await post_signed(http, url(bot), body, content_type, signing_secret, timestamp=now,
                               signature=raw_signature(signing_secret, now, body))
    assert result.status == 400, result.text
    await assert_refused_quietly_and_still_healthy(bot, http, fake_slack, signing_secret, caplog)


@pytest.mark.parametrize("name", list(MALFORMED))
async def test_an_unsigned_malformed_body_gets_401_before_anything_parses_it(bot, http, fake_slack, signing_secret,
                                                                            caplog, name):
    body, content_type = MALFORMED[name]
    result = await post_signed(http, url(bot), body, content_type, signing_secret, unsigned=True)
    assert result.status == 401, result.text
    await assert_refused_quietly_and_still_healthy(bot, http, fake_slack, signing_secret, caplog)


# --------------------------------------------------------------------------- headers


@pytest.mark.parametrize("headers", [
    {"X-Slack-Request-Timestamp": "soon", "X-Slack-Signature": "v0=" + "0" * 64},
    {"X-Slack-Request-Timestamp": "1e9", "X-Slack-Signature": "v0=" + "0" * 64},
    {"X-Slack-Request-Timestamp": str(int(time.time())), "X-Slack-Signature": "v0=é"},
    {"X-Slack-Signature": "v0=" + "0" * 64},
], ids=["non-numeric-timestamp", "float-timestamp", "non-ascii-signature", "no-timestamp"])
async def test_malformed_signature_headers_get_401(bot, http, fake_slack, signing_secret, caplog, headers):
    async with http.post(url(bot), data=b"command=%2Fops&text=help",
                         headers={"Content-Type": FORM, **headers}) as response:
        assert response.status == 401
    await assert_refused_quietly_and_still_healthy(bot, http, fake_slack, signing_secret, caplog)


# --------------------------------------------------------------------------- size


async def test_an_unsigned_15_mb_body_gets_413(bot, http, fake_slack, signing_secret, caplog):
    result = await post_signed(http, url(bot), b"a=" + b"x" * (15 * MB), FORM, signing_secret, unsigned=True)
    assert result.status == 413
    await assert_refused_quietly_and_still_healthy(bot, http, fake_slack, signing_secret, caplog)


async def test_a_chunked_15_mb_body_gets_413_and_healthz_is_answered_while_it_is_sent(
    bot, http, fake_slack, signing_secret, caplog
):
    healthz: list[int] = []

    async def body():
        for index in range(15):
            yield b"x" * MB
            if index == 0:  # the server holds the first megabyte: ask for /healthz meanwhile
                async with http.get(url(bot, "/healthz")) as response:
                    healthz.append(response.status)

    async with http.post(url(bot), data=body(), headers={"Content-Type": FORM}) as response:
        assert response.status == 413
    assert healthz == [200]
    await assert_refused_quietly_and_still_healthy(bot, http, fake_slack, signing_secret, caplog)


async def test_a_200_kb_slash_word_is_answered_too_long_without_parsing(bot, http, fake_slack, signing_secret,
                                                                       caplog):
    result = await send_slash_command(http, url(bot), signing_secret, text="x" * 200_000)
    assert result.status == 200
    assert result.json["response_type"] == "ephemeral" and "too long" in result.json["text"]
    await assert_refused_quietly_and_still_healthy(bot, http, fake_slack, signing_secret, caplog)


# --------------------------------------------------------------------------- signed, ill-typed


def envelope(**changes: Any) -> bytes:
    body = json.loads(event_body({"type": "message", "channel": "C0ALERTS", "ts": "1732500000.000100",
                                  "text": "", "bot_id": "B0AM"}))
    body.update(changes)
    return json.dumps(body).encode()


def message_with(**fields: Any) -> bytes:
    body = json.loads(envelope())
    body["event"].update(fields)
    return json.dumps(body).encode()


ILL_TYPED = {
    "json-list": (b'[{"type": "event_callback"}]', JSON, 400),
    "event-null": (envelope(event=None), JSON, 400),
    "event-a-string": (envelope(event="message"), JSON, 400),
    "authorizations-a-number": (envelope(authorizations=5), JSON, 400),
    "actions-a-string": (None, FORM, 400),
    "payload-a-list": (b"payload=%5B1%2C2%5D", FORM, 400),
}


def interaction(**changes: Any) -> bytes:
    form = dict(parse_qsl(block_action_body([{"action_id": "ops-approve", "value": "r1"}])))
    payload = json.loads(form["payload"])
    payload.update(changes)
    return urlencode({"payload": json.dumps(payload)}).encode()


@pytest.mark.parametrize("name", list(ILL_TYPED))
async def test_a_signed_ill_typed_payload_gets_400(bot, http, fake_slack, signing_secret, caplog, name):
    body, content_type, status = ILL_TYPED[name]
    if body is None:
        body = interaction(actions="x")
    result = await post_signed(http, url(bot), body, content_type, signing_secret)
    assert result.status == status, result.text
    await assert_refused_quietly_and_still_healthy(bot, http, fake_slack, signing_secret, caplog)


async def test_a_message_whose_attachments_are_a_number_is_acknowledged_and_ignored(
    bot, http, fake_slack, signing_secret, caplog
):
    result = await post_signed(http, url(bot), message_with(attachments=5), JSON, signing_secret)
    assert result.status == 200, result.text
    await assert_refused_quietly_and_still_healthy(bot, http, fake_slack, signing_secret, caplog)


async def test_a_click_whose_user_and_channel_are_strings_is_acknowledged_and_records_nothing(
    bot, http, fake_slack, signing_secret, caplog
):
    result = await post_signed(http, url(bot), interaction(user="U0ALICE", channel="C0OPS", team="T0"), FORM,
                               signing_secret)
    assert result.status == 200, result.text
    await bot.worker.idle()
    assert await bot.runtime.store.pending() == 0
    assert not [r for r in caplog.records if r.exc_info or r.levelno > logging.WARNING], caplog.text


# --------------------------------------------------------------------------- the Alertmanager webhook


def storm(count: int) -> bytes:
    body = json.loads((FIXTURES / "webhook-firing.json").read_text())
    alert = body["alerts"][0]
    body["alerts"] = [{**alert, "fingerprint": f"{index:016x}"} for index in range(count)]
    return json.dumps(body).encode()


WEBHOOK_CASES = {
    "1001-alerts": (storm(1001), {}, 503),
    "15-mb": (b"[" + b" " * (15 * MB) + b"]", {}, 413),
    "not-utf8": (b'{"version": "4", "x": "\xff"}', {}, 400),
    "unknown-charset": (storm(1), {"Content-Type": "application/json; charset=x-klingon"}, 400),
    "truncated-json": (storm(1)[:-10], {}, 400),
    "100k-deep-json": (DEEP, {}, 400),
    "non-ascii-authorization": (storm(1), {"Authorization": f"Bearer {TOKEN}é"}, 401),
}


@pytest.mark.parametrize("name", list(WEBHOOK_CASES))
async def test_a_hostile_webhook_is_refused_quietly(bot, http, fake_slack, signing_secret, caplog, name):
    body, headers, status = WEBHOOK_CASES[name]
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}", **headers}
    async with http.post(url(bot, "/alertmanager"), data=body, headers=headers) as response:
        assert response.status == status
        answer = await response.json()
    assert answer["error"]
    if status == 503:
        assert "1001 alerts" in answer["error"]
    await assert_refused_quietly_and_still_healthy(bot, http, fake_slack, signing_secret, caplog)


async def test_the_bot_answers_while_requests_are_refused(bot, http, signing_secret):
    refused = [post_signed(http, url(bot), b"a=" + b"x" * (15 * MB), FORM, signing_secret, unsigned=True)
               for _ in range(4)]
    results = await asyncio.gather(*refused, send_slash_command(http, url(bot), signing_secret, text="help"))
    assert [r.status for r in results] == [413] * 4 + [200]
