"""A loopback /metrics endpoint whose series the test sets while a real Prometheus scrapes it.

Metric types are inferred from the names the runbook uses, so the exposition carries the right
`# TYPE` lines: `*_total` is a counter, `X_bucket`/`X_sum`/`X_count` together form histogram X,
anything else is a gauge. The text itself is rendered by prometheus_client, which owns the
escaping and float formatting rules (`+Inf`, `1.0`, quotes and newlines in label values).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from aiohttp import web
from prometheus_client import Histogram
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.utils import floatToGoString

from tests.servers.background import BackgroundServer

Labels = Mapping[str, str]
LabelKey = tuple[tuple[str, str], ...]

_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
DEFAULT_BUCKETS: Sequence[float] = Histogram.DEFAULT_BUCKETS  # 0.005 ... 10, +Inf


def _key(name: str, labels: Labels | None) -> LabelKey:
    # Fail at the call site: prometheus_client would otherwise silently rewrite a bad name.
    if not _METRIC_NAME.match(name):
        raise ValueError(f"invalid metric name {name!r}")
    for label in labels or {}:
        if not _LABEL_NAME.match(label) or label.startswith("__"):
            raise ValueError(f"invalid label name {label!r} on {name}")
    return tuple(sorted((k, str(v)) for k, v in (labels or {}).items()))


class MetricsExporter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._series: dict[str, dict[LabelKey, float]] = {}
        self._fail_status: int | None = None
        self.scrapes = 0  # successful /metrics answers so far: lets a test wait for a fresh scrape
        app = web.Application()
        app.router.add_get("/metrics", self._handle)
        self._server = BackgroundServer(app)

    # -- what tests use --------------------------------------------------------------------
    @property
    def url(self) -> str:
        """Full URL of the metrics page, http://127.0.0.1:PORT/metrics."""
        return f"{self._server.url}/metrics"

    @property
    def target(self) -> str:
        """host:port, as a Prometheus static_configs target."""
        return f"127.0.0.1:{self._server.port}"

    def scrape_config(self, job_name: str = "app", **extra: Any) -> dict[str, Any]:
        """A scrape_configs entry for this exporter (`job` label = job_name)."""
        return {"job_name": job_name, "static_configs": [{"targets": [self.target]}], **extra}

    def set(self, name: str, value: float, labels: Labels | None = None) -> None:
        key = _key(name, labels)
        with self._lock:
            self._series.setdefault(name, {})[key] = float(value)

    def inc(self, name: str, amount: float = 1.0, labels: Labels | None = None) -> None:
        key = _key(name, labels)
        with self._lock:
            series = self._series.setdefault(name, {})
            series[key] = series.get(key, 0.0) + amount

    def observe(
        self,
        name: str,
        value: float,
        labels: Labels | None = None,
        buckets: Sequence[float] = DEFAULT_BUCKETS,
    ) -> None:
        """Record one observation in histogram `name` (`name_bucket{le=...}`, `name_sum`, `name_count`)."""
        bounds = sorted(set(buckets) | {float("inf")})
        for bound in bounds:
            le = {**(labels or {}), "le": floatToGoString(bound)}
            self.inc(f"{name}_bucket", 1.0 if value <= bound else 0.0, le)  # +0 still creates the bucket
        self.inc(f"{name}_sum", value, labels)
        self.inc(f"{name}_count", 1.0, labels)

    def remove(self, name: str, labels: Labels | None = None) -> None:
        """Drop one series, or every series of `name` when labels is None (Prometheus marks them stale)."""
        with self._lock:
            if labels is None:
                self._series.pop(name, None)
            else:
                self._series.get(name, {}).pop(_key(name, labels), None)

    def clear(self) -> None:
        with self._lock:
            self._series.clear()

    def fail_with(self, status: int | None) -> None:
        """Answer /metrics with this HTTP status (target down, `up` == 0) until fail_with(None)."""
        self._fail_status = status

    def render(self) -> bytes:
        return generate_latest(self)  # type: ignore[arg-type]  # any object with collect() will do

    # -- prometheus_client Collector protocol -------------------------------------------------
    def collect(self) -> Iterator[Metric]:
        with self._lock:
            snapshot = {name: dict(series) for name, series in self._series.items()}
        histograms = {name.removesuffix("_bucket") for name in snapshot if name.endswith("_bucket")}
        families: dict[str, Metric] = {}
        for name in sorted(snapshot):
            family, kind = _family(name, histograms)
            metric = families.setdefault(family, Metric(family, f"{kind} set by the test", kind))
            for key, value in snapshot[name].items():
                metric.add_sample(name, dict(key), value)
        yield from families.values()

    # -- plumbing ---------------------------------------------------------------------------
    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop()

    async def _handle(self, request: web.Request) -> web.Response:
        status = self._fail_status
        if status is not None:
            return web.Response(status=status, text=f"metrics exporter told to fail with {status}\n")
        body = self.render()
        self.scrapes += 1
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})


def _family(name: str, histograms: set[str]) -> tuple[str, str]:
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name.removesuffix(suffix) in histograms:
            return name.removesuffix(suffix), "histogram"
    if name.endswith("_total"):
        # prometheus_client names a counter family without _total and adds it back on output.
        return name.removesuffix("_total"), "counter"
    return name, "gauge"
