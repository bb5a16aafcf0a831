"""What stands in front of Bolt and the webhook: bodies capped, Slack's signature checked on the raw
bytes, then the body parsed defensively, before anything else reads it.

Every refusal is a `Refused`: a status (400, 401, 413), a reason for the one log line, and a
short answer for the caller. Nothing here raises anything else for any bytes a client can send.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

# Slack's payloads are a few KiB; an Alertmanager notification of a storm about 1 KiB per alert.
MAX_BODY = 1024 * 1024
# Slack signs a timestamp; older (or newer) than this, the request is a replay.
MAX_CLOCK_SKEW = 5 * 60
_CHUNK = 64 * 1024
_UTF8 = {"utf-8", "utf8", "us-ascii", "ascii"}


class Refused(Exception):
    """A request answered with `status` before anything ran: `reason` is logged, `answer` sent."""

    def __init__(self, status: int, reason: str, answer: str = "") -> None:
        super().__init__(reason)
        self.status, self.reason, self.answer = status, reason, answer or reason

    def response(self) -> web.Response:
        return web.json_response({"error": self.answer}, status=self.status)


async def read_capped(request: web.Request, limit: int = MAX_BODY) -> bytes:
    """The body, at most `limit` bytes: 413 from Content-Length alone, or as soon as more arrives
    (chunked bodies), without reading the rest."""
    if request.content_length is not None and request.content_length > limit:
        raise Refused(413, f"a body of {request.content_length} bytes (more than {limit})",
                      f"the body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(_CHUNK):
        size += len(chunk)
        if size > limit:
            raise Refused(413, f"a body of more than {limit} bytes", f"the body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def decode_text(body: bytes, charset: str | None) -> str:
    """The body as text: UTF-8 (or ASCII) only; anything else is a 400."""
    if charset is not None and charset.strip().lower() not in _UTF8:
        raise Refused(400, f"a body in charset {_printable(charset)!r}", "the body must be UTF-8")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Refused(400, f"a body that is not UTF-8 ({e.reason} at byte {e.start})", "the body must be UTF-8") \
            from None


def loads(text: str, what: str = "the body") -> Any:
    """json.loads that answers 400 for anything it can't parse, nesting too deep included."""
    try:
        return json.loads(text)
    except RecursionError:
        raise Refused(400, f"{what} is JSON nested too deeply", f"{what} is not valid JSON") from None
    except ValueError as e:
        raise Refused(400, f"{what} is not valid JSON ({_printable(str(e))})", f"{what} is not valid JSON") from None


def ascii_header(headers: Mapping[str, str], name: str) -> str | None:
    """A header's value; 401 when it holds anything but printable ASCII."""
    value = headers.get(name)
    if value is not None and not (value.isascii() and value.isprintable()):
        raise Refused(401, f"a request whose {name} header is not ASCII", f"the {name} header must be ASCII")
    return value


def check_slack_signature(secret: str, headers: Mapping[str, str], body: bytes, now: float | None = None) -> None:
    """Slack's v0 signature over the raw bytes (the formula of slack_sdk's SignatureVerifier,
    without decoding the body first). 401 for anything missing, malformed, stale or wrong."""
    timestamp = ascii_header(headers, "X-Slack-Request-Timestamp")
    signature = ascii_header(headers, "X-Slack-Signature")
    if timestamp is None or signature is None:
        raise Refused(401, "a request without Slack's signature headers", "invalid signature")
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise Refused(401, f"a non-numeric X-Slack-Request-Timestamp {timestamp[:20]!r}", "invalid signature")
    if abs((time.time() if now is None else now) - int(timestamp)) > MAX_CLOCK_SKEW:
        raise Refused(401, "a request with a stale signature", "invalid signature")
    base = b"v0:" + timestamp.encode() + b":" + body
    expected = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise Refused(401, "a request with a bad signature", "invalid signature")


def parse_slack_body(text: str, content_type: str) -> dict[str, Any]:
    """The payload as Bolt will read it (slack_bolt.request.internals.parse_body), refused with
    400 unless it is an object whose fields Bolt reads have the types Bolt expects."""
    if content_type == "application/json" or text.startswith("{"):
        body = loads(text)
    elif "payload" in text:
        fields = dict(parse_qsl(text, keep_blank_values=True))
        body = loads(fields["payload"], "payload") if "payload" in fields else {}
    else:
        body = dict(parse_qsl(text, keep_blank_values=True))
    problem = _shape_problem(body)
    if problem:
        raise Refused(400, f"a signed payload where {problem}", f"malformed payload: {problem}")
    return body


# Fields Bolt reads while routing (its context and its listener matchers), by the types it can read.
_OBJECT_OR_ID = ("user", "channel", "team", "enterprise")
_OBJECTS = ("container", "message", "previous_message", "view", "item", "function_data", "workflow_step",
            "assistant_thread", "state")
_STRINGS = ("type", "callback_id", "response_url", "trigger_id", "thread_ts", "command", "subtype")
_FIELD_TYPES: tuple[tuple[tuple[str, ...], tuple[type, ...], str], ...] = (
    (_OBJECT_OR_ID, (str, dict), "an ID or an object"),
    (_OBJECTS, (dict,), "an object"),
    (_STRINGS, (str,), "a string"),
)


def _shape_problem(body: Any, where: str = "") -> str:
    """What is wrong with an object's shape (nested: `event`), or "" when Bolt can route it."""
    if not isinstance(body, dict):
        return f"{where or 'the payload'} is {_kind(body)}, not an object"
    for names, types, wanted in _FIELD_TYPES:
        for name in names:
            if body.get(name) is not None and not isinstance(body[name], types):
                return f"{where}{name} is {_kind(body[name])}, not {wanted}"
    for name in ("authorizations", "response_urls"):
        if name in body and not _list_of_objects(body[name], allow_none=name == "authorizations"):
            return f"{where}{name} is not a list of objects"
    if "actions" in body or body.get("type") == "block_actions":
        return _actions_problem(body.get("actions"), body.get("type") == "block_actions")
    if "event" in body or body.get("type") == "event_callback":
        if not isinstance(body.get("event"), dict) or not isinstance(body["event"].get("type"), str):
            return f"{where}event is {_kind(body.get('event'))}, not an event"
        return _shape_problem(body["event"], "event.")
    return ""


def _actions_problem(actions: Any, blocks: bool) -> str:
    if not _list_of_objects(actions) or not actions:
        return f"actions is {_kind(actions)}, not a list of actions"
    for action in actions:
        if (blocks or "action_id" in action) and not isinstance(action.get("action_id"), str):
            return "an action's action_id is not a string"
    return ""


def _list_of_objects(value: Any, allow_none: bool = False) -> bool:
    if value is None:
        return allow_none
    return isinstance(value, list) and all(isinstance(v, dict) for v in value)


def _kind(value: Any) -> str:
    return "null" if value is None else f"a {type(value).__name__}"


def _printable(text: str) -> str:
    return text.encode("ascii", "backslashreplace").decode()[:80]
