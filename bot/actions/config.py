"""chatops.yaml `actions:`: the names the mitigations act on, where the runbook's differ.

    actions:
      breaker: {configmap: claude-deployment-config, key: circuit-breaker-enabled}
      raise_limits: {memory: 6Gi, cpu: 2000m, container: api}
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from bot.commands.args import k8s_name
from bot.errors import UsageError
from bot.sections import DEFAULT_FILE, Where, argument, entry, key, read


def _config_key(value: str, what: str) -> str:
    if not re.fullmatch(r"[-._a-zA-Z0-9]{1,253}", value):
        raise UsageError(f"`{value}` is not a ConfigMap key: letters, digits, '-', '_' and '.'")
    return value


@dataclass(frozen=True)
class BreakerConfig:
    """The runbook's circuit breaker: a key of a ConfigMap, "true" or "false"."""

    configmap: str = key(argument(k8s_name), "claude-deployment-config")
    key: str = key(argument(_config_key), "circuit-breaker-enabled")


def _quantity_or_empty(value: str, what: str) -> str:
    from operations.quantity import parse_quantity

    try:
        if parse_quantity(value) <= 0:
            raise ValueError("must be more than 0")
    except ValueError as e:
        raise UsageError(str(e)) from None
    return value


@dataclass(frozen=True)
class RaiseLimitsConfig:
    """What an alert thread's "Raise limits" asks for: the runbook's 6Gi / 2000m. `container`
    may stay unset when the pods have one container."""

    memory: str = key(argument(_quantity_or_empty), "6Gi")
    cpu: str = key(argument(_quantity_or_empty), "2000m")
    container: str = key(argument(k8s_name), "")


@dataclass(frozen=True)
class ActionsConfig:
    breaker: BreakerConfig = key(entry(BreakerConfig), factory=BreakerConfig)
    raise_limits: RaiseLimitsConfig = key(entry(RaiseLimitsConfig), factory=RaiseLimitsConfig)


def load(raw: Any, file: str = DEFAULT_FILE) -> ActionsConfig:
    """chatops.yaml `actions:`. Raises ConfigError (one line)."""
    return read(ActionsConfig, raw, Where(file, "actions"), absent_ok=True)
