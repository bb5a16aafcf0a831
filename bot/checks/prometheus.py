"""Prometheus and Alertmanager checks: promql, metric, slo, alerts, targets, graph.

chatops.yaml may override or add presets and change the SLO targets. Each section is parsed
once at start (`load_presets`, `load_slo`) and the commands are built from the result
(`commands(presets, slo)`), so the `metric` and `graph` arguments know the configured presets:

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
import re
from dataclasses import dataclass, field
from functools import partial
from types import MappingProxyType
from typing import Any, Callable, Literal, Mapping

from bot.checks.common import Check, run_checks
from bot.commands.args import duration, label_filters
from bot.commands.model import Arg, Args, Command, Context
from bot.commands.report import Report
from bot.errors import UsageError
from bot.sections import (
    DEFAULT_FILE,
    UNSET,
    Unset,
    Where,
    entry,
    key,
    mapping_of,
    number,
    one_of,
    optional,
    positive,
    read,
    string,
)
from bot.settings import safe_url
from diagnostics.presets import DEFAULT_PRESETS, Preset, SloTargets, Thresholds
from diagnostics.promql import Matcher

# Chart rendering runs after the query, in the charts pool: it gets its own allowance.
RENDER_SECONDS = 15.0
DEFAULT_GRAPH_RANGE = 3600
_PRESET_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


# --------------------------------------------------------------------------- configuration


def label_matchers(value: Any, where: Where) -> tuple[Matcher, ...]:
    if not isinstance(value, str):
        raise where.wrong("must be label filters in one string, e.g. 'service=checkout env!=dev'", value)
    try:
        return tuple(label_filters(value, "labels"))
    except UsageError as e:
        raise where.error(e.message) from None


def _expr(value: Any, where: Where) -> str:
    if not isinstance(value, str) or not value.strip():
        raise where.wrong("must be a non-empty string (a PromQL expression)", value)
    return value.strip()


_LEVEL = optional(number())  # null removes a built-in threshold


@dataclass(frozen=True)
class PresetEntry:
    """One entry of `presets:` as written; UNSET keys keep the built-in preset's value."""

    expr: str | Unset = key(_expr, UNSET)
    title: str | Unset = key(string, UNSET)
    unit: str | Unset = key(string, UNSET)
    warning: float | None | Unset = key(_LEVEL, UNSET)
    critical: float | None | Unset = key(_LEVEL, UNSET)
    direction: Literal["above", "below"] | Unset = key(one_of("above", "below"), UNSET)
    labels: tuple[Matcher, ...] | Unset = key(label_matchers, UNSET)


@dataclass(frozen=True)
class Presets:
    """The `presets:` section: the built-in presets with chatops.yaml's changes and additions."""

    by_name: Mapping[str, Preset] = field(default_factory=lambda: MappingProxyType(dict(DEFAULT_PRESETS)))

    @property
    def names(self) -> list[str]:
        return sorted(self.by_name)


def _preset_name(name: str, where: Where) -> None:
    if not _PRESET_NAME.match(name):
        raise where.wrong("a preset name must be lowercase letters, digits and '-'", name)


def load_presets(raw: Any, file: str = DEFAULT_FILE) -> Presets:
    """chatops.yaml `presets:` applied to the built-ins. Raises ConfigError (one line)."""
    where = Where(file, "presets")
    entries = mapping_of(entry(PresetEntry), name=_preset_name, what="preset names")(
        {} if raw is None else raw, where)
    presets = dict(DEFAULT_PRESETS)
    for name, given in entries.items():
        presets[name] = _apply(presets.get(name), name, given, where.key(name))
    return Presets(MappingProxyType(presets))


def _apply(base: Preset | None, name: str, given: PresetEntry, where: Where) -> Preset:
    if base is None and given.expr is UNSET:
        raise where.error("a new preset needs expr (a PromQL expression)")
    base = base or Preset(name, name, "")

    def pick(value: Any, default: Any) -> Any:
        return default if value is UNSET else value

    thresholds = Thresholds(pick(given.warning, base.thresholds.warning),
                            pick(given.critical, base.thresholds.critical),
                            pick(given.direction, base.thresholds.direction))
    warning, critical, direction = thresholds.warning, thresholds.critical, thresholds.direction
    if warning is not None and critical is not None and (
            warning > critical if direction == "above" else warning < critical):
        raise where.error(f"critical ({critical:g}) must be {direction} warning ({warning:g}) "
                          f"when direction is {direction}")
    return Preset(name, pick(given.title, base.title), pick(given.expr, base.expr), pick(given.unit, base.unit),
                  thresholds, pick(given.labels, base.labels))


_PERCENT = number(above=0, below=100, must="must be a percentage between 0 and 100 (exclusive)")
_DEFAULT_SLO = SloTargets()


@dataclass(frozen=True)
class SloKeys:
    """The `slo:` section as written (milliseconds); `targets` is what the checks use."""

    availability_percent: float = key(_PERCENT, _DEFAULT_SLO.availability_percent)
    api_p95_ms: float = key(positive, _DEFAULT_SLO.api_p95_seconds * 1000)
    error_rate_percent: float = key(_PERCENT, _DEFAULT_SLO.error_rate_percent)
    db_p95_ms: float = key(positive, _DEFAULT_SLO.db_p95_seconds * 1000)
    labels: tuple[Matcher, ...] = key(label_matchers, _DEFAULT_SLO.labels)

    @property
    def targets(self) -> SloTargets:
        return SloTargets(self.availability_percent, self.api_p95_ms / 1000, self.error_rate_percent,
                          self.db_p95_ms / 1000, self.labels)


def load_slo(raw: Any, file: str = DEFAULT_FILE) -> SloTargets:
    """The runbook's SLA targets with chatops.yaml's `slo:` applied. Raises ConfigError (one line)."""
    return read(SloKeys, raw, Where(file, "slo"), absent_ok=True).targets


# --------------------------------------------------------------------------- argument converters


def preset_name(names: list[str]) -> Callable[[str, str], str]:
    """The `metric` argument: one of `names` (the presets the table was built with)."""

    def convert(value: str, what: str = "preset") -> str:
        name = value.lower()
        if name in names:
            return name
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
        if close:
            raise UsageError(f"Unknown preset `{value}`. Did you mean {' or '.join(f'`{c}`' for c in close)}?")
        raise UsageError(f"Unknown preset `{value}`. Presets: {', '.join(names)}")

    return convert


@dataclass(frozen=True)
class GraphQuery:
    preset: str | None  # a preset's name, or None for raw PromQL
    matchers: tuple[Matcher, ...] = ()
    expr: str = ""


def graph_query(names: list[str]) -> Callable[[str, str], GraphQuery]:
    """The `graph` argument: `error-rate service=checkout` (a preset and filters) or any PromQL.

    A first word shaped like a preset name (`eror-rate`) is taken for a mistyped preset rather
    than the subtraction PromQL would read, which would chart nothing.
    """
    preset = preset_name(names)

    def convert(value: str, what: str) -> GraphQuery:
        first, _, rest = value.strip().partition(" ")
        if first.lower() in names or ("-" in first and _PRESET_NAME.match(first.lower())):
            name = preset(first, what)
            return GraphQuery(name, tuple(label_filters(rest, "label filters")) if rest.strip() else ())
        return GraphQuery(None, expr=value.strip())

    return convert


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


async def promql(ctx: Context, args: Args) -> Report:
    from diagnostics.durations import compact_duration
    from diagnostics.prometheus import promql_instant, promql_range

    expr = str(args["expr"])
    seconds = int(args["range"]) if args["range"] else 0
    links = _links(ctx, expr, seconds or DEFAULT_GRAPH_RANGE)
    if seconds:
        title = f"PromQL · last {compact_duration(seconds)}"
        return await _report(ctx, title, "prometheus", lambda: promql_range(
            _source(ctx), expr, seconds, title=title, links=links))
    return await _report(ctx, "PromQL", "prometheus", lambda: promql_instant(
        _source(ctx), expr, title="PromQL", links=links))


async def metric(presets: Presets, ctx: Context, args: Args) -> Report:
    from diagnostics.prometheus import preset_expr, preset_status

    matchers = list(args["filters"] or [])
    preset = presets.by_name[str(args["preset"])]  # the argument converter knows the same names
    title = _titled(preset.title, matchers)
    expr = preset_expr(preset, matchers)
    return await _report(ctx, title, "prometheus", lambda: preset_status(
        _source(ctx), preset, expr, title=title, links=_links(ctx, expr, DEFAULT_GRAPH_RANGE)))


async def slo(targets: SloTargets, ctx: Context, args: Args) -> Report:
    from diagnostics.promql import inject_matchers
    from diagnostics.slo import AVAILABILITY_30D, slo_status

    matchers = list(args["filters"] or [])
    title = _titled("SLO", [*targets.labels, *matchers])
    links = _links(ctx, inject_matchers(AVAILABILITY_30D, [*targets.labels, *matchers]), 30 * 86400)
    return await _report(ctx, title, "prometheus", lambda: slo_status(
        _source(ctx), targets, matchers, title=title, links=links))


async def alerts(ctx: Context, args: Args) -> Report:
    from diagnostics.alertmanager import firing_alerts

    location = ctx.clients.backend("alertmanager").location
    return await _report(ctx, "Alerts", "alertmanager", lambda: firing_alerts(
        ctx.clients.http, ctx.settings.alertmanager_url, location=location,
        timeout=ctx.settings.diagnostic_timeout, cache=ctx.clients.cache))


async def targets(ctx: Context, args: Args) -> Report:
    from diagnostics.prometheus import targets_down

    return await _report(ctx, "Prometheus targets", "prometheus", lambda: targets_down(_source(ctx)))


async def graph(presets: Presets, ctx: Context, args: Args) -> Report:
    from diagnostics.charts import graph as graph_diagnostic
    from diagnostics.prometheus import preset_expr

    query = args["query"]
    assert isinstance(query, GraphQuery)
    seconds = int(args["range"] or DEFAULT_GRAPH_RANGE)
    preset = presets.by_name[query.preset] if query.preset else None
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


def commands(presets: Presets, slo_targets: SloTargets) -> list[Command]:
    """The Prometheus and Alertmanager commands, for the `presets:` and `slo:` sections given."""
    names = presets.names
    return [
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
            (Arg("preset", "preset name: " + ", ".join(names), convert=preset_name(names)), _FILTERS),
            run=partial(metric, presets),
            backend="prometheus",
            example="metric error-rate service=checkout",
        ),
        Command(
            "slo",
            "The SLA table measured now: availability (5 m, 30 d), API p95, error rate, DB p95, and the month's "
            "error budget left",
            (_FILTERS,),
            run=partial(slo, slo_targets),
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
                 convert=graph_query(names), metavar="preset|promql"),
             _range(DEFAULT_GRAPH_RANGE, "the span to chart (default 1h)")),
            run=partial(graph, presets),
            backend="prometheus",
            raw=True,
            example="graph error-rate service=checkout --range 6h",
        ),
    ]
