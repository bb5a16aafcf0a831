"""alertname -> the runbook's investigation, as /ops command lines, and suggested actions.

A playbook step is an /ops command line with `{placeholders}` filled from the alert's
labels, so a playbook can do exactly what a person can type, and the command table
validates every step at start. Defaults follow the runbook's "Alert Response Procedures";
chatops.yaml `playbooks:` overrides or adds per alertname, and `playbook_defaults:` sets
the fallbacks for labels an alert doesn't carry.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from typing import Any, Mapping
from urllib.parse import parse_qs, urlsplit

from bot.alerting.model import Alert
from bot.errors import ConfigError

DEFAULT_PLAYBOOKS: dict[str, dict[str, Any]] = {
    "APIServerDown": {
        "steps": [
            "pods {deployment} -n {namespace}",
            "events -n {namespace}",
            "nodes",
            "logs {deployment} -n {namespace} --tail 50",
            "top -n {namespace}",
            "elb",
        ],
        "actions": ["scale-up"],
    },
    "HighErrorRate": {
        "steps": [
            "logs {deployment} -n {namespace} --grep ERROR --since 10m",
            "errors {app}",
            "graph error-rate",
            "deps",
        ],
        "actions": ["circuit-breaker"],
    },
    "DatabaseDown": {
        # `rds` includes the instance's pending maintenance.
        "steps": ["rds", "db"],
        "actions": [],
    },
    "HighResponseTime": {
        "steps": ["graph latency-p95", "db top", "top -n {namespace} --sort cpu"],
        "actions": ["scale-up", "raise-limits"],
    },
    "HighCPUUsage": {
        "steps": [
            "metric node-cpu instance={instance}",
            "graph node-cpu instance={instance}",
            "promql topk(5, sum by (namespace, pod) (rate(container_cpu_usage_seconds_total{{node=\"{node}\"}}[5m])))",
        ],
        "actions": [],
    },
    "HighMemoryUsage": {
        "steps": [
            "metric node-memory instance={instance}",
            "graph node-memory instance={instance}",
            "promql topk(5, sum by (namespace, pod) (container_memory_working_set_bytes{{node=\"{node}\"}}))",
        ],
        "actions": [],
    },
    "DiskSpaceWarning": {
        "steps": [
            "metric node-disk instance={instance} mountpoint={mountpoint}",
            "graph node-disk instance={instance} mountpoint={mountpoint}",
            "promql topk(5, sum by (namespace, pod) (container_fs_usage_bytes{{node=\"{node}\"}}))",
        ],
        "actions": [],
    },
}
# Any other alert: its own expression and what happened in its namespace.
FALLBACK_PLAYBOOK: dict[str, Any] = {"steps": ["graph {expr}", "events -n {namespace}"], "actions": []}

MISSING_PREFIX = "!missing: "

# The runbook's production names, for alerts whose labels don't say.
DEFAULT_PARAMETERS = {
    "namespace": "claude-deployment-prod",
    "deployment": "claude-deployment-api",
    "app": "claude-deployment-api",
    "instance": ".+",
    "mountpoint": "/",
}


@dataclass(frozen=True)
class Playbook:
    alertname: str
    steps: tuple[str, ...]
    actions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Playbooks:
    by_name: Mapping[str, Playbook]
    fallback: Playbook
    defaults: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_PARAMETERS))

    def for_alert(self, alert: Alert) -> Playbook:
        return self.by_name.get(alert.name, self.fallback)

    def commands(self, alert: Alert) -> list[str]:
        """The playbook's steps for this alert, placeholders filled in.

        A step whose placeholder the alert can't fill (a custom `{pod}` on an alert without a
        pod label) comes back as `MISSING_PREFIX` + what is missing, for the runner to report.
        """
        values = parameters(alert, self.defaults)
        out = []
        for step in self.for_alert(alert).steps:
            try:
                out.append(step.format_map(values))
            except KeyError as e:
                out.append(f"{MISSING_PREFIX}{step} (the alert has no label {e.args[0]!r})")
        return out


def parameters(alert: Alert, defaults: Mapping[str, str]) -> dict[str, str]:
    """What fills a step's placeholders: the alert's labels, with fallbacks.

    A label value that could change the command (white space, braces) is ignored, so a
    label can name an object but never add an option.
    """
    labels = {k: v for k, v in alert.labels.items() if _safe_value(v)}
    values = {**defaults, **labels}
    values["namespace"] = labels.get("namespace") or labels.get("kubernetes_namespace") or defaults["namespace"]
    values["deployment"] = (labels.get("deployment") or labels.get("app") or labels.get("service")
                            or defaults["deployment"])
    values["app"] = labels.get("app") or labels.get("service") or defaults["app"]
    instance = labels.get("instance", "")
    values["instance"] = instance or defaults["instance"]
    values["node"] = labels.get("node") or instance.rsplit(":", 1)[0] or ".+"
    # The expression is the one value that may hold spaces: `graph` and `promql` take the rest
    # of the line. It comes from the alert rule, not from a label.
    values["expr"] = " ".join(expression(alert).split()) or f'ALERTS{{alertname="{alert.name}"}}'
    return values


def _safe_value(value: str) -> bool:
    # A label value goes into a command line: no white space that would split it, no braces
    # that would be read as placeholders, nothing that isn't printable.
    return bool(value) and value.isprintable() and not re.search(r"[\s{}]", value)


def expression(alert: Alert) -> str:
    """The alert rule's PromQL, from Prometheus's generatorURL (`/graph?g0.expr=...`)."""
    if not alert.generator_url:
        return ""
    query = parse_qs(urlsplit(alert.generator_url).query)
    return (query.get("g0.expr") or [""])[0]


def load_playbooks(sections: Mapping[str, Any]) -> Playbooks:
    """Defaults merged with chatops.yaml `playbooks:`; ConfigError (one line) for bad entries."""
    raw = dict(DEFAULT_PLAYBOOKS)
    custom = sections.get("playbooks") or {}
    if not isinstance(custom, dict):
        raise ConfigError("playbooks must map alert names to {steps: [...], actions: [...]}")
    raw.update(custom)
    playbooks = {name: _playbook(name, entry) for name, entry in raw.items() if name != "default"}
    fallback = _playbook("default", raw.get("default", FALLBACK_PLAYBOOK))
    defaults = dict(DEFAULT_PARAMETERS)
    extra = sections.get("playbook_defaults") or {}
    if not isinstance(extra, dict) or not all(isinstance(v, str) and _safe_value(v) for v in extra.values()):
        raise ConfigError("playbook_defaults must map placeholder names to single-word values")
    defaults.update(extra)
    return Playbooks(by_name=playbooks, fallback=fallback, defaults=defaults)


def _playbook(name: str, entry: Any) -> Playbook:
    if not isinstance(entry, dict) or not isinstance(entry.get("steps", []), list):
        raise ConfigError(f"playbooks.{name} must be a mapping with a list of steps")
    steps = tuple(entry.get("steps", []))
    actions = tuple(entry.get("actions", []) or [])
    for step in steps:
        if not isinstance(step, str) or not step.strip():
            raise ConfigError(f"playbooks.{name}: every step is an /ops command line, got {step!r}")
        try:
            list(string.Formatter().parse(step))
        except ValueError as e:
            raise ConfigError(f"playbooks.{name}: step {step!r} has a broken placeholder ({e})") from None
    return Playbook(alertname=name, steps=steps, actions=actions)


def validate_steps(playbooks: Playbooks, parse: Any) -> None:
    """Every step, with sample values, must be a valid /ops command: typos stop the bot at start."""
    sample = Alert(fingerprint="0", status="firing", labels={"alertname": "X", "instance": "node-1:9100"},
                   generator_url="http://p/graph?g0.expr=up+%3D%3D+0")
    values = parameters(sample, playbooks.defaults)

    class _Missing(dict):  # type: ignore[type-arg]
        def __missing__(self, key: str) -> str:
            return "sample"

    from bot.errors import UsageError

    for playbook in [*playbooks.by_name.values(), playbooks.fallback]:
        for step in playbook.steps:
            try:
                invocation = parse(step.format_map(_Missing(values)))
            except UsageError as e:
                raise ConfigError(f"playbooks.{playbook.alertname}: step {step!r}: {e.message}") from None
            if invocation.command.run is None or invocation.command.mutating:
                raise ConfigError(f"playbooks.{playbook.alertname}: step {step!r} is not a diagnostic")
