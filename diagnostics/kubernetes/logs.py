"""Kubernetes: the `logs` diagnostic — a deployment's pods' logs merged by time, or one pod's.

Every pod's log is read with timestamps=True, concurrently, each read bounded by the
timeout, MAX_BYTES_PER_POD and a line count; the lines are merged by timestamp and, for a
deployment, prefixed with the pod's short name (`[x2x9q] 2025-03-14T11:58:00.123Z …`).

* `--grep`: keeps lines that contain the text, case-insensitively. A substring, not a
  regex: nothing to escape in `[error]` or `user.id=42`, and no pattern can hang the bot.
* `--tail N`: the newest N lines of the result (per pod, the server sends at most N when
  there is no --grep); without --tail and --since, the newest DEFAULT_TAIL.
* `--previous`: the previous (crashed) container's log.

The newest INLINE_LINES lines are shown inline (in a crash the last lines hold the panic);
when there are more, the whole result also goes as a text file. Status: WARNING when a line
mentions error, fatal or panic (as a word, any case), a pod is crashlooping, or a pod's log
could not be read; otherwise OK — logs are evidence, not a health check.
"""

from __future__ import annotations

import asyncio
import heapq
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

from kubernetes.aio import client
from kubernetes.aio.client import ApiClient, ApiException, V1Pod

from diagnostics.blocking import off_loop
from diagnostics.cache import QueryCache, cached
from diagnostics.kubernetes._text import one_line, truncate
from diagnostics.kubernetes.client import call_api, status_message
from diagnostics.kubernetes.deploy import deployment_pods, missing, read_deployment, read_or_none
from diagnostics.kubernetes.pod_health import analyse_pod
from diagnostics.result import FileAttachment, Result, Row, Status

INLINE_LINES = 20
INLINE_LINE_CHARS = 140  # 20 lines of 140 fit one Slack section (3000 characters)
DEFAULT_TAIL = 100
FETCH_LINES = 2000  # per pod, when --grep or --since decide what is kept
MAX_BYTES_PER_POD = 512 * 1024
MAX_PODS = 20
CONCURRENT_READS = 8
# Up to this many lines in all are merged and filtered on the event loop (about 20 ms); more, in a thread.
SUMMARISED_INLINE = 2000
SEVERE = re.compile(r"\b(error|fatal|panic)\b", re.IGNORECASE)
DEFAULT_CONTAINER = "kubectl.kubernetes.io/default-container"
_STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d) ?(.*)$")


@dataclass(frozen=True)
class LogQuery:
    since_seconds: int | None = None
    grep: str | None = None
    tail: int | None = None
    previous: bool = False
    container: str | None = None

    @property
    def kept(self) -> int | None:
        """How many of the newest lines the result keeps (None: all since --since)."""
        return self.tail or (None if self.since_seconds else DEFAULT_TAIL)

    @property
    def tail_lines(self) -> int:
        """What to ask each pod for: --grep and --since filter after reading, so ask for more."""
        return self.kept if self.kept and not self.grep else FETCH_LINES


# ---------------------------------------------------------------------------------------
# Parsing, merging, filtering: pure
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogLine:
    at: datetime | None
    stamp: str
    text: str


@dataclass
class PodLog:
    pod: str
    lines: list[LogLine] = field(default_factory=list)
    problem: str = ""  # why there is no log, or a hint ("CrashLoopBackOff …: try --previous")


def parse_log(text: str) -> list[LogLine]:
    """Lines of a log read with timestamps=True; a line without a stamp (cut by limitBytes)
    keeps the previous line's time."""
    out: list[LogLine] = []
    for raw in text.splitlines():
        match = _STAMP.match(raw)
        if match is None:
            previous = out[-1] if out else None
            out.append(LogLine(previous.at if previous else None, previous.stamp if previous else "", raw))
            continue
        seconds, fraction, zone, message = match.groups()
        fraction = (fraction or "")[:6].ljust(6, "0")
        at = datetime.fromisoformat(f"{seconds}.{fraction}{'+00:00' if zone == 'Z' else zone}")
        stamp = at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        out.append(LogLine(at, stamp, message))
    return out


def matching(lines: Sequence[LogLine], grep: str | None) -> list[LogLine]:
    if not grep:
        return list(lines)
    needle = grep.casefold()
    return [line for line in lines if needle in line.text.casefold()]


def merge(logs: Sequence[tuple[str, Sequence[LogLine]]]) -> list[str]:
    """(prefix, lines) per pod -> one list of lines ordered by time (a pod's own order kept)."""
    oldest = datetime.min.replace(tzinfo=timezone.utc)
    streams = [[(line.at or oldest, i, line) for line in lines] for i, (_, lines) in enumerate(logs)]
    merged = heapq.merge(*streams, key=lambda item: (item[0], item[1]))
    return [" ".join(filter(None, [f"[{logs[i][0]}]" if logs[i][0] else "", line.stamp, line.text]))
            for _, i, line in merged]


def short_names(pods: Sequence[str], deployment: str) -> dict[str, str]:
    """`checkout-5d8c7b9f4-x2x9q` -> `x2x9q` when the last parts are unique, else `5d8c7b9f4-x2x9q`."""
    last = {pod: pod.rsplit("-", 1)[-1] for pod in pods}
    if len(set(last.values())) == len(pods):
        return last
    return {pod: pod.removeprefix(f"{deployment}-") for pod in pods}


def summarise_logs(
    pod_logs: Sequence[PodLog], query: LogQuery, *, title: str, filename: str, prefixes: dict[str, str]
) -> Result:
    read = sum(len(p.lines) for p in pod_logs)
    kept = [(prefixes.get(p.pod, ""), matching(p.lines, query.grep)) for p in pod_logs]
    output = merge(kept)
    if query.kept:
        output = output[-query.kept:]
    severe = sum(1 for line in output if SEVERE.search(line))
    pods = f"{len(pod_logs)} pod{'s' if len(pod_logs) != 1 else ''}"
    qualifiers = "".join([
        f" matching `{query.grep}`" if query.grep else "",
        " (previous containers)" if query.previous else "",
    ])
    if output:
        summary = f"{len(output)} line{'s' if len(output) != 1 else ''}{qualifiers} from {pods}"
    elif query.grep and read:
        summary = f"No lines{qualifiers} in {read} lines from {pods}"
    else:
        summary = f"No log lines{qualifiers} from {pods}"
    if severe:
        summary += f" · {severe} mention error/fatal/panic"
    rows = [Row(cells=(p.pod,), status=Status.WARNING, detail=p.problem) for p in pod_logs if p.problem]
    inline = [truncate(line, INLINE_LINE_CHARS) for line in output[-INLINE_LINES:]]
    files, note = [], ""
    if len(output) > INLINE_LINES:
        content = ("\n".join(output) + "\n").encode("utf-8")
        files.append(FileAttachment(filename=filename, content=content, title=title, mimetype="text/plain"))
        note = f"newest {INLINE_LINES} of {len(output)} lines shown; all of them in {filename}"
    return Result(
        status=Status.WARNING if severe or rows else Status.OK,
        title=title,
        summary=summary,
        fields=_fields(query),
        columns=("Pod",) if rows else (),
        rows=rows,
        lines=inline,
        files=files,
        folded_rows_note=note,
    )


def _fields(query: LogQuery) -> dict[str, str]:
    fields = {"Lines": f"newest {query.kept}" if query.kept else "all"}
    if query.since_seconds:
        fields["Since"] = _seconds(query.since_seconds)
    if query.container:
        fields["Container"] = query.container
    return fields


def _seconds(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def default_container(pod: V1Pod) -> str | None:
    """The container `kubectl logs` would pick: the annotated default, else the first."""
    annotations = (pod.metadata.annotations if pod.metadata is not None else None) or {}
    containers = (pod.spec.containers if pod.spec is not None else None) or []
    return annotations.get(DEFAULT_CONTAINER) or (containers[0].name if containers else None)


# ---------------------------------------------------------------------------------------
# The `logs` diagnostic: API calls
# ---------------------------------------------------------------------------------------


async def workload_logs(
    api: ApiClient,
    name: str,
    namespace: str,
    query: LogQuery = LogQuery(),
    *,
    kind: str | None = None,
    timeout: float = 8.0,
    now: datetime | None = None,
    cache: QueryCache | None = None,
) -> Result:
    """Logs of deployment `name`'s pods (merged by time), or of pod `name`.

    `kind` "deployment" or "pod" says which it is; None tries a deployment, then a pod.
    """
    title = f"Logs{' (previous)' if query.previous else ''} · {name} ({namespace})"
    filename = f"logs-{name}-{namespace}{'-previous' if query.previous else ''}.txt"

    async def fetch() -> Result:
        pods, deployment = await _find_pods(api, name, namespace, kind, timeout=timeout, cache=cache)
        if pods is None:
            what = {"deployment": "Deployment", "pod": "Pod"}.get(kind or "", "Deployment or pod")
            return await missing(api, title, f"{what} `{name}`", namespace, timeout=timeout, cache=cache)
        if not pods:
            return Result(status=Status.UNKNOWN, title=title, summary=f"Deployment `{name}` has no pods")
        names = sorted(p.metadata.name for p in pods if p.metadata is not None and p.metadata.name)
        by_name = {p.metadata.name: p for p in pods if p.metadata is not None}
        chosen = names[:MAX_PODS]
        limit = asyncio.Semaphore(CONCURRENT_READS)
        when = now or datetime.now(timezone.utc)
        reads = [_read_log(api, by_name[pod], namespace, query, limit, now=when, timeout=timeout, cache=cache)
                 for pod in chosen]
        # Every read finishes (each is bounded) before the first failure is raised for call_api.
        outcomes = await asyncio.gather(*reads, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        pod_logs = [o for o in outcomes if isinstance(o, PodLog)]
        prefixes = short_names(chosen, name) if deployment else {}
        # Merging, filtering and writing out up to MAX_PODS logs of MAX_BYTES_PER_POD: a thread's work.
        lines = sum(len(p.lines) for p in pod_logs)
        result = await off_loop(lines, summarise_logs, pod_logs, query, threshold=SUMMARISED_INLINE,
                                      title=title, filename=filename, prefixes=prefixes)
        if len(names) > len(chosen):
            result.summary += f" · first {len(chosen)} of {len(names)} pods read"
        return result

    return await call_api(api, title, fetch, timeout=timeout)


async def _find_pods(
    api: ApiClient, name: str, namespace: str, kind: str | None, *, timeout: float, cache: QueryCache | None
) -> tuple[list[V1Pod] | None, bool]:
    """(pods, is-a-deployment); pods None when there is neither."""
    if kind in (None, "deployment"):
        dep = await read_deployment(api, name, namespace, timeout=timeout, cache=cache)
        if dep is not None:
            return await deployment_pods(api, dep, namespace, timeout=timeout, cache=cache), True
    if kind in (None, "pod"):
        core = client.CoreV1Api(api)
        pod = await read_or_none(cache, ("k8s.pod", api.configuration.host, namespace, name),
                                 lambda: core.read_namespaced_pod(name, namespace, _request_timeout=timeout))
        if pod is not None:
            return [pod], False
    return None, False


async def _read_log(
    api: ApiClient, pod: V1Pod, namespace: str, query: LogQuery, limit: asyncio.Semaphore, *,
    now: datetime, timeout: float, cache: QueryCache | None,
) -> PodLog:
    core = client.CoreV1Api(api)
    name = (pod.metadata.name if pod.metadata is not None else None) or "?"
    container = query.container or default_container(pod)
    hint = ""
    health = analyse_pod(pod, now=now)
    if not query.previous and health.problem in ("CrashLoopBackOff", "OOMKilled"):
        hint = (f"{health.problem}, {health.restarts} restarts — "
                "add --previous for the crashed container's log")
    key = ("k8s.log", api.configuration.host, namespace, name, container, query.previous,
           query.since_seconds, query.tail_lines)
    try:
        async with limit:
            text = await cached(cache, key, lambda: core.read_namespaced_pod_log(
                name, namespace, container=container, previous=query.previous or None,
                since_seconds=query.since_seconds, tail_lines=query.tail_lines, timestamps=True,
                limit_bytes=MAX_BYTES_PER_POD, _request_timeout=timeout,
            ))
    except ApiException as e:
        # 400: the container is waiting to start, or has no previous instance; 404: pod gone.
        if e.status not in (400, 404):
            raise
        why = status_message(e) or f"{e.status} {e.reason or ''}".strip()
        return PodLog(name, problem=f"no log: {truncate(one_line(why))}")
    text = text or ""
    if len(text.encode("utf-8", "replace")) >= MAX_BYTES_PER_POD:
        # The server stops at limitBytes: say so, or the newest lines seem simply not there.
        cut = f"only the first {MAX_BYTES_PER_POD // 1024} KiB read — narrow with --since or --tail"
        hint = f"{hint}; {cut}" if hint else cut
    return PodLog(name, await off_loop(len(text), parse_log, text), problem=hint)
