"""Prometheus and Alertmanager checks: promql, metric, slo, alerts, targets, graph.

chatops.yaml may override or add presets and change the SLO targets (validated at start):

    presets:
      error-rate: {warning: 0.5, critical: 2}          # a built-in's thresholds
      queue-depth:                                     # a new preset
        expr: sum(rabbitmq_queue_messages) by (queue)
        unit: messages
        warning: 1000
        critical: 10000
        labels: env=prod                               # always added, like typed filters
    slo:
      availability_percent: 99.95
      api_p95_ms: 300
      labels: service=checkout
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass
from typing import Any

from bot.commands.args import duration, label_filters
from bot.checks.common import Check, run_checks
from bot.commands.model import Arg, Command, Context
from bot.errors import ConfigError
from bot.settings import Settings, safe_url
from bot.errors import UsageError
from bot.commands.report import Report
from diagnostics.presets import DEFAULT_PRESETS, Preset, SloTargets, Thresholds
from diagnostics.promql import Matcher
from diagnostics.result import Result, Status

# Chart rendering runs after the query, in the charts pool: it gets its own allowance.
RENDER_SECONDS = 15.0
DEFAULT_GRAPH_RANGE = 3600
_PRESET_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
PRESET_KEYS = ("expr", "title", "unit", "warning", "critical", "direction", "labels")
SLO_KEYS = ("availability_percent", "api_p95_ms", "error_rate_percent", "db_p95_ms", "labels")

# Preset names the command parser accepts: the built-ins and those of the chatops.yaml last
# validated (the parser has no settings; `validate` runs once at start, before any command).
_configured_names: frozenset[str] = frozenset()


# --------------------------------------------------------------------------- configuration


def validate(settings: Settings) -> None:
    global _configured_names
    presets = presets_from(settings)
    slo_targets_from(settings)
    _configured_names = frozenset(presets) - frozenset(DEFAULT_PRESETS)


def _where(settings: Settings) -> str:
    return settings.config_file or "chatops.yaml"


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{what} must be a number, not {value!r}")
    return float(value)


def _labels(value: Any, what: str) -> tuple[Matcher, ...]:
    if not isinstance(value, str):
        raise ConfigError(f"{what} must be label filters in one string, e.g. 'service=checkout env!=dev'")
    try:
        return tuple(label_filters(value, "labels"))
    except UsageError as e:
        raise ConfigError(f"{what}: {e.message}") from None


def presets_from(settings: Settings) -> dict[str, Preset]:
    """The built-in presets with chatops.yaml's `presets:` applied. Raises ConfigError (one line)."""
    where = _where(settings)
    presets = dict(DEFAULT_PRESETS)
    for name, spec in (settings.sections.get("presets") or {}).items():
        what = f"{where}: presets.{name}"
        if not isinstance(name, str) or not _PRESET_NAME.match(name):
            raise ConfigError(f"{where}: preset name {name!r} must be lowercase letters, digits and '-'")
        if not isinstance(spec, dict):
            raise ConfigError(f"{what} must be a mapping with any of {', '.join(PRESET_KEYS)}")
        unknown = sorted(set(map(str, spec)) - set(PRESET_KEYS))
        if unknown:
            raise ConfigError(f"{what}: unknown key {unknown[0]!r} (known: {', '.join(PRESET_KEYS)})")
        base = presets.get(name)
        if base is None and "expr" not in spec:
            raise ConfigError(f"{what}: a new preset needs expr (a PromQL expression)")
        base = base or Preset(name, name, "")
        for key in ("expr", "title", "unit"):
            if key in spec and (not isinstance(spec[key], str) or (key == "expr" and not spec[key].strip())):
                raise ConfigError(f"{what}.{key} must be a{' non-empty' if key == 'expr' else ''} string")
        levels = {key: base_level for key, base_level in
                  (("warning", base.thresholds.warning), ("critical", base.thresholds.critical))}
        for key in levels:
            if key in spec:  # null removes a built-in threshold
                levels[key] = None if spec[key] is None else _number(spec[key], f"{what}.{key}")
        direction = spec.get("direction", base.thresholds.direction)
        if direction not in ("above", "below"):
            raise ConfigError(f"{what}.direction must be above or below, not {direction!r}")
        warning, critical = levels["warning"], levels["critical"]
        if warning is not None and critical is not None and (
                warning > critical if direction == "above" else warning < critical):
            relation = "above" if direction == "above" else "below"
            raise ConfigError(f"{what}: critical ({critical:g}) must be {relation} warning ({warning:g}) "
                              f"when direction is {direction}")
        presets[name] = Preset(
            name,
            spec.get("title", base.title),
            spec.get("expr", base.expr).strip(),
            spec.get("unit", base.unit),
            Thresholds(warning, critical, direction),
            _labels(spec["labels"], f"{what}.labels") if "labels" in spec else base.labels,
        )
    return presets


def slo_targets_from(settings: Settings) -> SloTargets:
    """The runbook's SLA targets with chatops.yaml's `slo:` applied. Raises ConfigError (one line)."""
    where = _where(settings)
    section = settings.sections.get("slo") or {}
    unknown = sorted(set(map(str, section)) - set(SLO_KEYS))
    if unknown:
        raise ConfigError(f"{where}: slo: unknown key {unknown[0]!r} (known: {', '.join(SLO_KEYS)})")
    values: dict[str, Any] = {}
    for key in ("availability_percent", "error_rate_percent"):
        if key in section:
            number = _number(section[key], f"{where}: slo.{key}")
            if not 0 < number < 100:
                raise ConfigError(f"{where}: slo.{key} must be a percentage between 0 and 100 (exclusive)")
            values[key] = number
    for key, field_name in (("api_p95_ms", "api_p95_seconds"), ("db_p95_ms", "db_p95_seconds")):
        if key in section:
            number = _number(section[key], f"{where}: slo.{key}")
            if number <= 0:
                raise ConfigError(f"{where}: slo.{key} must be more than 0 milliseconds")
            values[field_name] = number / 1000
    if "labels" in section:
        values["labels"] = _labels(section["labels"], f"{where}: slo.labels")
    return SloTargets(**values)


# --------------------------------------------------------------------------- argument converters


def known_preset_names() -> list[str]:
    return sorted(frozenset(DEFAULT_PRESETS) | _configured_names)


def preset_name(value: str, what: str = "preset") -> str:
    name = value.lower()
    names = known_preset_names()
    if name in names:
        return name
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    if close:
        raise UsageError(f"Unknown preset `{value}`. Did you mean {' or '.join(f'`{c}`' for c in close)}?")
    raise UsageError(f"Unknown preset `{value}`. Presets: {', '.join(names)}")


@dataclass(frozen=True)
class GraphQuery:
    preset: str | None  # a preset's name, or None for raw PromQL
    matchers: tuple[Matcher, ...] = ()
    expr: str = ""


def graph_query(value: str, what: str) -> GraphQuery:
    """`error-rate service=checkout` (a preset and filters) or any PromQL expression.

    A first word shaped like a preset name (`eror-rate`) is taken for a mistyped preset rather
    than the subtraction PromQL would read, which would chart nothing.
    """
    first, _, rest = value.strip().partition(" ")
    if first.lower() in known_preset_names() or ("-" in first and _PRESET_NAME.match(first.lower())):
        name = preset_name(first, what)
        return GraphQuery(name, tuple(label_filters(rest, "label filters")) if rest.strip() else ())
    return GraphQuery(None, expr=value.strip())


# --------------------------------------------------------------------------- runners


def _filters_text(matchers: Any) -> str:
    return " ".join(f"{name}{op}{value}" for name, op, value in matchers or ())


def _titled(title: str, matchers: Any) -> str:
    text = _filters_text(matchers)
    return f"{title} · {text}" if text else title


def _source(ctx: Context) -> Any:
    from diagnostics.prometheus import PrometheusSource

    return PrometheusSource(ctx.clients.prometheus, ctx.clients.pool("prometheus"),
                            ctx.clients.backend("prometheus").location, ctx.settings.diagnostic_timeout,
                            ctx.clients.cache, ctx.clients.http, ctx.settings.prometheus_url,
                            chart_pool=ctx.clients.pool("charts"))


def _links(ctx: Context, expr: str, seconds: int) -> list[Any]:
    from diagnostics.prometheus import query_links

    grafana = safe_url(ctx.settings.grafana_url) if ctx.settings.grafana_url else ""
    return query_links(ctx.clients.backend("prometheus").location, expr, seconds, grafana)


async def _report(ctx: Context, title: str, backend: str, run: Any, extra: float = 1.0) -> Report:
    # Each diagnostic bounds its own calls; this outer bound catches anything else.
    check = Check(title, backend, run, timeout=ctx.settings.diagnostic_timeout + extra)
    return Report(title=title, results=await run_checks(ctx, [check]))


async def promql(ctx: Context, args: dict[str, object]) -> Report:
    from diagnostics.durations import compact_duration
    from diagnostics.prometheus import promql_instant, promql_range

    expr = str(args["expr"])
    seconds = int(args["range"]) if args["range"] else 0  # type: ignore[call-overload]
    links = _links(ctx, expr, seconds or DEFAULT_GRAPH_RANGE)
    if seconds:
        title = f"PromQL · last {compact_duration(seconds)}"
        return await _report(ctx, title, "prometheus", lambda: promql_range(
            _source(ctx), expr, seconds, title=title, links=links))
    return await _report(ctx, "PromQL", "prometheus", lambda: promql_instant(
        _source(ctx), expr, title="PromQL", links=links))


async def metric(ctx: Context, args: dict[str, object]) -> Report:
    from diagnostics.prometheus import preset_expr, preset_status

    matchers = list(args["filters"] or [])  # type: ignore[call-overload]
    preset = presets_from(ctx.settings).get(str(args["preset"]))
    if preset is None:  # named in another chatops.yaml than this bot's (only where several are loaded)
        return Report(title=str(args["preset"]), results=[Result(
            Status.UNKNOWN, str(args["preset"]), f"no preset `{args['preset']}` in {_where(ctx.settings)}")])
    title = _titled(preset.title, matchers)
    expr = preset_expr(preset, matchers)
    return await _report(ctx, title, "prometheus", lambda: preset_status(
        _source(ctx), preset, expr, title=title, links=_links(ctx, expr, DEFAULT_GRAPH_RANGE)))


async def slo(ctx: Context, args: dict[str, object]) -> Report:
    from diagnostics.promql import inject_matchers
    from diagnostics.slo import AVAILABILITY_30D, slo_status

    matchers = list(args["filters"] or [])  # type: ignore[call-overload]
    targets = slo_targets_from(ctx.settings)
    title = _titled("SLO", [*targets.labels, *matchers])
    links = _links(ctx, inject_matchers(AVAILABILITY_30D, [*targets.labels, *matchers]), 30 * 86400)
    return await _report(ctx, title, "prometheus", lambda: slo_status(
        _source(ctx), targets, matchers, title=title, links=links))


async def alerts(ctx: Context, args: dict[str, object]) -> Report:
    from diagnostics.alertmanager import firing_alerts

    location = ctx.clients.backend("alertmanager").location
    return await _report(ctx, "Alerts", "alertmanager", lambda: firing_alerts(
        ctx.clients.http, ctx.settings.alertmanager_url, location=location,
        timeout=ctx.settings.diagnostic_timeout, cache=ctx.clients.cache))


async def targets(ctx: Context, args: dict[str, object]) -> Report:
    from diagnostics.prometheus import targets_down

    return await _report(ctx, "Prometheus targets", "prometheus", lambda: targets_down(_source(ctx)))


async def graph(ctx: Context, args: dict[str, object]) -> Report:
    from diagnostics.charts import graph as graph_diagnostic
    from diagnostics.prometheus import preset_expr

    query = args["query"]
    assert isinstance(query, GraphQuery)
    seconds = int(args["range"] or DEFAULT_GRAPH_RANGE)  # type: ignore[call-overload]
    preset = presets_from(ctx.settings).get(query.preset) if query.preset else None
    if preset is not None:
        expr, name = preset_expr(preset, query.matchers), preset.name
        title = _titled(preset.title, query.matchers)
        unit, thresholds = preset.unit, preset.thresholds
    else:
        expr, title, name, unit, thresholds = query.expr, query.expr, "promql", "", None
    links = _links(ctx, expr, seconds)
    return await _report(ctx, title, "prometheus", lambda: graph_diagnostic(
        _source(ctx), expr, seconds, title=title, name=name, unit=unit, thresholds=thresholds, links=links),
        extra=RENDER_SECONDS)


# --------------------------------------------------------------------------- the commands

_FILTERS = Arg("filters", "label filters added to every selector: service=checkout env!=dev", kind="rest",
               required=False, convert=label_filters, metavar="label=value")


def _range(default: int | None, help_text: str) -> Arg:
    return Arg("range", help_text, flags=("--range",), required=False, convert=duration, metavar="range",
               default=default)


COMMANDS = [
    Command(
        "promql",
        "Run a PromQL query: a table of series and values, or with --range each series' min/avg/max/last",
        (Arg("expr", "PromQL expression, quotes kept as typed", kind="rest", metavar="promql"),
         _range(None, "run a range query over this span (e.g. 1h)")),
        run=promql,
        backend="prometheus",
        raw=True,
        example='promql sum(rate(http_requests_total{status=~"5.."}[5m])) by (handler)',
    ),
    Command(
        "metric",
        "A runbook metric now (error-rate, latency-p95, db-pool, node-cpu, …) against its warning/critical "
        "thresholds",
        (Arg("preset", "preset name: " + ", ".join(DEFAULT_PRESETS), convert=preset_name), _FILTERS),
        run=metric,
        backend="prometheus",
        example="metric error-rate service=checkout",
    ),
    Command(
        "slo",
        "The SLA table measured now: availability (5 m, 30 d), API p95, error rate, DB p95, and the month's "
        "error budget left",
        (_FILTERS,),
        run=slo,
        backend="prometheus",
        example="slo service=checkout",
    ),
    Command(
        "alerts",
        "What is firing in Alertmanager: severity, age, summary; silenced and inhibited alerts say by what",
        (),
        run=alerts,
        backend="alertmanager",
        example="alerts",
    ),
    Command(
        "targets",
        "Prometheus scrape targets that are down, with job, last error and last scrape",
        (),
        run=targets,
        backend="prometheus",
        example="targets",
    ),
    Command(
        "graph",
        "Chart a preset (with label filters) or a PromQL expression over a range, with its thresholds, "
        "as a PNG",
        (Arg("query", "a preset name and label filters, or a PromQL expression", kind="rest",
             convert=graph_query, metavar="preset|promql"),
         _range(DEFAULT_GRAPH_RANGE, "the span to chart (default 1h)")),
        run=graph,
        backend="prometheus",
        raw=True,
        example="graph error-rate service=checkout --range 6h",
    ),
]
