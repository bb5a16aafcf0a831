"""An in-process fake of the Slack Web API, response_url, file uploads and Socket Mode.

`FakeSlack` is a real aiohttp server on 127.0.0.1 (free port). The bot reaches it through the real
`AsyncWebClient(base_url=fake.api_url, token=...)`, so the wire format, auth headers, retries and
error handling of slack_sdk are exercised exactly as in production. It answers like Slack: HTTP 200
with {"ok": false, "error": ...} for API errors, HTTP 429 + Retry-After when rate limited.

Channels, as in Slack: every method takes a channel ID ("C0OPS"); chat.postMessage and
chat.postEphemeral also take a name ("#alerts" or "alerts"), but the message is stored under the
channel's ID and chat.postMessage answers "channel": "C…". chat.update, conversations.* and the
files methods given a name answer channel_not_found. `fake.channel_id("#alerts")` is the made-up,
stable ID of a name; `fake.channel_names[id]` its name.

Web API methods served: auth.test, chat.postMessage, chat.postEphemeral, chat.update, chat.getPermalink,
conversations.info, conversations.list, conversations.history, conversations.replies, files.getUploadURLExternal,
files.completeUploadExternal, usergroups.users.list, apps.connections.open.

What it records, for assertions:
    fake.calls                  every request as a `Call` (method, decoded params, headers, time, ok, error,
                                status, fault: "outage" | "fail" | "lost_answer" when a test's arrangement
                                answered it)
    fake.calls_to(method)       the recorded calls of one method, whatever their outcome
    fake.messages(channel)      stored channel messages as `Message`, current content after chat.update,
                                in posting order; `channel` may be an ID or a #name
    fake.ephemerals             chat.postEphemeral messages
    fake.files                  completed file uploads as `UploadedFile` (bytes, channel, thread, comment)
    fake.response_posts(key)    posts to response URLs as `ResponsePost`
    fake.socket_acks            every message a Socket Mode client sent back
    fake.held                   the calls an outage("hang") or lose_answers(status="hang") holds right now

What a test can arrange (either spelling of a channel works in the two sets):
    fake.unknown_channels.add("C1" or "#gone")   -> channel_not_found
    fake.not_in_channel.add("C1" or "#private")  -> not_in_channel on chat.postMessage / file share /
                                                    conversations.history|replies; is_member false
    fake.add_message("#ops", "hi", user="U0ALICE", ...)  a message someone else posted (-> `Message`)
    fake.set_usergroup("S0ONCALL01", ["U0ALICE001"])  a Slack user group and its members, for
                                                    usergroups.users.list (any other ID: no_such_subteam)
    fake.rate_limit("chat.postMessage", times=2, retry_after=1)
    fake.pace_per_channel(min_interval=1.0)  -> 429 for posts to one channel closer than min_interval
    fake.outage("hang" | "500" | "503" | "429", methods=None, retry_after=1) ... fake.recover()
        None = every Web API method (auth.test and apps.connections.open too), response_url posts and
        file upload URLs; or name some (Call.method names). "hang" holds each request open, unanswered,
        until recover() (then it is carried out and answered normally) or until the client gives up
        (Call.error "abandoned"; nothing done). "500"/"503"/"429" answer at once with that status and
        {"ok": false, "error": "fatal_error" | "service_unavailable" | "ratelimited"} (429 with
        Retry-After). Nothing is carried out during an outage; every call is recorded (ok False).
    fake.lose_answers("chat.postMessage", times=1, status=503)   the next `times` successful calls are
        carried out (message stored) but answered with an error (or, status="hang", held until
        recover()): what makes a retrying client post twice
    fake.fail("chat.postMessage", "internal_error", times=1)   the next `times` calls answer HTTP 200
        {"ok": false, "error": ...} without doing anything
    await fake.socket_send("slash_commands", payload)  -> the client's ack

Waiting, without polling (each wakes on every recorded call and fails on timeout with the record):
    await fake.wait_for("chat.postMessage", count=2)          successful calls (ok=False: failed/held ones)
    await fake.wait_for_message("#ops", 2, where=...)         -> the 2nd stored message there
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from tests.fakes.loopback import serve

# Message limits Slack enforces server-side (https://docs.slack.dev/reference/block-kit/blocks).
MAX_BLOCKS = 50
MAX_TEXT = 40_000
MAX_SECTION_TEXT = 3000
MAX_SECTION_FIELDS = 10
MAX_FIELD_TEXT = 2000
MAX_HEADER_TEXT = 150
MAX_CONTEXT_ELEMENTS = 10
MAX_ACTIONS_ELEMENTS = 25
MAX_BLOCK_ID = 255
RESPONSE_URL_MAX_USES = 5  # Slack: "up to 5 times within 30 minutes"
# conversations.history: "limit ... Default 100 ... Maximum of 999" (Tier 3, internal apps; commercially
# distributed non-Marketplace apps get 15 since 2025, which the fake does not model).
HISTORY_LIMIT = 100
HISTORY_LIMIT_MAX = 999
REPLIES_LIMIT = 1000  # conversations.replies documents a default of 1000 and no maximum

# Call.error for requests the fake holds without answering (status 0: no answer sent yet).
HELD = "held"  # held by outage("hang") or lose_answers(status="hang"), waiting for recover()
ABANDONED = "abandoned"  # the client gave up (timed out, disconnected) while it was held
# What outage() answers with. Slack documents these error codes (fatal_error, service_unavailable,
# ratelimited) but not which HTTP status comes with them when it is down; the fake pairs them.
OUTAGE_ANSWERS = {"500": (500, "fatal_error"), "503": (503, "service_unavailable"), "429": (429, "ratelimited")}
LOST_ANSWER_ERRORS = {429: "ratelimited", 503: "service_unavailable"}  # any other status: fatal_error
NON_API_ENDPOINTS = ("response_url", "file_upload")  # Call.method of the non-Web-API endpoints outages cover

# Params that slack_sdk (or a form post) may send as JSON strings; recorded decoded.
JSON_PARAMS = ("blocks", "attachments", "files", "metadata")

BOT_METHODS = (
    "auth.test",
    "chat.postMessage",
    "chat.postEphemeral",
    "chat.update",
    "chat.getPermalink",
    "conversations.info",
    "conversations.list",
    "conversations.history",
    "conversations.replies",
    "files.getUploadURLExternal",
    "files.completeUploadExternal",
    "usergroups.users.list",
)
APP_METHODS = ("apps.connections.open",)

Params = dict[str, Any]

# Slack IDs are upper case (C…, G…, D…); channel names are lower case ("Channel names can only
# contain lowercase letters, numbers, hyphens, and underscores"), so the two never collide.
_ID = re.compile(r"[A-Z][A-Z0-9]+")


def is_channel_id(channel: str) -> bool:
    return _ID.fullmatch(channel) is not None


class SlackError(Exception):
    """An API error answered to the client: `error` is Slack's error code."""

    def __init__(
        self,
        error: str,
        *,
        status: int = 200,
        messages: Iterable[str] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(error)
        self.error = error
        self.status = status
        self.messages = list(messages)
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error": self.error}
        if self.messages:
            # chat.postMessage puts block problems in both places.
            body["errors"] = [m.removeprefix("[ERROR] ") for m in self.messages]
            body["response_metadata"] = {"messages": self.messages}
        return body

    def response(self) -> web.Response:
        return web.json_response(self.body(), status=self.status, headers=self.headers)


@dataclass
class Call:
    """One request the fake answered (Web API method, 'response_url' or 'file_upload')."""

    method: str
    params: Params
    headers: dict[str, str]
    time: float  # time.monotonic()
    ok: bool
    error: str | None = None
    status: int = 200  # 0: no answer was sent (held, abandoned)
    response: dict[str, Any] | None = None  # the body the client got
    fault: str | None = None  # the arrangement that answered it: "outage", "fail" or "lost_answer"

    def brief(self) -> str:
        parts = [self.method, "ok" if self.ok else f"error={self.error}"]
        if self.fault:
            parts.append(f"[{self.fault}]")
        for key in ("channel", "channel_id", "ts", "message_ts", "thread_ts", "user", "usergroup", "text", "filename",
                    "file_id", "key"):
            if key in self.params:
                value = self.params[key]
                if isinstance(value, str) and len(value) > 40:
                    value = value[:37] + "..."
                parts.append(f"{key}={value!r}")
        blocks = self.params.get("blocks")
        if isinstance(blocks, list):
            parts.append(f"blocks={len(blocks)}")
        return " ".join(parts)


@dataclass
class Message:
    """A message as stored in a channel (or an ephemeral one, then `recipient` is set)."""

    channel: str
    ts: str
    text: str | None
    blocks: list[Any] | None
    attachments: list[Any] | None
    user: str
    bot_id: str
    thread_ts: str | None = None
    recipient: str | None = None
    metadata: dict[str, Any] | None = None  # {"event_type": str, "event_payload": {...}}
    edits: int = 0  # how many chat.update calls changed it
    username: str | None = None  # incoming webhooks
    broadcast: bool = False  # a thread reply also sent to the channel (reply_broadcast)

    @property
    def is_reply(self) -> bool:
        return self.thread_ts is not None and self.thread_ts != self.ts

    def as_slack(self, *, metadata: bool = False) -> dict[str, Any]:
        """The message object Slack returns in API responses.

        `metadata` only when asked (conversations.* with include_all_metadata). Slack is reported to
        return only the event_type, without the payload, in chat.postMessage answers and to apps
        that don't subscribe to the event type in their manifest; the fake leaves it out altogether,
        so a bot can't come to rely on something Slack may not send."""
        out: dict[str, Any] = {"type": "message"}
        if self.broadcast:
            out["subtype"] = "thread_broadcast"
        elif not self.user:
            out["subtype"] = "bot_message"  # an incoming webhook's post has a bot_id and no user
        if self.user:
            out["user"] = self.user
        if self.bot_id:
            out["bot_id"] = self.bot_id
        if self.username:
            out["username"] = self.username
        out["ts"] = self.ts
        out["text"] = self.text or ""
        for key in ("blocks", "attachments", "thread_ts"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if metadata and self.metadata is not None:
            out["metadata"] = self.metadata
        return out


@dataclass
class UploadedFile:
    id: str
    filename: str
    length: int  # as declared to files.getUploadURLExternal
    content: bytes | None = None  # None until the upload URL got the bytes
    title: str | None = None
    channel: str | None = None
    thread_ts: str | None = None
    initial_comment: str | None = None
    completed: bool = False


@dataclass
class ResponsePost:
    key: str
    body: dict[str, Any]
    time: float

    @property
    def response_type(self) -> str:
        return self.body.get("response_type") or "ephemeral"  # Slack's default

    @property
    def replace_original(self) -> bool:
        return bool(self.body.get("replace_original"))

    @property
    def delete_original(self) -> bool:
        return bool(self.body.get("delete_original"))

    @property
    def text(self) -> str | None:
        return self.body.get("text")

    @property
    def blocks(self) -> list[Any] | None:
        return self.body.get("blocks")


def _decode_json_params(params: Params) -> Params:
    for key in JSON_PARAMS:
        value = params.get(key)
        if isinstance(value, str):
            try:
                params[key] = json.loads(value)
            except ValueError:
                pass  # left as a string: the validator answers invalid_blocks_format
    return params


def _text_of(obj: Any) -> str | None:
    return obj.get("text") if isinstance(obj, dict) and isinstance(obj.get("text"), str) else None


def _length_problem(text: str | None, limit: int, pointer: str, *, minimum: int = 1) -> list[str]:
    if text is None:
        return [f"[ERROR] must provide a string [json-pointer:{pointer}]"]
    if len(text) < minimum:
        return [f"[ERROR] must be more than {minimum - 1} characters [json-pointer:{pointer}]"]
    if len(text) > limit:
        return [f"[ERROR] must be less than {limit + 1} characters [json-pointer:{pointer}]"]
    return []


def block_problems(blocks: list[Any]) -> list[str]:
    """Slack's invalid_blocks messages for the limits bots usually hit."""
    problems: list[str] = []
    if len(blocks) > MAX_BLOCKS:
        problems.append(f"[ERROR] no more than {MAX_BLOCKS} items allowed [json-pointer:/blocks]")
    for i, block in enumerate(blocks):
        at = f"/blocks/{i}"
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            problems.append(f"[ERROR] missing required field: type [json-pointer:{at}]")
            continue
        block_id = block.get("block_id")
        if isinstance(block_id, str) and len(block_id) > MAX_BLOCK_ID:
            problems.append(
                f"[ERROR] must be less than {MAX_BLOCK_ID + 1} characters [json-pointer:{at}/block_id]"
            )
        check = _BLOCK_CHECKS.get(block["type"])
        if check is not None:
            problems += check(block, at)
    return problems


def _section_problems(block: dict[str, Any], at: str) -> list[str]:
    problems: list[str] = []
    if "text" not in block and "fields" not in block and "expand" not in block:
        problems.append(f"[ERROR] must provide either text or fields [json-pointer:{at}]")
    if "text" in block:
        problems += _length_problem(_text_of(block["text"]), MAX_SECTION_TEXT, f"{at}/text/text")
    fields = block.get("fields")
    if fields is None:
        return problems
    if not isinstance(fields, list) or len(fields) > MAX_SECTION_FIELDS:
        problems.append(f"[ERROR] no more than {MAX_SECTION_FIELDS} items allowed [json-pointer:{at}/fields]")
        return problems
    for j, f in enumerate(fields):
        problems += _length_problem(_text_of(f), MAX_FIELD_TEXT, f"{at}/fields/{j}/text")
    return problems


def _header_problems(block: dict[str, Any], at: str) -> list[str]:
    problems: list[str] = []
    text = block.get("text")
    if not isinstance(text, dict) or text.get("type") != "plain_text":
        problems.append(f"[ERROR] must be a plain_text text object [json-pointer:{at}/text]")
    return problems + _length_problem(_text_of(text), MAX_HEADER_TEXT, f"{at}/text/text")


def _elements_problems(most: int) -> Callable[[dict[str, Any], str], list[str]]:
    """A context or actions block: 1 to `most` elements."""

    def problems(block: dict[str, Any], at: str) -> list[str]:
        elements = block.get("elements")
        if not isinstance(elements, list) or not 1 <= len(elements) <= most:
            return [f"[ERROR] must have 1 to {most} items [json-pointer:{at}/elements]"]
        # A text element (mrkdwn or plain_text) holds at most 3000 characters, like a section's.
        return [
            problem
            for j, element in enumerate(elements)
            if isinstance(element, dict) and element.get("type") in ("mrkdwn", "plain_text")
            for problem in _length_problem(_text_of(element), MAX_SECTION_TEXT, f"{at}/elements/{j}/text")
        ]

    return problems


_BLOCK_CHECKS: dict[str, Callable[[dict[str, Any], str], list[str]]] = {
    "section": _section_problems,
    "header": _header_problems,
    "context": _elements_problems(MAX_CONTEXT_ELEMENTS),
    "actions": _elements_problems(MAX_ACTIONS_ELEMENTS),
}


def checked_metadata(value: Any, *, removable: bool) -> dict[str, Any] | None:
    """chat.postMessage / chat.update `metadata`: {"event_type": str, "event_payload": object}.

    Returns None for {} on chat.update, which removes the message's metadata ("To remove previous
    metadata, include an empty object"). Slack documents two errors, invalid_metadata_format and
    invalid_metadata_schema, without saying which mistake gets which; the fake answers
    invalid_metadata_format for every malformed value (not JSON, not an object, event_type not a
    non-empty string, event_payload not an object), so a bot should treat the two alike.
    invalid_metadata_schema is presumably for payloads that don't match an event schema declared in
    the app's manifest, which this bot doesn't declare."""
    if removable and value == {}:
        return None
    if (
        not isinstance(value, dict)
        or not isinstance(value.get("event_type"), str)
        or not value["event_type"]
        or not isinstance(value.get("event_payload"), dict)
    ):
        raise SlackError("invalid_metadata_format")
    return value


def _truthy(value: Any) -> bool:
    """A boolean argument as Slack reads it: slack_sdk sends "1"/"0", JSON bodies true/false."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true")
    return value is True or value == 1


def _ts_arg(value: Any, error: str) -> Decimal | None:
    """oldest/latest as a Decimal (float can't hold 10 digits of seconds and 6 of micros exactly)."""
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise SlackError(error) from None


def _limit_arg(value: Any, default: int, maximum: int | None = None) -> int:
    # Slack documents no error for a bad limit; the fake falls back to the default for one.
    try:
        limit = int(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        limit = default
    if limit < 1:
        limit = default
    return min(limit, maximum) if maximum is not None else limit


def _cursor(ts: str) -> str:
    """An opaque cursor shaped like Slack's (base64 of "next_ts:<ts of the next item>")."""
    return base64.b64encode(f"next_ts:{ts}".encode()).decode()


def _cursor_ts(cursor: Any) -> Decimal | None:
    if cursor is None or cursor == "":
        return None
    try:
        kind, _, ts = base64.b64decode(str(cursor), validate=True).decode().partition(":")
        if kind != "next_ts":
            raise ValueError(kind)
        return Decimal(ts)
    except (ValueError, binascii.Error, InvalidOperation):
        raise SlackError("invalid_cursor") from None


def _in_range(ts: str, oldest: Decimal | None, latest: Decimal | None, inclusive: bool) -> bool:
    value = Decimal(ts)
    if oldest is not None and (value < oldest or (value == oldest and not inclusive)):
        return False
    if latest is not None and (value > latest or (value == latest and not inclusive)):
        return False
    return True


@dataclass
class _Outage:
    mode: str  # "hang", "500", "503", "429"
    methods: frozenset[str] | None  # None: every Web API method and the NON_API_ENDPOINTS
    retry_after: int

    def covers(self, method: str) -> bool:
        return self.methods is None or method in self.methods


class FakeSlack:
    def __init__(
        self,
        bot_token: str = "xoxb-test-token",
        app_token: str = "xapp-test-token",
        team_id: str = "T0TEST",
        bot_user_id: str = "U0BOT",
        bot_id: str = "B0BOT",
        app_id: str = "A0TEST",
    ) -> None:
        self.bot_token = bot_token
        self.app_token = app_token
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.app_id = app_id

        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._changed: asyncio.Condition | None = None  # created in start(), bound to the test's loop
        self._ts_micros = 0  # the last ts handed out, in microseconds (see _next_ts)
        self._file_seq = 0
        self._sockets: list[web.WebSocketResponse] = []
        self._pending_acks: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.socket_connections = 0  # websocket connections accepted so far
        self._held: list[tuple[Call, asyncio.Future[bool]]] = []
        self._handlers: dict[str, Callable[[Params], dict[str, Any]]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.update": self._chat_update,
            "chat.getPermalink": self._chat_get_permalink,
            "conversations.info": self._conversations_info,
            "conversations.list": self._conversations_list,
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
            "files.getUploadURLExternal": self._files_get_upload_url,
            "files.completeUploadExternal": self._files_complete_upload,
            "usergroups.users.list": self._usergroups_users_list,
            "apps.connections.open": self._apps_connections_open,
        }
        self.reset()

    def reset(self) -> None:
        """Forget everything recorded and arranged (not the open sockets, not the ts counter).

        Requests still held are answered 503 service_unavailable, without being carried out."""
        self._release_held(False)
        self._reset_at = time.monotonic()  # calls that arrived earlier are not recorded any more
        self.calls: list[Call] = []
        self._recorded: set[int] = set()  # id() of the Calls in self.calls
        self._messages: dict[tuple[str, str], Message] = {}
        self.ephemerals: list[Message] = []
        self._uploads: dict[str, UploadedFile] = {}
        self._response_posts: list[ResponsePost] = []
        self.socket_acks: list[dict[str, Any]] = []
        self.socket_sent: list[dict[str, Any]] = []
        self.unknown_channels: set[str] = set()
        self.not_in_channel: set[str] = set()
        self.channel_names: dict[str, str] = {}
        self._usergroups: dict[str, list[str]] = {}  # user-group ID (S…) -> its members' user IDs
        self.response_url_max_uses = RESPONSE_URL_MAX_USES
        self._rate_limits: dict[str, list[int]] = {}  # method -> [remaining, retry_after]
        self._pacing: tuple[float, int] | None = None
        # Where message events go (as Slack's Events API would send them), see deliver_events_to.
        self._event_sink: tuple[str, str] | None = None
        self.delivered_events: list[dict[str, Any]] = []
        self.event_responses: list[int] = []  # HTTP status the bot answered each delivery with
        self._deliveries: set[asyncio.Task[None]] = set()
        self.webhook_bot_id = "B0ALERTMANAGER"
        self._last_post: dict[str, float] = {}
        self.ratelimited_count = 0
        self._outage: _Outage | None = None
        self._failures: dict[str, tuple[int, str, int]] = {}  # method -> (times left, error, status)
        self._lost: dict[str, tuple[int, int | str]] = {}  # method -> (times left, status or "hang")

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> "FakeSlack":
        self._changed = asyncio.Condition()
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/response/{key}", self._response_url)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_get("/socket-mode/link", self._socket)
        app.router.add_post("/services/{hook:.+}", self._incoming_webhook)
        # handler_cancellation: a client that gives up on a held request cancels its handler, so
        # the fake sees it (Call.error "abandoned") and never carries it out afterwards.
        self._runner, self._port = await serve(app, handler_cancellation=True)
        return self

    async def stop(self) -> None:
        self._release_held(False)
        for task in list(self._deliveries):
            task.cancel()
        for ws in list(self._sockets):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"fake slack stopping")
        for fut in self._pending_acks.values():
            fut.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> "FakeSlack":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        if self._port is None:
            raise RuntimeError("FakeSlack is not started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/"  # slack_sdk appends the method name

    @property
    def socket_url(self) -> str:
        return f"ws://127.0.0.1:{self._port}/socket-mode/link"

    def response_url(self, key: str | None = None) -> str:
        return f"{self.base_url}/response/{key or uuid.uuid4().hex[:12]}"

    # --- arranging ---------------------------------------------------------------------------------

    def rate_limit(self, method: str, times: int = 1, retry_after: int = 1) -> None:
        """The next `times` calls of `method` answer HTTP 429 with Retry-After."""
        self._rate_limits[method] = [times, retry_after]

    def pace_per_channel(self, min_interval: float = 1.0, retry_after: int = 1) -> None:
        """chat.postMessage to a channel within min_interval of the last accepted one there gets 429."""
        self._pacing = (min_interval, retry_after)

    def outage(self, mode: str | int, methods: Iterable[str] | str | None = None, *, retry_after: int = 1) -> None:
        """Slack is down for `methods` (Call.method names) until recover().

        methods=None: every Web API method, auth.test and apps.connections.open included (a real
        outage spares none), plus response_url posts and file upload URLs. Note that slack_bolt
        calls auth.test on the first request it handles and then caches it: a test that wants a
        fresh bot's handlers to run into the outage names the methods, or lets one request through
        first. Modes:
          "hang"  each request is held open without an answer; recover() carries it out and answers
                  it normally; a client that gives up first leaves it "abandoned", never carried out
          "500"   HTTP 500 {"ok": false, "error": "fatal_error"}
          "503"   HTTP 503 {"ok": false, "error": "service_unavailable"}
          "429"   HTTP 429 {"ok": false, "error": "ratelimited"}, Retry-After: retry_after
        A new outage replaces the current one; requests already held stay held until recover().
        """
        mode = str(mode)
        if mode != "hang" and mode not in OUTAGE_ANSWERS:
            raise ValueError(f"outage mode must be 'hang', '500', '503' or '429', not {mode!r}")
        if isinstance(methods, str):
            methods = [methods]
        for method in methods or ():
            self._known(method)
        self._outage = _Outage(mode, None if methods is None else frozenset(methods), retry_after)

    def recover(self) -> None:
        """End the outage; held requests are carried out and answered now, in the order they came."""
        self._outage = None
        self._release_held(True)

    def fail(self, method: str, error: str, times: int = 1, *, status: int = 200) -> None:
        """The next `times` calls of `method` answer {"ok": false, "error": error} (HTTP `status`,
        200 like Slack's API errors) without doing anything. Replaces an earlier fail() of `method`."""
        self._known(method)
        self._failures[method] = (times, error, status)

    def lose_answers(self, method: str, times: int = 1, status: int | str = 503) -> None:
        """The next `times` successful calls of `method` are carried out (the message is stored), but
        the client gets an error answer: HTTP `status` with service_unavailable (503), ratelimited
        (429, Retry-After: 1) or fatal_error (any other status, 200 too: Slack says of it "It's
        possible some aspect of the operation succeeded"). status="hang": the answer is held until
        recover() (then sent as it would have been) or until the client gives up."""
        if status != "hang" and not isinstance(status, int):
            raise ValueError(f"status must be an HTTP status or 'hang', not {status!r}")
        self._known(method)
        self._lost[method] = (times, status)

    def _known(self, method: str) -> None:
        """A misspelt method would arrange nothing, silently: refuse it."""
        if method not in self._handlers and method not in NON_API_ENDPOINTS:
            known = ", ".join([*self._handlers, *NON_API_ENDPOINTS])
            raise ValueError(f"the fake serves no method {method!r}; it serves {known}")

    @property
    def held(self) -> list[Call]:
        """Calls held right now by outage("hang") or lose_answers(status="hang")."""
        return [call for call, _ in self._held]

    def add_message(
        self,
        channel: str,
        text: str | None = None,
        *,
        user: str = "U0ALICE",
        bot_id: str | None = None,
        blocks: list[Any] | None = None,
        attachments: list[Any] | None = None,
        thread_ts: str | None = None,
        metadata: dict[str, Any] | None = None,
        ts: str | None = None,
    ) -> Message:
        """A message someone else posted in `channel` (an ID or a #name), as if it were already
        there: it shows in conversations.history/replies. Delivers no event, records no call."""
        if ts is None:
            ts = self._next_ts()
        if metadata is not None:
            checked_metadata(metadata, removable=False)
        channel = self._to_id(channel)
        message = Message(channel=channel, ts=ts, text=text, blocks=blocks, attachments=attachments, user=user,
                          bot_id=bot_id or "", thread_ts=thread_ts, metadata=metadata)
        self._messages[(channel, ts)] = message
        return message

    def set_usergroup(self, group_id: str, users: Iterable[str]) -> None:
        """A Slack user group (an ID like S0ONCALL01) and its members (user IDs), replacing any earlier ones."""
        if not _ID.fullmatch(group_id) or not group_id.startswith("S"):
            raise ValueError(f"a Slack user-group ID starts with S and is upper case, not {group_id!r}")
        self._usergroups[group_id] = list(users)

    # --- reading records ------------------------------------------------------------------------------

    # --- incoming webhooks and the Events API ---------------------------------------------------

    def deliver_events_to(self, url: str, signing_secret: str) -> None:
        """Deliver a signed `message` event to `url` for every incoming-webhook post, as Slack does
        for a channel the app is in."""
        self._event_sink = (url, signing_secret)

    def channel_id(self, name: str) -> str:
        """The channel ID for `#name` (made up, stable for the fake's life)."""
        name = name.lstrip("#")
        for channel_id, known in self.channel_names.items():
            if known == name:
                return channel_id
        channel_id = "C" + uuid.uuid5(uuid.NAMESPACE_DNS, name).hex[:9].upper()
        self.channel_names[channel_id] = name
        return channel_id

    async def _incoming_webhook(self, request: web.Request) -> web.Response:
        """`https://hooks.slack.com/services/...`: what Alertmanager's slack_configs post to."""
        try:
            body = json.loads(await request.text())
        except ValueError:
            return web.Response(status=400, text="invalid_payload")
        channel = self._to_id(str(body.get("channel") or "#alerts"))
        message = Message(channel=channel, ts=self._next_ts(), text=body.get("text") or "",
                          blocks=body.get("blocks"), attachments=body.get("attachments"),
                          user="", bot_id=self.webhook_bot_id, username=body.get("username"))
        self._messages[(channel, message.ts)] = message
        await self._record(Call(method="incoming_webhook", params=body, headers=dict(request.headers),
                                time=time.monotonic(), ok=True, error=None, status=200, response={}))
        event = {"type": "message", "subtype": "bot_message", "bot_id": self.webhook_bot_id,
                 "username": body.get("username", ""), "text": message.text, "attachments": message.attachments,
                 "channel": channel, "channel_type": "channel", "ts": message.ts, "event_ts": message.ts}
        self.deliver_event(event)
        return web.Response(text="ok")

    def deliver_event(self, event: dict[str, Any]) -> None:
        """Send `event` to the sink in the background, signed, as an event_callback."""
        if self._event_sink is None:
            return
        task = asyncio.get_running_loop().create_task(self._deliver(event))
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    async def deliveries_answered(self, timeout: float = 10.0) -> list[int]:
        """Wait until every event delivered so far has been answered; the statuses, in order.
        A barrier: with the bot acknowledging only after recording its work, an answered delivery
        means the work is recorded (or was refused)."""
        pending = list(self._deliveries)
        if pending:
            await asyncio.wait_for(asyncio.gather(*pending, return_exceptions=True), timeout)
        return list(self.event_responses)

    async def _deliver(self, event: dict[str, Any]) -> None:
        import aiohttp

        from tests.slack_requests import event_body, post_signed

        assert self._event_sink is not None
        url, secret = self._event_sink
        body = event_body(event, team_id=self.team_id, api_app_id=self.app_id, bot_user_id=self.bot_user_id)
        self.delivered_events.append(json.loads(body))
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            result = await post_signed(session, url, body, "application/json", secret)
        self.event_responses.append(result.status)

    def messages(self, channel: str | None = None) -> list[Message]:
        """Stored messages in posting order, of one channel (its ID or its #name) or of all."""
        channel_id = None if channel is None else self._to_id(channel)
        return [m for m in self._messages.values() if channel_id is None or m.channel == channel_id]

    def calls_to(self, method: str) -> list[Call]:
        """The recorded calls of `method` (a Call.method name), whatever their outcome."""
        self._known(method)
        return [c for c in self.calls if c.method == method]

    @property
    def files(self) -> list[UploadedFile]:
        return [f for f in self._uploads.values() if f.completed]

    def response_posts(self, key: str | None = None) -> list[ResponsePost]:
        """Posts to response URLs; `key` may be the key or the whole URL from response_url()."""
        if key is not None:
            key = key.rstrip("/").rsplit("/", 1)[-1]
        return [p for p in self._response_posts if key is None or p.key == key]

    async def wait_for(
        self,
        method_or_predicate: str | Callable[[Call], bool],
        timeout: float = 5.0,
        count: int = 1,
        *,
        ok: bool | None = True,
    ) -> list[Call]:
        """Wait until `count` calls match; return all matching ones. By default only successful
        calls count; ok=False counts failed ones (held ones too, error "held"), ok=None any."""
        if isinstance(method_or_predicate, str):
            wanted = method_or_predicate
            match: Callable[[Call], bool] = lambda c: c.method == wanted  # noqa: E731
        else:
            match = method_or_predicate

        def matching() -> list[Call]:
            return [c for c in self.calls if (ok is None or c.ok == ok) and match(c)]

        cond = self._condition()
        async with cond:
            try:
                await asyncio.wait_for(cond.wait_for(lambda: len(matching()) >= count), timeout)
            except TimeoutError:
                what = method_or_predicate if isinstance(method_or_predicate, str) else "the predicate"
                kind = {True: "successful ", False: "failed ", None: ""}[ok]
                raise AssertionError(
                    f"timed out after {timeout}s waiting for {count} {kind}call(s) matching {what!r}; "
                    f"{len(matching())} matched. Recorded calls:\n{self.describe_calls()}"
                ) from None
        return matching()

    async def wait_for_message(
        self,
        channel: str | None = None,
        count: int = 1,
        *,
        where: Callable[[Message], bool] | None = None,
        timeout: float = 5.0,
    ) -> Message:
        """Wait until `channel` (an ID or a #name; None: any) holds `count` messages matching `where`,
        and return the count-th of them in posting order (its current content)."""

        def matching() -> list[Message]:
            return [m for m in self.messages(channel) if where is None or where(m)]

        cond = self._condition()
        async with cond:
            try:
                await asyncio.wait_for(cond.wait_for(lambda: len(matching()) >= count), timeout)
            except TimeoutError:
                stored = "\n".join(
                    f"  {m.channel} ts={m.ts} thread_ts={m.thread_ts} text={(m.text or '')[:40]!r}"
                    for m in self.messages(channel)
                ) or "  (none)"
                raise AssertionError(
                    f"timed out after {timeout}s waiting for message #{count} in {channel or 'any channel'}"
                    f"{' matching the predicate' if where else ''}; {len(matching())} matched. "
                    f"Stored there:\n{stored}\nRecorded calls:\n{self.describe_calls()}"
                ) from None
        return matching()[count - 1]

    def describe_calls(self) -> str:
        return "\n".join(f"  {c.brief()}" for c in self.calls) or "  (none)"

    async def socket_connected(self, timeout: float = 5.0, connections: int = 1) -> None:
        """Wait for an open Socket Mode connection, and for `connections` accepted so far in all
        (connections=2 waits for the reconnect after socket_disconnect())."""
        await self._open_socket(timeout, connections)

    async def socket_send(
        self,
        type_: str,
        payload: dict[str, Any],
        timeout: float = 5.0,
        *,
        accepts_response_payload: bool | None = None,
        retry_attempt: int = 0,
        retry_reason: str = "",
    ) -> dict[str, Any]:
        """Send an envelope to the connected Socket Mode client and return its ack message."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        ws = await self._open_socket(timeout)
        envelope: dict[str, Any] = {
            "envelope_id": str(uuid.uuid4()),
            "type": type_,
            "payload": payload,
            # Slack lets the ack carry a response for commands and interactions, not for events.
            "accepts_response_payload": (
                type_ != "events_api" if accepts_response_payload is None else accepts_response_payload
            ),
        }
        if type_ == "events_api":
            # Only events carry retry info; slack_bolt turns it into X-Slack-Retry-* headers.
            envelope["retry_attempt"] = retry_attempt
            envelope["retry_reason"] = retry_reason
        ack: asyncio.Future[dict[str, Any]] = loop.create_future()
        self._pending_acks[envelope["envelope_id"]] = ack
        try:
            self.socket_sent.append(envelope)
            await ws.send_json(envelope)
            return await asyncio.wait_for(ack, max(deadline - loop.time(), 0))
        except TimeoutError:
            raise AssertionError(
                f"no ack for {type_} envelope {envelope['envelope_id']} within {timeout}s; "
                f"acks received: {self.socket_acks!r}"
            ) from None
        finally:
            self._pending_acks.pop(envelope["envelope_id"], None)

    async def socket_disconnect(self, reason: str = "refresh_requested") -> None:
        """Ask connected clients to reconnect, as Slack does every few hours."""
        for ws in list(self._sockets):
            message = {"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-fake"}}
            await ws.send_json(message)

    # --- internals: faults ---------------------------------------------------------------------------

    def _release_held(self, carry_out: bool) -> None:
        held, self._held = self._held, []
        for _, release in held:
            if not release.done():
                release.set_result(carry_out)

    async def _hold(self, call: Call, fault: str) -> bool:
        """Keep the request open without an answer: True once recover() releases it, False if
        stop() or reset() does. A client that gives up cancels the handler (handler_cancellation)."""
        release: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        entry = (call, release)
        self._held.append(entry)
        call.ok, call.error, call.status, call.fault = False, HELD, 0, fault
        await self._record(call)
        try:
            carry_out = await release
        except asyncio.CancelledError:
            call.error = ABANDONED
            await self._notify()
            raise
        finally:
            self._held = [e for e in self._held if e is not entry]
        if carry_out:
            call.error, call.status, call.fault = None, 200, None
        return carry_out

    async def _before(self, method: str, call: Call) -> web.Response | None:
        """An outage or fail() answers here, without carrying the call out; None: go ahead."""
        outage = self._outage
        if outage is not None and outage.covers(method):
            if outage.mode == "hang":
                if not await self._hold(call, "outage"):
                    return await self._refuse(call, SlackError("service_unavailable", status=503), "outage")
            else:
                status, error = OUTAGE_ANSWERS[outage.mode]
                headers = {"Retry-After": str(outage.retry_after)} if status == 429 else None
                return await self._refuse(call, SlackError(error, status=status, headers=headers), "outage")
        failure = self._failures.get(method)
        if failure is not None and failure[0] > 0:
            times, error, status = failure
            self._failures[method] = (times - 1, error, status)
            return await self._refuse(call, SlackError(error, status=status), "fail")
        return None

    async def _refuse(self, call: Call, error: SlackError, fault: str | None = None) -> web.Response:
        call.ok, call.error, call.status, call.fault = False, error.error, error.status, fault
        call.response = error.body()
        if error.error == "ratelimited":
            self.ratelimited_count += 1
        await self._record(call)
        return error.response()

    async def _answer(
        self, method: str, call: Call, response: web.Response, body: dict[str, Any] | None
    ) -> web.Response:
        """The call was carried out: answer it, unless lose_answers() takes this answer."""
        lost = self._lost.get(method)
        if lost is not None and lost[0] > 0:
            times, status = lost
            self._lost[method] = (times - 1, status)
            if status == "hang":
                if not await self._hold(call, "lost_answer"):
                    return await self._refuse(call, SlackError("service_unavailable", status=503), "lost_answer")
            else:
                assert isinstance(status, int)
                headers = {"Retry-After": "1"} if status == 429 else None
                error = SlackError(LOST_ANSWER_ERRORS.get(status, "fatal_error"), status=status, headers=headers)
                return await self._refuse(call, error, "lost_answer")
        call.ok, call.error, call.status, call.response, call.fault = True, None, 200, body, None
        await self._record(call)
        return response

    # --- internals: recording ---------------------------------------------------------------------

    def _condition(self) -> asyncio.Condition:
        if self._changed is None:
            raise RuntimeError("FakeSlack is not started")
        return self._changed

    async def _notify(self) -> None:
        cond = self._condition()
        async with cond:
            cond.notify_all()

    async def _record(self, call: Call) -> None:
        """Add `call` to the record (once; a held call is recorded when it arrives) and wake waiters."""
        if id(call) not in self._recorded and call.time >= self._reset_at:
            self._recorded.add(id(call))
            self.calls.append(call)
        await self._notify()

    def _next_ts(self) -> str:
        # Like Slack: the message's time (epoch seconds, microseconds), unique within the fake.
        # Clients rely on it being the time: `oldest`/`latest` in conversations.* compare with it.
        self._ts_micros = max(int(time.time() * 1_000_000), self._ts_micros + 1)
        return f"{self._ts_micros // 1_000_000}.{self._ts_micros % 1_000_000:06d}"

    # --- internals: HTTP -------------------------------------------------------------------------------

    @staticmethod
    async def _read_params(request: web.Request) -> tuple[Params, str | None]:
        # AsyncWebClient sends `params=` methods (auth.test, files.*, apps.connections.open) as a
        # query string on an empty POST, and chat.* as a JSON body: merge both sources.
        params: Params = dict(request.query)
        if request.body_exists:
            if request.content_type == "application/json":
                body = await request.json()
                if isinstance(body, dict):
                    params.update(body)
            elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
                form = await request.post()
                params.update({k: v for k, v in form.items() if isinstance(v, str)})
        token = params.pop("token", None)
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            token = auth.removeprefix("Bearer ").strip()
        return _decode_json_params(params), token

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        try:
            params, token = await self._read_params(request)
        except ValueError:  # a body that claims to be JSON but isn't
            params, token = {}, None
            bad_json = True
        else:
            bad_json = False
        call = Call(method, params, dict(request.headers), time.monotonic(), ok=False)
        refused = await self._before(method, call)
        if refused is not None:
            return refused
        try:
            if bad_json:
                raise SlackError("invalid_json")
            handler = self._handlers.get(method)
            if handler is None:
                raise SlackError("unknown_method")
            self._check_rate_limits(method, params)
            self._check_auth(method, token)
            result = handler(params)
        except SlackError as e:
            return await self._refuse(call, e)
        body = {"ok": True, **result}
        return await self._answer(method, call, web.json_response(body), body)

    def _check_rate_limits(self, method: str, params: Params) -> None:
        limit = self._rate_limits.get(method)
        if limit and limit[0] > 0:
            limit[0] -= 1
            raise SlackError("ratelimited", status=429, headers={"Retry-After": str(limit[1])})
        if method == "chat.postMessage" and self._pacing is not None:
            min_interval, retry_after = self._pacing
            channel = params.get("channel")
            last = self._last_post.get(self._to_id(channel) if isinstance(channel, str) and channel else "")
            if last is not None and time.monotonic() - last < min_interval:
                raise SlackError("ratelimited", status=429, headers={"Retry-After": str(retry_after)})

    def _check_auth(self, method: str, token: str | None) -> None:
        if not token:
            raise SlackError("not_authed")
        if token not in (self.bot_token, self.app_token):
            raise SlackError("invalid_auth")
        expected = self.app_token if method in APP_METHODS else self.bot_token
        if token != expected:
            raise SlackError("not_allowed_token_type")

    # --- channels ------------------------------------------------------------------------------------

    def _to_id(self, channel: str) -> str:
        return channel if is_channel_id(channel) else self.channel_id(channel)

    def _arranged(self, channels: set[str], channel_id: str) -> bool:
        """Is the channel in unknown_channels / not_in_channel, under its ID or its #name?"""
        return any(self._to_id(c) == channel_id for c in channels if c)

    def _channel(self, value: Any, *, names: bool = False) -> str:
        """The channel ID a method was given; a name only where Slack takes one (names=True)."""
        if not isinstance(value, str) or not value:
            raise SlackError("channel_not_found")
        if not is_channel_id(value):
            if not names:
                raise SlackError("channel_not_found")  # chat.update, conversations.*, files.*: IDs only
            value = self.channel_id(value)
        if self._arranged(self.unknown_channels, value):
            raise SlackError("channel_not_found")
        return value

    def _member(self, channel_id: str) -> None:
        if self._arranged(self.not_in_channel, channel_id):
            raise SlackError("not_in_channel")

    def _validate(self, content: Params) -> None:
        """The one message validator: chat.postMessage, chat.postEphemeral, chat.update, response_url."""
        text, blocks, attachments = content.get("text"), content.get("blocks"), content.get("attachments")
        if not text and not blocks and not attachments:
            raise SlackError("no_text")
        if isinstance(text, str) and len(text) > MAX_TEXT:
            raise SlackError("msg_too_long")
        if blocks is not None:
            if not isinstance(blocks, list):
                raise SlackError("invalid_blocks_format")
            problems = block_problems(blocks)
            if problems:
                raise SlackError("invalid_blocks", messages=problems)
        if attachments is not None and not isinstance(attachments, list):
            raise SlackError("invalid_attachments")

    # --- Web API methods ------------------------------------------------------------------------------

    def _auth_test(self, params: Params) -> dict[str, Any]:
        return {
            "url": "https://fake-team.slack.com/",
            "team": "Fake Team",
            "user": "ops-bot",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _new_message(self, params: Params, channel: str, ts: str, recipient: str | None = None) -> Message:
        return Message(
            channel=channel,
            ts=ts,
            text=params.get("text"),
            blocks=params.get("blocks"),
            attachments=params.get("attachments"),
            user=self.bot_user_id,
            bot_id=self.bot_id,
            thread_ts=params.get("thread_ts") or None,
            recipient=recipient,
        )

    @staticmethod
    def _metadata_param(params: Params, *, removable: bool) -> tuple[bool, dict[str, Any] | None]:
        """(given, value) of the metadata argument; a JSON null counts as not given."""
        if params.get("metadata") is None:
            return False, None
        return True, checked_metadata(params["metadata"], removable=removable)

    def _chat_post_message(self, params: Params) -> dict[str, Any]:
        # Slack takes an ID or a name here, stores the message under the ID and answers with the ID.
        channel = self._channel(params.get("channel"), names=True)
        self._validate(params)
        _, metadata = self._metadata_param(params, removable=False)
        self._member(channel)
        message = self._new_message(params, channel, self._next_ts())
        message.metadata = metadata
        message.broadcast = bool(message.thread_ts) and _truthy(params.get("reply_broadcast"))
        self._messages[(channel, message.ts)] = message
        self._last_post[channel] = time.monotonic()
        return {"channel": channel, "ts": message.ts, "message": message.as_slack()}

    def _chat_post_ephemeral(self, params: Params) -> dict[str, Any]:
        channel = self._channel(params.get("channel"), names=True)  # "Can be an encoded ID, or a name"
        self._validate(params)
        user = params.get("user")
        if not user:
            raise SlackError("invalid_arguments", messages=["[ERROR] missing required field: user"])
        message = self._new_message(params, channel, self._next_ts(), recipient=user)
        self.ephemerals.append(message)
        return {"message_ts": message.ts}

    def _chat_update(self, params: Params) -> dict[str, Any]:
        channel = self._channel(params.get("channel"))
        message = self._messages.get((channel, str(params.get("ts"))))
        if message is None:
            raise SlackError("message_not_found")
        # Slack keeps the fields an update leaves out; validate the message as it would become.
        updated = {k: getattr(message, k) for k in ("text", "blocks", "attachments")}
        updated.update({k: params[k] for k in ("text", "blocks", "attachments") if k in params})
        self._validate(updated)
        # Left out, the metadata stays; {} removes it; anything else replaces it.
        given, metadata = self._metadata_param(params, removable=True)
        message.text = updated["text"]
        message.blocks = updated["blocks"]
        message.attachments = updated["attachments"]
        if given:
            message.metadata = metadata
        message.edits += 1
        return {
            "channel": channel,
            "ts": message.ts,
            "text": message.text or "",
            "message": message.as_slack(),
        }

    def _chat_get_permalink(self, params: Params) -> dict[str, Any]:
        """A message's permalink (a thread reply's names its thread, as Slack's do); channel IDs only."""
        channel = self._channel(params.get("channel"))
        message = self._messages.get((channel, str(params.get("message_ts") or "")))
        if message is None:
            raise SlackError("message_not_found")
        permalink = f"https://fake.slack.example/archives/{channel}/p{message.ts.replace('.', '')}"
        if message.is_reply:
            permalink += f"?thread_ts={message.thread_ts}&cid={channel}"
        return {"channel": channel, "permalink": permalink}

    def _conversations_info(self, params: Params) -> dict[str, Any]:
        channel = self._channel(params.get("channel"))
        name = self.channel_names.get(channel, channel.lower())
        return {
            "channel": {
                "id": channel,
                "name": name,
                "is_channel": True,
                "is_private": False,
                "is_archived": False,
                "is_member": not self._arranged(self.not_in_channel, channel),
            }
        }

    def _conversations_list(self, params: Params) -> dict[str, Any]:
        """Every channel the fake knows (named by channel_id() or posted to), sorted by ID, paged by
        `limit` (default 100, max 1000) and `cursor` (the next channel's ID). The bot needs
        channels:read (public) and groups:read (private) for it."""
        known = set(self.channel_names) | {channel for channel, _ in self._messages}
        ids = sorted(c for c in known if is_channel_id(c) and not self._arranged(self.unknown_channels, c))
        limit = _limit_arg(params.get("limit"), 100, 1000)
        cursor = str(params.get("cursor") or "")
        if cursor:
            if cursor not in ids:
                raise SlackError("invalid_cursor")
            ids = ids[ids.index(cursor):]
        page, rest = ids[:limit], ids[limit:]
        answer: dict[str, Any] = {"channels": [self._conversations_info({"channel": c})["channel"] for c in page]}
        answer["response_metadata"] = {"next_cursor": rest[0] if rest else ""}
        return answer

    def _thread_fields(self, message: Message) -> dict[str, Any]:
        """What Slack adds to a message in conversations.* about its thread."""
        if message.is_reply:
            parent = self._messages.get((message.channel, str(message.thread_ts)))
            return {"parent_user_id": parent.user} if parent is not None and parent.user else {}
        replies = [m for m in self._messages.values()
                   if m.channel == message.channel and m.is_reply and m.thread_ts == message.ts]
        if not replies:
            return {}
        users = list(dict.fromkeys(m.user for m in replies if m.user))
        return {"thread_ts": message.ts, "reply_count": len(replies), "reply_users_count": len(users),
                "reply_users": users, "latest_reply": max((m.ts for m in replies), key=Decimal)}

    def _listed(self, messages: list[Message], params: Params) -> list[dict[str, Any]]:
        metadata = _truthy(params.get("include_all_metadata"))
        return [{**m.as_slack(metadata=metadata), **self._thread_fields(m)} for m in messages]

    @staticmethod
    def _page(
        messages: list[Message], start: Decimal | None, limit: int, *, newest_first: bool
    ) -> tuple[list[Message], dict[str, Any]]:
        """One page from `start` (a cursor's ts) on, and has_more / response_metadata for the rest.

        Slack documents "an empty, null, or non-existent next_cursor" as the end; the fake leaves
        response_metadata out on the last page, the least a client can get."""
        if start is not None:
            messages = [m for m in messages if (Decimal(m.ts) <= start if newest_first else Decimal(m.ts) >= start)]
        page, rest = messages[:limit], messages[limit:]
        more: dict[str, Any] = {"has_more": bool(rest)}
        if rest:
            more["response_metadata"] = {"next_cursor": _cursor(rest[0].ts)}
        return page, more

    def _conversations_history(self, params: Params) -> dict[str, Any]:
        """The channel's messages, newest first, without thread replies (except those also sent to
        the channel). Without `latest` there is no upper bound (Slack: "Default is the current time";
        the fake's ts may run ahead of the clock)."""
        channel = self._channel(params.get("channel"))
        self._member(channel)  # a bot token reads only the conversations the bot is in
        oldest = _ts_arg(params.get("oldest"), "invalid_ts_oldest")
        latest = _ts_arg(params.get("latest"), "invalid_ts_latest")
        inclusive = _truthy(params.get("inclusive"))
        start = _cursor_ts(params.get("cursor"))
        limit = _limit_arg(params.get("limit"), HISTORY_LIMIT, HISTORY_LIMIT_MAX)
        listed = [m for m in self._messages.values()
                  if m.channel == channel and (not m.is_reply or m.broadcast)
                  and _in_range(m.ts, oldest, latest, inclusive)]
        listed.sort(key=lambda m: Decimal(m.ts), reverse=True)
        page, more = self._page(listed, start, limit, newest_first=True)
        return {"messages": self._listed(page, params), **more, "pin_count": 0}

    def _conversations_replies(self, params: Params) -> dict[str, Any]:
        """The thread of `ts` (its parent, or any reply in it): the parent first, then the replies,
        oldest first, as one list that oldest/latest and the cursor page through. An unthreaded
        message is a thread of one ("just the single message referenced by ts will return")."""
        channel = self._channel(params.get("channel"))
        self._member(channel)
        message = self._messages.get((channel, str(params.get("ts") or "")))
        if message is None:
            raise SlackError("thread_not_found")  # "Value for ts was missing or invalid"
        parent_ts = message.thread_ts if message.is_reply else message.ts
        oldest = _ts_arg(params.get("oldest"), "invalid_ts_oldest")
        latest = _ts_arg(params.get("latest"), "invalid_ts_latest")
        inclusive = _truthy(params.get("inclusive"))
        start = _cursor_ts(params.get("cursor"))
        limit = _limit_arg(params.get("limit"), REPLIES_LIMIT)
        thread = [m for m in self._messages.values()
                  if m.channel == channel and (m.ts == parent_ts or (m.is_reply and m.thread_ts == parent_ts))
                  and _in_range(m.ts, oldest, latest, inclusive)]
        thread.sort(key=lambda m: Decimal(m.ts))
        page, more = self._page(thread, start, limit, newest_first=False)
        return {"messages": self._listed(page, params), **more}

    def _files_get_upload_url(self, params: Params) -> dict[str, Any]:
        filename, length = params.get("filename"), params.get("length")
        if not filename or length is None:
            missing = "filename" if not filename else "length"
            raise SlackError("invalid_arguments", messages=[f"[ERROR] missing required field: {missing}"])
        self._file_seq += 1
        file_id = f"F0FAKE{self._file_seq:05d}"
        self._uploads[file_id] = UploadedFile(id=file_id, filename=filename, length=int(length))
        return {"upload_url": f"{self.base_url}/upload/{file_id}", "file_id": file_id}

    def _files_complete_upload(self, params: Params) -> dict[str, Any]:
        entries = params.get("files")
        if not isinstance(entries, list) or not entries:
            raise SlackError("invalid_arguments", messages=["[ERROR] missing required field: files"])
        channel: str | None = None
        if params.get("channel_id"):
            channel = self._channel(params["channel_id"])  # "Channel ID where the file will be shared"
        elif params.get("channels"):
            first = str(params["channels"]).split(",")[0].strip()
            if not is_channel_id(first):
                raise SlackError("invalid_channel")  # "Comma-separated string of channel IDs"
            channel = self._channel(first)
        if channel is not None:
            self._member(channel)
        uploads = []
        for entry in entries:
            upload = self._uploads.get(str(entry.get("id"))) if isinstance(entry, dict) else None
            if upload is None or upload.content is None:  # never issued, or the bytes never arrived
                raise SlackError("file_not_found")
            uploads.append((upload, entry))
        for upload, entry in uploads:
            upload.title = entry.get("title") or upload.filename
            upload.channel = channel
            upload.thread_ts = params.get("thread_ts")
            upload.initial_comment = params.get("initial_comment")
            upload.completed = True
        return {"files": [{"id": u.id, "name": u.filename, "title": u.title, "size": len(u.content or b"")}
                          for u, _ in uploads]}

    def _usergroups_users_list(self, params: Params) -> dict[str, Any]:
        """The user IDs in a user group (the bot needs usergroups:read)."""
        group = params.get("usergroup")
        if not group:
            raise SlackError("invalid_arguments", messages=["[ERROR] missing required field: usergroup"])
        users = self._usergroups.get(str(group))
        if users is None:
            raise SlackError("no_such_subteam")
        return {"users": list(users)}

    def _apps_connections_open(self, params: Params) -> dict[str, Any]:
        return {"url": self.socket_url}

    # --- non-API endpoints --------------------------------------------------------------------------------

    async def _upload(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        content = await request.read()
        call = Call("file_upload", {"file_id": file_id, "size": len(content)}, dict(request.headers),
                    time.monotonic(), ok=False)
        refused = await self._before("file_upload", call)
        if refused is not None:
            return refused
        upload = self._uploads.get(file_id)
        if upload is None:
            call.error, call.status = "file_not_found", 404
            await self._record(call)
            return web.Response(status=404, text="file_not_found")
        upload.content = content
        answer = web.Response(text=f"OK - {len(content)}")  # what files.slack.com answers
        return await self._answer("file_upload", call, answer, None)

    async def _response_url(self, request: web.Request) -> web.Response:
        key = request.match_info["key"]
        try:
            body = await request.json()
        except ValueError:
            body = None
        call = Call("response_url", {"key": key, **(body if isinstance(body, dict) else {})},
                    dict(request.headers), time.monotonic(), ok=False)
        refused = await self._before("response_url", call)
        if refused is not None:
            return refused
        try:
            if not isinstance(body, dict):
                raise SlackError("invalid_payload", status=400)
            if len(self.response_posts(key)) >= self.response_url_max_uses:
                raise SlackError("used_url", status=404)
            if not body.get("delete_original"):
                self._validate(_decode_json_params(dict(body)))
        except SlackError as e:
            # Like incoming webhooks (and unlike the Web API), problems come back as a non-200 status.
            if e.status == 200:
                e.status = 400
            return await self._refuse(call, e)
        self._response_posts.append(ResponsePost(key=key, body=body, time=call.time))
        answer = {"ok": True}
        return await self._answer("response_url", call, web.json_response(answer), answer)

    # --- Socket Mode ------------------------------------------------------------------------------

    async def _open_socket(self, timeout: float, connections: int = 1) -> web.WebSocketResponse:
        def latest() -> web.WebSocketResponse | None:
            open_ = [ws for ws in self._sockets if not ws.closed]
            return open_[-1] if open_ else None

        def ready() -> bool:
            return self.socket_connections >= connections and latest() is not None

        cond = self._condition()
        async with cond:
            try:
                await asyncio.wait_for(cond.wait_for(ready), timeout)
            except TimeoutError:
                raise AssertionError(
                    f"no Socket Mode client connected within {timeout}s "
                    f"({self.socket_connections} connection(s) so far). "
                    f"Recorded calls:\n{self.describe_calls()}"
                ) from None
        ws = latest()
        assert ws is not None
        return ws

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        # autoping answers the client's "sdk-ping-pong:<time>" pings, which the aiohttp client
        # uses to decide the connection is alive. A short close timeout keeps stop() quick.
        ws = web.WebSocketResponse(autoping=True, timeout=1.0)
        await ws.prepare(request)
        self.socket_connections += 1
        self._sockets.append(ws)
        try:
            await ws.send_json({
                "type": "hello",
                "num_connections": len([s for s in self._sockets if not s.closed]),
                "debug_info": {
                    "host": "applink-fake",
                    "build_number": 1,
                    "approximate_connection_time": 18060,
                },
                "connection_info": {"app_id": self.app_id},
            })
            await self._notify()
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._on_socket_text(msg.data)
        finally:
            self._sockets.remove(ws)
            await self._notify()
        return ws

    async def _on_socket_text(self, data: str) -> None:
        try:
            message = json.loads(data)
        except ValueError:
            message = {"raw": data}
        self.socket_acks.append(message)
        ack = self._pending_acks.get(message.get("envelope_id", "")) if isinstance(message, dict) else None
        if ack is not None and not ack.done():
            ack.set_result(message)
        await self._notify()
