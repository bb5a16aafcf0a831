"""An async client of PagerDuty's Events API v2: trigger, acknowledge and resolve by dedup_key.

    event = PagerDutyEvent.trigger(dedup_key("alert", fingerprint), summary, source="prod", severity="critical")
    key = await PagerDuty(http, routing_key).send(event)      # PagerDuty's dedup_key, from its 202
    await PagerDuty(http, routing_key).send(PagerDutyEvent.resolve(key))

Failures are said for the durable worker (bot/state/worker.py): a 429, a 5xx, a timeout or no
connection is a TemporaryError (retried with backoff; after Retry-After when PagerDuty gives one);
a 400 (or any other 4xx) is a PermanentError naming PagerDuty's `message` and `errors`, never
retried. The routing key is a secret: it is sent only in the request's body and never appears in
an exception, a log line or a repr (any text that would carry it has it replaced).

https://developer.pagerduty.com/docs/events-api-v2/trigger-events/
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import urlsplit

import aiohttp

from bot.errors import PermanentError, TemporaryError
from bot.settings import safe_url
from diagnostics.http_api import connection_reason, one_line, snippet

log = logging.getLogger(__name__)

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
MAX_SUMMARY = 1024  # payload.summary: "a brief text summary … maximum length is 1024 characters"
MAX_DEDUP_KEY = 255  # dedup_key: "maximum of 255 characters"
ACTIONS = ("trigger", "acknowledge", "resolve")
SEVERITIES = ("critical", "error", "warning", "info")
REDACTED = "[redacted]"

Action = Literal["trigger", "acknowledge", "resolve"]
Severity = Literal["critical", "error", "warning", "info"]
# An alert's severity label -> PagerDuty's; any other (or none) is "error".
_ALERT_SEVERITIES: Mapping[str, Severity] = MappingProxyType(
    {"critical": "critical", "warning": "warning", "info": "info"})


def pagerduty_severity(severity: str | None) -> Severity:
    """An alert's severity (critical, warning, info, any case) as PagerDuty's; anything else is "error"."""
    return _ALERT_SEVERITIES.get((severity or "").strip().lower(), "error")


def dedup_key(kind: str, identity: str) -> str:
    """A stable dedup_key for one thing escalated (`kind`: "alert", "group", "related", "manual"):
    the same kind and identity always give the same key, so escalating it twice pages once."""
    kind = kind.strip()
    if not kind or "/" in kind:
        raise ValueError(f"dedup_key kind must be a non-empty word without '/', not {kind!r}")
    digest = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:32]
    key = f"chatops/{kind}/{digest}"
    if len(key) > MAX_DEDUP_KEY:
        raise ValueError(f"dedup_key kind {kind[:40]!r}… is too long")
    return key


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _http_link(href: str) -> bool:
    parts = urlsplit(href.strip())
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)


@dataclass(frozen=True)
class PagerDutyEvent:
    """One event for PagerDuty. Build it with trigger(), acknowledge() or resolve().

    For a trigger the summary is cut to 1024 characters, the severity mapped (pagerduty_severity),
    links kept only with http(s) hrefs (as (href, text) pairs) and custom_details frozen.
    """

    action: Action
    dedup_key: str
    summary: str = ""
    source: str = ""
    severity: Severity = "error"
    links: tuple[tuple[str, str], ...] = ()
    custom_details: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    timestamp: datetime | None = None

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"event action must be one of {', '.join(ACTIONS)}, not {self.action!r}")
        if not self.dedup_key.strip() or len(self.dedup_key) > MAX_DEDUP_KEY:
            raise ValueError(f"dedup_key must be 1 to {MAX_DEDUP_KEY} characters")
        if self.action == "trigger" and not (self.summary.strip() and self.source.strip()):
            raise ValueError("a trigger needs a summary and a source")
        set_ = object.__setattr__  # frozen: normalise once, here
        set_(self, "summary", _cut(" ".join(self.summary.split()), MAX_SUMMARY))
        set_(self, "source", self.source.strip())
        set_(self, "severity", pagerduty_severity(self.severity))
        set_(self, "links", tuple((href.strip(), text) for href, text in self.links if _http_link(href)))
        set_(self, "custom_details", MappingProxyType(dict(self.custom_details)))

    @classmethod
    def trigger(cls, dedup_key: str, summary: str, source: str, severity: str = "error", *,
                links: Iterable[tuple[str, str]] = (), custom_details: Mapping[str, Any] | None = None,
                timestamp: datetime | None = None) -> "PagerDutyEvent":
        """Open an incident (or add to the open one with this dedup_key). `severity`: an alert's."""
        return cls("trigger", dedup_key, summary, source, pagerduty_severity(severity), tuple(links),
                   MappingProxyType(dict(custom_details or {})), timestamp)

    @classmethod
    def acknowledge(cls, dedup_key: str) -> "PagerDutyEvent":
        return cls("acknowledge", dedup_key)

    @classmethod
    def resolve(cls, dedup_key: str) -> "PagerDutyEvent":
        return cls("resolve", dedup_key)

    def body(self, routing_key: str) -> dict[str, Any]:
        """The request body (Events API v2): payload and links only on a trigger."""
        body: dict[str, Any] = {"routing_key": routing_key, "event_action": self.action, "dedup_key": self.dedup_key}
        if self.action == "trigger":
            payload: dict[str, Any] = {"summary": self.summary, "source": self.source, "severity": self.severity}
            if self.timestamp is not None:
                stamp = self.timestamp if self.timestamp.tzinfo else self.timestamp.replace(tzinfo=timezone.utc)
                payload["timestamp"] = stamp.isoformat()
            if self.custom_details:
                payload["custom_details"] = dict(self.custom_details)
            body["payload"] = payload
            if self.links:
                body["links"] = [{"href": href, "text": text} if text else {"href": href} for href, text in self.links]
        return body


class PagerDuty:
    """Sends events to one PagerDuty service (its integration's routing key) over `http`."""

    def __init__(self, http: aiohttp.ClientSession, routing_key: str, url: str = EVENTS_URL,
                 timeout: float = 10) -> None:
        if not routing_key.strip():
            raise ValueError("PagerDuty needs a routing key")
        self._http = http
        self._routing_key = routing_key.strip()
        self.url = url
        self.location = safe_url(url)  # as messages show it
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"PagerDuty(url={self.location!r}, timeout={self.timeout:g})"

    async def send(self, event: PagerDutyEvent) -> str:
        """Send `event`; PagerDuty's dedup_key from its 202 answer.

        TemporaryError (retry; `delay` from Retry-After): 429, 5xx, 408, a timeout, no connection.
        PermanentError (never retried): a 400 or any other 4xx, with PagerDuty's message and errors.
        """
        body = json.dumps(event.body(self._routing_key))
        try:
            async with asyncio.timeout(self.timeout):
                call = self._http.post(self.url, data=body, headers={"Content-Type": "application/json"},
                                       timeout=aiohttp.ClientTimeout(total=self.timeout))
                async with call as response:
                    status, headers, raw = response.status, response.headers, await response.read()
        except TimeoutError:
            raise self._temporary(f"timed out after {self.timeout:g} s") from None
        except aiohttp.ClientConnectorError as e:
            raise self._temporary(f"cannot connect: {connection_reason(e.os_error, e.host)}") from None
        except aiohttp.ClientError as e:
            raise self._temporary(f"request failed: {type(e).__name__}: {one_line(str(e))}") from None
        if 200 <= status < 300:
            key = _answer(raw).get("dedup_key")
            key = key if isinstance(key, str) and key else event.dedup_key
            log.info("PagerDuty accepted %s of %s", event.action, key)
            return key
        delay = retry_after(headers.get("Retry-After"))
        if status == 429:
            raise self._temporary("rate limited (HTTP 429)", delay)
        if 400 <= status < 500 and status != 408:
            raise PermanentError(self._scrub(
                f"PagerDuty refused the {event.action} event for {event.dedup_key} (HTTP {status}): {_refusal(raw)}"))
        raise self._temporary(f"HTTP {status}: {snippet(raw)}", delay)

    def _temporary(self, what: str, delay: float | None = None) -> TemporaryError:
        return TemporaryError(self._scrub(f"PagerDuty at {self.location}: {what}"), delay=delay)

    def _scrub(self, text: str) -> str:
        """`text` without the routing key, should anything (a proxy's page, an error) echo it."""
        return text.replace(self._routing_key, REDACTED)


def _answer(raw: bytes) -> dict[str, Any]:
    try:
        answer = json.loads(raw)
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}


def _refusal(raw: bytes) -> str:
    """PagerDuty's `message` and `errors` on one line: "Event object is invalid: 'x' is missing; …"."""
    answer = _answer(raw)
    message = answer.get("message")
    errors = answer.get("errors")
    parts = [one_line(str(message))] if message else []
    if isinstance(errors, list) and errors:
        parts.append("; ".join(one_line(str(e)) for e in errors))
    return _cut(": ".join(parts), 500) if parts else snippet(raw)


def retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (a number of seconds or an HTTP date), None when absent or unreadable."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - datetime.now(timezone.utc)).total_seconds()
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        return None
    return max(0.0, seconds)


__all__ = ["ACTIONS", "EVENTS_URL", "MAX_SUMMARY", "SEVERITIES", "PagerDuty", "PagerDutyEvent", "dedup_key",
           "pagerduty_severity", "retry_after"]
