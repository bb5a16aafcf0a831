"""Alerts as the bot keeps them: one Alert, and a Notification (a group notified together)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Mapping

AlertStatus = Literal["firing", "resolved"]


@dataclass(frozen=True)
class Alert:
    fingerprint: str
    status: AlertStatus
    labels: Mapping[str, str]
    annotations: Mapping[str, str] = field(default_factory=dict)
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    generator_url: str = ""
    # From API v2 only: "active", "suppressed" or "unprocessed", and who suppresses it.
    state: str = ""
    silenced_by: tuple[str, ...] = ()
    inhibited_by: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "")

    @property
    def severity(self) -> str:
        return self.labels.get("severity", "")

    @property
    def summary(self) -> str:
        return self.annotations.get("summary", "")

    @property
    def description(self) -> str:
        return self.annotations.get("description", "")

    @property
    def runbook_url(self) -> str:
        return self.annotations.get("runbook_url", "")


@dataclass(frozen=True)
class Notification:
    """One webhook call: a group of alerts that Alertmanager notifies together."""

    status: AlertStatus
    receiver: str
    group_key: str
    group_labels: Mapping[str, str]
    external_url: str
    alerts: tuple[Alert, ...]
    truncated: int = 0  # alerts Alertmanager left out (webhook_configs max_alerts): the list is partial


def alert_to_doc(alert: Alert) -> dict[str, object]:
    """An alert as JSON, for a job's payload (the webhook's fields; API-only fields dropped)."""
    return {
        "fingerprint": alert.fingerprint,
        "status": alert.status,
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "starts_at": alert.starts_at.isoformat() if alert.starts_at else "",
        "ends_at": alert.ends_at.isoformat() if alert.ends_at else "",
        "generator_url": alert.generator_url,
    }


def alert_from_doc(doc: Mapping[str, Any]) -> Alert:
    starts, ends = str(doc.get("starts_at") or ""), str(doc.get("ends_at") or "")
    status: AlertStatus = "resolved" if doc.get("status") == "resolved" else "firing"
    return Alert(
        fingerprint=str(doc["fingerprint"]),
        status=status,
        labels=dict(doc.get("labels") or {}),
        annotations=dict(doc.get("annotations") or {}),
        starts_at=datetime.fromisoformat(starts) if starts else None,
        ends_at=datetime.fromisoformat(ends) if ends else None,
        generator_url=str(doc.get("generator_url") or ""),
    )
