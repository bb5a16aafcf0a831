"""Prometheus diagnostics: raw PromQL, the runbook's presets against their thresholds, targets down.

Queries go through prometheus-api-client, which blocks: every call runs in its BlockingPool under
a timeout, through the QueryCache (identical queries share one call), and any failure becomes a
`BackendError` whose one line names Prometheus and where it was reached, or, when Prometheus
rejected the query, is Prometheus' own words ("bad_data: 1:5: parse error: …").
"""

from __future__ import annotations

import ast
import asyncio
import json
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal
from urllib.parse import quote, urlencode, urlsplit

import requests
from prometheus_api_client import PrometheusApiClientException

from diagnostics.blocking import BlockingPool
from diagnostics.cache import QueryCache, cached
from diagnostics.durations import compact_duration
from diagnostics.http_api import BackendError, age, get_json, parse_time, snippet
from diagnostics.presets import Preset, Thresholds
from diagnostics.promql import (
    Matcher,
    format_labels,
    format_number,
    format_value,
    inject_matchers,
    parse_value,
)
from diagnostics.result import Link, Result, Row, Status

MAX_ROWS = 30  # series shown in a table; the rest are counted in a note
POINTS_PER_RANGE = 300  # a range query's resolution: about one point per 4 px of a chart


@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    value: float


@dataclass(frozen=True)
class RangeSeries:
    labels: dict[str, str]
    points: list[tuple[float, float]]  # (unix time, value)

    @property
    def values(self) -> list[float]:
        return [v for _, v in self.points if not math.isnan(v)]


@dataclass(frozen=True)
class Answer:
    """An instant query's answer: a vector (samples), a scalar or string (text), or a matrix."""

    kind: Literal["vector", "scalar", "string", "matrix"]
    samples: list[Sample] = field(default_factory=list)
    text: str = ""
    series: list[RangeSeries] = field(default_factory=list)


@dataclass(frozen=True)
class PrometheusSource:
    client: Any  # prometheus_api_client.PrometheusConnect (blocking)
    pool: BlockingPool
    location: str  # the URL as it may be shown: no credentials
    timeout: float
    cache: QueryCache | None = None
    http: Any = None  # aiohttp.ClientSession, for the endpoints the client lacks (targets)
    url: str = ""  # the URL to call; may carry credentials, never shown
    chart_pool: BlockingPool | None = None  # where charts of its answers render (default: pool)

    async def instant(self, expr: str) -> Answer:
        params = {"timeout": self._eval_timeout}  # Prometheus stops evaluating when we stop waiting
        raw = await cached(self.cache, ("prometheus", self.location, "query", expr), lambda: self._call(
            self.client.custom_query, expr, params=params, timeout=self.timeout))
        return parse_answer(raw)

    async def range(self, expr: str, seconds: int) -> list[RangeSeries]:
        step = max(1, math.ceil(seconds / POINTS_PER_RANGE))

        def fetch() -> Any:
            end = datetime.now(timezone.utc)
            start = datetime.fromtimestamp(end.timestamp() - seconds, timezone.utc)
            params = {"timeout": self._eval_timeout}
            return self.client.custom_query_range(expr, start, end, f"{step}s", params=params,
                                                  timeout=self.timeout)

        raw = await cached(self.cache, ("prometheus", self.location, "range", expr, seconds),
                           lambda: self._call(fetch))
        return range_series(raw)

    @property
    def _eval_timeout(self) -> str:
        """The timeout as a Prometheus duration: whole milliseconds ("1.5s" is not one; "1500ms" is)."""
        return f"{max(1, round(self.timeout * 1000))}ms"

    async def targets(self) -> list[dict[str, Any]]:
        url = f"{(self.url or self.location).rstrip('/')}/api/v1/targets"
        body = await cached(self.cache, ("prometheus", self.location, "targets"), lambda: get_json(
            self.http, url, backend="Prometheus", location=self.location, timeout=self.timeout,
            params={"state": "active"}))
        return list(body.get("data", {}).get("activeTargets", []))

    async def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            async with asyncio.timeout(self.timeout):
                return await self.pool.run(fn, *args, **kwargs)
        except TimeoutError:
            raise BackendError(f"Prometheus: timed out after {self.timeout:g} s at {self.location}") from None
        except PrometheusApiClientException as e:
            raise BackendError(api_error_message(str(e), self.location)) from None
        except requests.RequestException as e:
            raise BackendError(request_error_message(e, self.location, self.timeout)) from None
        except ValueError as e:  # the 200 answer was not the JSON the client expects
            raise BackendError(f"Prometheus: unexpected answer from {self.location}: {e}") from None


def parse_answer(raw: Any) -> Answer:
    """`data.result` as prometheus-api-client returns it (it drops resultType) -> Answer."""
    if isinstance(raw, list) and len(raw) == 2 and not isinstance(raw[0], dict):
        value = str(raw[1])
        try:
            float(value)
        except ValueError:
            return Answer("string", text=value)
        return Answer("scalar", text=value)
    items = list(raw or [])
    if items and "values" in items[0]:
        return Answer("matrix", series=range_series(items))
    samples = [Sample(dict(s.get("metric", {})), parse_value(s["value"][1])) for s in items]
    return Answer("vector", samples=samples)


def range_series(raw: Any) -> list[RangeSeries]:
    series = []
    for s in raw or []:
        points = [(float(t), parse_value(v)) for t, v in s.get("values", [])]
        series.append(RangeSeries(dict(s.get("metric", {})), points))
    return series


_CLIENT_ERROR = re.compile(r"HTTP Status Code (\d+) \((.*)\)\s*$", re.DOTALL)


def api_error_message(message: str, location: str) -> str:
    """PrometheusApiClientException's text -> Prometheus' own error ("bad_data: 1:5: parse error: …").

    The client puts the status and the repr of the body in its message; an error body in the
    API's JSON shape is quoted as Prometheus wrote it, anything else is the status and a snippet.
    """
    match = _CLIENT_ERROR.match(message)
    if not match:
        return f"Prometheus: {message} at {location}"
    status, body_repr = int(match.group(1)), match.group(2)
    try:
        body = ast.literal_eval(body_repr)
    except (ValueError, SyntaxError):
        body = body_repr
    try:
        document = json.loads(body)
        if isinstance(document, dict) and document.get("error"):
            return f"{document.get('errorType') or 'error'}: {document['error']}"
    except ValueError:
        pass
    return f"Prometheus: HTTP {status} at {location}: {snippet(body)}"


_RETRIED_STATUS = re.compile(r"too many (\d+) error responses")


def request_error_message(e: requests.RequestException, location: str, timeout: float) -> str:
    text = str(e)
    if isinstance(e, requests.Timeout):
        return f"Prometheus: timed out after {timeout:g} s at {location}"
    if isinstance(e, requests.exceptions.RetryError):
        status = _RETRIED_STATUS.search(text)
        if status:
            return f"Prometheus: HTTP {status.group(1)} at {location} (still failing after retries)"
    if isinstance(e, requests.ConnectionError):
        if "Connection refused" in text:
            reason = "connection refused"
        elif "resolve" in text or "Name or service not known" in text:
            reason = f"DNS lookup failed for {urlsplit(location).hostname or location}"
        else:
            reason = type(e).__name__
        return f"Prometheus: cannot connect to {location}: {reason}"
    return f"Prometheus: request to {location} failed: {type(e).__name__}: {snippet(text)}"


# --------------------------------------------------------------------------- links


def query_links(prometheus_location: str, expr: str, range_seconds: int = 3600,
                grafana_url: str = "") -> list[Link]:
    """The Prometheus graph page for `expr` (and Grafana Explore when Grafana is configured)."""
    range_input = compact_duration(range_seconds)
    query = urlencode({"g0.expr": expr, "g0.tab": "0", "g0.range_input": range_input}, quote_via=quote)
    links = [Link("Open in Prometheus", f"{prometheus_location.rstrip('/')}/graph?{query}")]
    if grafana_url:
        left = json.dumps({"queries": [{"refId": "A", "expr": expr}],
                           "range": {"from": f"now-{range_input}", "to": "now"}}, separators=(",", ":"))
        explore = f"{grafana_url.rstrip('/')}/explore?{urlencode({'left': left})}"
        links.append(Link("Open in Grafana", explore))
    return links


# --------------------------------------------------------------------------- promql


async def promql_instant(prom: PrometheusSource, expr: str, *, title: str, links: list[Link]) -> Result:
    try:
        answer = await prom.instant(expr)
    except BackendError as e:
        return Result(Status.ERROR, title, str(e), lines=[expr])
    if answer.kind in ("scalar", "string"):
        return Result(Status.OK, title, f"{answer.kind}: {answer.text}", lines=[expr], links=links)
    if answer.kind == "matrix":
        return _range_table(answer.series, title, expr, links)
    rows = [Row((format_labels(s.labels), format_number(s.value))) for s in answer.samples]
    count = len(rows)
    if not rows:  # a metric with no data is not a healthy one
        return Result(Status.UNKNOWN, title, _no_data(expr), lines=[expr], links=links)
    summary = f"{count} series" if count != 1 else "1 series"
    return Result(Status.OK, title, summary, columns=("series", "value"), rows=rows[:MAX_ROWS],
                  folded_rows_note=_cut_note(count), lines=[expr], links=links)


async def promql_range(prom: PrometheusSource, expr: str, seconds: int, *, title: str,
                       links: list[Link]) -> Result:
    try:
        series = await prom.range(expr, seconds)
    except BackendError as e:
        return Result(Status.ERROR, title, str(e), lines=[expr])
    return _range_table(series, title, expr, links, f" over the last {compact_duration(seconds)}")


def _range_table(series: Sequence[RangeSeries], title: str, expr: str, links: list[Link],
                 over: str = "") -> Result:
    rows = []
    for s in series:
        values = s.values
        if values:
            cells = [format_number(min(values)), format_number(sum(values) / len(values)),
                     format_number(max(values)), format_number(s.points[-1][1])]
        else:
            cells = ["NaN"] * 4
        rows.append(Row((format_labels(s.labels), *cells)))
    if not rows:
        return Result(Status.UNKNOWN, title, _no_data(expr, over), lines=[expr], links=links)
    return Result(Status.OK, title, f"{len(rows)} series{over}",
                  columns=("series", "min", "avg", "max", "last"),
                  rows=rows[:MAX_ROWS], folded_rows_note=_cut_note(len(rows)), lines=[expr], links=links)


def _no_data(expr: str, over: str = "") -> str:
    """"no data for up{job="x"} over the last 1h": one line, whatever whitespace the query held."""
    return f"no data for {' '.join(expr.split())}{over}"


def _cut_note(count: int) -> str:
    if count <= MAX_ROWS:
        return ""
    return (f"{count - MAX_ROWS} more series not shown ({MAX_ROWS} of {count}); "
            "narrow the query with label filters")


# --------------------------------------------------------------------------- presets


def preset_expr(preset: Preset, matchers: Sequence[Matcher] = ()) -> str:
    """The preset's expression with its configured label filters and the typed ones in every selector."""
    return inject_matchers(preset.expr, [*preset.labels, *matchers])


def series_name(labels: dict[str, str], fallback: str) -> str:
    return format_labels(labels, braces=False) or fallback


def worst_summary(thresholds: Thresholds, unit: str, rated: Sequence[tuple[Status, float, Any]], name: str,
                  prefix: str = "") -> str:
    """"95 % (instance=node-c, worst of 3 series) — critical > 90 %" from Thresholds.worst_first's list."""
    status, value, worst = rated[0]
    text = prefix + format_value(value, unit)
    if len(rated) > 1:
        word = "worst" if thresholds.any else "highest"
        text += f" ({series_name(worst.labels, name)}, {word} of {len(rated)} series)"
    verdict = thresholds.verdict(status, unit)
    return f"{text} — {verdict}" if verdict else text


async def preset_status(prom: PrometheusSource, preset: Preset, expr: str, *, title: str,
                        links: list[Link]) -> Result:
    """The preset's series now, each compared with its thresholds; the worst decides the status."""
    try:
        answer = await prom.instant(expr)
    except BackendError as e:
        return Result(Status.ERROR, title, str(e), lines=[expr])
    samples = answer.samples if answer.kind == "vector" else (
        [Sample({}, parse_value(answer.text))] if answer.kind == "scalar" else [])
    limits = preset.thresholds.describe(preset.unit)
    fields = {"Thresholds": limits or "none in the runbook"}
    if not samples:
        return Result(Status.UNKNOWN, title, "no data: the query returned no series", fields=fields,
                      lines=[expr], links=links)
    rated = preset.thresholds.worst_first((s.value, s) for s in samples)
    rows = [Row((series_name(s.labels, preset.name), format_value(value, preset.unit)), status,
                preset.thresholds.level_of(status, preset.unit)) for status, value, s in rated]
    summary = worst_summary(preset.thresholds, preset.unit, rated, preset.name)
    return Result(rated[0][0], title, summary, fields=fields,
                  columns=("series", "value"), rows=rows[:MAX_ROWS], folded_rows_note=_cut_note(len(rows)),
                  lines=[expr], links=links)


# --------------------------------------------------------------------------- targets


async def targets_down(prom: PrometheusSource, *, title: str = "Prometheus targets",
                       now: float | None = None) -> Result:
    """Scrape targets that are down, with job, instance, last error and how long ago the last scrape was."""
    try:
        targets = await prom.targets()
    except BackendError as e:
        return Result.error(title, str(e))
    links = [Link("Targets in Prometheus", f"{prom.location.rstrip('/')}/targets")]
    if not targets:
        return Result(Status.UNKNOWN, title, "Prometheus has no active scrape targets", links=links)
    moment = datetime.fromtimestamp(time.time() if now is None else now, timezone.utc)
    rows = []
    for target in targets:
        health = target.get("health", "unknown")
        if health == "up":
            continue
        labels = target.get("labels", {})
        last = parse_time(target.get("lastScrape"))
        row_status = Status.CRITICAL if health == "down" else Status.UNKNOWN
        detail = target.get("lastError") or ("not scraped yet" if health == "unknown" else "")
        rows.append(Row((labels.get("instance", target.get("scrapeUrl", "?")), labels.get("job", "?"),
                         age(last, moment)), row_status, detail))
    down = sum(1 for r in rows if r.status is Status.CRITICAL)
    if not rows:
        return Result(Status.OK, title, f"all {len(targets)} targets up", links=links)
    rows.sort(key=lambda r: (-r.status.rank, r.cells[1], r.cells[0]))
    parts = [f"{down} of {len(targets)} targets down"] if down else []
    if len(rows) > down:
        parts.append(f"{len(rows) - down} not scraped yet")
    return Result(Status.worst([r.status for r in rows]), title, " · ".join(parts),
                  columns=("instance", "job", "last scrape"), rows=rows[:MAX_ROWS],
                  folded_rows_note=_cut_note(len(rows)), links=links)
