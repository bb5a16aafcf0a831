"""alertname -> the runbook's investigation, as /ops command lines, and suggested actions.

A playbook step is an /ops command line with `{placeholders}` filled from the alert's
labels, so a playbook can do exactly what a person can type. The command table reads every
step once at start (bot.alerting.steps), before any value is known: a label's value fills its
argument as a value, never as an option, extra words or PromQL syntax. Defaults follow the
runbook's "Alert Response Procedures"; chatops.yaml `playbooks:` overrides or adds per
alertname, and `playbook_defaults:` sets the fallbacks for labels an alert doesn't carry.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Iterable, Mapping
from urllib.parse import parse_qs, urlsplit

from bot.alerting.model import Alert
from bot.alerting.steps import EXPR, Pattern, Step, StepTemplate, fill_text, names, parse_template
from bot.commands.parser import CommandTable
from bot.errors import UsageError
from bot.sections import DEFAULT_FILE, Where, entry, key, list_of, mapping_of, show, text, unknown_key
from diagnostics.promql import string_literal

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
            "metric node-cpu instance=~{instance}",
            "graph node-cpu instance=~{instance}",
            "promql topk(5, sum by (namespace, pod) (rate(container_cpu_usage_seconds_total{{node=~\"{node}\"}}[5m])))",
        ],
        "actions": [],
    },
    "HighMemoryUsage": {
        "steps": [
            "metric node-memory instance=~{instance}",
            "graph node-memory instance=~{instance}",
            "promql topk(5, sum by (namespace, pod) (container_memory_working_set_bytes{{node=~\"{node}\"}}))",
        ],
        "actions": [],
    },
    "DiskSpaceWarning": {
        "steps": [
            "metric node-disk instance=~{instance} mountpoint={mountpoint}",
            "graph node-disk instance=~{instance} mountpoint={mountpoint}",
            "promql topk(5, sum by (namespace, pod) (container_fs_usage_bytes{{node=~\"{node}\"}}))",
        ],
        "actions": [],
    },
}
# Any other alert: its own expression and what happened in its namespace.
FALLBACK_PLAYBOOK: dict[str, Any] = {"steps": ["graph {expr}", "events -n {namespace}"], "actions": []}

# The runbook's production names, for alerts whose labels don't say. `instance` and `node` are
# matched with `=~` by the node playbooks, so their fallback `.+` (any) works: a fallback is a
# Pattern (bot.alerting.steps), a regex as written, while an alert's label value is regex-escaped.
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


def _built_in(name: str, spec: Mapping[str, Any]) -> Playbook:
    return Playbook(name, tuple(spec["steps"]), tuple(spec["actions"]))


BUILT_IN: Mapping[str, Playbook] = MappingProxyType(
    {name: _built_in(name, spec) for name, spec in DEFAULT_PLAYBOOKS.items()})
FALLBACK = _built_in("default", FALLBACK_PLAYBOOK)


@dataclass(frozen=True)
class Playbooks:
    """The `playbooks:` section over the runbook's, with `playbook_defaults:` for missing labels."""

    by_name: Mapping[str, Playbook] = field(default_factory=lambda: BUILT_IN)
    fallback: Playbook = FALLBACK
    defaults: Mapping[str, str] = field(default_factory=lambda: MappingProxyType(dict(DEFAULT_PARAMETERS)))

    def for_alert(self, alert: Alert) -> Playbook:
        return self.by_name.get(alert.name, self.fallback)

    def commands(self, alert: Alert) -> list[str]:
        """The playbook's steps for this alert as people read them (PlaybookSteps runs them)."""
        values = parameters(alert, self.defaults)
        out = []
        for step in self.for_alert(alert).steps:
            missing = next((name for name in names(step) if name not in values), None)
            out.append(f"{step} (the alert has no label {missing!r})" if missing
                       else fill_text(step, values, bare_words=True, display=True))
        return out


def parameters(alert: Alert, defaults: Mapping[str, str]) -> dict[str, str]:
    """What fills a step's placeholders: the alert's labels, with fallbacks.

    Any value can fill a placeholder, as a value (bot.alerting.steps). Where there is a fallback,
    a value that is not one printable word (white space, braces) is passed over for it. The
    fallbacks are Patterns: in a regex matcher `.+` means any, where a label's `.+` is that text.
    """
    labels = {k: v for k, v in alert.labels.items() if v}
    words = {k: v for k, v in labels.items() if _safe_value(v)}
    defaults = {k: Pattern(v) for k, v in defaults.items()}  # configuration: a regex where one is read
    values = {**defaults, **{k: v for k, v in labels.items() if k in words or k not in defaults}}
    values["namespace"] = words.get("namespace") or words.get("kubernetes_namespace") or defaults["namespace"]
    values["deployment"] = (words.get("deployment") or words.get("app") or words.get("service")
                            or defaults["deployment"])
    values["app"] = words.get("app") or words.get("service") or defaults["app"]
    instance = words.get("instance", "")
    values["instance"] = instance or defaults["instance"]
    values["node"] = labels.get("node") or instance.rsplit(":", 1)[0] or Pattern(".+")
    # The one placeholder that is PromQL: the alert rule's expression, the whole of a
    # `graph`/`promql` expression (never read for options).
    values[EXPR] = expression(alert) or f"ALERTS{{alertname={string_literal(alert.name)}}}"
    return values


def _safe_value(value: str) -> bool:
    # One printable word: no white space, no braces.
    return bool(value) and value.isprintable() and not re.search(r"[\s{}]", value)


def expression(alert: Alert) -> str:
    """The alert rule's PromQL, from Prometheus's generatorURL (`/graph?g0.expr=...`)."""
    if not alert.generator_url:
        return ""
    query = parse_qs(urlsplit(alert.generator_url).query)
    return (query.get("g0.expr") or [""])[0]


# --------------------------------------------------------------------------- chatops.yaml


def _step(value: Any, where: Where) -> str:
    if not isinstance(value, str) or not value.strip():
        raise where.wrong("must be an /ops command line", value)
    try:
        list(string.Formatter().parse(value))
    except ValueError as e:
        raise where.error(f"{show(value)} has a broken placeholder ({e})") from None
    return value


@dataclass(frozen=True)
class PlaybookEntry:
    """One entry of `playbooks:` (an alertname, or `default` for any other alert)."""

    steps: tuple[str, ...] = key(list_of(_step), ())
    actions: tuple[str, ...] = key(list_of(text), ())


def _word(value: Any, where: Where) -> str:
    if not isinstance(value, str) or not _safe_value(value):
        raise where.wrong("must be a single word (no spaces or braces)", value)
    return value


# Placeholders filled from the alert alone: a default for them would never be used.
COMPUTED = ("node", "expr")


def placeholders(steps: Iterable[str]) -> set[str]:
    """The placeholder names the steps use: `pods {deployment} -n {namespace}` -> deployment, namespace."""
    names = set()
    for step in steps:
        for _, field_name, _, _ in string.Formatter().parse(step):
            if field_name:
                names.add(re.split(r"[.\[]", field_name, maxsplit=1)[0])
    return names


def load_defaults(raw: Any, used: Iterable[str] = (), file: str = DEFAULT_FILE) -> Mapping[str, str]:
    """chatops.yaml `playbook_defaults:` (placeholder -> a single word) over the runbook's names.

    Its keys are the runbook's placeholders and those the steps `used`: any other is a typo.
    """
    known = sorted((set(DEFAULT_PARAMETERS) | set(used)) - set(COMPUTED))

    def placeholder(name: str, where: Where) -> None:
        if name not in known:
            raise unknown_key(where, name, known)

    read = mapping_of(_word, name=placeholder, what="placeholder names")
    given = read({} if raw is None else raw, Where(file, "playbook_defaults"))
    return MappingProxyType({**DEFAULT_PARAMETERS, **given})


def load(raw: Any, raw_defaults: Any = None, file: str = DEFAULT_FILE) -> Playbooks:
    """The runbook's playbooks with chatops.yaml `playbooks:` replacing or adding entries per alertname
    (`default`: any other alert), and `playbook_defaults:` for labels an alert lacks. Raises
    ConfigError (one line)."""
    where = Where(file, "playbooks")
    given = mapping_of(entry(PlaybookEntry), what="alert names")({} if raw is None else raw, where)
    by_name, fallback = dict(BUILT_IN), FALLBACK
    for name, spec in given.items():
        playbook = Playbook(alertname=name, steps=spec.steps, actions=spec.actions)
        if name == "default":
            fallback = playbook
        else:
            by_name[name] = playbook
    used = placeholders(step for playbook in [*by_name.values(), fallback] for step in playbook.steps)
    return Playbooks(by_name=MappingProxyType(by_name), fallback=fallback,
                     defaults=load_defaults(raw_defaults, used, file))


class PlaybookSteps:
    """Every playbook's steps read once by the command table; `for_alert` fills them in."""

    def __init__(self, playbooks: Playbooks, table: CommandTable, default_namespace: str,
                 file: str = DEFAULT_FILE) -> None:
        self.playbooks = playbooks
        self.default_namespace = default_namespace
        self.templates: dict[Playbook, tuple[StepTemplate, ...]] = {}
        where = Where(file, "playbooks")
        for playbook in [*playbooks.by_name.values(), playbooks.fallback]:
            compiled = []
            for i, step in enumerate(playbook.steps):
                try:
                    compiled.append(parse_template(table, step))
                except UsageError as e:
                    raise where.key(playbook.alertname).key("steps").item(i).error(
                        f"{show(step)}: {e.message}") from None
            self.templates[playbook] = tuple(compiled)

    def for_alert(self, alert: Alert) -> list[Step]:
        values = parameters(alert, self.playbooks.defaults)
        return [template.fill(values, self.default_namespace)
                for template in self.templates[self.playbooks.for_alert(alert)]]


def validate_steps(playbooks: Playbooks, table: CommandTable, default_namespace: str,
                   file: str = DEFAULT_FILE) -> PlaybookSteps:
    """Every step, with sample values, must be a valid /ops diagnostic: typos stop the bot at start."""
    steps = PlaybookSteps(playbooks, table, default_namespace, file)
    sample = Alert(fingerprint="0", status="firing", labels={"alertname": "X", "instance": "node-1:9100"},
                   generator_url="http://p/graph?g0.expr=up+%3D%3D+0")
    values = parameters(sample, playbooks.defaults)

    class _Missing(dict[str, str]):
        def __missing__(self, key: str) -> str:
            return "sample"

        def __contains__(self, key: object) -> bool:
            return True

    where = Where(file, "playbooks")
    for playbook, templates in steps.templates.items():
        for i, template in enumerate(templates):
            at = where.key(playbook.alertname).key("steps").item(i)
            step = template.fill(_Missing(values), default_namespace)
            if step.invocation is None:
                raise at.error(f"{show(template.text)}: {step.problem}")
            if step.invocation.command.run is None or step.invocation.command.mutating:
                raise at.error(f"{show(template.text)} is not a diagnostic")
    return steps
