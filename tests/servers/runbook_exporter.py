"""A metrics exporter whose counters and histograms grow with time at rates the test sets.

With MetricsExporter a test sets counter values by hand; rate() then needs the test to keep
incrementing while Prometheus scrapes. Here a counter is declared with a per-second rate and its
value is computed at each scrape as rate × seconds since it was declared, so:

* rate() over any window is steady, and
* counters declared together keep an exact ratio at every scrape (2 errors per 998 successes
  stays 0.2 % of requests however the scrapes fall), which the SLO arithmetic tests rely on.

Histograms work the same way: `observations` per second, all of one value, so the bucket counters
grow together and histogram_quantile lands at a known point of the value's bucket.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.utils import floatToGoString

from tests.servers.metrics_exporter import LabelKey, Labels, MetricsExporter, _key
from tests.servers.prometheus import PrometheusServer

# Finer than prometheus_client's defaults between 0.5 s and 2.5 s, so that the runbook's p95
# thresholds (1 s warning, 2 s critical) can each be crossed on its own.
LATENCY_BUCKETS: Sequence[float] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0)


@dataclass
class _Growth:
    name: str
    key: LabelKey
    per_second: float
    since: float


class RunbookExporter(MetricsExporter):
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._clock = clock
        self._growth: list[_Growth] = []

    def grow(self, name: str, per_second: float, labels: Labels | None = None, since: float | None = None) -> None:
        """Counter `name{labels}` = per_second × seconds since `since` (default: now, starting at 0)."""
        key = _key(name, labels)
        start = self._clock() if since is None else since
        with self._lock:
            self._growth = [g for g in self._growth if (g.name, g.key) != (name, key)]
            self._growth.append(_Growth(name, key, per_second, start))
            self._series.setdefault(name, {})[key] = 0.0

    def grow_histogram(self, name: str, value: float, per_second: float, labels: Labels | None = None,
                       buckets: Sequence[float] = LATENCY_BUCKETS) -> None:
        """Histogram `name` receiving `per_second` observations of `value` every second."""
        since = self._clock()
        for bound in sorted(set(buckets) | {float("inf")}):
            le = {**(labels or {}), "le": floatToGoString(bound)}
            self.grow(f"{name}_bucket", per_second if value <= bound else 0.0, le, since)
        self.grow(f"{name}_sum", per_second * value, labels, since)
        self.grow(f"{name}_count", per_second, labels, since)

    def http_traffic(self, per_second: float, error_ratio: float, latency: float, labels: Labels) -> None:
        """The runbook's HTTP metrics: requests split 200/500 by `error_ratio`, all taking `latency` s."""
        since = self._clock()  # the same start for both: their ratio is exact at every scrape
        self.grow("http_requests_total", per_second * (1 - error_ratio), {**labels, "status": "200"}, since)
        self.grow("http_requests_total", per_second * error_ratio, {**labels, "status": "500"}, since)
        self.grow_histogram("http_request_duration_seconds", latency, per_second, labels)

    def collect(self) -> Iterator[Metric]:
        now = self._clock()
        with self._lock:  # one instant for every counter: their ratios hold exactly in each scrape
            for g in self._growth:
                self._series.setdefault(g.name, {})[g.key] = g.per_second * (now - g.since)
        yield from super().collect()


# --------------------------------------------------------------------------- the shared test stack


@dataclass(frozen=True)
class Traffic:
    per_second: float
    error_ratio: float  # share of requests answered 500
    latency: float  # seconds, every request
    db_latency: float  # seconds, every query


# One service per situation the commands must tell apart (label `service`).
SERVICES = {
    "healthy": Traffic(100, 0.0005, 0.2, 0.02),  # 0.05 % errors: SLO met, half the budget left
    "burning": Traffic(100, 0.002, 0.7, 0.3),  # 0.2 % errors: SLO missed, budget overspent
    "slow": Traffic(100, 0.02, 1.2, 0.02),  # error rate and p95 over the warning thresholds
    "failing": Traffic(100, 0.10, 3.0, 0.02),  # over the critical thresholds
}
# node-cpu: idle CPU-seconds per second -> CPU used 20 %, 80 % (warning), 98 % (critical). irate() uses
# Prometheus' scrape times against values computed at the exporter's clock, so it wobbles by a few
# percent under load: each level is well inside its band.
NODE_IDLE = {"node-a": 0.8, "node-b": 0.2, "node-c": 0.02}


def seed(exporter: RunbookExporter) -> None:
    """The runbook's metric names, with values the tests know."""
    for service, t in SERVICES.items():
        exporter.http_traffic(t.per_second, t.error_ratio, t.latency, {"service": service, "handler": "/api/orders"})
        exporter.grow_histogram("postgresql_query_duration_seconds", t.db_latency, 20, {"service": service})
        exporter.set("http_requests_active", 5, {"service": service})
    for node, idle in NODE_IDLE.items():
        exporter.grow("node_cpu_seconds_total", idle, {"instance": node, "cpu": "0", "mode": "idle"})
        exporter.grow("node_cpu_seconds_total", 1 - idle, {"instance": node, "cpu": "0", "mode": "user"})
        exporter.set("node_memory_MemTotal_bytes", 16e9, {"instance": node})
        exporter.set("node_memory_MemAvailable_bytes", 8e9, {"instance": node})
        exporter.set("kube_node_status_condition", 0 if node == "node-c" else 1,
                     {"node": node, "condition": "Ready", "status": "true"})
    exporter.set("postgresql_connections_active", 80, {"instance": "db-1"})
    exporter.set("postgresql_connections_max", 100, {"instance": "db-1"})
    exporter.set("postgresql_database_size_bytes", 3 * 1024**3, {"instance": "db-1", "datname": "app"})


@dataclass
class RunbookStack:
    prometheus: PrometheusServer
    exporter: RunbookExporter  # job "app", honor_labels: its `instance` labels stand for nodes
    flaky: MetricsExporter  # job "flaky": a second target a test can take down


_stack: RunbookStack | None = None


def runbook_stack(start_prometheus: Callable[..., PrometheusServer], config: pytest.Config) -> RunbookStack:
    """One Prometheus scraping the seeded exporters for the whole session, ready to query.

    Shared by every module that asks (Prometheus takes ~6 s from start to the first rate());
    the exporters stop at the end of the session, Prometheus with the other session servers.
    """
    global _stack
    if _stack is not None:
        return _stack
    exporter, flaky = RunbookExporter(), MetricsExporter()
    seed(exporter)
    flaky.set("up_and_running", 1)
    for e in (exporter, flaky):
        e.start()
        config.add_cleanup(e.stop)
    prometheus = start_prometheus([exporter.scrape_config("app", honor_labels=True), flaky.scrape_config("flaky")])
    # Every service has a non-zero error rate and a p95: two scrapes of each counter are in.
    prometheus.wait_for('sum by (service) (rate(http_requests_total{status="500"}[5m])) > 0',
                        lambda r: len(r) == len(SERVICES), timeout=30)
    # A few more scrapes, so that range queries (whose steps fall on whole seconds) have points too.
    prometheus.wait_for('count_over_time(up{job="app"}[1m]) >= 4', timeout=30)
    prometheus.wait_for("histogram_quantile(0.95, sum by (le, service) "
                        "(rate(postgresql_query_duration_seconds_bucket[5m]))) > 0",
                        lambda r: len(r) == len(SERVICES), timeout=30)
    _stack = RunbookStack(prometheus, exporter, flaky)
    return _stack
