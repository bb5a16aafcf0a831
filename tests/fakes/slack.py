"""An in-process fake of the Slack Web API, response_url, file uploads and Socket Mode.

`FakeSlack` is a real aiohttp server on 127.0.0.1 (free port). The bot reaches it through the real
`AsyncWebClient(base_url=fake.api_url, token=...)`, so the wire format, auth headers, retries and
error handling of slack_sdk are exercised exactly as in production. It answers like Slack: HTTP 200
with {"ok": false, "error": ...} for API errors, HTTP 429 + Retry-After when rate limited.

What it records, for assertions:
    fake.calls                  every request as a `Call` (method, decoded params, headers, time, ok, error)
    fake.messages(channel)      stored channel messages as `Message`, current content after chat.update
    fake.ephemerals             chat.postEphemeral messages
    fake.files                  completed file uploads as `UploadedFile` (bytes, channel, thread, comment)
    fake.response_posts(key)    posts to response URLs as `ResponsePost`
    fake.socket_acks            every message a Socket Mode client sent back

What a test can arrange:
    fake.unknown_channels.add("C1")          -> channel_not_found
    fake.not_in_channel.add("C1")            -> not_in_channel on chat.postMessage / file share
    fake.rate_limit("chat.postMessage", times=2, retry_after=1)
    fake.pace_per_channel(min_interval=1.0)  -> 429 for posts to one channel closer than min_interval
    await fake.socket_send("slash_commands", payload)  -> the client's ack

Waiting: `await fake.wait_for("chat.postMessage", count=2)` wakes on each recorded call (no polling)
and on timeout fails with the list of what was recorded.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

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

# Params that slack_sdk (or a form post) may send as JSON strings; recorded decoded.
JSON_PARAMS = ("blocks", "attachments", "files", "metadata")

BOT_METHODS = (
    "auth.test",
    "chat.postMessage",
    "chat.postEphemeral",
    "chat.update",
    "conversations.info",
    "files.getUploadURLExternal",
    "files.completeUploadExternal",
)
APP_METHODS = ("apps.connections.open",)

Params = dict[str, Any]


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
    status: int = 200
    response: dict[str, Any] | None = None

    def brief(self) -> str:
        parts = [self.method, "ok" if self.ok else f"error={self.error}"]
        for key in ("channel", "channel_id", "ts", "thread_ts", "user", "text", "filename", "file_id", "key"):
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
    metadata: Any = None
    edits: int = 0  # how many chat.update calls changed it

    def as_slack(self) -> dict[str, Any]:
        """The message object Slack returns in API responses."""
        out: dict[str, Any] = {"type": "message", "user": self.user, "bot_id": self.bot_id, "ts": self.ts}
        out["text"] = self.text or ""
        for key in ("blocks", "attachments", "thread_ts", "metadata"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
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
        kind = block["type"]
        if kind == "section":
            if "text" not in block and "fields" not in block and "expand" not in block:
                problems.append(f"[ERROR] must provide either text or fields [json-pointer:{at}]")
            if "text" in block:
                problems += _length_problem(_text_of(block["text"]), MAX_SECTION_TEXT, f"{at}/text/text")
            fields = block.get("fields")
            if fields is not None:
                if not isinstance(fields, list) or len(fields) > MAX_SECTION_FIELDS:
                    problems.append(
                        f"[ERROR] no more than {MAX_SECTION_FIELDS} items allowed [json-pointer:{at}/fields]"
                    )
                else:
                    for j, f in enumerate(fields):
                        problems += _length_problem(_text_of(f), MAX_FIELD_TEXT, f"{at}/fields/{j}/text")
        elif kind == "header":
            text = block.get("text")
            if not isinstance(text, dict) or text.get("type") != "plain_text":
                problems.append(f"[ERROR] must be a plain_text text object [json-pointer:{at}/text]")
            problems += _length_problem(_text_of(text), MAX_HEADER_TEXT, f"{at}/text/text")
        elif kind == "context":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= MAX_CONTEXT_ELEMENTS:
                problems.append(
                    f"[ERROR] must have 1 to {MAX_CONTEXT_ELEMENTS} items [json-pointer:{at}/elements]"
                )
        elif kind == "actions":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= MAX_ACTIONS_ELEMENTS:
                problems.append(
                    f"[ERROR] must have 1 to {MAX_ACTIONS_ELEMENTS} items [json-pointer:{at}/elements]"
                )
    return problems


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
        self._ts_micros = 1_732_500_000_000_000
        self._file_seq = 0
        self._sockets: list[web.WebSocketResponse] = []
        self._pending_acks: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.socket_connections = 0  # websocket connections accepted so far
        self._handlers: dict[str, Callable[[Params], dict[str, Any]]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.update": self._chat_update,
            "conversations.info": self._conversations_info,
            "files.getUploadURLExternal": self._files_get_upload_url,
            "files.completeUploadExternal": self._files_complete_upload,
            "apps.connections.open": self._apps_connections_open,
        }
        self.reset()

    def reset(self) -> None:
        """Forget everything recorded and arranged (not the open sockets, not the ts counter)."""
        self.calls: list[Call] = []
        self._messages: dict[tuple[str, str], Message] = {}
        self.ephemerals: list[Message] = []
        self._uploads: dict[str, UploadedFile] = {}
        self._response_posts: list[ResponsePost] = []
        self.socket_acks: list[dict[str, Any]] = []
        self.socket_sent: list[dict[str, Any]] = []
        self.unknown_channels: set[str] = set()
        self.not_in_channel: set[str] = set()
        self.channel_names: dict[str, str] = {}
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

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> "FakeSlack":
        self._changed = asyncio.Condition()
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/response/{key}", self._response_url)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_get("/socket-mode/link", self._socket)
        app.router.add_post("/services/{hook:.+}", self._incoming_webhook)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        # Bind the socket ourselves: port 0 picks a free port and we can read it back.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        return self

    async def stop(self) -> None:
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
        channel = self.channel_id(str(body.get("channel") or "#alerts"))
        message = Message(channel=channel, ts=self._next_ts(), text=body.get("text") or "",
                          blocks=body.get("blocks"), attachments=body.get("attachments"),
                          user="", bot_id=self.webhook_bot_id)
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
        return [m for m in self._messages.values() if channel is None or m.channel == channel]

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
    ) -> list[Call]:
        """Wait until `count` successful calls match; return all matching ones."""
        if isinstance(method_or_predicate, str):
            wanted = method_or_predicate
            match: Callable[[Call], bool] = lambda c: c.method == wanted  # noqa: E731
        else:
            match = method_or_predicate

        def matching() -> list[Call]:
            return [c for c in self.calls if c.ok and match(c)]

        cond = self._condition()
        async with cond:
            try:
                await asyncio.wait_for(cond.wait_for(lambda: len(matching()) >= count), timeout)
            except TimeoutError:
                what = method_or_predicate if isinstance(method_or_predicate, str) else "the predicate"
                raise AssertionError(
                    f"timed out after {timeout}s waiting for {count} successful call(s) matching {what!r}; "
                    f"{len(matching())} matched. Recorded calls:\n{self.describe_calls()}"
                ) from None
        return matching()

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
        self.calls.append(call)
        await self._notify()

    def _next_ts(self) -> str:
        self._ts_micros += 100
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
            call.error, call.status = e.error, e.status
            call.response = e.body()
            if e.error == "ratelimited":
                self.ratelimited_count += 1
            await self._record(call)
            return e.response()
        call.ok, call.response = True, {"ok": True, **result}
        await self._record(call)
        return web.json_response(call.response)

    def _check_rate_limits(self, method: str, params: Params) -> None:
        limit = self._rate_limits.get(method)
        if limit and limit[0] > 0:
            limit[0] -= 1
            raise SlackError("ratelimited", status=429, headers={"Retry-After": str(limit[1])})
        if method == "chat.postMessage" and self._pacing is not None:
            min_interval, retry_after = self._pacing
            last = self._last_post.get(str(params.get("channel")))
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

    def _validate(self, channel: Any, content: Params, *, check_channel: bool = True) -> None:
        """The one message validator: chat.postMessage, chat.postEphemeral, chat.update, response_url."""
        if check_channel and (not channel or channel in self.unknown_channels):
            raise SlackError("channel_not_found")
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
            thread_ts=params.get("thread_ts"),
            recipient=recipient,
            metadata=params.get("metadata"),
        )

    def _chat_post_message(self, params: Params) -> dict[str, Any]:
        channel = params.get("channel")
        self._validate(channel, params)
        if channel in self.not_in_channel:
            raise SlackError("not_in_channel")
        message = self._new_message(params, channel, self._next_ts())
        self._messages[(channel, message.ts)] = message
        self._last_post[channel] = time.monotonic()
        return {"channel": channel, "ts": message.ts, "message": message.as_slack()}

    def _chat_post_ephemeral(self, params: Params) -> dict[str, Any]:
        channel = params.get("channel")
        self._validate(channel, params)
        user = params.get("user")
        if not user:
            raise SlackError("invalid_arguments", messages=["[ERROR] missing required field: user"])
        message = self._new_message(params, channel, self._next_ts(), recipient=user)
        self.ephemerals.append(message)
        return {"message_ts": message.ts}

    def _chat_update(self, params: Params) -> dict[str, Any]:
        channel = params.get("channel")
        if not channel or channel in self.unknown_channels:
            raise SlackError("channel_not_found")
        message = self._messages.get((channel, str(params.get("ts"))))
        if message is None:
            raise SlackError("message_not_found")
        # Slack keeps the fields an update leaves out; validate the message as it would become.
        updated = {k: getattr(message, k) for k in ("text", "blocks", "attachments")}
        updated.update({k: params[k] for k in ("text", "blocks", "attachments") if k in params})
        self._validate(channel, updated)
        message.text = updated["text"]
        message.blocks = updated["blocks"]
        message.attachments = updated["attachments"]
        if "metadata" in params:
            message.metadata = params["metadata"]
        message.edits += 1
        return {
            "channel": channel,
            "ts": message.ts,
            "text": message.text or "",
            "message": message.as_slack(),
        }

    def _conversations_info(self, params: Params) -> dict[str, Any]:
        channel = params.get("channel")
        if not channel or channel in self.unknown_channels:
            raise SlackError("channel_not_found")
        name = self.channel_names.get(channel, channel.lower())
        return {
            "channel": {
                "id": channel,
                "name": name,
                "is_channel": True,
                "is_private": False,
                "is_archived": False,
                "is_member": channel not in self.not_in_channel,
            }
        }

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
        channel = params.get("channel_id") or (str(params.get("channels") or "").split(",")[0] or None)
        if channel is not None:
            if channel in self.unknown_channels:
                raise SlackError("channel_not_found")
            if channel in self.not_in_channel:
                raise SlackError("not_in_channel")
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

    def _apps_connections_open(self, params: Params) -> dict[str, Any]:
        return {"url": self.socket_url}

    # --- non-API endpoints --------------------------------------------------------------------------------

    async def _upload(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        content = await request.read()
        upload = self._uploads.get(file_id)
        call = Call("file_upload", {"file_id": file_id, "size": len(content)}, dict(request.headers),
                    time.monotonic(), ok=upload is not None)
        if upload is None:
            call.error, call.status = "file_not_found", 404
            await self._record(call)
            return web.Response(status=404, text="file_not_found")
        upload.content = content
        await self._record(call)
        return web.Response(text=f"OK - {len(content)}")  # what files.slack.com answers

    async def _response_url(self, request: web.Request) -> web.Response:
        key = request.match_info["key"]
        try:
            body = await request.json()
        except ValueError:
            body = None
        call = Call("response_url", {"key": key, **(body if isinstance(body, dict) else {})},
                    dict(request.headers), time.monotonic(), ok=False)
        try:
            if not isinstance(body, dict):
                raise SlackError("invalid_payload", status=400)
            if len(self.response_posts(key)) >= self.response_url_max_uses:
                raise SlackError("used_url", status=404)
            if not body.get("delete_original"):
                self._validate(None, _decode_json_params(dict(body)), check_channel=False)
        except SlackError as e:
            # Like incoming webhooks (and unlike the Web API), problems come back as a non-200 status.
            if e.status == 200:
                e.status = 400
            call.error, call.status, call.response = e.error, e.status, e.body()
            await self._record(call)
            return e.response()
        self._response_posts.append(ResponsePost(key=key, body=body, time=call.time))
        call.ok, call.response = True, {"ok": True}
        await self._record(call)
        return web.json_response(call.response)

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
