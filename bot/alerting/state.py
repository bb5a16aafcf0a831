"""An alert's thread as the store keeps it: a typed, versioned document, changed by compare-and-set.

One document per thread, at bot.state.keys.thread(source, fingerprint). Every change goes through
`change_thread`: read it with its version, apply a pure function, write it back only if nobody
wrote in between (otherwise read again and re-apply). So a resolution stored while a "still
firing" note is being decided is never overwritten: the note's change is re-applied to the
resolved thread and decides there is nothing to note.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from bot.alerting.model import Alert, AlertStatus
from bot.slack.once import PostRecord
from bot.state.keys import ThreadSource
from bot.state.store import Store

THREAD_TTL = 30 * 86400.0  # a thread is remembered a month after its last change, then forgotten
MAX_CHANGE_ATTEMPTS = 50

Investigation = Literal["pending", "done", "skipped"]


@dataclass(frozen=True)
class AlertThread:
    """An alert's thread in Slack, from firing to resolved.

    fingerprint   Alertmanager's fingerprint of the alert (its label set)
    source        "webhook": the bot posted the alert itself and threads under its own post;
                  "post": Alertmanager posted it in Slack and the bot threads under that post
    alertname, labels, annotations, generator_url
                  the alert as last notified (the playbook and the messages are built from it)
    starts_at     ISO 8601: which firing this thread is for; a later firing of the same alert
                  (a new startsAt) gets a new thread
    channel       where the thread is: the channel ID once Slack has answered with it
    ts            the thread's root message: the bot's alert post (webhook) or Alertmanager's
                  post (post); "" until the bot's own post is known to exist
    status        "firing" or "resolved", as last notified
    ends_at       ISO 8601 when it resolved ("" while firing or when Alertmanager didn't say)
    resolved_noted  the thread is resolved in Slack: the bot's post edited (webhook) and the
                  "Resolved after …" reply posted; a new firing of the alert finds it so, or makes it so
    last_note     clock seconds of the last "still firing" note, or of the opening
    investigation "pending" (the playbook still has to run or finish), "done", or "skipped"
                  (resolved before it could start)
    posts         the messages posted once, by name: "root", "reply" (the investigation),
                  "resolved", "note:<window>"; see PostRecord
    reply_final   the investigation reply's finished blocks and text, kept until the final edit
                  went through, so a retry edits without running the playbook again
    """

    fingerprint: str
    source: ThreadSource
    alertname: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    generator_url: str
    starts_at: str
    channel: str
    ts: str = ""
    status: AlertStatus = "firing"
    ends_at: str = ""
    resolved_noted: bool = False
    last_note: float = 0.0
    investigation: Investigation = "pending"
    posts: Mapping[str, PostRecord] = field(default_factory=dict)
    reply_final: Mapping[str, Any] | None = None

    # --------------------------------------------------------------- conversions

    def to_doc(self) -> dict[str, Any]:
        # Field by field, not dataclasses.asdict: that deep-copies reply_final's blocks on every write.
        doc = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        doc["labels"], doc["annotations"] = dict(self.labels), dict(self.annotations)
        doc["posts"] = {name: dataclasses.asdict(record) for name, record in self.posts.items()}
        return doc

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> AlertThread:
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in doc.items() if k in names}
        values["posts"] = {name: PostRecord(**record) for name, record in (doc.get("posts") or {}).items()}
        return cls(**values)

    @classmethod
    def open(cls, alert: Alert, source: ThreadSource, channel: str, ts: str, now: float) -> AlertThread:
        return cls(
            fingerprint=alert.fingerprint, source=source, alertname=alert.name, labels=dict(alert.labels),
            annotations=dict(alert.annotations), generator_url=alert.generator_url,
            starts_at=iso(alert.starts_at), channel=channel, ts=ts, status="firing", last_note=now,
        )

    def replace(self, **changes: Any) -> AlertThread:
        return dataclasses.replace(self, **changes)

    def alert(self) -> Alert:
        """The alert as this thread knows it (for the playbook and the messages)."""
        return Alert(
            fingerprint=self.fingerprint, status=self.status, labels=dict(self.labels),
            annotations=dict(self.annotations), starts_at=datetime.fromisoformat(self.starts_at),
            ends_at=datetime.fromisoformat(self.ends_at) if self.ends_at else None,
            generator_url=self.generator_url,
        )

    def is_for(self, alert: Alert) -> bool:
        """Is this the thread of that very firing (not of an older one of the same alert)?"""
        return alert.starts_at is None or self.starts_at == iso(alert.starts_at)


def iso(when: datetime | None) -> str:
    return when.isoformat() if when is not None else ""


Change = Callable[["AlertThread | None"], "AlertThread | None"]


async def change_thread(store: Store, key: str, change: Change) -> AlertThread | None:
    """Apply `change` to the stored thread by compare-and-set; returns the thread as stored after.

    `change` gets the current thread (None if there is none) and returns the new one, or the same
    object (or None) to leave it as it is. It may run several times: keep it pure.
    """
    for _ in range(MAX_CHANGE_ATTEMPTS):
        current = await store.get(key)
        thread = AlertThread.from_doc(current.value) if current is not None else None
        changed = change(thread)
        if changed is None or changed is thread:
            return thread
        if await store.put_if(key, changed.to_doc(), current.version if current else None, ttl=THREAD_TTL):
            return changed
    raise RuntimeError(f"{key}: gave up after {MAX_CHANGE_ATTEMPTS} conflicting writes")


async def load_thread(store: Store, key: str) -> AlertThread | None:
    current = await store.get(key)
    return AlertThread.from_doc(current.value) if current is not None else None
