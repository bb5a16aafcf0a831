"""The post-mortem draft of an alert thread: a Markdown file built from the bot's own record.

`draft(thread, trail, sla, now)` is pure: the thread document (bot.alerting.state.AlertThread),
the audit trail's entries (only those asked in this thread count), the runbook SLA of the
alert's severity (None: it has none, as for info) and the time of drafting. No store, no Slack,
no clock: whoever offers the draft reads those and uploads the file.

Every outside string (labels, annotations, reasons, findings, names) reaches the file through
`md`: control characters removed, credential-shaped strings redacted, one line, and the
characters Markdown gives meaning (`|` ends a table cell, `*`, `_`, `[`, `<`, …) escaped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from bot.actions.audit import EVENTS, AuditEntry
from bot.alerting.state import AlertThread, worst_severity
from bot.slack.mrkdwn import plain, redact
from diagnostics.durations import spoken_duration
from operations.model import Change

MAX_FINDINGS = 10  # key findings listed; the rest counted
MAX_LISTED_ALERTS = 5  # alerts of the group named in the summary table; the rest counted
MAX_TEXT = 500  # characters of one outside string (a finding, a reason, a label value)
ACTION_ITEMS = 3  # empty checkboxes to fill
TITLE_LABELS = ("service", "job", "app", "deployment", "namespace")  # the first one names the title's "(…)"
SHOWN_LABELS_SKIPPED = ("alertname", "severity")  # already rows of their own

# Escalation kinds as the timeline says them.
ESCALATION_WHY = {
    "ack": "not acknowledged within the SLA",
    "resolve": "not resolved within the SLA",
    "related": "several related alerts at once",
    "manual": "escalated by hand",
}


@dataclass(frozen=True)
class Sla:
    """The runbook's response time for one severity: acknowledge within, resolve within (seconds,
    counted from the alert's startsAt)."""

    ack_seconds: float
    resolve_seconds: float


@dataclass(frozen=True)
class PostMortem:
    """The draft.

    title     "Post-mortem draft: HighErrorRate (checkout) 2026-11-25": plain text on one line,
              control characters removed and secrets redacted, not escaped (escape it for Slack)
    filename  "postmortem-higherrorrate-20261125-2342.md": [a-z0-9.-] only
    markdown  the file's content
    summary   one line for the Slack message that carries the file: plain text, not escaped
    """

    title: str
    filename: str
    markdown: str
    summary: str


@dataclass(frozen=True)
class _Event:
    at: float | None  # clock seconds; None: the record does not say when (listed last)
    rank: int  # among events at the same second
    text: str  # Markdown, already escaped


# --------------------------------------------------------------------------- text


_MD_ACTIVE = re.compile(r"([\\`*_\[\]<>|#~&!])")
_LINE_START = re.compile(r"^(\s*)([-+=]|\d+[.)])")
_SLUG = re.compile(r"[^a-z0-9]+")
_USER_ID = re.compile(r"[UWB][A-Z0-9]{2,20}")


def one_line(text: object, limit: int = MAX_TEXT) -> str:
    """Outside text as plain text on one line: control characters removed, secrets redacted,
    whitespace runs (newlines included) made one space, cut at `limit`."""
    flat = " ".join(redact(plain(text)).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def md(text: object, limit: int = MAX_TEXT) -> str:
    """Outside text for the Markdown file, safe anywhere on a line and in a table cell."""
    escaped = _MD_ACTIVE.sub(r"\\\1", one_line(text, limit))
    return _LINE_START.sub(r"\1\\\2", escaped)  # "- x", "1. x" would start a list


def _link(url: str, label: str) -> str:
    """[label](url) for an http(s) URL without credentials; otherwise nothing."""
    url = one_line(url, 2000)
    if not re.match(r"(?i)https?://", url):
        return ""
    url = url.replace(" ", "%20").replace("(", "%28").replace(")", "%29").replace("|", "%7C")
    url = url.replace("<", "%3C").replace(">", "%3E")
    return f"[{md(label)}]({url})"


def _who(user: str, name: str = "") -> str:
    """A person as the file names them: "alice (<@U123>)", "<@U123>"; the bot's timer is "the bot"."""
    if user == "bot":
        return "the bot"
    mention = f"<@{user}>" if _USER_ID.fullmatch(user) else md(user, 40)
    if name and name != user:
        return f"{md(name, 80)} ({mention})" if mention else md(name, 80)
    return mention or "someone"


def _slug(text: str) -> str:
    return _SLUG.sub("-", plain(text).lower()).strip("-")[:40].strip("-") or "alert"


# --------------------------------------------------------------------------- time


def _epoch(iso_time: str) -> float | None:
    try:
        when = datetime.fromisoformat(iso_time)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


def _seconds(value: Any) -> float | None:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if seconds > 0 else None


def _utc(seconds: float | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    if seconds is None:
        return "?"
    return datetime.fromtimestamp(seconds, timezone.utc).strftime(fmt)


def _after(start: float | None, when: float | None) -> str:
    if start is None or when is None:
        return ""
    return spoken_duration(when - start)


# --------------------------------------------------------------------------- the draft


def draft(thread: AlertThread, trail: Sequence[AuditEntry], sla: Sla | None, now: float,
          permalink: str = "") -> PostMortem:
    """The post-mortem draft of `thread` as of `now` (clock seconds). `trail`: audit entries, in
    any order; those asked in another thread (or in none) are ignored. `sla`: None when the
    alert's severity has none. `permalink`: the thread's Slack permalink, linked when given."""
    members = thread.members()
    severity = thread.labels.get("severity") or worst_severity(members)
    fired = _epoch(thread.starts_at)
    resolved = thread.status == "resolved"
    ended = (_epoch(thread.ends_at) if thread.ends_at else None) if resolved else None
    lasted = (ended if ended is not None else now) - fired if fired is not None else None
    mitigations = _mitigations(thread, trail)

    name = one_line(thread.alertname, 120) or "alert"
    what = next((thread.labels[k] for k in TITLE_LABELS if thread.labels.get(k)), "")
    name += f" ({one_line(what, 80)})" if what else ""
    title = f"Post-mortem draft: {name}" + (f" {_utc(fired, '%Y-%m-%d')}" if fired is not None else "")
    filename = f"postmortem-{_slug(thread.alertname)}-{_utc(fired or now, '%Y%m%d-%H%M')}.md"

    sections = [
        [f"# {md(title)}", ""],
        _summary_table(thread, severity, fired, ended, lasted, now, permalink),
        _timeline(thread, mitigations, fired, ended, lasted, now),
        _slas(thread, sla, severity, fired, ended, now),
        _findings(thread.findings),
        _to_fill(),
    ]
    markdown = "\n".join(line for section in sections for line in section).rstrip("\n") + "\n"
    return PostMortem(title=title, filename=filename, markdown=markdown,
                      summary=_one_line_summary(thread, name, mitigations, sla, fired, ended, lasted, now))


def _summary_table(thread: AlertThread, severity: str, fired: float | None, ended: float | None,
                   lasted: float | None, now: float, permalink: str) -> list[str]:
    members = thread.members()
    labels = ", ".join(f"{md(k, 80)}={md(v, 200)}" for k, v in sorted(thread.labels.items())
                       if k not in SHOWN_LABELS_SKIPPED)
    listed = ", ".join(_member_name(a.labels, a.fingerprint, thread.labels) + ("" if a.status == "firing"
                                                                              else " (resolved)")
                       for a in members[:MAX_LISTED_ALERTS])
    more = len(members) - MAX_LISTED_ALERTS + thread.left_out
    count = len(members) + thread.left_out
    alerts = str(count) if count == 1 else f"{count}: {listed}" + (f", and {more} more" if more > 0 else "")
    rows = [
        ("Alert", md(thread.alertname) or "?"),
        ("Severity", md(severity) or "none"),
        ("Labels", labels or "none in common"),
        ("Alerts in the group", alerts),
    ]
    if thread.annotations.get("summary"):
        rows.append(("Summary", md(thread.annotations["summary"])))
    rows.append(("Fired", f"{_utc(fired)} UTC"))
    if ended is not None:
        rows.append(("Resolved", f"{_utc(ended)} UTC"))
        rows.append(("Duration", _after(fired, ended) or "?"))
    elif thread.status == "resolved":
        rows.append(("Resolved", "yes (Alertmanager did not say when)"))
    else:
        rows.append(("Resolved", f"no: still firing at {_utc(now)} UTC"))
        rows.append(("Duration", f"{spoken_duration(lasted)} so far" if lasted is not None else "?"))
    if thread.acked_by:
        rows.append(("Acknowledged", f"by {_who(thread.acked_by)} after "
                                     f"{_after(fired, _seconds(thread.acked_at)) or '?'}"))
    else:
        rows.append(("Acknowledged", "no"))
    if link := _link(permalink, "the alert's thread"):
        rows.append(("Slack", link))
    return ["| | |", "|---|---|", *(f"| **{k}** | {v} |" for k, v in rows), ""]


def _member_name(labels: Mapping[str, str], fingerprint: str, common: Mapping[str, str]) -> str:
    """An alert of the group by what sets it apart (`instance=pod-a`), else its fingerprint."""
    own = [f"{md(k, 80)}={md(v, 120)}" for k, v in sorted(labels.items()) if common.get(k) != v]
    return " ".join(own[:3]) or md(fingerprint, 40)


def _timeline(thread: AlertThread, mitigations: list[_Event], fired: float | None, ended: float | None,
              lasted: float | None, now: float) -> list[str]:
    events = [_Event(fired, 0, "**Fired**" + (f" ({len(thread.members())} alerts)"
                                               if len(thread.members()) > 1 else ""))]
    if (reply := thread.posts.get("reply")) is not None:
        after = f" (after {_after(fired, reply.at)})" if fired is not None else ""
        events.append(_Event(reply.at, 1, f"First reply: the bot's investigation{after}"))
    if thread.acked_by:
        acked = _seconds(thread.acked_at)
        after = f" after {_after(fired, acked)}" if acked is not None and fired is not None else ""
        events.append(_Event(acked, 2, f"**Acknowledged** by {_who(thread.acked_by)}{after}"))
    events.extend(_escalation(e) for e in thread.escalations)
    events.extend(mitigations)
    if thread.status == "resolved":
        lasted_text = f" after {_after(fired, ended)}" if ended is not None and fired is not None else ""
        events.append(_Event(ended, 9, f"**Resolved**{lasted_text}"))
    else:
        so_far = f" ({spoken_duration(lasted)} so far)" if lasted is not None else ""
        events.append(_Event(now, 9, f"**Still firing** when this draft was made{so_far}"))
    events.sort(key=lambda e: (e.at is None, e.at or 0.0, e.rank))
    rows = [f"| {_utc(e.at)} | {e.text} |" for e in events]
    return ["## Timeline", "", "| Time (UTC) | Event |", "|---|---|", *rows, ""]


def _escalation(e: Mapping[str, Any]) -> _Event:
    kind = str(e.get("kind") or "")
    text = f"**Escalated** ({md(kind, 20) or '?'}): {ESCALATION_WHY.get(kind, 'escalated')}"
    if e.get("by"):
        text += f", by {_who(str(e['by']))}"
    if e.get("reason"):
        text += f"; why: {md(e['reason'])}"
    text += f"; PagerDuty: {_pagerduty(e.get('pagerduty'))}"
    return _Event(_seconds(e.get("at")), 3, text)


def _pagerduty(answer: Any) -> str:
    if isinstance(answer, Mapping):
        return md(", ".join(f"{k}: {v}" for k, v in answer.items() if v not in ("", None))) or "no answer recorded"
    return md(answer) if answer not in ("", None) else "no answer recorded"


def _thread_ids(thread: AlertThread) -> set[str]:
    """How the audit trail names this thread: "{channel}:{ts}", the channel as stored or as Slack
    answered it for the root post."""
    if not thread.ts:
        return set()
    channels = {thread.channel} | {r.channel for r in thread.posts.values() if r.channel}
    return {f"{c}:{thread.ts}" for c in channels if c}


def _mitigations(thread: AlertThread, trail: Iterable[AuditEntry]) -> list[_Event]:
    ids = _thread_ids(thread)
    ours = sorted((e for e in trail if e.thread and e.thread in ids),
                  key=lambda e: (e.at, EVENTS.index(e.event) if e.event in EVENTS else len(EVENTS)))
    return [_Event(e.at, 5, text) for e in ours if (text := _mitigation(e))]


def _mitigation(e: AuditEntry) -> str:
    """One audit entry as a timeline line; "" for those the timeline leaves out (previewed)."""
    what = f"{md(e.action, 40) or 'mitigation'} of {md(e.target, 200) or '?'}"
    who = _who(e.user, e.user_name)
    reason = f": {md(e.reason)}" if e.reason else ""
    if e.event == "requested":
        link = _link(e.permalink, "approval")
        return f"Mitigation **requested**: {what} by {who}" + (f" ({link})" if link else "")
    if e.event == "approved":
        return f"Mitigation **approved**: {what} by {who}"
    if e.event == "executed":
        changes = "; ".join(_change(c) for c in e.changes)
        return f"Mitigation **executed**: {what}" + (f", {changes}" if changes else "")
    if e.event in ("failed", "refused", "preview-failed", "changed"):
        said = {"changed": "not executed (changed since the preview)", "preview-failed": "preview failed"}
        by = f" for {who}" if e.event == "refused" else ""
        return f"Mitigation **{said.get(e.event, e.event)}**{by}: {what}{reason}"
    if e.event in ("cancelled", "expired"):
        by = f" by {who}" if e.event == "cancelled" else " (nobody approved it in time)"
        return f"Mitigation **{e.event}**{by}: {what}{reason}"
    if e.event == "revert-requested":
        return f"Revert **requested** by {who}: {what}"
    return ""


def _change(c: Mapping[str, Any]) -> str:
    def value(v: Any) -> str | None:
        return None if v is None else str(v)

    return md(Change(field=str(c.get("field") or "?"), before=value(c.get("before")),
                     after=value(c.get("after"))).text())


def _slas(thread: AlertThread, sla: Sla | None, severity: str, fired: float | None, ended: float | None,
          now: float) -> list[str]:
    head = ["## SLAs", ""]
    if sla is None:
        return [*head, f"No SLA: the runbook sets no response time for severity {md(severity) or 'none'}.", ""]
    ack, resolve = _sla_results(thread, sla, fired, ended, now)
    return [*head, "| SLA | Result |", "|---|---|",
            f"| Acknowledge within {spoken_duration(sla.ack_seconds)} | {ack} |",
            f"| Resolve within {spoken_duration(sla.resolve_seconds)} | {resolve} |", ""]


def _sla_results(thread: AlertThread, sla: Sla, fired: float | None, ended: float | None,
                 now: float) -> tuple[str, str]:
    """Each SLA as "met …", "missed by …", "not acknowledged …", "still firing …"."""
    if fired is None:
        return "unknown (no start time)", "unknown (no start time)"
    acked = _seconds(thread.acked_at) if thread.acked_by else None
    if acked is not None:
        took = acked - fired
        ack = (f"met: acknowledged after {spoken_duration(took)}" if took <= sla.ack_seconds else
               f"missed by {spoken_duration(took - sla.ack_seconds)}: acknowledged after {spoken_duration(took)}")
    else:
        until = (ended if ended is not None else now) - fired
        ack = "not acknowledged" + (f" (missed by {spoken_duration(until - sla.ack_seconds)})"
                                    if until > sla.ack_seconds else "")
    if thread.status == "resolved" and ended is not None:
        took = ended - fired
        resolve = (f"met: resolved after {spoken_duration(took)}" if took <= sla.resolve_seconds else
                   f"missed by {spoken_duration(took - sla.resolve_seconds)}: resolved after {spoken_duration(took)}")
    elif thread.status == "resolved":
        resolve = "resolved, but Alertmanager did not say when"
    else:
        left = fired + sla.resolve_seconds - now
        resolve = (f"still firing: {spoken_duration(left)} left" if left >= 0 else
                   f"missed by {spoken_duration(-left)}: still firing")
    return ack, resolve


def _findings(findings: Sequence[str]) -> list[str]:
    head = ["## Key findings", ""]
    if not findings:
        return [*head, "The investigation found nothing out of the ordinary (or did not run).", ""]
    lines = [f"- {md(f)}" for f in findings[:MAX_FINDINGS]]
    if len(findings) > MAX_FINDINGS:
        lines.append(f"- … and {len(findings) - MAX_FINDINGS} more (see the investigation in the thread)")
    return [*head, *lines, ""]


def _to_fill() -> list[str]:
    return [
        "## Root cause", "", "_To be written._", "",
        "## Impact", "", "_Who and what was affected, and for how long._", "",
        "## Action items", "", *(["- [ ] "] * ACTION_ITEMS), "",
        "---", "",
        "_Drafted by the ChatOps bot from its own record of the thread (the alert, its acknowledgement, "
        "escalations and the audit trail of mitigations), not from the Slack history: "
        "check it against the thread before publishing._",
    ]


def _one_line_summary(thread: AlertThread, name: str, mitigations: list[_Event], sla: Sla | None,
                      fired: float | None, ended: float | None, lasted: float | None, now: float) -> str:
    parts = [f"fired {_utc(fired, '%Y-%m-%d %H:%M')} UTC"]
    if thread.acked_by:
        parts.append(f"acknowledged after {_after(fired, _seconds(thread.acked_at)) or '?'}")
    if thread.escalations:
        parts.append(f"escalated {len(thread.escalations)}×")
    if mitigations:
        parts.append(f"{len(mitigations)} mitigation step{'s' if len(mitigations) != 1 else ''}")
    if thread.status != "resolved":
        parts.append(f"still firing after {spoken_duration(lasted)}" if lasted is not None else "still firing")
    else:
        parts.append(f"resolved after {_after(fired, ended) or '?'}")
    if sla is None:
        parts.append("no SLA")
    else:
        ack, resolve = _sla_results(thread, sla, fired, ended, now)
        parts.append(f"acknowledge SLA {ack.split(':')[0]}, resolve SLA {resolve.split(':')[0]}")
    return f"{name}: " + ", ".join(parts) + "."
