"""The Elasticsearch log diagnostics (`errors`, `slow`) through the real async client, over HTTP,
against fake_elasticsearch seeded with the runbook's log documents."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from elasticsearch import AsyncElasticsearch

from diagnostics.cache import QueryCache
from diagnostics.durations import compact_duration
from diagnostics.elasticsearch import LINE_CHARS, LogFields, LogSearch, error_logs, kibana_discover_url, slow_requests
from diagnostics.result import Status

pytestmark = pytest.mark.integration

INDEX = "claude-deployment-logs-2026.11.25"
APP = "claude-deployment-api"


def log_doc(minutes_ago: float, *, app: str = APP, level: str = "INFO", log: str = "GET /v1/ok 200",
            endpoint: str = "/v1/messages", response_time: float = 40) -> dict[str, Any]:
    """One log document shaped like the runbook's: nested kubernetes labels, `log`, `level`, …"""
    return {
        "@timestamp": (datetime.now(UTC) - timedelta(minutes=minutes_ago)).isoformat(),
        "kubernetes": {"labels": {"app": app}},
        "log": log,
        "level": level,
        "endpoint": endpoint,
        "response_time": response_time,
    }


def error_doc(minutes_ago: float, n: int, endpoint: str = "/v1/messages", **kw: Any) -> dict[str, Any]:
    return log_doc(minutes_ago, level="ERROR", log=f"ERROR upstream failed #{n}", endpoint=endpoint, **kw)


@pytest.fixture
async def es(fake_elasticsearch) -> AsyncIterator[AsyncElasticsearch]:
    client = AsyncElasticsearch(fake_elasticsearch.url, request_timeout=5, max_retries=0)
    yield client
    await client.close()


async def errors(es: AsyncElasticsearch, app: str = APP, since: int = 3600, **kw: Any):
    return await error_logs(LogSearch(es, timeout=5, **kw), app, since)


# --- errors ---------------------------------------------------------------------------------------


async def test_errors_show_the_newest_15_lines_newest_first_with_the_total(fake_elasticsearch, es):
    fake_elasticsearch.add_docs(INDEX, [error_doc(minutes_ago=i, n=i) for i in range(20)])
    result = await errors(es)
    assert result.status is Status.WARNING
    assert result.summary.startswith("20 error lines in the last 1h")
    assert len(result.lines) == 15
    assert result.lines[0].endswith("ERROR upstream failed #0") and result.lines[-1].endswith("#14")
    assert result.lines[0][:4].isdigit()  # timestamp first


async def test_errors_count_errors_per_endpoint_busiest_first(fake_elasticsearch, es):
    fake_elasticsearch.add_docs(INDEX, [
        *(error_doc(1, i, endpoint="/v1/messages") for i in range(3)),
        error_doc(2, 9, endpoint="/v1/models"),
    ])  # fmt: skip
    result = await errors(es)
    assert [r.cells for r in result.rows] == [("/v1/messages", "3"), ("/v1/models", "1")]
    assert all(r.status is Status.WARNING for r in result.rows)


async def test_errors_leave_out_other_apps_info_lines_and_lines_older_than_since(fake_elasticsearch, es):
    fake_elasticsearch.add_docs(INDEX, [
        error_doc(5, 1),
        error_doc(5, 2, app="billing-worker"),
        log_doc(5, log="GET /v1/messages 200"),
        error_doc(90, 3),
    ])  # fmt: skip
    narrow = await errors(es)
    assert len(narrow.lines) == 1 and narrow.lines[0].endswith("#1")
    wider = await errors(es, since=2 * 3600)
    assert len(wider.lines) == 2 and wider.summary.startswith("2 error lines in the last 2h")


async def test_no_errors_is_ok(fake_elasticsearch, es):
    fake_elasticsearch.add_docs(INDEX, [log_doc(1), error_doc(1, 1, app="other")])
    result = await errors(es)
    assert result.status is Status.OK
    assert result.summary == "No error lines in the last 1h"
    assert not result.lines and not result.rows


async def test_errors_send_the_runbook_queries(fake_elasticsearch, es):
    fake_elasticsearch.add_docs(INDEX, [error_doc(1, 1)])
    await errors(es, since=1800)
    searches = [r for r in fake_elasticsearch.requests if r.path.endswith("/_search")]
    assert {r.path for r in searches} == {"/claude-deployment-logs-*/_search"}
    lines = next(r.body for r in searches if r.body.get("size"))
    assert lines["query"]["bool"]["must"] == [
        {"match": {"kubernetes.labels.app": APP}},
        {"bool": {"should": [{"match": {"log": "ERROR"}}, {"match": {"message": "ERROR"}},
                             {"match": {"error.message": "ERROR"}}], "minimum_should_match": 1}},
        {"range": {"@timestamp": {"gte": "now-1800s"}}},
    ]
    assert lines["sort"] == [{"@timestamp": {"order": "desc"}}]
    counts = next(r.body for r in searches if "aggs" in r.body)
    assert counts["aggs"]["endpoints"]["terms"]["field"] == "endpoint.keyword"
    assert {"match": {"level": "ERROR"}} in counts["query"]["bool"]["must"]


async def test_configured_index_and_field_names_are_used(fake_elasticsearch, es):
    fields = LogFields(index="app-logs-*", app_field="service", message_field="message", level_field="severity",
                       endpoint_field="path", timestamp_field="ts")
    fake_elasticsearch.add_docs("app-logs-1", [
        {"ts": datetime.now(UTC).isoformat(), "service": "web", "message": "ERROR disk full", "severity": "ERROR",
         "path": "/upload"},
    ])  # fmt: skip
    result = await errors(es, app="web", fields=fields)
    assert result.lines[0].endswith("ERROR disk full")
    assert [r.cells for r in result.rows] == [("/upload", "1")]


async def test_a_kibana_link_is_added_only_when_kibana_is_configured(fake_elasticsearch, es):
    fake_elasticsearch.add_docs(INDEX, [error_doc(1, 1)])
    assert not (await errors(es)).links
    (link,) = (await errors(es, kibana_url="https://kibana.example/")).links
    assert link.url.startswith("https://kibana.example/app/discover#/?_g=(time:(from:now-3600s,to:now))")
    assert "|" not in link.url and ">" not in link.url and " " not in link.url


async def test_multi_line_log_messages_are_shown_on_one_line(fake_elasticsearch, es):
    fake_elasticsearch.add_docs(INDEX, [error_doc(1, 1) | {"log": "ERROR Traceback:\n  File x\nValueError"}])
    assert (await errors(es)).lines[0].endswith("ERROR Traceback: File x ValueError")


def ecs_doc(minutes_ago: float, **fields: Any) -> dict[str, Any]:
    """A log document in the common ECS layout: `log` an object, the message elsewhere."""
    return {
        "@timestamp": (datetime.now(UTC) - timedelta(minutes=minutes_ago)).isoformat(),
        "kubernetes": {"labels": {"app": APP}},
        "log": {"level": "error", "logger": "api"},
        "level": "ERROR",
        **fields,
    }


async def test_ecs_documents_show_their_message_never_a_python_repr(fake_elasticsearch, es):
    fake_elasticsearch.add_docs(INDEX, [
        ecs_doc(1, message="ERROR upstream failed"),
        ecs_doc(2, error={"message": "ERROR connection reset", "type": "OSError"}),
        ecs_doc(3, message={"nested": "ERROR object"}),  # an object: no message, matched by nothing
    ])  # fmt: skip
    lines = (await errors(es)).lines
    assert [line.split("  ", 1)[1] for line in lines] == ["ERROR upstream failed", "ERROR connection reset"]
    assert not any("{" in line or "'level'" in line for line in lines)


async def test_errors_are_found_in_whichever_field_carries_the_message(fake_elasticsearch, es):
    # The configured field is `log` (the runbook's); ECS documents carry the message elsewhere,
    # and their `log` is an object ({"level": "error"}) that no query matches.
    fake_elasticsearch.add_docs(INDEX, [
        error_doc(1, 1),
        ecs_doc(2, message="ERROR upstream failed"),
        ecs_doc(3, error={"message": "ERROR connection reset", "type": "OSError"}),
        ecs_doc(4, message="GET /v1/ok 200"),  # no ERROR in any message field
    ])  # fmt: skip
    result = await errors(es)
    assert [line.split("  ", 1)[1] for line in result.lines] == [
        "ERROR upstream failed #1", "ERROR upstream failed", "ERROR connection reset",
    ]
    assert result.summary.startswith("3 error lines")
    (link,) = (await errors(es, kibana_url="https://kibana.example")).links
    assert "(log:ERROR%20or%20message:ERROR%20or%20error.message:ERROR)" in link.url


async def test_the_configured_message_field_comes_first_and_log_is_read_when_it_is_text(fake_elasticsearch, es):
    fake_elasticsearch.add_docs(INDEX, [error_doc(1, 1) | {"message": "the other field"}])
    assert (await errors(es)).lines[0].endswith("ERROR upstream failed #1")
    fields = LogFields(message_field="msg")
    fake_elasticsearch.add_docs(INDEX, [error_doc(2, 2) | {"msg": "ERROR in msg"}])
    # Both are found (the query looks in msg, message and log); each shows its first message field.
    assert [line.split("  ", 1)[1] for line in (await errors(es, fields=fields)).lines] == [
        "the other field", "ERROR in msg"]


async def test_a_long_line_is_cut_and_crowds_out_no_other(fake_elasticsearch, es):
    from bot.commands.report import Report
    from bot.slack.render import report_message

    fake_elasticsearch.add_docs(INDEX, [
        error_doc(0, 0) | {"log": "ERROR " + "x" * 5000},
        *(error_doc(i, i) for i in range(1, 15)),
    ])  # fmt: skip
    result = await errors(es)
    assert len(result.lines) == 15
    assert len(result.lines[0]) == LINE_CHARS and result.lines[0].endswith("…")
    blocks = json.dumps(report_message(Report("errors", [result])).blocks, ensure_ascii=False)
    assert all(f"ERROR upstream failed #{i}" in blocks for i in range(1, 15))
    assert "not shown" not in blocks


async def test_identical_queries_at_once_reach_elasticsearch_once(fake_elasticsearch, es):
    fake_elasticsearch.add_docs(INDEX, [error_doc(1, 1)])
    fake_elasticsearch.delay(0.2)
    cache = QueryCache(ttl=5)
    results = await asyncio.gather(*(errors(es, cache=cache) for _ in range(5)))
    assert all(r.summary == results[0].summary for r in results)
    assert len([r for r in fake_elasticsearch.requests if r.path.endswith("/_search")]) == 2


# --- slow -----------------------------------------------------------------------------------------


async def test_slow_lists_requests_over_min_ms_slowest_first(fake_elasticsearch, es):
    fake_elasticsearch.add_docs(INDEX, [
        log_doc(1, endpoint="/v1/fast", response_time=200),
        log_doc(2, endpoint="/v1/slow", response_time=1500),
        log_doc(3, endpoint="/v1/slower", response_time=4200.5),
        log_doc(120, endpoint="/v1/old", response_time=9000),
    ])  # fmt: skip
    result = await slow_requests(LogSearch(es, timeout=5), 1000, 3600)
    assert result.status is Status.WARNING
    assert result.summary == "2 requests took 1000 ms or more in the last 1h"
    assert [r.cells[:2] for r in result.rows] == [("/v1/slower", "4200.5 ms"), ("/v1/slow", "1500 ms")]
    assert result.rows[0].cells[2][:4].isdigit()


async def test_slow_shows_the_top_15_and_says_how_many_more(fake_elasticsearch, es):
    fake_elasticsearch.add_docs(INDEX, [log_doc(1, response_time=1000 + i) for i in range(30)])
    result = await slow_requests(LogSearch(es, timeout=5), 1000, 3600)
    assert len(result.rows) == 15 and result.rows[0].cells[1] == "1029 ms"
    assert result.folded_rows_note == "15 faster ones not shown"
    body = next(r.body for r in fake_elasticsearch.requests if r.path.endswith("/_search"))
    assert body["sort"] == [{"response_time": {"order": "desc"}}] and body["size"] == 50
    assert {"range": {"response_time": {"gte": 1000}}} in body["query"]["bool"]["must"]


async def test_no_slow_requests_is_ok(fake_elasticsearch, es):
    fake_elasticsearch.add_docs(INDEX, [log_doc(1, response_time=999)])
    result = await slow_requests(LogSearch(es, timeout=5), 1000, 900)
    assert result.status is Status.OK
    assert result.summary == "No request took 1000 ms or more in the last 15m"


async def test_no_index_matching_the_pattern_is_unknown_not_ok(fake_elasticsearch, es):
    """ES answers 200 with `_shards.total` 0 for a pattern that matches nothing: no logs, not no errors."""
    fake_elasticsearch.add_docs("other-logs-2026.11.25", [error_doc(1, 1), log_doc(1, response_time=5000)])
    expected = ("No index matches `claude-deployment-logs-*`: no logs to search "
                "(elasticsearch.index in chatops.yaml)")
    for result in (await errors(es), await slow_requests(LogSearch(es, timeout=5), 1000, 3600)):
        assert (result.status, result.summary) == (Status.UNKNOWN, expected)
        assert result.fields == {"index": "claude-deployment-logs-*"}
        assert not result.rows and not result.lines
    assert (await errors(es)).title == "Errors · claude-deployment-api · last 1h"


# --- helpers --------------------------------------------------------------------------------------


@pytest.mark.parametrize("seconds, text", [(3600, "1h"), (5400, "90m"), (86400, "1d"), (45, "45s")])
def test_durations_are_shown_in_the_largest_whole_unit(seconds, text):
    assert compact_duration(seconds) == text


def test_kibana_url_escapes_quotes_for_rison():
    url = kibana_discover_url("http://k", "log:\"it's\"", 60)
    assert "it%21%27s" in url  # rison's !' (an escaped quote), percent-encoded
