"""chatops.yaml `alerts:`: where alerts are posted, which channels are listened to, pacing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from bot.errors import ConfigError
from bot.settings import Settings


@dataclass(frozen=True)
class AlertSettings:
    channels: Mapping[str, str] = field(default_factory=lambda: {
        "critical": "#alerts-critical", "warning": "#alerts-warning", "default": "#alerts"})
    listen: tuple[str, ...] = ()  # channel IDs or names; empty: every channel the bot is in
    cooldown: float = 600.0  # seconds between "still firing" notes
    concurrency: int = 8  # playbooks run at once
    edit_interval: float = 1.0  # at most one edit of an investigation reply per this many seconds
    post_interval: float = 1.0  # Slack's pace: about one message per second per channel

    def channel_for(self, severity: str) -> str:
        return self.channels.get(severity) or self.channels.get("default") or "#alerts"


def alert_settings(settings: Settings) -> AlertSettings:
    raw = settings.sections.get("alerts") or {}
    defaults = AlertSettings()
    channels = dict(defaults.channels)
    given = raw.get("channels", {})
    if not isinstance(given, dict) or not all(isinstance(v, str) and v for v in given.values()):
        raise ConfigError("alerts.channels must map severities (critical, warning, default) to channels")
    channels.update(given)
    listen = raw.get("listen", [])
    if not isinstance(listen, list) or not all(isinstance(c, str) for c in listen):
        raise ConfigError("alerts.listen must be a list of channel IDs or #names")
    numbers = {}
    for key, low in (("cooldown_minutes", 0), ("concurrency", 1), ("edit_interval", 0), ("post_interval", 0)):
        value = raw.get(key)
        if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool) or value < low):
            raise ConfigError(f"alerts.{key} must be a number of at least {low}")
        numbers[key] = value
    return AlertSettings(
        channels=channels,
        listen=tuple(listen),
        cooldown=float(numbers["cooldown_minutes"]) * 60 if numbers["cooldown_minutes"] is not None
        else defaults.cooldown,
        concurrency=int(numbers["concurrency"] or defaults.concurrency),
        edit_interval=float(numbers["edit_interval"]) if numbers["edit_interval"] is not None
        else defaults.edit_interval,
        post_interval=float(numbers["post_interval"]) if numbers["post_interval"] is not None
        else defaults.post_interval,
    )
