"""An alert's thread as the store keeps it: a typed, versioned document, changed by compare-and-set.

One document per thread, at bot.state.keys.thread(source, id). A thread holds one or more
alerts: a webhook thread is one Alertmanager group (its groupKey; every notification carries the
group whole), an Alertmanager post's thread is one alert. `Notice` is what one notification says,
and `continues`/`merged` decide, purely, whether it belongs to the thread's firing and what the
thread becomes. Every change goes through
`change_thread`: read it with its version, apply a pure function, write it back only if nobody
wrote in between (otherwise read again and re-apply). So a resolution stored while a "still
firing" note is being decided is never overwritten: the note's change is re-applied to the
resolved thread and decides there is nothing to note.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from bot.alerting.model import Alert, AlertStatus, Notification, alert_from_doc, alert_to_doc
from bot.slack.once import PostRecord
from bot.state.keys import ThreadSource
from bot.state.keys import thread as thread_key
from bot.state.store import Store, change_document

THREAD_TTL = 30 * 86400.0  # a thread is remembered a month after its last change, then forgotten

Investigation = Literal["pending", "done", "skipped"]
SEVERITY_ORDER = ("critical", "warning", "info")


@dataclass(frozen=True)
class Notice:
    """What one notification says about one thread's alerts.

    id        the thread's id: the group's (a hash of Alertmanager's groupKey), or the alert's
              fingerprint when the thread is one alert
    alerts    the alerts as notified, firing and resolved
    whole     the alerts are the whole group as Alertmanager has it now: one that was firing and
              is absent has stopped firing (a webhook notification, unless Alertmanager truncated it)
    """

    id: str
    alerts: tuple[Alert, ...]
    group_key: str = ""
    whole: bool = False
    left_out: int = 0  # alerts Alertmanager left out of the notification (webhook max_alerts)

    @property
    def firing(self) -> bool:
        return any(a.status == "firing" for a in self.alerts)

    def to_doc(self) -> dict[str, Any]:
        return {"id": self.id, "alerts": [alert_to_doc(a) for a in self.alerts], "group_key": self.group_key,
                "whole": self.whole, "left_out": self.left_out}

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> Notice:
        """A job's payload; a job recorded before groups (one `alert`) is read as a one-alert notice."""
        if "notice" not in payload:
            return cls.of_alert(alert_from_doc(payload["alert"]))
        doc = payload["notice"]
        return cls(id=str(doc["id"]), alerts=tuple(alert_from_doc(a) for a in doc["alerts"]),
                   group_key=str(doc.get("group_key") or ""), whole=bool(doc.get("whole")),
                   left_out=int(doc.get("left_out") or 0))

    @classmethod
    def of_alert(cls, alert: Alert) -> Notice:
        """A thread of its own for one alert (an Alertmanager post's, or a webhook alert without a
        group): the notice is all of that thread."""
        return cls(id=alert.fingerprint, alerts=(alert,), whole=True)


def post_thread_id(channel: str, ts: str) -> str:
    """The id of the thread under an Alertmanager post: the post's (channel, ts), hashed."""
    return hashlib.sha256(f"{channel}:{ts}".encode()).hexdigest()[:20]


def group_notices(notification: Notification) -> list[Notice]:
    """A webhook notification as notices: one for its group; one per alert when it names no group
    (an old Alertmanager, or a sender that is not one)."""
    if not notification.group_key:
        return [Notice.of_alert(alert) for alert in notification.alerts]
    group_id = hashlib.sha256(notification.group_key.encode()).hexdigest()[:20]
    return [Notice(id=group_id, alerts=notification.alerts, group_key=notification.group_key,
                   whole=not notification.truncated, left_out=notification.truncated)]


@dataclass(frozen=True)
class AlertThread:
    """An alert's thread in Slack, from firing to resolved.

    fingerprint   the thread's id: Alertmanager's fingerprint of the alert (post), or the
                  group's id (webhook; Notice.id)
    source        "webhook": the bot posted the alert itself and threads under its own post;
                  "post": Alertmanager posted it in Slack and the bot threads under that post
    alertname, labels, annotations, generator_url
                  what the thread's alerts have in common (all of it, for one alert): the
                  thread's playbook, offers and messages are built from it
    alerts        every alert of this firing by fingerprint, as last notified (alert docs)
    group_key     Alertmanager's groupKey (webhook)
    left_out      alerts of the group Alertmanager left out of its last notification (max_alerts)
                  and not known here: shown as a count
    starts_at     ISO 8601: which firing this thread is for (its first alert's startsAt); the
                  group firing again after it resolved (new alerts, or a new startsAt) gets a new thread
    revision, shown  the alerts changed `revision` times; the bot's post shows revision `shown`
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
    round         the investigation's round: 1 at the opening; alerts that join later with steps
                  not run yet start the next (a reply each, "reply" then "reply:2", …)
    planned       the alerts (fingerprints) whose steps some round has taken
    steps_seen    every distinct step taken into a round so far (run, or listed as not run)
    round_steps, round_skipped  this round's steps to run, and those listed as not run (capped)
    findings      the investigation's key findings: "title: summary" of each result that is not OK
    acked_by, acked_at, acked_job  who acknowledged the thread (a Slack user ID), when (clock
                  seconds), and the job that did (its retry carries on; any other is told "already")
    escalations   each escalation, in order: {id, kind: "ack" | "resolve" | "related" | "manual", at,
                  reason, by, dedup_key, pagerduty: what PagerDuty answered or why it was not paged}
    timers_set, timers_for  the SLA's deadlines are recorded as durable timers (bot.alerting.incidents),
                  for this severity (a worse one joining the group records its tighter deadlines)
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
    alerts: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    group_key: str = ""
    left_out: int = 0
    revision: int = 0
    shown: int = 0
    round: int = 1
    planned: tuple[str, ...] = ()
    steps_seen: tuple[str, ...] = ()
    round_steps: tuple[str, ...] = ()
    round_skipped: tuple[str, ...] = ()
    findings: tuple[str, ...] = ()
    acked_by: str = ""
    acked_at: float = 0.0
    acked_job: str = ""
    escalations: tuple[Mapping[str, Any], ...] = ()
    timers_set: bool = False
    timers_for: str = ""

    # --------------------------------------------------------------- conversions

    def to_doc(self) -> dict[str, Any]:
        # Field by field, not dataclasses.asdict: that deep-copies reply_final's blocks on every write.
        doc = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        doc["labels"], doc["annotations"] = dict(self.labels), dict(self.annotations)
        doc["alerts"] = {fp: dict(a) for fp, a in self.alerts.items()}
        for name in ("planned", "steps_seen", "round_steps", "round_skipped", "findings"):
            doc[name] = list(doc[name])
        doc["escalations"] = [dict(e) for e in self.escalations]
        doc["posts"] = {name: dataclasses.asdict(record) for name, record in self.posts.items()}
        return doc

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> AlertThread:
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in doc.items() if k in names}
        values["posts"] = {name: PostRecord(**record) for name, record in (doc.get("posts") or {}).items()}
        for name in ("planned", "steps_seen", "round_steps", "round_skipped", "findings", "escalations"):
            values[name] = tuple(values.get(name) or ())
        if "planned" not in doc and doc.get("investigation") != "pending":
            values["planned"] = (str(doc["fingerprint"]),)  # stored before rounds: its one round is taken
        return cls(**values)

    @classmethod
    def open_notice(cls, notice: Notice, source: ThreadSource, channel: str, ts: str,
                    now: float) -> AlertThread:
        """A new thread for the notice's alerts; resolved (nothing to investigate) when none fires."""
        firing = [a for a in notice.alerts if a.status == "firing"]
        starts = min(iso(a.starts_at) for a in (firing or notice.alerts))
        thread = cls(fingerprint=notice.id, source=source, alertname="", labels={}, annotations={},
                     generator_url="", starts_at=starts, channel=channel, ts=ts, status="firing", last_note=now,
                     group_key=notice.group_key, alerts={a.fingerprint: alert_to_doc(a) for a in notice.alerts},
                     left_out=notice.left_out)
        thread = thread.with_view()
        if not firing:  # resolved before the bot could post it: say so, don't investigate
            thread = thread.replace(status="resolved", ends_at=thread.last_end(), investigation="skipped")
        return thread

    @property
    def key(self) -> str:
        """The thread's key in the store (bot.state.keys.thread)."""
        return thread_key(self.source, self.fingerprint)

    def replace(self, **changes: Any) -> AlertThread:
        return dataclasses.replace(self, **changes)

    def alert(self) -> Alert:
        """What the thread's alerts have in common, as one alert (for the playbook, the offers and
        the messages); for a one-alert thread, that alert."""
        return Alert(
            fingerprint=self.fingerprint, status=self.status, labels=dict(self.labels),
            annotations=dict(self.annotations), starts_at=datetime.fromisoformat(self.starts_at),
            ends_at=datetime.fromisoformat(self.ends_at) if self.ends_at else None,
            generator_url=self.generator_url,
        )

    def members(self) -> list[Alert]:
        """The thread's alerts, firing first, each group in the order they started; a thread stored
        before groups is its one alert."""
        if not self.alerts:
            return [self.alert()]
        members = [alert_from_doc(doc) for doc in self.alerts.values()]
        return sorted(members, key=lambda a: (a.status != "firing", iso(a.starts_at), a.fingerprint))

    def firing(self) -> list[Alert]:
        return [a for a in self.members() if a.status == "firing"]

    def continues(self, notice: Notice) -> bool:
        """Does the notice belong to this thread's firing, rather than open a new thread?

        A firing thread continues while the notice names one of its alerts as it knows it (same
        startsAt), or when the notice may be partial (an alert joins the group). A resolved thread
        takes only notices about its own alerts (a repeat, or a late one): anything new fires anew."""
        known = {(a.fingerprint, iso(a.starts_at)) for a in self.members()}
        named = [(a.fingerprint, iso(a.starts_at)) in known for a in notice.alerts]
        if self.status == "resolved":
            return all(named)
        return any(named) or not notice.whole

    def merged(self, notice: Notice, now: str) -> AlertThread:
        """The firing thread with the notice's news: alerts that joined, fired anew or resolved, and
        (for a whole group) those absent, which stopped firing. Resolved when none fires any more."""
        if self.status != "firing":
            return self
        alerts = {fp: dict(doc) for fp, doc in self.alerts.items()} or {
            self.fingerprint: alert_to_doc(self.alert())}
        for alert in notice.alerts:
            alerts[alert.fingerprint] = alert_to_doc(alert)
        if notice.whole:
            named = {a.fingerprint for a in notice.alerts}
            for fp, doc in alerts.items():
                if fp not in named and doc["status"] == "firing":
                    alerts[fp] = {**doc, "status": "resolved", "ends_at": now}
        # Of the alerts Alertmanager left out, those not among the ones known here are counted.
        left_out = max(0, notice.left_out - len(alerts.keys() - {a.fingerprint for a in notice.alerts}))
        if alerts == self.alerts and left_out == self.left_out:
            return self
        thread = self.replace(alerts=alerts, left_out=left_out, revision=self.revision + 1).with_view()
        if not thread.firing():
            thread = resolved_thread(thread, thread.last_end() or now)
        return thread

    def with_view(self) -> AlertThread:
        """The common view (alertname, labels, annotations, generator_url) of the alerts."""
        members = self.members()
        labels = _common(a.labels for a in members)
        names = sorted({a.name for a in members})
        return self.replace(
            alertname=labels.get("alertname") or ", ".join(names), labels=labels,
            annotations=_common(a.annotations for a in members), generator_url=members[0].generator_url)

    def ended(self, when: str) -> AlertThread:
        """The thread as resolved at `when`, with every alert still firing in it."""
        alerts = {fp: {**doc, "status": "resolved", "ends_at": when} if doc["status"] == "firing" else doc
                  for fp, doc in self.alerts.items()}
        return resolved_thread(self.replace(alerts=alerts, revision=self.revision + (alerts != self.alerts)), when)

    @property
    def severity(self) -> str:
        """The thread's severity: its alerts' (the most severe of them)."""
        return worst_severity(self.members())

    @property
    def reply_name(self) -> str:
        """The investigation reply of the current round, in `posts`: "reply", then "reply:2", …"""
        return "reply" if self.round == 1 else f"reply:{self.round}"

    def last_end(self) -> str:
        """When the last of its resolved alerts ended ("" if none says)."""
        return max((doc.get("ends_at") or "" for doc in self.alerts.values() if doc["status"] == "resolved"),
                   default="")


def iso(when: datetime | None) -> str:
    return when.isoformat() if when is not None else ""


def worst_severity(alerts: Iterable[Alert]) -> str:
    """The most severe of the alerts' severities (critical, warning, info; else any)."""
    found = {a.severity for a in alerts}
    return next((s for s in SEVERITY_ORDER if s in found), min(found, default=""))


def _common(maps: Iterable[Mapping[str, str]]) -> dict[str, str]:
    """The pairs every map has."""
    common: dict[str, str] | None = None
    for m in maps:
        common = dict(m) if common is None else {k: v for k, v in common.items() if m.get(k) == v}
    return common or {}


def resolved_thread(thread: AlertThread, ended: str) -> AlertThread:
    if thread.status != "firing":
        return thread
    # An investigation that has not posted yet is not started any more.
    skip = thread.investigation == "pending" and thread.reply_name not in thread.posts
    return thread.replace(status="resolved", ends_at=ended,
                          investigation="skipped" if skip else thread.investigation)


Change = Callable[["AlertThread | None"], "AlertThread | None"]


async def change_thread(store: Store, key: str, change: Change) -> AlertThread | None:
    """Apply `change` to the stored thread by compare-and-set; returns the thread as stored after.

    `change` gets the current thread (None if there is none) and returns the new one, or the same
    object (or None) to leave it as it is. It may run several times: keep it pure.
    """
    def apply(doc: Any) -> Any:
        thread = AlertThread.from_doc(doc) if doc is not None else None
        changed = change(thread)
        return doc if changed is None or changed is thread else changed.to_doc()

    stored = await change_document(store, key, apply, ttl=THREAD_TTL)
    return AlertThread.from_doc(stored) if stored is not None else None


async def load_thread(store: Store, key: str) -> AlertThread | None:
    current = await store.get(key)
    return AlertThread.from_doc(current.value) if current is not None else None
