"""Elasticsearch: the runbook's log queries (`errors`, `slow`).

`error_logs` runs the runbook's two queries together: the newest error lines of one app
(bool.must: app label, "ERROR" in the message wherever the document keeps it (a bool.should
over the message fields: the configured one, ECS's `message`, `log`, `error.message`),
@timestamp in range; newest first) and the
error count per endpoint (a terms aggregation over the error-level documents).
`slow_requests` lists the slowest requests (response_time >= min-ms, slowest first).

Status, deliberately simple: OK when nothing matched, WARNING when anything did. An error
line is worth a look, but only a person reading them can tell an incident from noise.
UNKNOWN when the index pattern matches no index (`_shards.total` 0): no logs is not "no errors".

Index pattern and field names come from chatops.yaml's `elasticsearch:` section
(`LogFields`); the defaults are the runbook's.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from elasticsearch import AsyncElasticsearch, ConnectionTimeout
from elasticsearch import ConnectionError as TransportConnectionError

from diagnostics.cache import QueryCache, cached
from diagnostics.durations import compact_duration
from diagnostics.http import connect_reason
from diagnostics.result import Link, Result, Row, Status

SHOWN = 15  # lines and rows shown inline
LINE_CHARS = 300  # one log line shown at most this long, cut with "…"


@dataclass(frozen=True)
class LogFields:
    """Where the runbook's log documents keep what the queries need."""

    index: str = "claude-deployment-logs-*"
    app_field: str = "kubernetes.labels.app"
    default_app: str = "claude-deployment-api"
    message_field: str = "log"
    level_field: str = "level"
    endpoint_field: str = "endpoint.keyword"
    response_time_field: str = "response_time"  # milliseconds
    timestamp_field: str = "@timestamp"


@dataclass(frozen=True)
class LogSearch:
    """Everything the log diagnostics share: the client, the field names, the timeout, the
    cache for identical searches, and Kibana for the link to the same query."""

    es: AsyncElasticsearch
    fields: LogFields = LogFields()
    timeout: float = 8.0
    kibana_url: str = ""
    cache: QueryCache | None = None

    async def search(self, body: dict[str, Any]) -> dict[str, Any]:
        async def search() -> dict[str, Any]:
            try:
                response = await self.es.options(request_timeout=self.timeout).search(index=self.fields.index,
                                                                                      body=body)
            except ConnectionTimeout:
                # Worded like the caller's own timeout ("timed out after 8 s at …"): same cause.
                raise TimeoutError from None
            except TransportConnectionError as e:
                raise ConnectionError(f"cannot connect: {connect_reason(e.__context__, e.message)}") from None
            return dict(response.body)

        return await cached(self.cache, ("es.search", self.fields.index, repr(sorted(body.items()))), search)

    def kibana_links(self, kql: str, since_seconds: int) -> list[Link]:
        if not self.kibana_url:
            return []
        return [Link("Open in Kibana", kibana_discover_url(self.kibana_url, kql, since_seconds))]


async def error_logs(logs: LogSearch, app: str, since_seconds: int) -> Result:
    """The newest error lines of `app` and the error count per endpoint, since `since_seconds` ago."""
    f = logs.fields
    window = {"range": {f.timestamp_field: {"gte": f"now-{since_seconds}s"}}}
    app_match = {"match": {f.app_field: app}}
    in_message = {"bool": {"should": [{"match": {field: "ERROR"}} for field in message_fields(f)],
                           "minimum_should_match": 1}}
    lines, by_endpoint = await asyncio.gather(
        logs.search({
            "query": {"bool": {"must": [app_match, in_message, window]}},
            "sort": [{f.timestamp_field: {"order": "desc"}}],
            "size": SHOWN,
            "track_total_hits": True,
        }),
        logs.search({
            "query": {"bool": {"must": [app_match, {"match": {f.level_field: "ERROR"}}, window]}},
            "size": 0,
            "aggs": {"endpoints": {"terms": {"field": f.endpoint_field, "size": SHOWN}}},
        }),
    )  # fmt: skip
    title = f"Errors · {app} · last {compact_duration(since_seconds)}"
    if missing := _no_index(logs, title, lines, by_endpoint):
        return missing
    total, since = _total(lines), compact_duration(since_seconds)
    shown = [_line(f"{_field(hit, f.timestamp_field)}  {_message(hit, f)}".strip()) for hit in _hits(lines)]
    endpoints = by_endpoint.get("aggregations", {}).get("endpoints", {})
    summary = f"{_plural(total, 'error line') if total else 'No error lines'} in the last {since}"
    if total > len(shown):
        summary += f"; the newest {len(shown)} below"
    other = endpoints.get("sum_other_doc_count", 0)
    in_kql = " or ".join(f"{field}:ERROR" for field in message_fields(f))
    return Result(
        status=Status.WARNING if total else Status.OK,
        title=title,
        summary=summary,
        fields={"index": f.index, f.app_field: app},
        columns=("endpoint", "errors"),
        rows=[Row((str(b["key"]), str(b["doc_count"])), Status.WARNING) for b in endpoints.get("buckets", [])],
        lines=shown,
        links=logs.kibana_links(f'{f.app_field}:"{app}" and ({in_kql})', since_seconds),
        folded_rows_note=f"{other} more errors on other endpoints" if other else "",
    )


async def slow_requests(logs: LogSearch, min_ms: int, since_seconds: int) -> Result:
    """The slowest requests taking at least `min_ms`, since `since_seconds` ago, slowest first."""
    f = logs.fields
    answer = await logs.search({
        "query": {"bool": {"must": [
            {"range": {f.response_time_field: {"gte": min_ms}}},
            {"range": {f.timestamp_field: {"gte": f"now-{since_seconds}s"}}},
        ]}},
        "sort": [{f.response_time_field: {"order": "desc"}}],
        "size": 50,
        "track_total_hits": True,
    })  # fmt: skip
    title = f"Slow requests · ≥ {min_ms} ms · last {compact_duration(since_seconds)}"
    if missing := _no_index(logs, title, answer):
        return missing
    total, since = _total(answer), compact_duration(since_seconds)
    rows = [
        Row((_field(hit, f.endpoint_field) or "(no endpoint)", f"{_number(_field(hit, f.response_time_field))} ms",
             _field(hit, f.timestamp_field)), Status.WARNING)
        for hit in _hits(answer)[:SHOWN]
    ]  # fmt: skip
    return Result(
        status=Status.WARNING if total else Status.OK,
        title=title,
        summary=f"{_plural(total, 'request')} took {min_ms} ms or more in the last {since}"
        if total else f"No request took {min_ms} ms or more in the last {since}",
        fields={"index": f.index},
        columns=("endpoint", "took", "at"),
        rows=rows,
        links=logs.kibana_links(f"{f.response_time_field} >= {min_ms}", since_seconds),
        folded_rows_note=f"{total - len(rows)} faster ones not shown" if total > len(rows) else "",
    )


def _no_index(logs: LogSearch, title: str, *answers: dict[str, Any]) -> Result | None:
    """UNKNOWN when the index pattern matched no index: ES answers 200 with `_shards.total` 0."""
    if not any(answer.get("_shards", {}).get("total") == 0 for answer in answers):
        return None
    index = logs.fields.index
    summary = f"No index matches `{index}`: no logs to search (elasticsearch.index in chatops.yaml)"
    return Result(status=Status.UNKNOWN, title=title, summary=summary, fields={"index": index})


def _total(answer: dict[str, Any]) -> int:
    total = answer.get("hits", {}).get("total", 0)
    return int(total.get("value", 0) if isinstance(total, dict) else total)


def _hits(answer: dict[str, Any]) -> list[dict[str, Any]]:
    return list(answer.get("hits", {}).get("hits", []))


def _field(hit: dict[str, Any], field: str) -> str:
    """A field of a hit's _source by dotted path (flattened keys too); `x.keyword` reads x.
    Text, numbers and booleans only: an object or a list reads "" (never a Python repr)."""
    source = hit.get("_source", {})
    field = field.removesuffix(".keyword")
    if field in source:
        value = source[field]
    else:
        value = source
        for part in field.split("."):
            value = value.get(part) if isinstance(value, dict) else None
    if value is None or isinstance(value, (dict, list)):
        return ""
    return " ".join(str(value).split())  # one line, whatever the log line held


def message_fields(fields: LogFields) -> list[str]:
    """Where a document may keep its message: the configured field, then ECS's `message`, then
    `log` (text in the runbook's layout; in ECS an object such as {"level": "error"}, which no
    query matches and _field reads as ""), then `error.message`."""
    return list(dict.fromkeys((fields.message_field, "message", "log", "error.message")))


def _message(hit: dict[str, Any], fields: LogFields) -> str:
    """The log message wherever the document keeps it (message_fields, in order; text only)."""
    for field in message_fields(fields):
        if text := _field(hit, field):
            return text
    return "(no message)"


def _line(text: str) -> str:
    """One log line cut to LINE_CHARS, so one long line cannot crowd out the others."""
    return text if len(text) <= LINE_CHARS else text[: LINE_CHARS - 1] + "…"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _number(text: str) -> str:
    try:
        return f"{float(text):g}"
    except ValueError:
        return text or "?"


def kibana_discover_url(kibana_url: str, kql: str, since_seconds: int) -> str:
    """Kibana Discover over the same time window with a KQL query (rison in the URL fragment)."""
    rison = kql.replace("!", "!!").replace("'", "!'")
    query = quote(f"(query:(language:kuery,query:'{rison}'))", safe="(),:")
    window = quote(f"(time:(from:now-{since_seconds}s,to:now))", safe="(),:-")
    return f"{kibana_url.rstrip('/')}/app/discover#/?_g={window}&_a={query}"
