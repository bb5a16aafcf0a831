"""The audit trail: every request, preview, approval, refusal, cancel, expiry, execution and result.

Each entry is appended to the store's `audit` log (never expiring: bot.state.keys.AUDIT_LOG) and
written as one JSON log line (logger `audit`), so the trail is in the store for `/ops audit` and
in the log pipeline for whoever keeps logs longer. An entry says who, when, what, on which
target, before and after, and the Slack permalink of the approval message.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.actions.request import ActionRequest
from bot.state import keys
from bot.state.store import Store

log = logging.getLogger("audit")
COUNTED_KEYS = 10_000

# What happened, in the words /ops audit shows.
EVENTS = ("requested", "previewed", "preview-failed", "refused", "approved", "cancelled", "expired",
          "executed", "failed", "changed", "revert-requested")


@dataclass(frozen=True)
class AuditEntry:
    at: float
    event: str
    user: str  # who did it (a Slack user ID; "bot" for the timer)
    request: str
    action: str
    target: str
    changes: list[dict[str, Any]]
    reason: str
    permalink: str
    requester: str
    user_name: str = ""
    requester_name: str = ""
    thread: str = ""  # "{channel}:{thread_ts}" of the alert thread it was asked in, if any

    @classmethod
    def from_json(cls, at: float, value: dict[str, Any]) -> AuditEntry:
        return cls(at=at, event=str(value.get("event", "")), user=str(value.get("user", "")),
                   request=str(value.get("request", "")), action=str(value.get("action", "")),
                   target=str(value.get("target", "")), changes=list(value.get("changes") or []),
                   reason=str(value.get("reason", "")), permalink=str(value.get("permalink", "")),
                   requester=str(value.get("requester", "")), user_name=str(value.get("user_name", "")),
                   requester_name=str(value.get("requester_name", "")), thread=str(value.get("thread", "")))


class Audit:
    def __init__(self, store: Store, observe: Callable[[str, str], None] | None = None) -> None:
        """`observe(action, event)`: told of every entry appended (for /metrics)."""
        self.store = store
        self.observe = observe
        # Keys this process counted lately: a step retried here is counted once (a retry after a
        # restart, on another replica, may count twice; the trail itself is read once per key).
        self._counted: OrderedDict[str, None] = OrderedDict()

    async def _append(self, entry: dict[str, Any]) -> None:
        await self.store.append(keys.AUDIT_LOG, entry)
        log.info("%s", json.dumps({"audit": entry}, sort_keys=True))
        key = str(entry.get("key", ""))
        if self.observe is not None and key not in self._counted:
            self._counted[key] = None
            if len(self._counted) > COUNTED_KEYS:
                self._counted.popitem(last=False)
            self.observe(str(entry.get("action", "")), str(entry.get("event", "")))

    async def record(self, event: str, request: ActionRequest, user: str, reason: str = "",
                     changes: list[dict[str, Any]] | None = None, user_name: str = "", key: str = "") -> None:
        """Append an entry. `key` names it (default: the request and the event, which happen once
        per request): an entry appended again under the same key (a retried step) is read once."""
        preview = request.preview or {}
        entry = {
            "key": key or f"{request.id}:{event}",
            "event": event, "user": user, "request": request.id, "action": request.spec.get("action", request.action),
            "target": preview.get("target") or _target(request), "requester": request.requester,
            "changes": changes if changes is not None else list(preview.get("changes") or []),
            "reason": reason, "permalink": request.permalink if request.permalink != "-" else "",
            "requester_name": request.requester_name,
            "user_name": user_name or (request.requester_name if user == request.requester else ""),
            "thread": f"{request.channel}:{request.thread_ts}" if request.thread_ts else "",
        }
        await self._append(entry)

    async def refused_unknown(self, request_id: str, user: str, user_name: str, reason: str, key: str) -> None:
        """A click on a request the store does not know (forged, or older than a week)."""
        entry = {"key": key, "event": "refused", "user": user, "user_name": user_name, "request": request_id[:40],
                 "action": "", "target": "", "requester": "", "requester_name": "", "changes": [],
                 "reason": reason, "permalink": ""}
        await self._append(entry)

    async def read(self, since: float | None = None) -> list[AuditEntry]:
        """Entries since `since` (clock seconds), newest first, each once."""
        entries = await self.store.read_log(keys.AUDIT_LOG, since=since, limit=100_000)
        seen: set[str] = set()
        out = []
        for e in entries:
            key = str(dict(e.entry).get("key") or e.id)
            if key not in seen:
                seen.add(key)
                out.append(AuditEntry.from_json(e.at, dict(e.entry)))
        return out[::-1]


def _target(request: ActionRequest) -> str:
    spec = request.spec
    if "deployment" in spec:
        return f"Deployment {spec['namespace']}/{spec['deployment']}"
    if "configmap" in spec:
        return f"ConfigMap {spec['namespace']}/{spec['configmap']}"
    if "silence_id" in spec:
        return f"silence {spec['silence_id']}"
    if "matchers" in spec:
        return "silence " + ", ".join(f"{n}={v}" for n, v in spec["matchers"])
    return request.action
