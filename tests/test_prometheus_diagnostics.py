"""Prometheus and Alertmanager diagnostics: pure helpers, then against a real Prometheus scraping
an exporter with known traffic (tests/servers/runbook_exporter.py) and a real Alertmanager."""

from __future__ import annotations

import asyncio
import json
import math
import re
import struct
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from typing import Any

import aiohttp
import pytest
import requests
from aiohttp import web
from prometheus_api_client import PrometheusConnect
from urllib3.util.retry import Retry

from bot.all_sections import Sections, load_sections
from bot.checks import prometheus as checks
from bot.commands.table import build_table
from bot.errors import ConfigError, UsageError
from bot.settings import load_settings
from diagnostics.alertmanager import firing_alerts
from diagnostics.blocking import BlockingPool
from diagnostics.cache import QueryCache
from diagnostics.charts import HEIGHT, WIDTH, graph
from diagnostics.presets import DEFAULT_PRESETS, SloTargets, Thresholds
from diagnostics.prometheus import (
    MAX_ROWS,
    PrometheusSource,
    api_error_message,
    preset_expr,
    preset_status,
    promql_instant,
    promql_range,
    query_links,
    request_error_message,
    targets_down,
)
from diagnostics.promql import format_value, inject_matchers
from diagnostics.result import Status
from diagnostics.slo import Budget, Measurements, error_ratio, evaluate, measure, slo_status
from tests.servers.alertmanager import NULL_CONFIG
from tests.servers.background import BackgroundServer
from tests.servers.runbook_exporter import SERVICES, RunbookStack, runbook_stack

SERVICE = [("service", "=", "checkout")]


# =========================================================================== selector injection


@pytest.mark.parametrize(("expr", "expected"), [
    ("http_requests_total", 'http_requests_total{service="checkout"}'),
    ('up{job="api"}', 'up{job="api", service="checkout"}'),
    ('up{job="api",}', 'up{job="api", service="checkout"}'),
    ("up{}", 'up{service="checkout"}'),
    ('{__name__="up"}', '{__name__="up", service="checkout"}'),
    ("sum(rate(http_requests_total[5m])) by (method, handler)",
     'sum(rate(http_requests_total{service="checkout"}[5m])) by (method, handler)'),
    ("sum by (le) (rate(x_bucket[5m:1m]))", 'sum by (le) (rate(x_bucket{service="checkout"}[5m:1m]))'),
    ("histogram_quantile(0.95, sum(rate(d_bucket[5m])) by (le))",
     'histogram_quantile(0.95, sum(rate(d_bucket{service="checkout"}[5m])) by (le))'),
    ("a / on(instance) group_left(node) b",
     'a{service="checkout"} / on(instance) group_left(node) b{service="checkout"}'),
    ("sum without (cpu) (up) > bool 0", 'sum without (cpu) (up{service="checkout"}) > bool 0'),
    ("up offset 5m", 'up{service="checkout"} offset 5m'),
    ('label_replace(up, "dst", "$1", "src", "(.*)")',
     'label_replace(up{service="checkout"}, "dst", "$1", "src", "(.*)")'),
    ("node_cpu_seconds_total{mode='idle'} * 1e3", 'node_cpu_seconds_total{mode=\'idle\', service="checkout"} * 1e3'),
    ("vector(1)", "vector(1)"),
    ("time() - job:up:sum", 'time() - job:up:sum{service="checkout"}'),
])
def test_inject_matchers_adds_the_filter_to_every_selector_and_nothing_else(expr, expected):
    assert inject_matchers(expr, SERVICE) == expected


def test_inject_matchers_escapes_quotes_and_backslashes_in_values():
    assert inject_matchers("up", [("path", "=~", 'a"b\\d+')]) == 'up{path=~"a\\"b\\\\d+"}'


def test_inject_matchers_leaves_label_names_inside_braces_and_strings_alone():
    expr = 'count_values("by", up{le="by (x)"})'
    assert inject_matchers(expr, SERVICE) == 'count_values("by", up{le="by (x)", service="checkout"})'


@pytest.mark.parametrize(("name", "selectors"), [
    ("error-rate", 2), ("db-pool", 2), ("redis-hit-rate", 3), ("node-memory", 3), ("node-disk", 3),
    ("network-io", 2), ("latency-p95", 1), ("node-cpu", 1), ("node-ready", 1),
])
def test_each_selector_of_a_preset_gets_the_filter(name, selectors):
    expr = preset_expr(DEFAULT_PRESETS[name], SERVICE)
    assert expr.count('service="checkout"') == selectors, expr


# =========================================================================== thresholds


@pytest.mark.parametrize(("value", "status"), [
    (0.5, Status.OK), (1.0, Status.OK), (1.01, Status.WARNING), (5.0, Status.WARNING), (5.1, Status.CRITICAL),
    (math.nan, Status.UNKNOWN),
])
def test_error_rate_thresholds_are_strictly_above_one_and_five_percent(value, status):
    assert DEFAULT_PRESETS["error-rate"].thresholds.evaluate(value) is status


def test_below_thresholds_turn_critical_under_the_level():
    ready = DEFAULT_PRESETS["node-ready"].thresholds
    assert ready.evaluate(0) is Status.CRITICAL and ready.evaluate(1) is Status.OK


def test_worst_first_orders_by_status_then_distance_from_the_threshold():
    rated = Thresholds(70, 90).worst_first([(20, "a"), (95, "c"), (75, "b"), (99, "d")])
    assert [item for _, _, item in rated] == ["d", "c", "b", "a"]


def test_runbook_thresholds_are_the_ones_in_the_runbook():
    wanted = {"error-rate": (1, 5), "latency-p95": (1, 2), "db-pool": (70, 90), "node-cpu": (70, 90),
              "node-memory": (80, 95), "node-disk": (80, 90)}
    for name, levels in wanted.items():
        t = DEFAULT_PRESETS[name].thresholds
        assert (t.warning, t.critical, t.direction) == (*levels, "above"), name


def test_values_are_formatted_in_their_unit():
    assert format_value(0.7375, "s") == "737.5 ms"
    assert format_value(2.425, "s") == "2.425 s"
    assert format_value(3 * 1024**3, "bytes") == "3 GiB"
    assert format_value(99.95, "%") == "99.95 %"
    assert format_value(12345, "req/s") == "12,345 req/s"


# =========================================================================== SLO arithmetic


def test_error_ratio_is_zero_without_5xx_series_and_none_without_traffic():
    assert error_ratio(None, 100.0) == 0.0
    assert error_ratio(0.2, 100.0) == pytest.approx(0.002)
    assert error_ratio(None, None) is None
    assert error_ratio(0.0, 0.0) is None
    assert error_ratio(1.0, math.nan) is None


def test_error_budget_is_what_the_availability_target_leaves():
    assert SloTargets().error_budget_ratio == pytest.approx(0.001)
    assert SloTargets(availability_percent=99.5).error_budget_ratio == pytest.approx(0.005)
    assert Budget(0.001, 0.0005).left == pytest.approx(0.5)
    assert Budget(0.001, 0.002).consumed == pytest.approx(2.0)
    assert Budget(0.001, 0.002).left == pytest.approx(-1.0)
    assert Budget(0.001, 0.0).left == 1.0


DEFAULT_TARGETS = SloTargets()


def _verdicts(measurements: Measurements, targets: SloTargets = DEFAULT_TARGETS) -> dict[str, str]:
    return {o.name: o.verdict for o in evaluate(measurements, targets)}


def test_slo_with_a_0_2_percent_error_ratio_misses_availability_and_error_rate_and_overspends():
    objectives = {o.name: o for o in evaluate(Measurements(0.2, 100, 0.2, 100, 0.3, 0.05), SloTargets())}
    assert objectives["Availability (5 m)"].measured == "99.8 %"
    assert objectives["Availability (5 m)"].verdict == "missed"
    assert objectives["Error rate (5 m)"].measured == "0.2 %"
    assert objectives["Error rate (5 m)"].verdict == "missed"
    assert objectives["API p95 (5 m)"].verdict == "met"
    assert objectives["DB query p95 (5 m)"].verdict == "met"
    budget = objectives["Error budget (30 d)"]
    assert (budget.verdict, budget.measured) == ("missed", "exhausted (200.0 % used)")


def test_slo_with_a_0_05_percent_error_ratio_is_met_with_half_the_budget_left():
    objectives = {o.name: o for o in evaluate(Measurements(0.05, 100, 0.05, 100, 0.3, 0.05), SloTargets())}
    assert {o.verdict for o in objectives.values()} == {"met"}
    assert objectives["Availability (30 d)"].measured == "99.95 %"
    assert objectives["Error budget (30 d)"].measured == "50.0 % left"


def test_availability_exactly_at_target_is_met_but_error_rate_exactly_at_target_is_missed():
    verdicts = _verdicts(Measurements(0.1, 100, 0.1, 100, 0.5, 0.1))
    assert verdicts["Availability (5 m)"] == "met"
    assert verdicts["Error rate (5 m)"] == "missed"
    assert verdicts["API p95 (5 m)"] == "missed"  # "< 500 ms": 500 ms is not under it
    assert verdicts["DB query p95 (5 m)"] == "missed"
    assert verdicts["Error budget (30 d)"] == "missed"  # all of it used


def test_slo_without_traffic_says_no_data_for_every_row():
    assert set(_verdicts(Measurements(api_p95=math.nan)).values()) == {"no data"}


def test_slo_targets_change_the_verdicts():
    targets = SloTargets(availability_percent=99.5, api_p95_seconds=1.0, error_rate_percent=0.5)
    verdicts = _verdicts(Measurements(0.2, 100, 0.2, 100, 0.7, 0.05), targets)
    assert set(verdicts.values()) == {"met"}


# =========================================================================== configuration


def test_presets_config_overrides_thresholds_and_adds_presets():
    presets = checks.load_presets({
        "error-rate": {"warning": 0.5, "critical": None, "labels": "env=prod"},
        "queue-depth": {"expr": "sum(queue_messages) by (queue)", "unit": "messages", "warning": 100,
                        "critical": 1000},
    })
    by_name = presets.by_name
    assert by_name["error-rate"].thresholds == Thresholds(0.5, None, "above")
    assert by_name["error-rate"].expr == DEFAULT_PRESETS["error-rate"].expr
    assert preset_expr(by_name["error-rate"]).count('env="prod"') == 2
    assert by_name["queue-depth"].thresholds.evaluate(500) is Status.WARNING
    # The `metric` and `graph` arguments know the presets the table was built with, and only those.
    assert build_table(Sections(presets=presets)).parse("metric queue-depth", "default").args["preset"] == "queue-depth"
    assert build_table(Sections(presets=presets)).parse("graph queue-depth", "default").args["query"] == \
        checks.GraphQuery("queue-depth")
    with pytest.raises(UsageError, match="Unknown preset `queue-depth`"):
        build_table(Sections()).parse("metric queue-depth", "default")


@pytest.mark.parametrize(("presets", "message"), [
    ({"Bad Name": {"expr": "up"}},
     "chatops.yaml: presets: a preset name must be lowercase letters, digits and '-', not 'Bad Name'"),
    ({"new-one": {"unit": "x"}}, "chatops.yaml: presets.new-one: a new preset needs expr"),
    ({"error-rate": {"warn": 1}}, "chatops.yaml: presets.error-rate.warn: unknown key (did you mean warning?)"),
    ({"error-rate": {"warning": "high"}}, "chatops.yaml: presets.error-rate.warning: must be a number, not 'high'"),
    ({"error-rate": {"warning": 10, "critical": 5}}, "critical (5) must be above warning (10)"),
    ({"node-ready": {"direction": "sideways"}},
     "presets.node-ready.direction: must be one of above, below, not 'sideways'"),
    ({"error-rate": {"labels": "service"}}, "presets.error-rate.labels: `service` is not a label filter"),
    ({"error-rate": "5"}, "presets.error-rate: must be a mapping with the keys expr, title, unit,"),
    ({"x": {"expr": ""}}, "presets.x.expr: must be a non-empty string (a PromQL expression), not ''"),
])
def test_presets_config_mistakes_are_one_line_config_errors(presets, message):
    with pytest.raises(ConfigError) as error:
        checks.load_presets(presets)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(("slo", "message"), [
    ({"availability": 99.9}, "chatops.yaml: slo.availability: unknown key (did you mean availability_percent?)"),
    ({"availability_percent": 100},
     "slo.availability_percent: must be a percentage between 0 and 100 (exclusive), not 100"),
    ({"api_p95_ms": 0}, "slo.api_p95_ms: must be a number more than 0, not 0"),
    ({"db_p95_ms": True}, "slo.db_p95_ms: must be a number more than 0, not True"),
    ({"labels": ["service=x"]}, "slo.labels: must be label filters in one string"),
])
def test_slo_config_mistakes_are_one_line_config_errors(slo, message):
    with pytest.raises(ConfigError) as error:
        checks.load_slo(slo)
    assert message in str(error.value)


def test_slo_config_sets_targets_in_milliseconds_and_percent():
    targets = checks.load_slo({
        "availability_percent": 99.5, "api_p95_ms": 300, "error_rate_percent": 0.5, "db_p95_ms": 50,
        "labels": "service=checkout"})
    assert targets == SloTargets(99.5, 0.3, 0.5, 0.05, (("service", "=", "checkout"),))
    assert checks.load_slo(None) == SloTargets()


def test_chatops_yaml_presets_are_checked_when_the_sections_load(tmp_path):
    path = tmp_path / "chatops.yaml"
    path.write_text("presets:\n  error-rate:\n    warning: 9\n    critical: 3\n")
    settings = load_settings({"CHATOPS_CONFIG": str(path)}, mode="cli")
    with pytest.raises(ConfigError) as error:
        load_sections(settings)
    assert str(error.value).startswith(f"{path}: presets.error-rate: critical (3) must be above warning (9)")


# =========================================================================== command parsing


def test_unknown_preset_suggests_the_close_names():
    with pytest.raises(UsageError, match="Unknown preset `eror-rate`. Did you mean `error-rate`"):
        build_table(Sections()).parse("metric eror-rate", "default")


def test_unknown_preset_without_a_close_name_lists_the_presets():
    with pytest.raises(UsageError) as error:
        build_table(Sections()).parse("metric nosuch", "default")
    assert "Presets: active-connections, db-pool," in error.value.message
    assert error.value.usage == "metric <preset> [<label=value>…]"


def test_promql_keeps_quotes_and_reads_range_anywhere():
    invocation = build_table(Sections()).parse('promql sum(rate(x{status=~"5.."}[5m])) by (le) --range 1h', "default")
    assert invocation.args == {"expr": 'sum(rate(x{status=~"5.."}[5m])) by (le)', "range": 3600}


def test_graph_reads_a_preset_with_filters_or_else_promql():
    table = build_table(Sections())
    preset = table.parse("graph error-rate service=checkout --range 6h", "default").args
    assert preset["query"] == checks.GraphQuery("error-rate", (("service", "=", "checkout"),))
    assert preset["range"] == 6 * 3600
    raw = table.parse("graph rate(up[1m])", "default").args
    assert raw["query"] == checks.GraphQuery(None, expr="rate(up[1m])") and raw["range"] == 3600
    with pytest.raises(UsageError, match="Unknown preset `eror-rate`. Did you mean `error-rate`"):
        table.parse("graph eror-rate", "default")


# =========================================================================== error text


def test_prometheus_query_errors_are_quoted_as_prometheus_wrote_them():
    body = b'{"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected \\"}\\""}'
    message = api_error_message(f"HTTP Status Code 400 ({body!r})", "http://prom:9090")
    assert message == 'bad_data: 1:5: parse error: unexpected "}"'


def test_prometheus_http_errors_without_an_api_body_name_status_and_where():
    message = api_error_message("HTTP Status Code 502 (b'<html>Bad Gateway</html>')", "http://prom:9090")
    assert message == "Prometheus: HTTP 502 at http://prom:9090: <html>Bad Gateway</html>"


def test_retried_5xx_and_refused_connections_are_named():
    retry = requests.exceptions.RetryError(
        "Max retries exceeded (Caused by ResponseError('too many 503 error responses'))")
    assert request_error_message(retry, "http://p", 8) == \
        "Prometheus: HTTP 503 at http://p (still failing after retries)"
    refused = requests.ConnectionError("... Failed to establish a new connection: [Errno 111] Connection refused")
    assert request_error_message(refused, "http://p", 8) == "Prometheus: cannot connect to http://p: connection refused"


def test_links_open_the_prometheus_graph_and_grafana_explore_for_the_query():
    prom_link, grafana_link = query_links("http://prom:9090", 'up{job="a b"}', 6 * 3600, "http://grafana")
    assert prom_link.url == "http://prom:9090/graph?g0.expr=up%7Bjob%3D%22a%20b%22%7D&g0.tab=0&g0.range_input=6h"
    assert grafana_link.url.startswith("http://grafana/explore?left=")
    assert "now-6h" in urllib.request.unquote(grafana_link.url)


# =========================================================================== against a real Prometheus


@pytest.fixture(scope="module")
def stack(prometheus_factory, request) -> RunbookStack:
    return runbook_stack(prometheus_factory, request.config)


@pytest.fixture
async def pool():
    blocking = BlockingPool()
    yield blocking
    blocking.close()


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


def source(url: str, pool: BlockingPool, http: Any = None, *, timeout: float = 8.0, client: Any = None,
           cache: QueryCache | None = None) -> PrometheusSource:
    return PrometheusSource(client or PrometheusConnect(url, timeout=timeout), pool, url, timeout,
                            cache or QueryCache(), http, url)


@pytest.fixture
def prom(stack, pool, http) -> PrometheusSource:
    return source(stack.prometheus.url, pool, http)



async def run_preset(prom: PrometheusSource, name: str, matchers=()) -> Any:
    preset = DEFAULT_PRESETS[name]
    return await preset_status(prom, preset, preset_expr(preset, list(matchers)), title=preset.title, links=[])


@pytest.mark.integration
async def test_promql_instant_vector_is_a_table_of_labels_and_values(prom):
    result = await promql_instant(prom, 'sum by (service) (http_requests_active)', title="PromQL", links=[])
    assert result.status is Status.OK
    assert result.columns == ("series", "value")
    assert sorted(r.cells for r in result.rows) == [(f'{{service="{s}"}}', "5") for s in sorted(SERVICES)]
    assert result.summary == "4 series"


@pytest.mark.integration
async def test_promql_scalar_and_string_answers_are_shown(prom):
    assert (await promql_instant(prom, "1 + 1", title="q", links=[])).summary == "scalar: 2"
    assert (await promql_instant(prom, '"hello"', title="q", links=[])).summary == "string: hello"


@pytest.mark.integration
async def test_promql_parse_error_is_an_error_result_in_prometheus_words(prom):
    result = await promql_instant(prom, "sum(rate(http_requests_total[5m])) by (", title="PromQL", links=[])
    assert result.status is Status.ERROR
    assert result.summary == 'bad_data: invalid parameter "query": 1:40: parse error: unclosed left parenthesis'
    assert result.lines == ["sum(rate(http_requests_total[5m])) by ("]


@pytest.mark.integration
async def test_promql_with_many_series_shows_thirty_and_says_how_many_more(prom):
    result = await promql_instant(prom, "http_request_duration_seconds_bucket", title="PromQL", links=[])
    total = len(SERVICES) * 15  # 14 bounds + Inf per service
    assert len(result.rows) == MAX_ROWS
    assert result.folded_rows_note.startswith(f"{total - MAX_ROWS} more series not shown ({MAX_ROWS} of {total})")


@pytest.mark.integration
async def test_promql_range_gives_min_avg_max_last_per_series(prom):
    result = await promql_range(prom, 'http_requests_active{service="slow"}', 120, title="PromQL", links=[])
    assert result.columns == ("series", "min", "avg", "max", "last")
    (row,) = result.rows
    assert row.cells[1:] == ("5", "5", "5", "5")
    assert result.summary == "1 series over the last 2m"


@pytest.mark.integration
async def test_a_fractional_timeout_is_sent_as_a_duration_prometheus_accepts(stack, pool, http):
    prom = source(stack.prometheus.url, pool, http, timeout=1.5)  # "1.5s" would be bad_data
    assert (await promql_instant(prom, "1 + 1", title="q", links=[])).summary == "scalar: 2"
    ranged = await promql_range(prom, 'http_requests_active{service="slow"}', 120, title="q", links=[])
    assert ranged.status is Status.OK, ranged.summary


@pytest.mark.integration
async def test_promql_with_no_series_is_unknown_no_data_not_ok(prom):
    expr = 'http_requests_active{service="nosuch"}'
    links = query_links(prom.location, expr)
    result = await promql_instant(prom, expr, title="PromQL", links=links)
    assert (result.status, result.summary) == (Status.UNKNOWN, f"no data for {expr}")
    assert (result.rows, result.lines, result.links) == ([], [expr], links)
    ranged = await promql_range(prom, expr, 120, title="PromQL", links=[])
    assert (ranged.status, ranged.summary) == (Status.UNKNOWN, f"no data for {expr} over the last 2m")
    spread = await promql_instant(prom, "absent_metric_xyz\n  > 0", title="PromQL", links=[])
    assert spread.summary == "no data for absent_metric_xyz > 0"  # one line


@pytest.mark.integration
@pytest.mark.parametrize(("service", "status", "summary"), [
    ("healthy", Status.OK, "0.05 % — within thresholds"),
    ("slow", Status.WARNING, "2 % — warning > 1 %"),
    ("failing", Status.CRITICAL, "10 % — critical > 5 %"),
])
async def test_error_rate_preset_compares_the_service_with_the_runbook_thresholds(prom, service, status, summary):
    result = await run_preset(prom, "error-rate", [("service", "=", service)])
    assert (result.status, result.summary) == (status, summary)
    assert result.fields["Thresholds"] == "warning > 1 %, critical > 5 %"
    assert f'service="{service}"' in result.lines[0]


@pytest.mark.integration
async def test_latency_p95_between_one_and_two_seconds_is_a_warning(prom):
    result = await run_preset(prom, "latency-p95", [("service", "=", "slow")])
    assert (result.status, result.summary) == (Status.WARNING, "1.475 s — warning > 1 s")


@pytest.mark.integration
async def test_node_cpu_rates_each_node_and_lists_the_worst_first(prom):
    result = await run_preset(prom, "node-cpu")
    assert result.status is Status.CRITICAL
    assert [r.cells[0] for r in result.rows] == ["instance=node-c", "instance=node-b", "instance=node-a"]
    assert [r.status for r in result.rows] == [Status.CRITICAL, Status.WARNING, Status.OK]
    assert re.fullmatch(r"9\d(\.\d+)? % \(instance=node-c, worst of 3 series\) — critical > 90 %", result.summary)


@pytest.mark.integration
async def test_a_preset_without_series_is_unknown_with_no_data(prom):
    result = await run_preset(prom, "error-rate", [("service", "=", "nosuch")])
    assert (result.status, result.summary) == (Status.UNKNOWN, "no data: the query returned no series")


@pytest.mark.integration
async def test_every_preset_with_label_filters_is_a_query_prometheus_accepts(prom):
    results = await asyncio.gather(*(run_preset(prom, name, [("service", "!=", "x"), ("env", "=~", ".*")])
                                     for name in DEFAULT_PRESETS))
    assert [(r.title, r.summary) for r in results if r.status is Status.ERROR] == []


@pytest.mark.integration
async def test_identical_queries_at_the_same_time_make_one_prometheus_call(stack, pool, http):
    cache = QueryCache()
    prom = source(stack.prometheus.url, pool, http, cache=cache)
    first, second = await asyncio.gather(run_preset(prom, "db-pool"), run_preset(prom, "db-pool"))
    assert first.summary == second.summary == "80 % — warning > 70 %"
    assert cache.stats.backend_calls == 1


@pytest.mark.integration
@pytest.mark.parametrize(("service", "ratio"), [("healthy", 0.0005), ("burning", 0.002)])
async def test_slo_measures_the_exact_error_ratio_of_the_traffic(prom, service, ratio):
    m = await measure(prom, [("service", "=", service)])
    assert error_ratio(m.errors_5m, m.total_5m) == pytest.approx(ratio, rel=1e-9)
    assert error_ratio(m.errors_30d, m.total_30d) == pytest.approx(ratio, rel=1e-9)


@pytest.mark.integration
async def test_slo_met_for_0_05_percent_errors_with_half_the_budget_left(prom):
    result = await slo_status(prom, SloTargets(), [("service", "=", "healthy")], title="SLO", links=[])
    assert result.status is Status.OK
    assert [r.cells for r in result.rows] == [
        ("Availability (5 m)", "99.95 %", "≥ 99.9 %", "met"),
        ("Availability (30 d)", "99.95 %", "≥ 99.9 %", "met"),
        ("API p95 (5 m)", "242.5 ms", "< 500 ms", "met"),
        ("Error rate (5 m)", "0.05 %", "< 0.1 %", "met"),
        ("DB query p95 (5 m)", "24.25 ms", "< 100 ms", "met"),
        ("Error budget (30 d)", "50.0 % left", "0.1 % of requests may fail in 30 d", "met"),
    ]
    assert result.summary == "5 of 5 objectives met · error budget 50.0 % left"


@pytest.mark.integration
async def test_slo_missed_for_0_2_percent_errors_and_the_budget_overspent(prom):
    result = await slo_status(prom, SloTargets(), [("service", "=", "burning")], title="SLO", links=[])
    assert result.status is Status.CRITICAL
    rows = {r.cells[0]: r for r in result.rows}
    assert rows["Error rate (5 m)"].cells[1:] == ("0.2 %", "< 0.1 %", "missed")
    assert rows["Availability (30 d)"].cells[1:] == ("99.8 %", "≥ 99.9 %", "missed")
    assert rows["API p95 (5 m)"].cells[1] == "737.5 ms"
    assert rows["Error budget (30 d)"].cells[1] == "exhausted (200.0 % used)"
    assert rows["Error budget (30 d)"].detail == "0.2 % of requests failed: 200.0 % of the budget used"
    assert result.fields["Budget used"] == "200.0 %"


@pytest.mark.integration
async def test_slo_for_a_service_prometheus_has_no_data_for_says_so(prom):
    result = await slo_status(prom, SloTargets(), [("service", "=", "nosuch")], title="SLO", links=[])
    assert result.status is Status.UNKNOWN
    assert {r.cells[3] for r in result.rows} == {"no data"}
    assert result.summary.endswith("error budget: no data")


def _target_health(stack: RunbookStack, job: str) -> str:
    with urllib.request.urlopen(f"{stack.prometheus.url}/api/v1/targets", timeout=5) as response:
        targets = json.load(response)["data"]["activeTargets"]
    return next(t["health"] for t in targets if t["labels"]["job"] == job)


async def _wait_health(stack: RunbookStack, job: str, health: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while _target_health(stack, job) != health:
        assert time.monotonic() < deadline, f"target {job} never became {health}"
        await asyncio.sleep(0.2)


@pytest.mark.integration
async def test_targets_all_up_is_ok(stack, prom):
    await _wait_health(stack, "flaky", "up")
    result = await targets_down(prom)
    assert (result.status, result.summary) == (Status.OK, "all 2 targets up")


@pytest.mark.integration
async def test_a_target_answering_500_is_listed_down_with_its_error(stack, pool, http):
    stack.flaky.fail_with(500)
    try:
        await _wait_health(stack, "flaky", "down")
        result = await targets_down(source(stack.prometheus.url, pool, http))
    finally:
        stack.flaky.fail_with(None)
    assert (result.status, result.summary) == (Status.CRITICAL, "1 of 2 targets down")
    (row,) = result.rows
    assert row.cells[0:2] == (stack.flaky.target, "flaky")
    assert row.cells[2].endswith("s ago")
    assert row.detail == "server returned HTTP status 500 Internal Server Error"


@pytest.mark.integration
async def test_targets_not_yet_scraped_are_listed_apart_from_those_down(pool, http):
    targets = [
        {"labels": {"job": "api", "instance": "api:80"}, "health": "up", "lastError": "",
         "lastScrape": "2024-05-01T10:00:00.123456789Z"},
        {"labels": {"job": "db", "instance": "db:9187"}, "health": "down", "lastError": "connection refused",
         "lastScrape": "2024-05-01T09:58:00Z"},
        {"labels": {"job": "new", "instance": "new:80"}, "health": "unknown", "lastError": "",
         "lastScrape": "0001-01-01T00:00:00Z"},
    ]

    async def handle(request: web.Request) -> web.Response:
        assert request.query["state"] == "active"
        return web.json_response({"status": "success", "data": {"activeTargets": targets}})

    app = web.Application()
    app.router.add_get("/api/v1/targets", handle)
    server = BackgroundServer(app)
    server.start()
    try:
        now = datetime(2024, 5, 1, 10, 0, 30, tzinfo=timezone.utc).timestamp()
        result = await targets_down(source(server.url, pool, http), now=now)
    finally:
        server.stop()
    assert (result.status, result.summary) == (Status.CRITICAL, "1 of 3 targets down · 1 not scraped yet")
    assert [(r.cells, r.status, r.detail) for r in result.rows] == [
        (("db:9187", "db", "2m ago"), Status.CRITICAL, "connection refused"),
        (("new:80", "new", "never"), Status.UNKNOWN, "not scraped yet"),
    ]


@pytest.mark.integration
async def test_graph_is_a_1200_by_600_png_with_a_summary_against_thresholds(prom):
    preset = DEFAULT_PRESETS["node-cpu"]
    result = await graph(prom, preset_expr(preset), 600, title=preset.title, name=preset.name, unit="%",
                         thresholds=preset.thresholds, links=[])
    (png,) = result.files
    assert png.mimetype == "image/png" and png.filename == "node-cpu.png"
    assert png.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert png.content[12:16] == b"IHDR"
    assert struct.unpack(">II", png.content[16:24]) == (WIDTH, HEIGHT) == (1200, 600)
    assert len(png.content) > 20_000  # lines, legend and text, not a blank canvas
    assert result.status is Status.CRITICAL
    assert re.fullmatch(r"last 9\d(\.\d+)? % \(instance=node-c, worst of 3 series\) — critical > 90 %",
                        result.summary)


@pytest.mark.integration
async def test_graph_of_a_query_without_data_says_so_and_attaches_nothing(prom):
    result = await graph(prom, 'up{job="nosuch"}', 600, title="q", name="promql")
    assert (result.status, result.files) == (Status.UNKNOWN, [])
    assert result.summary == "no data in the last 10m: the query returned no samples"


# =========================================================================== Prometheus unreachable


@pytest.mark.integration
async def test_prometheus_on_a_closed_port_is_an_error_within_the_timeout(pool, unused_tcp_port):
    url = f"http://127.0.0.1:{unused_tcp_port}"
    started = time.monotonic()
    result = await promql_instant(source(url, pool, timeout=1.5), "up", title="PromQL", links=[])
    assert time.monotonic() - started < 2.5
    assert result.status is Status.ERROR
    # The client's default policy retries a refused connection for ~6 s, past this timeout.
    assert result.summary == f"Prometheus: timed out after 1.5 s at {url}"


@pytest.mark.integration
async def test_prometheus_refusing_connections_says_connection_refused(pool, http, unused_tcp_port):
    url = f"http://127.0.0.1:{unused_tcp_port}"
    client = PrometheusConnect(url, retry=Retry(total=0))
    result = await promql_instant(source(url, pool, client=client), "up", title="PromQL", links=[])
    assert result.summary == f"Prometheus: cannot connect to {url}: connection refused"
    targets = await targets_down(source(url, pool, http))
    assert targets.status is Status.ERROR
    assert targets.summary == f"Prometheus: cannot connect to {url}: connection refused"


@pytest.mark.integration
async def test_prometheus_answering_503_is_named_with_the_status(pool, failing_server):
    server, _ = failing_server
    client = PrometheusConnect(server.url, retry=Retry(total=0))
    result = await promql_instant(source(server.url, pool, client=client), "up", title="PromQL", links=[])
    assert result.summary == f"Prometheus: HTTP 503 at {server.url}: overloaded, try later"


@pytest.mark.integration
async def test_a_prometheus_that_hangs_times_out_after_the_timeout(pool, failing_server):
    server, behaviour = failing_server
    behaviour.update(delay=2.5, status=200)
    started = time.monotonic()
    result = await promql_instant(source(server.url, pool, timeout=1.0), "up", title="PromQL", links=[])
    assert time.monotonic() - started < 2.0
    assert result.summary == f"Prometheus: timed out after 1 s at {server.url}"


# =========================================================================== Alertmanager

INHIBITING_CONFIG = NULL_CONFIG + """\
inhibit_rules:
  - source_matchers: [alertname="NodeDown"]
    target_matchers: [alertname="NodeHighCPU"]
    equal: [instance]
"""


def _post(url: str, body: Any) -> Any:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"null")


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


@pytest.fixture(scope="module")
def firing(alertmanager_factory):
    """A real Alertmanager with two critical, one warning, one silenced and one inhibited alert."""
    am = alertmanager_factory(INHIBITING_CONFIG)
    now = datetime.now(timezone.utc)

    def alert(name: str, severity: str, ago: timedelta, **labels: str) -> dict[str, Any]:
        return {"labels": {"alertname": name, "severity": severity, **labels},
                "annotations": {"summary": f"{name} on {labels.get('instance') or labels.get('service')}"},
                "startsAt": _iso(now - ago)}

    am.post_alerts([
        alert("HighLatency", "warning", timedelta(minutes=10), service="checkout"),
        alert("NodeDown", "critical", timedelta(minutes=30), instance="node-c"),
        alert("HighErrorRate", "critical", timedelta(hours=2), service="checkout"),
        alert("DiskFilling", "warning", timedelta(hours=1), instance="db-1"),
        alert("NodeHighCPU", "warning", timedelta(minutes=5), instance="node-c"),
    ])
    _post(f"{am.url}/api/v2/silences", {
        "matchers": [{"name": "alertname", "value": "DiskFilling", "isRegex": False, "isEqual": True}],
        "startsAt": _iso(now), "endsAt": _iso(now + timedelta(hours=3)), "createdBy": "alice",
        "comment": "disk resize in progress"})
    deadline = time.monotonic() + 15
    while sum(a["status"]["state"] == "suppressed" for a in am.alerts()) < 2:
        assert time.monotonic() < deadline, am.alerts()
        time.sleep(0.2)
    return am


@pytest.mark.integration
async def test_alerts_lists_critical_first_then_warnings_then_suppressed(firing, http):
    result = await firing_alerts(http, firing.url, location=firing.url, timeout=5)
    assert result.status is Status.CRITICAL
    assert result.summary == "3 firing: 2 critical, 1 warning · 2 suppressed"
    assert [(r.cells[0], r.cells[1], r.cells[2]) for r in result.rows] == [
        ("HighErrorRate", "critical", "active"),
        ("NodeDown", "critical", "active"),
        ("HighLatency", "warning", "active"),
        ("DiskFilling", "warning", "suppressed"),
        ("NodeHighCPU", "warning", "suppressed"),
    ]
    first = result.rows[0]
    assert first.cells[3:] == ("2h ago", "service=checkout", "HighErrorRate on checkout")
    assert first.status is Status.CRITICAL


@pytest.mark.integration
async def test_suppressed_alerts_say_who_silenced_them_and_what_inhibits_them(firing, http):
    result = await firing_alerts(http, firing.url, location=firing.url, timeout=5)
    rows = {r.cells[0]: r for r in result.rows}
    assert rows["DiskFilling"].detail.startswith("silenced by alice until ")
    assert rows["DiskFilling"].detail.endswith(" UTC: disk resize in progress")
    assert rows["NodeHighCPU"].detail == "inhibited by NodeDown"
    assert rows["NodeHighCPU"].status is Status.UNKNOWN


@pytest.mark.integration
async def test_alertmanager_with_nothing_firing_is_ok(alertmanager, http):
    result = await firing_alerts(http, alertmanager.url, location=alertmanager.url, timeout=5)
    assert (result.status, result.summary, result.rows) == (Status.OK, "nothing firing", [])


@pytest.mark.integration
async def test_alertmanager_on_a_closed_port_is_an_error_naming_where(http, unused_tcp_port):
    url = f"http://127.0.0.1:{unused_tcp_port}"
    started = time.monotonic()
    result = await firing_alerts(http, url, location=url, timeout=2)
    assert time.monotonic() - started < 2
    assert (result.status, result.summary) == \
        (Status.ERROR, f"Alertmanager: cannot connect to {url}: connection refused")


@pytest.mark.integration
async def test_alertmanager_answering_503_is_an_error_with_the_status(http, failing_server):
    server, _ = failing_server
    result = await firing_alerts(http, server.url, location=server.url, timeout=2)
    assert result.summary == f"Alertmanager: HTTP 503 at {server.url}: overloaded, try later"


@pytest.mark.integration
async def test_alertmanager_that_hangs_times_out(http, failing_server):
    server, behaviour = failing_server
    behaviour["delay"] = 2.5
    started = time.monotonic()
    result = await firing_alerts(http, server.url, location=server.url, timeout=1)
    assert time.monotonic() - started < 1.8
    assert result.summary == f"Alertmanager: timed out after 1 s at {server.url}"
