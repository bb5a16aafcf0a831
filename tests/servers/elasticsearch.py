"""A loopback fake of the Elasticsearch REST API, good enough for `elasticsearch.AsyncElasticsearch` 9.x.

No Elasticsearch server can be installed on the test machines, so this answers the handful of
endpoints the bot uses, over real HTTP, from documents the test seeds:

    GET /                       cluster info (version 9.x)
    GET /_cluster/health        status settable with set_health()
    GET|POST /{index}/_search   query + sort + size/from + terms aggregations
    GET|POST /{index}/_count

Query support is the runbook's subset: bool (must/filter/should/must_not), match and
match_phrase (case-insensitive "field contains the text" -- not real analysis; an object
field matches nothing), term, terms,
exists, range (numbers, ISO dates, `now-1h` date math) and match_all. Anything else answers
400, so a query the fake does not understand fails loudly instead of matching everything.
Each index is one shard: a `*` pattern that matches no index answers 200 with `_shards.total` 0
and no hits, as ES does; a missing plain name answers 404 index_not_found_exception.

Two client rules shape every answer: a 2xx without `X-Elastic-Product: Elasticsearch` makes the
client raise UnsupportedProductError, and the body's content type must be one it has a
serializer for (it asks for `application/vnd.elasticsearch+json; compatible-with=9`).
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import operator
import re
import threading
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from tests.servers.background import BackgroundServer

VERSION = "9.1.0"
CONTENT_TYPE = "application/vnd.elasticsearch+json; compatible-with=9"
Source = dict[str, Any]


class BadRequest(ValueError):
    """A request the fake does not support: answered 400 with ES's error shape."""


class IndexNotFound(LookupError):
    pass


@dataclass
class Hit:
    index: str
    id: str
    source: Source


@dataclass
class RecordedRequest:
    method: str
    path: str
    params: dict[str, str]
    body: Any


class FakeElasticsearch:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._indices: dict[str, dict[str, Source]] = {}
        self._health = "green"
        self._fail_status: int | None = None
        self._fail_times: int | None = None
        self._delay = 0.0
        self.requests: list[RecordedRequest] = []  # what the bot actually sent, for assertions
        app = web.Application(middlewares=[self._middleware])
        app.router.add_get("/", self._info)
        app.router.add_get("/_cluster/health", self._cluster_health)
        for path in ("/_search", "/{index}/_search"):
            app.router.add_route("GET", path, self._search)
            app.router.add_route("POST", path, self._search)
        for path in ("/_count", "/{index}/_count"):
            app.router.add_route("GET", path, self._count)
            app.router.add_route("POST", path, self._count)
        self._server = BackgroundServer(app)

    # -- what tests use --------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self._server.url

    def add_docs(self, index: str, docs: list[Source], ids: list[str] | None = None) -> None:
        ids = ids or [uuid.uuid4().hex[:20] for _ in docs]
        with self._lock:
            self._indices.setdefault(index, {}).update(zip(ids, docs, strict=True))

    def set_health(self, status: str) -> None:
        if status not in ("green", "yellow", "red"):
            raise ValueError(status)
        self._health = status

    def fail_with(self, status: int | None, times: int | None = None) -> None:
        """Answer every request with HTTP `status` (or only the next `times` ones); None recovers.

        Note the client retries 429/502/503/504 up to 3 times by default.
        """
        self._fail_status, self._fail_times = status, times

    def delay(self, seconds: float) -> None:
        """Sleep this long before answering each request (0 to stop)."""
        self._delay = seconds

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop()

    # -- HTTP plumbing -----------------------------------------------------------------------
    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        body = await _body(request)
        self.requests.append(RecordedRequest(request.method, request.path, dict(request.query), body))
        if self._delay:
            await asyncio.sleep(self._delay)
        if self._fail_status is not None:
            status = self._fail_status
            if self._fail_times is not None:
                self._fail_times -= 1
                if self._fail_times <= 0:
                    self._fail_status = self._fail_times = None
            return _error(status, "fake_failure", f"fake_elasticsearch told to fail with {status}")
        try:
            if isinstance(body, str):
                raise BadRequest(f"request body is not JSON: {body[:200]!r}")
            return await handler(request)
        except BadRequest as error:
            return _error(400, "parsing_exception", str(error))
        except IndexNotFound as error:
            return _error(404, "index_not_found_exception", f"no such index [{error}]")
        except web.HTTPException as error:  # unknown route or method: keep ES's error shape
            return _error(error.status, "fake_unsupported_endpoint", f"{request.method} {request.path}")

    async def _info(self, request: web.Request) -> web.Response:
        return _json({
            "name": "fake-es-node",
            "cluster_name": "fake-cluster",
            "cluster_uuid": "fake-cluster-uuid",
            "version": {"number": VERSION, "build_flavor": "default", "lucene_version": "10.2.2",
                        "minimum_wire_compatibility_version": "8.19.0",
                        "minimum_index_compatibility_version": "8.0.0"},
            "tagline": "You Know, for Search",
        })  # fmt: skip

    async def _cluster_health(self, request: web.Request) -> web.Response:
        shards = len(self._indices)
        unassigned = {"green": 0, "yellow": shards, "red": shards + 1}[self._health]
        return _json({
            "cluster_name": "fake-cluster", "status": self._health, "timed_out": False,
            "number_of_nodes": 1, "number_of_data_nodes": 1,
            "active_primary_shards": shards, "active_shards": shards, "relocating_shards": 0,
            "initializing_shards": 0, "unassigned_shards": unassigned, "delayed_unassigned_shards": 0,
            "number_of_pending_tasks": 0, "number_of_in_flight_fetch": 0,
            "task_max_waiting_in_queue_millis": 0,
            "active_shards_percent_as_number": 100.0 * shards / max(shards + unassigned, 1),
        })  # fmt: skip

    async def _search(self, request: web.Request) -> web.Response:
        body = await _body(request)
        hits, shards = self._matching(request, body)
        aggs = body.get("aggs") or body.get("aggregations") or {}
        aggregations = {name: _aggregate(name, spec, hits) for name, spec in aggs.items()}
        sort = _parse_sort(body.get("sort", request.query.get("sort")))
        hits = _sorted(hits, sort)
        start = int(request.query.get("from", body.get("from", 0)))
        size = int(request.query.get("size", body.get("size", 10)))
        page = [
            {"_index": h.index, "_id": h.id, "_score": None if sort else 1.0, "_source": h.source}
            | ({"sort": [_value(h.source, field) for field, _ in sort]} if sort else {})
            for h in hits[start : start + size]
        ]
        result: dict[str, Any] = {
            "took": 1, "timed_out": False, "_shards": shards,
            "hits": {"total": {"value": len(hits), "relation": "eq"},
                     "max_score": None if sort or not page else 1.0, "hits": page},
        }  # fmt: skip
        if aggregations:
            result["aggregations"] = aggregations
        return _json(result)

    async def _count(self, request: web.Request) -> web.Response:
        hits, shards = self._matching(request, await _body(request))
        return _json({"count": len(hits), "_shards": shards})

    def _matching(self, request: web.Request, body: dict[str, Any]) -> tuple[list[Hit], dict[str, int]]:
        """The documents matching the query, and `_shards` as ES reports it: one shard per index
        searched, so a pattern that matches no index answers 200 with `_shards.total` 0."""
        query = body.get("query") or {"match_all": {}}
        _matches(query, {})  # validates the whole query even when no index has documents
        names, hits = self._resolve(request.match_info.get("index", "_all"))
        shards = {"total": len(names), "successful": len(names), "skipped": 0, "failed": 0}
        return [hit for hit in hits if _matches(query, hit.source)], shards

    def _resolve(self, expression: str) -> tuple[list[str], list[Hit]]:
        """Comma-separated names and `*` patterns. Like ES, a pattern may match nothing; a name may not."""
        with self._lock:
            indices = {name: dict(docs) for name, docs in self._indices.items()}
        names: list[str] = []
        for part in expression.split(","):
            if part in ("_all", "*"):
                names += indices
            elif "*" in part:
                names += fnmatch.filter(indices, part)
            elif part in indices:
                names.append(part)
            else:
                raise IndexNotFound(part)
        names = list(dict.fromkeys(names))
        return names, [Hit(name, id_, src) for name in names for id_, src in indices[name].items()]


async def _body(request: web.Request) -> Any:
    """The JSON body ({} if empty), or the raw text when it is not JSON. aiohttp caches read()."""
    raw = await request.read()
    try:
        return json.loads(raw) if raw else {}
    except ValueError:
        return raw.decode(errors="replace")


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(body, default=str).encode(),
        headers={"Content-Type": CONTENT_TYPE, "X-Elastic-Product": "Elasticsearch"},
    )


def _error(status: int, kind: str, reason: str) -> web.Response:
    cause = {"type": kind, "reason": reason}
    return _json({"error": {"root_cause": [cause], **cause}, "status": status}, status)


# -- documents -----------------------------------------------------------------------------------
def _value(source: Source, field: str) -> Any:
    """Dotted path lookup; `x.keyword` is x (the fake keeps no separate keyword sub-field)."""
    field = field.removesuffix(".keyword")
    if field in source:  # documents may also carry flattened keys such as "kubernetes.labels.app"
        return source[field]
    node: Any = source
    for part in field.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _values(source: Source, field: str) -> list[Any]:
    value = _value(source, field)
    return [] if value is None else value if isinstance(value, list) else [value]


def _single(spec: dict[str, Any], clause: str) -> tuple[str, Any]:
    if not isinstance(spec, dict) or len(spec) != 1:
        raise BadRequest(f"[{clause}] expects exactly one field, got {spec!r}")
    return next(iter(spec.items()))


# -- queries -------------------------------------------------------------------------------------
def _matches(query: dict[str, Any], source: Source) -> bool:
    kind, spec = _single(query, "query")
    if kind == "match_all":
        return True
    if kind == "bool":
        return _bool(spec, source)
    if kind == "exists":
        return bool(_values(source, spec["field"]))
    field, wanted = _single(spec, kind)
    values = _values(source, field)
    if kind in ("match", "match_phrase"):
        # An object field (ECS's `log: {"level": …}`) has no text of its own: it matches nothing.
        text = str(wanted["query"] if isinstance(wanted, dict) else wanted).lower()
        return any(text in str(value).lower() for value in values if not isinstance(value, dict))
    if kind == "term":
        return (wanted["value"] if isinstance(wanted, dict) else wanted) in values
    if kind == "terms":
        return any(value in wanted for value in values)
    if kind == "range":
        checks = _range_checks(wanted)
        return any(all(op(*_comparable(value, bound)) for op, bound in checks) for value in values)
    raise BadRequest(f"fake_elasticsearch does not support the [{kind}] query")


def _bool(spec: dict[str, Any], source: Source) -> bool:
    def clauses(key: str) -> list[dict[str, Any]]:
        found = spec.get(key) or []
        return found if isinstance(found, list) else [found]

    # Lists, not generators: every clause is evaluated, so an unsupported one is always reported.
    required = [_matches(clause, source) for clause in clauses("must") + clauses("filter")]
    excluded = [_matches(clause, source) for clause in clauses("must_not")]
    should = [_matches(clause, source) for clause in clauses("should")]
    needed = int(spec.get("minimum_should_match", 0 if required else 1)) if should else 0
    return all(required) and not any(excluded) and sum(should) >= needed


_RANGE_OPS = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}


def _range_checks(bounds: dict[str, Any]) -> list[tuple[Callable[[Any, Any], bool], Any]]:
    checks = []
    for name, bound in bounds.items():
        if name in ("format", "time_zone", "boost"):
            continue
        if name not in _RANGE_OPS:
            raise BadRequest(f"unsupported range operator [{name}]")
        if isinstance(bound, str) and bound.startswith("now"):
            bound = _as_datetime(bound)  # parsed once per query, and bad date math is reported
        checks.append((_RANGE_OPS[name], bound))
    return checks


def _comparable(value: Any, bound: Any) -> tuple[Any, Any]:
    if _is_number(value) and _is_number(bound):
        return float(value), float(bound)
    left, right = _as_datetime(value), _as_datetime(bound)
    if left is not None and right is not None:
        return left, right
    try:
        return float(value), float(bound)
    except (TypeError, ValueError):
        raise BadRequest(f"cannot compare {value!r} with range bound {bound!r}") from None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_UNITS = {"s": timedelta(seconds=1), "m": timedelta(minutes=1), "h": timedelta(hours=1),
          "H": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1),
          "M": timedelta(days=30), "y": timedelta(days=365)}  # fmt: skip  # M and y approximated
_DATE_MATH = re.compile(r"([+-])(\d+)([smhHdwMy])")


def _as_datetime(value: Any) -> datetime | None:
    """ISO-8601 strings, epoch milliseconds, and date math such as now-1h, now-15m, now-1d/d."""
    if isinstance(value, datetime):
        return value
    if _is_number(value):
        return datetime.fromtimestamp(value / 1000, UTC)
    if not isinstance(value, str):
        return None
    if value.startswith("now"):
        math, _, rounding = value[3:].partition("/")
        if _DATE_MATH.sub("", math):
            raise BadRequest(f"unsupported date math [{value}]")
        moment = datetime.now(UTC)
        for sign, amount, unit in _DATE_MATH.findall(math):
            moment += (1 if sign == "+" else -1) * int(amount) * _UNITS[unit]
        if rounding:
            moment = _round_down(moment, rounding, value)
        return moment
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _round_down(moment: datetime, unit: str, expression: str) -> datetime:
    fields = {"d": "hour", "h": "minute", "H": "minute", "m": "second", "s": "microsecond"}
    if unit not in fields:
        raise BadRequest(f"unsupported date rounding in [{expression}]")
    zeroed = ["hour", "minute", "second", "microsecond"]
    return moment.replace(**{name: 0 for name in zeroed[zeroed.index(fields[unit]) :]})


# -- sort and aggregations ---------------------------------------------------------------------
def _parse_sort(sort: Any) -> list[tuple[str, bool]]:
    """[(field, descending)] from "f:desc,g", ["f"], [{"f": "desc"}] or [{"f": {"order": "desc"}}]."""
    if sort is None:
        return []
    items = sort.split(",") if isinstance(sort, str) else sort if isinstance(sort, list) else [sort]
    parsed = []
    for item in items:
        if isinstance(item, str):
            field, _, order = item.partition(":")
            parsed.append((field, order == "desc"))
        else:
            field, order = _single(item, "sort")
            order = order.get("order", "asc") if isinstance(order, dict) else order
            parsed.append((field, order == "desc"))
    return parsed


def _sorted(hits: list[Hit], sort: list[tuple[str, bool]]) -> list[Hit]:
    # One stable pass per key, last key first; documents without the field go last, as in ES.
    for field, descending in reversed(sort):
        present = [h for h in hits if _value(h.source, field) is not None]
        missing = [h for h in hits if _value(h.source, field) is None]
        present.sort(key=lambda h: _sort_key(_value(h.source, field)), reverse=descending)
        hits = present + missing
    return hits


def _sort_key(value: Any) -> tuple[int, Any]:
    value = value[0] if isinstance(value, list) and value else value
    return (0, float(value)) if _is_number(value) else (1, str(value))


def _aggregate(name: str, spec: dict[str, Any], hits: list[Hit]) -> dict[str, Any]:
    if set(spec) != {"terms"}:
        raise BadRequest(f"aggregation [{name}]: fake_elasticsearch supports only a plain terms aggregation")
    field, size = spec["terms"]["field"], int(spec["terms"].get("size", 10))
    counts: Counter[Any] = Counter()
    for hit in hits:
        counts.update({v for v in _values(hit.source, field) if not isinstance(v, dict | list)})
    ordered = sorted(counts.items(), key=lambda item: (-item[1], str(item[0])))
    return {
        "doc_count_error_upper_bound": 0,
        "sum_other_doc_count": sum(count for _, count in ordered[size:]),
        "buckets": [{"key": key, "doc_count": count} for key, count in ordered[:size]],
    }
