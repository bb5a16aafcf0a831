"""chatops.yaml `escalation:`: the runbook's response-time SLAs, the related-alerts trigger and
where managers are told.

    escalation:
      critical: {ack_minutes: 5, resolve_minutes: 60}
      warning:  {ack_minutes: 30, resolve_minutes: 240}
      related:  {count: 3, within_minutes: 10}
      managers_channel: "#engineering-managers"

Minutes may be fractional (more than 0); `count` is a whole number of at least 2; a key left out
keeps its default. Info alerts (and any other severity) have no SLA: no timers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Mapping

from bot.sections import DEFAULT_FILE, Where, entry, key, positive, read, text, whole


@dataclass(frozen=True)
class Sla:
    """One severity's deadlines, in minutes from the alert's startsAt."""

    ack_minutes: float = key(positive)
    resolve_minutes: float = key(positive)


def _sla(default: Sla) -> Callable[[Any, Where], Sla]:
    """A severity's SLA; a key left out keeps that severity's default (`critical: {ack_minutes: 10}`)."""

    def convert(value: Any, where: Where) -> Sla:
        given = {**asdict(default), **value} if isinstance(value, Mapping) else value
        return read(Sla, given, where)

    return convert


CRITICAL = Sla(ack_minutes=5.0, resolve_minutes=60.0)
WARNING = Sla(ack_minutes=30.0, resolve_minutes=240.0)


@dataclass(frozen=True)
class Related:
    """`count` distinct critical alerts firing within `within_minutes` escalate as one incident."""

    count: int = key(whole(at_least=2), 3)
    within_minutes: float = key(positive, 10.0)

    @property
    def within_seconds(self) -> float:
        return self.within_minutes * 60


@dataclass(frozen=True)
class EscalationConfig:
    """The `escalation:` section; its fields are the keys."""

    critical: Sla = key(_sla(CRITICAL), CRITICAL)
    warning: Sla = key(_sla(WARNING), WARNING)
    related: Related = key(entry(Related), Related())
    managers_channel: str = key(text, "#engineering-managers")

    def sla(self, severity: str | None) -> tuple[float, float] | None:
        """(ack_seconds, resolve_seconds) for an alert's severity label; None: no SLA (info, any other)."""
        found = {"critical": self.critical, "warning": self.warning}.get((severity or "").strip().lower())
        return None if found is None else (found.ack_minutes * 60, found.resolve_minutes * 60)


def load(raw: Any, file: str = DEFAULT_FILE) -> EscalationConfig:
    """chatops.yaml `escalation:`. Raises ConfigError (one line)."""
    return read(EscalationConfig, raw, Where(file, "escalation"), absent_ok=True)
