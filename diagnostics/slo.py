"""The runbook's SLA table measured now, and the month's error budget.

Arithmetic (all in ratios; shown in percent):

* error ratio over a window W = sum(rate(5xx[W])) / sum(rate(all[W])). The two sums come back as
  separate series (of one query, so of one instant) and are divided here: the runbook's
  one-expression form returns *nothing* when no 5xx series exists yet, which would read as
  "no data" for a service with no errors. No 5xx series with traffic present is a ratio of 0;
  no traffic at all is "no data".
* availability(W) = 1 − error ratio(W): the runbook's SLI (non-5xx / all), met when ≥ the target.
* error rate (5 m) met when the ratio is < the target (0.1 %).
* budget = 1 − availability target (99.9 % → 0.001 of the requests of the 30 days);
  consumed = error ratio(30 d) / budget; left = 1 − consumed (0.05 % failed → 50 % left;
  0.2 % failed → 200 % consumed, exhausted).
* API and DB p95 (5 m) met when < the target.

A value equal to a "≥" target within float rounding (99.9 % against 99.9 %) counts as met; equal
to a "<" target counts as missed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from diagnostics.http_api import BackendError
from diagnostics.presets import SloTargets
from diagnostics.prometheus import PrometheusSource
from diagnostics.promql import Matcher, format_value, inject_matchers
from diagnostics.result import Link, Result, Row, Status

ERRORS = 'sum(rate(http_requests_total{{status=~"5.."}}[{window}]))'
TOTAL = "sum(rate(http_requests_total[{window}]))"
API_P95 = "histogram_quantile(0.95, sum(rate(http_request_duration_seconds_bucket[5m])) by (le))"
DB_P95 = "histogram_quantile(0.95, sum(rate(postgresql_query_duration_seconds_bucket[5m])) by (le))"
# The runbook's availability SLI, for the link to Prometheus.
AVAILABILITY_30D = 'sum(rate(http_requests_total{status!~"5.."}[30d])) / sum(rate(http_requests_total[30d]))'

MET, MISSED, NO_DATA = "met", "missed", "no data"
_VERDICT_STATUS = {MET: Status.OK, MISSED: Status.CRITICAL, NO_DATA: Status.UNKNOWN}


@dataclass(frozen=True)
class Measurements:
    """What Prometheus answered; None where it has no series."""

    errors_5m: float | None = None
    total_5m: float | None = None
    errors_30d: float | None = None
    total_30d: float | None = None
    api_p95: float | None = None
    db_p95: float | None = None


@dataclass(frozen=True)
class Objective:
    name: str
    measured: str
    target: str
    verdict: str  # met, missed, no data (for the budget: met = some left, missed = exhausted)
    detail: str = ""

    @property
    def status(self) -> Status:
        return _VERDICT_STATUS[self.verdict]


def error_ratio(errors: float | None, total: float | None) -> float | None:
    """5xx / all; None without traffic. No 5xx series (None) with traffic is a ratio of 0."""
    if total is None or math.isnan(total) or total <= 0:
        return None
    return (errors or 0.0) / total


@dataclass(frozen=True)
class Budget:
    allowed: float  # ratio of requests that may fail: 0.001
    observed: float  # error ratio over 30 days

    @property
    def consumed(self) -> float:
        return self.observed / self.allowed

    @property
    def left(self) -> float:
        """Share of the budget left; negative when overspent."""
        return 1.0 - self.consumed


def percent(ratio: float) -> str:
    """0.0005 -> "0.05 %", 0.9995 -> "99.95 %": up to four decimals, never rounded to the target."""
    text = f"{ratio * 100:.4f}".rstrip("0").rstrip(".")
    return f"{text} %"


def _at_least(value: float, target: float) -> bool:
    return value > target or math.isclose(value, target, rel_tol=1e-9)


def _below(value: float, target: float) -> bool:
    return value < target and not math.isclose(value, target, rel_tol=1e-9)


def evaluate(m: Measurements, targets: SloTargets) -> list[Objective]:
    objectives = []
    budget_ratio = targets.error_budget_ratio
    availability_target = f"≥ {targets.availability_percent:g} %"
    for window, label in (("5m", "Availability (5 m)"), ("30d", "Availability (30 d)")):
        ratio = error_ratio(getattr(m, f"errors_{window}"), getattr(m, f"total_{window}"))
        if ratio is None:
            objectives.append(Objective(label, NO_DATA, availability_target, NO_DATA))
            continue
        available = 1.0 - ratio
        met = _at_least(available * 100, targets.availability_percent)
        objectives.append(Objective(label, percent(available), availability_target, MET if met else MISSED))

    objectives.append(_latency("API p95 (5 m)", m.api_p95, targets.api_p95_seconds))

    ratio_5m = error_ratio(m.errors_5m, m.total_5m)
    error_target = f"< {targets.error_rate_percent:g} %"
    if ratio_5m is None:
        objectives.append(Objective("Error rate (5 m)", NO_DATA, error_target, NO_DATA))
    else:
        met = _below(ratio_5m * 100, targets.error_rate_percent)
        verdict = MET if met else MISSED
        objectives.append(Objective("Error rate (5 m)", percent(ratio_5m), error_target, verdict))

    objectives.append(_latency("DB query p95 (5 m)", m.db_p95, targets.db_p95_seconds))
    objectives.append(budget_objective(error_ratio(m.errors_30d, m.total_30d), budget_ratio))
    return objectives


def _latency(name: str, value: float | None, target: float) -> Objective:
    wanted = f"< {format_value(target, 's')}"
    if value is None or math.isnan(value):  # NaN: a quantile of no observations
        return Objective(name, NO_DATA, wanted, NO_DATA)
    return Objective(name, format_value(value, "s"), wanted, MET if _below(value, target) else MISSED)


def budget_objective(observed: float | None, allowed: float) -> Objective:
    target = f"{percent(allowed)} of requests may fail in 30 d"
    if observed is None:
        return Objective("Error budget (30 d)", NO_DATA, target, NO_DATA)
    budget = Budget(allowed, observed)
    detail = (f"{percent(observed)} of requests failed: {budget.consumed * 100:.1f} % of the budget used")
    if budget.left <= 0:
        measured = f"exhausted ({budget.consumed * 100:.1f} % used)"
        return Objective("Error budget (30 d)", measured, target, MISSED, detail)
    return Objective("Error budget (30 d)", f"{budget.left * 100:.1f} % left", target, MET, detail)


MEASURE_LABEL = "slo_measure"


def slo_query(matchers: list[Matcher]) -> str:
    """All six measurements as ONE query, each series labelled with what it is.

    One query is one evaluation instant: errors and totals are rates of the same samples (asked
    separately, a scrape landing between the two answers skews the ratio while a window fills).
    """
    parts = {f"{kind}_{w}": template.format(window=w)
             for w in ("5m", "30d") for kind, template in (("errors", ERRORS), ("total", TOTAL))}
    parts.update(api_p95=API_P95, db_p95=DB_P95)
    return " or ".join(f'label_replace({inject_matchers(q, matchers)}, "{MEASURE_LABEL}", "{name}", "", "")'
                       for name, q in parts.items())


async def measure(prom: PrometheusSource, matchers: list[Matcher]) -> Measurements:
    answer = await prom.instant(slo_query(matchers))
    values = {s.labels.get(MEASURE_LABEL): s.value for s in answer.samples}
    return Measurements(**{name: values.get(name) for name in Measurements.__dataclass_fields__})


async def slo_status(prom: PrometheusSource, targets: SloTargets, matchers: list[Matcher], *, title: str,
                     links: list[Link]) -> Result:
    try:
        measured = await measure(prom, [*targets.labels, *matchers])
    except BackendError as e:
        return Result.error(title, str(e))
    objectives = evaluate(measured, targets)
    rows = [Row((o.name, o.measured, o.target, o.verdict), o.status, o.detail if o.verdict != MET else "")
            for o in objectives]
    missed = [o.name for o in objectives[:-1] if o.verdict == MISSED]
    unknown = [o for o in objectives[:-1] if o.verdict == NO_DATA]
    met = sum(1 for o in objectives[:-1] if o.verdict == MET)
    parts = [f"{met} of {len(objectives) - 1} objectives met"]
    if missed:
        parts.append(f"missed: {', '.join(missed)}")
    if unknown:
        parts.append(f"{len(unknown)} without data")
    budget = objectives[-1]
    parts.append(f"error budget {budget.measured}" if budget.verdict != NO_DATA else "error budget: no data")
    fields = {"Window": "5 m now; availability and budget also over 30 d (or all the data Prometheus keeps)"}
    observed = error_ratio(measured.errors_30d, measured.total_30d)
    if observed is not None:
        used = Budget(targets.error_budget_ratio, observed).consumed
        fields.update({"Requests failed (30 d)": percent(observed), "Budget used": f"{used * 100:.1f} %"})
    return Result(Status.worst([o.status for o in objectives]), title, " · ".join(parts), fields=fields,
                  columns=("objective", "measured", "target", ""), rows=rows, links=links)
