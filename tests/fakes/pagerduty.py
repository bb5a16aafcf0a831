"""A loopback fake of PagerDuty's Events API v2 (POST /v2/enqueue) that checks what it is sent.

`FakePagerDuty` is a real aiohttp server on 127.0.0.1 (free port); point the client at
`fake.url`, with `fake.routing_key`. It refuses what PagerDuty refuses, with PagerDuty's 400
shape, `{"status": "invalid event", "message": "Event object is invalid", "errors": [...]}`:

    a body that is not a JSON object; routing_key missing or not the integration's key;
    event_action missing or not trigger | acknowledge | resolve; dedup_key missing on
    acknowledge/resolve, not a string or over 255 characters; on a trigger payload.summary,
    payload.source, payload.severity missing, severity not critical | error | warning | info,
    summary over 1024 characters, a timestamp that is not ISO 8601, custom_details not an
    object, links not a list of objects with an href.

and accepts the rest: 202 `{"status": "success", "message": "Event processed", "dedup_key": ...}`
(a trigger without a dedup_key gets a new one, as PagerDuty does).

Incidents, modelled as PagerDuty does: a trigger opens an incident for its dedup_key unless one
is open (triggered or acknowledged) already, which it joins (`alerts` counts them); acknowledge
and resolve change the open incident's status and do nothing when there is none (still 202). A
trigger after the resolution opens a new incident with the same dedup_key.

What it records, for assertions:
    fake.requests           every request as a `Request` (body, status answered, errors, fault)
    fake.events             the accepted events' bodies (dicts), in order
    fake.incidents          every incident (`Incident`: dedup_key, status, summary, severity,
                            source, links, alerts, actions), in the order they were opened
    fake.incident(key)      the newest incident with that dedup_key (KeyError if none)

What a test can arrange:
    fake.rate_limit(times=1, retry_after=2)   the next `times` requests: 429 + Retry-After
                                              (retry_after=None: no header)
    fake.fail(times=1, status=500, retry_after=None)   the next `times` requests: that status
    fake.hang()             hold every request, unanswered, until recover() (then carried out and
                            answered) or until the client gives up (Request.fault "abandoned")
    fake.recover()          end the hang and the arranged failures
    await fake.wait_for(count=1, action=None)   the first `count` accepted events (of `action`)
    await fake.wait_held(count=1)               until `count` requests are held by hang()
    await fake.wait_abandoned(count=1)          until the client gave up on `count` held requests
                            (recover() before that may still carry a request out, as PagerDuty
                            may act on an event whose answer the client never read)
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web

from tests.fakes.loopback import serve

ROUTING_KEY = "R0UT1NGKEY0FTHEFAKE0000000000000"  # 32 characters, like an integration key
ACTIONS = ("trigger", "acknowledge", "resolve")
SEVERITIES = ("critical", "error", "warning", "info")
MAX_SUMMARY = 1024
MAX_DEDUP_KEY = 255
INVALID = "Event object is invalid"


@dataclass
class Request:
    """One request the fake saw."""

    body: Any  # the decoded JSON (or the raw text when it was not JSON)
    status: int = 0  # 0: not answered (held, or abandoned)
    errors: list[str] = field(default_factory=list)  # why it was refused (400)
    fault: str | None = None  # the arrangement that answered it: "rate_limit", "fail", "hang", "abandoned"

    @property
    def action(self) -> str | None:
        return self.body.get("event_action") if isinstance(self.body, dict) else None


@dataclass
class Incident:
    dedup_key: str
    summary: str
    severity: str
    source: str
    links: list[dict[str, Any]]
    status: str = "triggered"  # -> acknowledged -> resolved
    alerts: int = 1  # triggers that joined it (the first one included)
    actions: list[str] = field(default_factory=lambda: ["trigger"])  # every accepted event's action

    @property
    def open(self) -> bool:
        return self.status != "resolved"


def schema_errors(body: Any, routing_key: str) -> list[str]:
    """What PagerDuty would refuse in `body`, in its words; [] when it is a valid event."""
    if not isinstance(body, dict):
        return ["Event object must be a JSON object"]
    errors = []
    key = body.get("routing_key")
    if not isinstance(key, str) or not key:
        errors.append("'routing_key' is missing or blank")
    elif key != routing_key:
        errors.append("'routing_key' is invalid")  # never echoed: it is a secret
    action = body.get("event_action")
    if not isinstance(action, str) or not action:
        errors.append("'event_action' is missing or blank")
    elif action not in ACTIONS:
        errors.append(f"'event_action' is invalid (must be one of: {', '.join(ACTIONS)})")
    dedup = body.get("dedup_key")
    if dedup is not None and (not isinstance(dedup, str) or not dedup or len(dedup) > MAX_DEDUP_KEY):
        errors.append(f"'dedup_key' must be a string of 1 to {MAX_DEDUP_KEY} characters")
    elif dedup is None and action in ("acknowledge", "resolve"):
        errors.append(f"'dedup_key' is required for event_action {action}")
    if action == "trigger":
        errors += _payload_errors(body.get("payload"))
        errors += _links_errors(body.get("links", []))
    return errors


def _payload_errors(payload: Any) -> list[str]:
    if not isinstance(payload, dict):
        return ["'payload' is missing or not an object"]
    errors = [f"'payload.{name}' is missing or blank" for name in ("summary", "source", "severity")
              if not isinstance(payload.get(name), str) or not payload[name].strip()]
    summary, severity = payload.get("summary"), payload.get("severity")
    if isinstance(summary, str) and len(summary) > MAX_SUMMARY:
        errors.append(f"'payload.summary' is too long (maximum is {MAX_SUMMARY} characters)")
    if isinstance(severity, str) and severity.strip() and severity not in SEVERITIES:
        errors.append(f"'payload.severity' is invalid (must be one of: {', '.join(SEVERITIES)})")
    if "timestamp" in payload:
        try:
            datetime.fromisoformat(str(payload["timestamp"]))
        except ValueError:
            errors.append("'payload.timestamp' is not a valid ISO 8601 timestamp")
    if "custom_details" in payload and not isinstance(payload["custom_details"], dict):
        errors.append("'payload.custom_details' must be an object")
    return errors


def _links_errors(links: Any) -> list[str]:
    if not isinstance(links, list) or not all(isinstance(k, dict) and isinstance(k.get("href"), str) for k in links):
        return ["'links' must be a list of objects with an 'href'"]
    return []


class FakePagerDuty:
    def __init__(self, routing_key: str = ROUTING_KEY) -> None:
        self.routing_key = routing_key
        self.requests: list[Request] = []
        self.events: list[dict[str, Any]] = []
        self.incidents: list[Incident] = []
        self._failures: list[tuple[int, float | None, str]] = []  # (status, retry_after, fault), one per request
        self._hanging = False
        self._held: list[asyncio.Future[bool]] = []
        self._changed: asyncio.Condition | None = None
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> "FakePagerDuty":
        self._changed = asyncio.Condition()
        app = web.Application()
        app.router.add_post("/v2/enqueue", self._enqueue)
        self._runner, self._port = await serve(app, handler_cancellation=True)
        return self

    async def stop(self) -> None:
        self._release(False)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> "FakePagerDuty":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        if self._port is None:
            raise RuntimeError("FakePagerDuty is not started")
        return f"http://127.0.0.1:{self._port}/v2/enqueue"

    # --- arranging ---------------------------------------------------------------------------------

    def rate_limit(self, times: int = 1, retry_after: float | None = 1) -> None:
        self._failures += [(429, retry_after, "rate_limit")] * times

    def fail(self, times: int = 1, status: int = 500, retry_after: float | None = None) -> None:
        self._failures += [(status, retry_after, "fail")] * times

    def hang(self) -> None:
        self._hanging = True

    def recover(self) -> None:
        self._failures.clear()
        self._hanging = False
        self._release(True)

    # --- reading -----------------------------------------------------------------------------------

    def incident(self, dedup_key: str) -> Incident:
        for incident in reversed(self.incidents):
            if incident.dedup_key == dedup_key:
                return incident
        raise KeyError(f"no incident with dedup_key {dedup_key!r}; incidents: {self.incidents}")

    @property
    def held(self) -> int:
        return len(self._held)

    async def wait_for(self, count: int = 1, action: str | None = None, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The first `count` accepted events (of `action`), waiting for them; AssertionError on timeout."""

        def matching() -> list[dict[str, Any]]:
            return [e for e in self.events if action is None or e.get("event_action") == action]

        return await self._wait(lambda: len(matching()) >= count, matching, timeout,
                                f"{count} {action or ''} event(s)")

    async def wait_for_requests(self, count: int, timeout: float = 10.0) -> list[Request]:
        """Wait until `count` requests were answered (accepted or not)."""
        def answered() -> list[Request]:
            return [r for r in self.requests if r.status]

        return await self._wait(lambda: len(answered()) >= count, answered, timeout, f"{count} answered request(s)")

    async def wait_held(self, count: int = 1, timeout: float = 10.0) -> None:
        """Until `count` requests are held by hang()."""
        await self._wait(lambda: len(self._held) >= count, lambda: None, timeout, f"{count} held request(s)")

    async def wait_abandoned(self, count: int = 1, timeout: float = 10.0) -> None:
        """Until the client has given up on `count` held requests (they will never be carried out)."""

        def abandoned() -> bool:
            return sum(r.fault == "abandoned" for r in self.requests) >= count

        await self._wait(abandoned, lambda: None, timeout, f"{count} abandoned request(s)")

    async def _wait(self, done: Any, result: Any, timeout: float, what: str) -> Any:
        cond = self._condition()
        try:
            async with asyncio.timeout(timeout):
                async with cond:
                    await cond.wait_for(done)
        except TimeoutError:
            raise AssertionError(f"PagerDuty fake: no {what} after {timeout:g} s; requests: {self.requests}") from None
        return result()

    # --- internals ---------------------------------------------------------------------------------

    def _condition(self) -> asyncio.Condition:
        if self._changed is None:
            raise RuntimeError("FakePagerDuty is not started")
        return self._changed

    async def _notify(self) -> None:
        cond = self._condition()
        async with cond:
            cond.notify_all()

    def _release(self, carry_out: bool) -> None:
        held, self._held = self._held, []
        for release in held:
            if not release.done():
                release.set_result(carry_out)

    async def _hold(self, request: Request) -> bool:
        release: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._held.append(release)
        request.fault = "hang"
        await self._notify()
        try:
            return await release
        except asyncio.CancelledError:
            request.fault = "abandoned"
            await self._notify()
            raise
        finally:
            self._held = [r for r in self._held if r is not release]

    async def _enqueue(self, http: web.Request) -> web.Response:
        raw = await http.text()
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw
        request = Request(body)
        self.requests.append(request)
        try:
            return await self._answer(request)
        finally:
            await self._notify()

    async def _answer(self, request: Request) -> web.Response:
        if self._hanging and not await self._hold(request):
            request.status = 503
            return web.json_response({"status": "unavailable"}, status=503)
        if self._failures:
            status, retry_after, request.fault = self._failures.pop(0)
            request.status = status
            headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
            text = "Too many requests" if status == 429 else "Internal server error"
            return web.json_response({"status": "error", "message": text}, status=status, headers=headers)
        request.fault = None
        request.errors = schema_errors(request.body, self.routing_key)
        if request.errors:
            request.status = 400
            return web.json_response({"status": "invalid event", "message": INVALID, "errors": request.errors},
                                     status=400)
        event = dict(request.body)
        event.setdefault("dedup_key", uuid.uuid4().hex)
        self.events.append(event)
        self._apply(event)
        request.status = 202
        return web.json_response({"status": "success", "message": "Event processed",
                                  "dedup_key": event["dedup_key"]}, status=202)

    def _apply(self, event: dict[str, Any]) -> None:
        key, action = event["dedup_key"], event["event_action"]
        current = next((i for i in reversed(self.incidents) if i.dedup_key == key and i.open), None)
        if action == "trigger":
            if current is None:
                payload = event["payload"]
                self.incidents.append(Incident(key, payload["summary"], payload["severity"], payload["source"],
                                               list(event.get("links", []))))
            else:
                current.alerts += 1
                current.actions.append(action)
        elif current is not None:
            current.actions.append(action)
            if action == "resolve":
                current.status = "resolved"
            elif current.status == "triggered":
                current.status = "acknowledged"
