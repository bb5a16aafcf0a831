"""Alerts: the model, Alertmanager's webhook body, its Slack posts, and matching the two.

Alertmanager tells the bot about an alert in one of two ways. Its webhook (`POST
/alertmanager`) carries every alert whole. Its Slack notifier only posts text, and with
the default template or the runbook's own receivers that text does not say which alert it
is: the default title carries label VALUES only; the runbook's title is just "🚨 Critical
Alert" with the descriptions as text. So a post is parsed for what it does say and
matched against Alertmanager's API v2; no match means no reply, never a wrong playbook.
The recommended template (manifests/chatops.tmpl, used by manifests/alertmanager-slack-
receivers.yml) puts the alerts' fingerprints in the footer, which makes the match exact.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Mapping

from bot.alerting.model import Alert, AlertStatus, Notification
from diagnostics.http_api import get_json
from diagnostics.http_api import parse_time as _parse_time

# One notification may enqueue at most this many alerts: beyond, the webhook answers 503 and
# Alertmanager retries (a route that groups so much needs a narrower group_by).
MAX_ALERTS_PER_NOTIFICATION = 1000


class AlertPayloadError(ValueError):
    """A webhook body that is not what Alertmanager sends; the message says what is wrong."""


class TooManyAlerts(AlertPayloadError):
    """A notification carrying more than MAX_ALERTS_PER_NOTIFICATION alerts: refused whole."""


def _str_map(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise AlertPayloadError(f"{where} must be an object of strings")
    return dict(value)


def parse_webhook(body: Any) -> Notification:
    """Alertmanager's webhook body (version 4). Raises AlertPayloadError, naming the problem."""
    if not isinstance(body, dict):
        raise AlertPayloadError("body must be a JSON object")
    if str(body.get("version", "")) != "4":
        raise AlertPayloadError(f"unsupported webhook version {body.get('version')!r} (expected \"4\")")
    raw_alerts = body.get("alerts")
    if not isinstance(raw_alerts, list) or not raw_alerts:
        raise AlertPayloadError("alerts must be a non-empty list")
    if len(raw_alerts) > MAX_ALERTS_PER_NOTIFICATION:
        raise TooManyAlerts(f"{len(raw_alerts)} alerts in one notification, more than the "
                            f"{MAX_ALERTS_PER_NOTIFICATION} one may carry")
    alerts = [_webhook_alert(raw, f"alerts[{index}]") for index, raw in enumerate(raw_alerts)]
    status = body.get("status")
    if status not in ("firing", "resolved"):
        raise AlertPayloadError(f"status must be firing or resolved, not {status!r}")
    return Notification(
        status=status,
        receiver=str(body.get("receiver", "")),
        group_key=str(body.get("groupKey", "")),
        group_labels=_str_map(body.get("groupLabels"), "groupLabels"),
        external_url=str(body.get("externalURL", "")),
        alerts=tuple(alerts),
        truncated=_count(body.get("truncatedAlerts")),
    )


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _webhook_alert(raw: Any, where: str) -> Alert:
    if not isinstance(raw, dict):
        raise AlertPayloadError(f"{where} must be an object")
    labels = _str_map(raw.get("labels"), f"{where}.labels")
    if not labels.get("alertname"):
        raise AlertPayloadError(f"{where}.labels.alertname is missing")
    status = raw.get("status")
    if status not in ("firing", "resolved"):
        raise AlertPayloadError(f"{where}.status must be firing or resolved, not {status!r}")
    fingerprint = raw.get("fingerprint")
    if not isinstance(fingerprint, str) or not re.fullmatch(r"[0-9a-f]{1,32}", fingerprint):
        raise AlertPayloadError(f"{where}.fingerprint must be Alertmanager's hex fingerprint")
    starts_at = parse_time(raw.get("startsAt"))
    if starts_at is None:
        # It tells one firing from the next: a thread is opened per (fingerprint, startsAt).
        raise AlertPayloadError(f"{where}.startsAt must be an RFC 3339 time")
    return Alert(
        fingerprint=fingerprint,
        status=status,
        labels=labels,
        annotations=_str_map(raw.get("annotations"), f"{where}.annotations"),
        starts_at=starts_at,
        ends_at=parse_time(raw.get("endsAt")),
        generator_url=str(raw.get("generatorURL") or ""),
    )


def alert_from_api(item: Mapping[str, Any]) -> Alert:
    """One entry of Alertmanager's `GET /api/v2/alerts`."""
    status = item.get("status") or {}
    return Alert(
        fingerprint=str(item.get("fingerprint", "")),
        # API v2 lists alerts that are firing; a resolved one drops out of the list.
        status="firing",
        labels=dict(item.get("labels") or {}),
        annotations=dict(item.get("annotations") or {}),
        starts_at=parse_time(item.get("startsAt")),
        ends_at=parse_time(item.get("endsAt")),
        generator_url=str(item.get("generatorURL") or ""),
        state=str(status.get("state", "")),
        silenced_by=tuple(status.get("silencedBy") or ()),
        inhibited_by=tuple(status.get("inhibitedBy") or ()),
    )


# ----------------------------------------------------------------------------- Slack posts

PostKind = Literal["default", "runbook", "recommended"]

_DEFAULT_TITLE = re.compile(r"^\[(FIRING(?::(\d+))?|RESOLVED)\]\s*(.*)$", re.S)
_RUNBOOK_TITLES = {"critical alert": "critical", "warning alert": "warning", "info alert": "info"}
_FINGERPRINTS = re.compile(r"chatops fingerprints:\s*((?:[0-9a-f]{1,32}[\s,]*)+)", re.I)


@dataclass(frozen=True)
class AlertPost:
    """What an Alertmanager post in Slack says about its alerts."""

    kind: PostKind
    status: AlertStatus
    title: str
    text: str = ""
    firing_count: int | None = None
    # Default template: the group's label values, then the other common label values.
    group_values: tuple[str, ...] = ()
    common_values: tuple[str, ...] = ()
    severity: str = ""  # the runbook's receivers say it only in the title
    fingerprints: tuple[str, ...] = ()  # the recommended template says exactly which



def post_to_doc(post: AlertPost) -> dict[str, Any]:
    """A parsed post as JSON, for a job's payload."""
    return dataclasses.asdict(post)


def post_from_doc(doc: Mapping[str, Any]) -> AlertPost:
    values = dict(doc)
    for name in ("group_values", "common_values", "fingerprints"):
        values[name] = tuple(values.get(name) or ())
    return AlertPost(**values)


def parse_post(event: Mapping[str, Any]) -> AlertPost | None:
    """An Alertmanager post from a Slack `message` event, or None when it isn't one."""
    attachments = event.get("attachments")
    if not isinstance(attachments, list):
        return None  # none, or not what Slack sends: not an Alertmanager post
    for attachment in attachments:
        if not isinstance(attachment, dict):
            continue
        title = str(attachment.get("title") or "").strip()
        text = str(attachment.get("text") or "")
        footer = str(attachment.get("footer") or "")
        fingerprints = _fingerprints(footer) or _fingerprints(text)
        colour = str(attachment.get("color") or "")
        match = _DEFAULT_TITLE.match(title)
        if match:
            status: AlertStatus = "resolved" if match.group(1) == "RESOLVED" else "firing"
            count = int(match.group(2)) if match.group(2) else None
            group, common = _split_values(match.group(3))
            return AlertPost(kind="recommended" if fingerprints else "default", status=status, title=title,
                             text=text, firing_count=count, group_values=group, common_values=common,
                             fingerprints=fingerprints)
        severity = _runbook_severity(title)
        if severity:
            # The runbook's receivers send resolved notifications with the same title; only the
            # colour (Alertmanager's default: good when resolved) tells them apart.
            status = "resolved" if colour == "good" else "firing"
            return AlertPost(kind="recommended" if fingerprints else "runbook", status=status, title=title,
                             text=text, severity=severity, fingerprints=fingerprints)
        if fingerprints:
            status = "resolved" if colour == "good" or "resolved" in title.lower() else "firing"
            return AlertPost(kind="recommended", status=status, title=title, text=text, fingerprints=fingerprints)
    return None


def _fingerprints(text: str) -> tuple[str, ...]:
    match = _FINGERPRINTS.search(text)
    if not match:
        return ()
    return tuple(sorted(set(re.findall(r"[0-9a-f]{1,32}", match.group(1)))))


def _runbook_severity(title: str) -> str:
    words = re.sub(r"[^\w ]", " ", title).strip().lower()
    words = " ".join(words.split())
    return _RUNBOOK_TITLES.get(words, "")


def _split_values(rest: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """`HighErrorRate checkout (critical)` -> (("HighErrorRate", "checkout"), ("critical",))."""
    rest = rest.strip()
    common: tuple[str, ...] = ()
    paren = re.search(r"\(([^()]*)\)\s*$", rest)
    if paren:
        common = tuple(paren.group(1).split())
        rest = rest[: paren.start()].strip()
    return tuple(rest.split()), common


# ----------------------------------------------------------------------------- matching


def match_post(post: AlertPost, active: list[Alert]) -> list[Alert]:
    """The active alerts a post is about; empty when nothing matches for certain."""
    if post.fingerprints:
        wanted = set(post.fingerprints)
        return [a for a in active if a.fingerprint in wanted]
    if post.kind == "default":
        return [a for a in active if _values_match(post, a)]
    if post.kind == "runbook":
        return [a for a in active if a.severity == post.severity and _description_in(a.description, post.text)]
    return []


def _values_match(post: AlertPost, alert: Alert) -> bool:
    tokens = {token for value in alert.labels.values() for token in value.split()}
    wanted = post.group_values + post.common_values
    # The alert's name is among the group's values whenever the route groups by alertname,
    # as the runbook's does; without it, a bare "checkout" could match anything.
    return bool(wanted) and alert.name in wanted and all(v in tokens for v in wanted)


def _description_in(description: str, text: str) -> bool:
    """Is this alert's description in the post, allowing for `{{ $value }}` having changed?"""
    if not description.strip():
        return False
    # Numbers are re-rendered at every evaluation ("Error rate is 5.3%" then "5.4%").
    parts = re.split(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?", description.strip())
    pattern = r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?".join(re.escape(p) for p in parts)
    return re.search(pattern, text) is not None


async def fetch_active(http: Any, url: str, timeout: float) -> list[Alert]:
    """Alertmanager's active alerts (API v2); BackendError, one line, when it can't answer."""
    items = await get_json(http, f"{url}/api/v2/alerts", backend="Alertmanager", location=url, timeout=timeout,
                           params={"active": "true"})
    return [alert_from_api(item) for item in items if isinstance(item, dict)]


def parse_time(value: Any) -> datetime | None:
    """Alertmanager's timestamps (Go's RFC 3339, nanoseconds); None for absent or Go's zero time."""
    return _parse_time(value) if isinstance(value, str) else None
