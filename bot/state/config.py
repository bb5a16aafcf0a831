"""chatops.yaml `delivery:`: how durable work is leased, retried and given up on.

Work the bot accepts (an alert, an Alertmanager post, a slash command's answer) is recorded in
the store before it is acknowledged and then run by a worker under a lease. These numbers say
how long a lease lasts, how often a worker looks for work another replica or a retry made due,
how retries back off while Slack, Alertmanager or a backend is failing, and when to give up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.sections import DEFAULT_FILE, Where, key, positive, read, whole


@dataclass(frozen=True)
class DeliveryConfig:
    """The `delivery:` section; its fields are the keys. Every number must be more than 0."""

    # A worker that dies loses its leases after this long; another replica or the restarted bot
    # then takes the work. Leases are renewed every third of it while the work runs.
    lease_seconds: float = key(positive, 30.0)
    # How often an idle worker asks the store for due work (work accepted by this replica wakes
    # it at once; this bounds the delay for retries and for work another replica accepted).
    poll_seconds: float = key(positive, 1.0)
    # Backoff between attempts: doubling from the first to the most, with jitter.
    retry_initial_seconds: float = key(positive, 1.0)
    retry_max_seconds: float = key(positive, 60.0)
    # Work still failing this long after it was accepted is given up (logged, counted). At least
    # Alertmanager's repeat_interval (4 h by default), so a repeat always finds work to merge into.
    give_up_after_minutes: float = key(positive, 240.0)
    # Slash-command answers run at once, beside alert work, up to this many at a time.
    command_concurrency: int = key(whole(at_least=1), 8)
    # One Slack Web API call; a call that takes longer is treated as failed (and retried).
    slack_timeout_seconds: float = key(positive, 10.0)


def load(raw: Any, file: str = DEFAULT_FILE) -> DeliveryConfig:
    """chatops.yaml `delivery:`. Raises ConfigError (one line)."""
    where = Where(file, "delivery")
    config = read(DeliveryConfig, raw, where, absent_ok=True)
    if config.retry_max_seconds < config.retry_initial_seconds:
        raise where.key("retry_max_seconds").wrong(
            f"must be at least retry_initial_seconds ({config.retry_initial_seconds:g})", config.retry_max_seconds)
    return config
