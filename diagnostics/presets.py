"""The runbook's named PromQL queries and thresholds, and its SLA targets, as data.

Values are copied from the runbook ("Key metrics to monitor" and "SLA targets"); chatops.yaml
can override or add to them (`presets:` and `slo:`, validated by bot/checks/prometheus.py).
Thresholds are in the preset's unit: percent for "%", seconds for "s".
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from diagnostics.promql import Matcher, format_value
from diagnostics.result import Status

Direction = Literal["above", "below"]
T = TypeVar("T")


@dataclass(frozen=True)
class Thresholds:
    """Warning and critical levels; `above`: bad when the value is greater, `below`: smaller."""

    warning: float | None = None
    critical: float | None = None
    direction: Direction = "above"

    @property
    def any(self) -> bool:
        return self.warning is not None or self.critical is not None

    def evaluate(self, value: float) -> Status:
        """OK, WARNING or CRITICAL for one value; UNKNOWN for NaN (e.g. a quantile of no traffic)."""
        if math.isnan(value):
            return Status.UNKNOWN
        if self.critical is not None and self._beyond(value, self.critical):
            return Status.CRITICAL
        if self.warning is not None and self._beyond(value, self.warning):
            return Status.WARNING
        return Status.OK

    def _beyond(self, value: float, level: float) -> bool:
        return value > level if self.direction == "above" else value < level

    def describe(self, unit: str = "") -> str:
        """"warning > 1 %, critical > 5 %" (empty when there are none)."""
        levels = (self.level_of(Status.WARNING, unit), self.level_of(Status.CRITICAL, unit))
        return ", ".join(level for level in levels if level)

    def level_of(self, status: Status, unit: str = "") -> str:
        """The level a status crossed, for a summary: "critical > 5 %"."""
        level = {Status.WARNING: self.warning, Status.CRITICAL: self.critical}.get(status)
        if level is None:
            return ""
        sign = ">" if self.direction == "above" else "<"
        return f"{status.value} {sign} {format_value(level, unit)}"

    def verdict(self, status: Status, unit: str = "") -> str:
        """"critical > 5 %", "within thresholds", or "" when there are no thresholds."""
        return self.level_of(status, unit) or ("within thresholds" if self.any else "")

    def worst_first(self, items: Iterable[tuple[float, T]]) -> list[tuple[Status, float, T]]:
        """(status, value, item) for each (value, item), the worst status first, then the furthest value."""
        rated = [(self.evaluate(value), value, item) for value, item in items]
        ahead = -1 if self.direction == "above" else 1
        return sorted(rated, key=lambda r: (-r[0].rank, ahead * r[1] if not math.isnan(r[1]) else 0))


@dataclass(frozen=True)
class Preset:
    name: str
    title: str
    expr: str
    unit: str = ""
    thresholds: Thresholds = Thresholds()
    # Label filters always added to the expression (chatops.yaml `labels:`), before typed ones.
    labels: tuple[Matcher, ...] = ()


def _p(name: str, title: str, expr: str, unit: str = "", warning: float | None = None,
       critical: float | None = None, direction: Direction = "above") -> Preset:
    return Preset(name, title, expr, unit, Thresholds(warning, critical, direction))


def _latency(quantile: str, warning: float | None = None, critical: float | None = None) -> Preset:
    expr = f"histogram_quantile({quantile}, sum(rate(http_request_duration_seconds_bucket[5m])) by (le))"
    return _p(f"latency-p{quantile[2:]}", f"API latency p{quantile[2:]}", expr, "s", warning, critical)


DEFAULT_PRESETS: dict[str, Preset] = {p.name: p for p in [
    # Application
    _p("request-rate", "Request rate", "sum(rate(http_requests_total[5m])) by (method, handler)", "req/s"),
    _p("error-rate", "Error rate",
       'sum(rate(http_requests_total{status=~"5.."}[5m])) / sum(rate(http_requests_total[5m])) * 100',
       "%", warning=1, critical=5),
    _latency("0.50"),
    _latency("0.95", warning=1, critical=2),  # the runbook's API response time alert
    _latency("0.99"),
    _p("active-connections", "Active connections", "sum(http_requests_active) by (instance)", "connections"),
    # Database
    _p("db-pool", "DB connection pool used",
       "(postgresql_connections_active / postgresql_connections_max) * 100", "%", warning=70, critical=90),
    _p("db-query-p95", "DB query p95",
       "histogram_quantile(0.95, sum(rate(postgresql_query_duration_seconds_bucket[5m])) by (le))", "s"),
    _p("db-size", "Database size", "postgresql_database_size_bytes", "bytes"),
    _p("slow-queries", "Slow queries (last 5 m)", "increase(postgresql_slow_queries_total[5m])", "queries"),
    # Redis
    _p("redis-memory", "Redis memory used", "(redis_memory_used_bytes / redis_memory_max_bytes) * 100", "%"),
    _p("redis-hit-rate", "Redis hit rate",
       "(redis_keyspace_hits_total / (redis_keyspace_hits_total + redis_keyspace_misses_total)) * 100", "%"),
    _p("redis-clients", "Redis connected clients", "redis_connected_clients", "clients"),
    _p("redis-ops", "Redis commands", "rate(redis_commands_processed_total[5m])", "ops/s"),
    # Nodes
    _p("node-cpu", "Node CPU used",
       '100 - (avg by (instance) (irate(node_cpu_seconds_total{mode="idle"}[5m])) * 100)', "%",
       warning=70, critical=90),
    _p("node-memory", "Node memory used",
       "((node_memory_MemTotal_bytes - node_memory_MemAvailable_bytes) / node_memory_MemTotal_bytes) * 100",
       "%", warning=80, critical=95),
    _p("node-disk", "Node disk used",
       "((node_filesystem_size_bytes - node_filesystem_avail_bytes) / node_filesystem_size_bytes) * 100", "%",
       warning=80, critical=90),
    # The runbook's two queries, as one expression so that it graphs and links as one.
    _p("network-io", "Network I/O",
       'label_replace(rate(node_network_receive_bytes_total[5m]), "direction", "receive", "", "") or '
       'label_replace(rate(node_network_transmit_bytes_total[5m]), "direction", "transmit", "", "")',
       "B/s"),
    # Kubernetes
    _p("pod-cpu", "Pod CPU", "sum(rate(container_cpu_usage_seconds_total[5m])) by (pod, namespace)", "cores"),
    _p("pod-memory", "Pod memory (working set)",
       "sum(container_memory_working_set_bytes) by (pod, namespace)", "bytes"),
    _p("pod-restarts", "Pod restarts (last 1 h)", "increase(kube_pod_container_status_restarts_total[1h])",
       "restarts"),
    # Not a runbook number: the series is 1 for a Ready node and 0 for one that is not.
    _p("node-ready", "Node Ready (1 = ready)", 'kube_node_status_condition{condition="Ready", status="true"}',
       "", critical=1, direction="below"),
]}


@dataclass(frozen=True)
class SloTargets:
    """The runbook's SLA targets. Percentages are percent (99.9), latencies seconds."""

    availability_percent: float = 99.9  # uptime, monthly
    api_p95_seconds: float = 0.5  # 5-minute windows
    error_rate_percent: float = 0.1  # 5-minute windows
    db_p95_seconds: float = 0.1  # 5-minute windows
    # Label filters added to every SLO query (one service's SLO), before typed ones.
    labels: tuple[Matcher, ...] = field(default=())

    @property
    def error_budget_ratio(self) -> float:
        """The share of requests that may fail in the 30-day window: 1 - 99.9 % = 0.001."""
        return (100.0 - self.availability_percent) / 100.0
