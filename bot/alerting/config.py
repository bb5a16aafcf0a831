"""chatops.yaml `alerts:`: where alerts are posted, which channels are listened to, pacing."""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping

from bot.sections import DEFAULT_FILE, Where, key, list_of, mapping_of, number, read, text, whole

DEFAULT_CHANNELS: Mapping[str, str] = MappingProxyType(
    {"critical": "#alerts-critical", "warning": "#alerts-warning", "default": "#alerts"})


def _channels(value: Any, where: Where) -> Mapping[str, str]:
    """Severities (critical, warning, default, or any other) to channels, over the defaults."""
    given = mapping_of(text, what="severities")(value, where)
    return MappingProxyType({**DEFAULT_CHANNELS, **given})


@dataclass(frozen=True)
class AlertSettings:
    """The `alerts:` section; its fields are the keys."""

    channels: Mapping[str, str] = key(_channels, factory=lambda: DEFAULT_CHANNELS)
    listen: tuple[str, ...] = key(list_of(text), ())  # channel IDs or names; empty: every channel the bot is in
    cooldown_minutes: float = key(number(at_least=0), 10.0)  # between "still firing" notes
    concurrency: int = key(whole(at_least=1), 8)  # playbooks run at once
    edit_interval: float = key(number(at_least=0), 1.0)  # at most one edit of an investigation reply per this many s
    post_interval: float = key(number(at_least=0), 1.0)  # Slack's pace: about one message per second per channel

    @property
    def cooldown(self) -> float:
        """Seconds between "still firing" notes."""
        return self.cooldown_minutes * 60

    def channel_for(self, severity: str) -> str:
        return self.channels.get(severity) or self.channels.get("default") or "#alerts"


def load(raw: Any, file: str = DEFAULT_FILE) -> AlertSettings:
    """chatops.yaml `alerts:`. Raises ConfigError (one line)."""
    return read(AlertSettings, raw, Where(file, "alerts"), absent_ok=True)
