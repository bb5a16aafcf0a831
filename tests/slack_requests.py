"""Deliver requests to the bot's HTTP endpoint the way Slack does: same bodies, same signature.

Bodies:   slash_command_body(), event_body(), url_verification_body(), block_action_body()
Sending:  post_signed() (with knobs for forged, stale or missing signatures),
          send_slash_command(), send_event() (with retry headers), send_block_action()
Each send returns a `SlackHttpResult` (status, text, json or None, elapsed seconds, headers).

Signing follows https://docs.slack.dev/authentication/verifying-requests-from-slack/ and uses
slack_sdk's own SignatureVerifier.generate_signature, so a mismatch is the bot's bug, not ours.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp
from slack_sdk.signature import SignatureVerifier

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"

# Port 9 (discard) refuses connections: a bot answering to a default response_url fails fast and
# visibly instead of hanging on DNS for hooks.slack.com. Pass fake_slack.response_url() to record.
UNUSED_RESPONSE_URL = "http://127.0.0.1:9/commands/T0TEST/1/unused"


@dataclass
class SlackHttpResult:
    status: int
    text: str
    json: Any  # the decoded body, or None when it isn't JSON
    elapsed: float  # seconds from sending to having the whole body: Slack gives up after 3
    headers: dict[str, str]


def _trigger_id() -> str:
    return f"{secrets.randbelow(10**11)}.{secrets.randbelow(10**9)}.{secrets.token_hex(16)}"


def slash_command_body(
    command: str = "/ops",
    text: str = "",
    user_id: str = "U0ALICE",
    user_name: str = "alice",
    channel_id: str = "C0OPS",
    channel_name: str = "ops",
    team_id: str = "T0TEST",
    response_url: str = UNUSED_RESPONSE_URL,
    trigger_id: str | None = None,
    *,
    team_domain: str = "fake-team",
    api_app_id: str = "A0TEST",
    token: str = "verification-token-unused",
) -> str:
    """The form body Slack posts for a slash command, fields in Slack's order."""
    return urlencode({
        "token": token,  # the deprecated verification token; Slack still sends it
        "team_id": team_id,
        "team_domain": team_domain,
        "channel_id": channel_id,
        "channel_name": channel_name,
        "user_id": user_id,
        "user_name": user_name,
        "command": command,
        "text": text,
        "api_app_id": api_app_id,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger_id or _trigger_id(),
    })


def event_body(
    event: dict[str, Any],
    event_id: str | None = None,
    team_id: str = "T0TEST",
    api_app_id: str = "A0TEST",
    *,
    bot_user_id: str = "U0BOT",
    event_time: int | None = None,
) -> str:
    """The JSON event_callback envelope of the Events API around `event`."""
    now = int(time.time())
    return json.dumps({
        "token": "verification-token-unused",
        "team_id": team_id,
        "context_team_id": team_id,
        "context_enterprise_id": None,
        "api_app_id": api_app_id,
        "event": {"event_ts": f"{now}.000100", **event},
        "type": "event_callback",
        "event_id": event_id or "Ev" + uuid.uuid4().hex[:10].upper(),
        "event_time": event_time or now,
        "authorizations": [{
            "enterprise_id": None,
            "team_id": team_id,
            "user_id": bot_user_id,
            "is_bot": True,
            "is_enterprise_install": False,
        }],
        "is_ext_shared_channel": False,
        "event_context": "4-" + secrets.token_hex(16),
    })


def url_verification_body(challenge: str = "fake-challenge") -> str:
    """What Slack posts once when the Request URL is saved; the app must echo `challenge`."""
    return json.dumps(
        {"token": "verification-token-unused", "challenge": challenge, "type": "url_verification"}
    )


def block_action_body(
    actions: list[dict[str, Any]],
    user: str = "U0ALICE",
    channel: str = "C0OPS",
    message: dict[str, Any] | None = None,
    response_url: str = UNUSED_RESPONSE_URL,
    *,
    user_name: str = "alice",
    channel_name: str = "ops",
    team_id: str = "T0TEST",
    api_app_id: str = "A0TEST",
    trigger_id: str | None = None,
) -> str:
    """The form body `payload=<json>` Slack posts when a button (or other element) is used."""
    now = f"{time.time():.6f}"
    message = message or {"type": "message", "ts": "1732500000.000100", "text": "", "user": "U0BOT"}
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": user_name, "name": user_name, "team_id": team_id},
        "api_app_id": api_app_id,
        "token": "verification-token-unused",
        "container": {
            "type": "message",
            "message_ts": message.get("ts"),
            "channel_id": channel,
            "is_ephemeral": False,
        },
        "trigger_id": trigger_id or _trigger_id(),
        "team": {"id": team_id, "domain": "fake-team"},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel, "name": channel_name},
        "message": message,
        "state": {"values": {}},
        "response_url": response_url,
        # Slack fills these on every action; a test only has to say what matters to it.
        "actions": [{"type": "button", "block_id": "actions", "action_ts": now, **a} for a in actions],
    }
    return urlencode({"payload": json.dumps(payload)})


def sign(secret: str, timestamp: int | str, body: str | bytes) -> str:
    signature = SignatureVerifier(secret).generate_signature(timestamp=str(timestamp), body=body)
    assert signature is not None
    return signature


async def post_signed(
    session: aiohttp.ClientSession,
    url: str,
    body: str | bytes,
    content_type: str,
    secret: str,
    *,
    timestamp: int | None = None,
    signature: str | None = None,
    unsigned: bool = False,
    extra_headers: dict[str, str] | None = None,
) -> SlackHttpResult:
    """POST `body` as Slack would. `timestamp` defaults to now (pass an old one for a stale
    request), `signature` replaces the real one (forgery), `unsigned` omits both headers."""
    raw = body.encode() if isinstance(body, str) else body
    headers = {"Content-Type": content_type, "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)"}
    if not unsigned:
        ts = int(time.time()) if timestamp is None else timestamp
        headers["X-Slack-Request-Timestamp"] = str(ts)
        headers["X-Slack-Signature"] = signature if signature is not None else sign(secret, ts, raw)
    headers.update(extra_headers or {})
    started = time.perf_counter()
    async with session.post(url, data=raw, headers=headers) as response:
        text = await response.text()
        elapsed = time.perf_counter() - started
        try:
            decoded = json.loads(text) if text else None
        except ValueError:
            decoded = None
        return SlackHttpResult(response.status, text, decoded, elapsed, dict(response.headers))


async def send_slash_command(
    session: aiohttp.ClientSession,
    url: str,
    secret: str,
    *,
    timestamp: int | None = None,
    signature: str | None = None,
    unsigned: bool = False,
    **fields: Any,
) -> SlackHttpResult:
    """Post a signed slash command; `fields` go to slash_command_body()."""
    return await post_signed(
        session, url, slash_command_body(**fields), FORM, secret,
        timestamp=timestamp, signature=signature, unsigned=unsigned,
    )


async def send_event(
    session: aiohttp.ClientSession,
    url: str,
    secret: str,
    event: dict[str, Any],
    event_id: str | None = None,
    retry_num: int | None = None,
    retry_reason: str | None = None,
    *,
    timestamp: int | None = None,
    signature: str | None = None,
    unsigned: bool = False,
    **fields: Any,
) -> SlackHttpResult:
    """Post a signed Events API callback. A retry (retry_num=1, retry_reason="http_timeout") is
    the same body, same event_id, plus X-Slack-Retry-Num / X-Slack-Retry-Reason."""
    extra: dict[str, str] = {}
    if retry_num is not None:
        extra["X-Slack-Retry-Num"] = str(retry_num)
        extra["X-Slack-Retry-Reason"] = retry_reason or "http_timeout"
    elif retry_reason is not None:
        extra["X-Slack-Retry-Reason"] = retry_reason
    return await post_signed(
        session, url, event_body(event, event_id, **fields), JSON, secret,
        timestamp=timestamp, signature=signature, unsigned=unsigned, extra_headers=extra,
    )


async def send_block_action(
    session: aiohttp.ClientSession,
    url: str,
    secret: str,
    actions: list[dict[str, Any]],
    *,
    timestamp: int | None = None,
    signature: str | None = None,
    unsigned: bool = False,
    **fields: Any,
) -> SlackHttpResult:
    """Post a signed block_actions interaction; `fields` go to block_action_body()."""
    return await post_signed(
        session, url, block_action_body(actions, **fields), FORM, secret,
        timestamp=timestamp, signature=signature, unsigned=unsigned,
    )
