"""What is firing now, from Alertmanager's API v2: critical first, suppressed ones saying why."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import Any, Awaitable

from diagnostics.cache import QueryCache, cached
from diagnostics.http_api import BackendError, age, get_json, one_line, parse_time
from diagnostics.result import Link, Result, Row, Status

MAX_ROWS = 30
SUMMARY_CHARS = 200
LABELS_SHOWN = 4
_SEVERITY_ORDER = {"critical": 0, "error": 0, "warning": 1, "info": 3}
_SEVERITY_STATUS = {"critical": Status.CRITICAL, "error": Status.CRITICAL, "warning": Status.WARNING,
                    "info": Status.OK}
COLUMNS = ("alert", "severity", "state", "since", "labels", "summary")


async def firing_alerts(http: Any, url: str, *, location: str, timeout: float,
                        cache: QueryCache | None = None, title: str = "Alerts",
                        now: datetime | None = None) -> Result:
    """GET /api/v2/alerts (and /api/v2/silences, to say who silenced what and why)."""
    base = url.rstrip("/")

    def fetch(path: str) -> Awaitable[Any]:
        return cached(cache, ("alertmanager", location, path), lambda: get_json(
            http, f"{base}/api/v2/{path}", backend="Alertmanager", location=location, timeout=timeout))

    answers = await asyncio.gather(fetch("alerts"), fetch("silences"), return_exceptions=True)
    alerts, silences = answers
    if isinstance(alerts, BaseException):
        if isinstance(alerts, BackendError):
            return Result.error(title, str(alerts))
        raise alerts
    # Silences only add who and why; without them the IDs are shown.
    silence_text = _silence_descriptions(silences if isinstance(silences, list) else [])
    return alerts_result(list(alerts or []), silence_text, title=title, location=location,
                         now=now or datetime.now(timezone.utc))


def alerts_result(alerts: list[dict[str, Any]], silences: dict[str, str], *, title: str, location: str,
                  now: datetime) -> Result:
    names = {a.get("fingerprint"): a.get("labels", {}).get("alertname", "?") for a in alerts}
    alerts = sorted(alerts, key=lambda a: (_suppressed(a), _SEVERITY_ORDER.get(_severity(a), 2),
                                           a.get("startsAt", "")))
    rows = [_row(a, silences, names, now) for a in alerts]
    active = [r for r, a in zip(rows, alerts, strict=True) if not _suppressed(a)]
    suppressed = len(rows) - len(active)
    links = [Link("Open Alertmanager", f"{location.rstrip('/')}/#/alerts")]
    if active:
        counts: dict[str, int] = {}
        for a in alerts:
            if not _suppressed(a):
                counts[_severity(a)] = counts.get(_severity(a), 0) + 1
        summary = f"{len(active)} firing: " + ", ".join(f"{n} {sev}" for sev, n in counts.items())
    else:
        summary = "nothing firing"
    if suppressed:
        summary += f" · {suppressed} suppressed"
    note = ""
    if len(rows) > MAX_ROWS:
        note = f"{len(rows) - MAX_ROWS} more alerts not shown ({MAX_ROWS} of {len(rows)})"
    return Result(Status.worst([r.status for r in active]), title, summary, columns=COLUMNS,
                  rows=rows[:MAX_ROWS], folded_rows_note=note, links=links)


def _severity(alert: dict[str, Any]) -> str:
    return str(alert.get("labels", {}).get("severity", "none")).lower()


def _suppressed(alert: dict[str, Any]) -> bool:
    return alert.get("status", {}).get("state") == "suppressed"


def _row(alert: dict[str, Any], silences: dict[str, str], names: dict[Any, str], now: datetime) -> Row:
    labels = alert.get("labels", {})
    annotations = alert.get("annotations", {})
    status = alert.get("status", {})
    severity = _severity(alert)
    others = [f"{k}={v}" for k, v in sorted(labels.items()) if k not in ("alertname", "severity")]
    shown = ", ".join(others[:LABELS_SHOWN]) + (", …" if len(others) > LABELS_SHOWN else "")
    summary = one_line(str(annotations.get("summary") or annotations.get("description") or ""))
    if len(summary) > SUMMARY_CHARS:
        summary = summary[: SUMMARY_CHARS - 1] + "…"
    started = parse_time(alert.get("startsAt"))
    cells = (labels.get("alertname", "?"), severity, status.get("state", "active"),
             age(started, now) if started else "?", shown, summary)
    if _suppressed(alert):
        reasons = []
        if status.get("silencedBy"):
            reasons.append("silenced by " + "; ".join(silences.get(i, i) for i in status["silencedBy"]))
        if status.get("inhibitedBy"):
            reasons.append("inhibited by " + ", ".join(names.get(f, f) for f in status["inhibitedBy"]))
        return Row(cells, Status.UNKNOWN, " · ".join(reasons))
    return Row(cells, _SEVERITY_STATUS.get(severity, Status.WARNING))


def _silence_descriptions(silences: list[dict[str, Any]]) -> dict[str, str]:
    """silence id -> "alice until 2024-05-01 14:00 UTC: maintenance"."""
    out = {}
    for silence in silences:
        ends = parse_time(silence.get("endsAt"))
        ends = ends.astimezone(timezone.utc) if ends else None
        until = f" until {ends:%Y-%m-%d %H:%M} UTC" if ends else ""
        comment = one_line(str(silence.get("comment") or ""))
        who = f"{silence.get('createdBy') or '?'}{until}"
        out[str(silence.get("id"))] = f"{who}: {comment}" if comment else who
    return out
