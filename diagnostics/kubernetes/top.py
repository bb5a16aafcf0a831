"""Kubernetes: the `top` diagnostic — `kubectl top pods` against each pod's requests and limits.

Usage comes from metrics-server (metrics.k8s.io/v1beta1 PodMetrics), requests and limits
from the pod specs. Thresholds are checked per container, since the kernel OOM-kills a
container, not a pod: memory above WARN_PERCENT of its limit is a WARNING, above
CRITICAL_PERCENT CRITICAL; CPU above WARN_PERCENT of its limit is a WARNING only (the
container is throttled, not killed). `analyse_usage` and `summarise_usage` are pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from kubernetes.aio import client
from kubernetes.aio.client import ApiClient, ApiException, V1Pod
from kubernetes.utils.quantity import parse_quantity

from diagnostics.cache import QueryCache, cached
from diagnostics.kubernetes.client import call_api, read_list
from diagnostics.kubernetes.deploy import namespace_missing
from diagnostics.result import Result, Row, Status

TOP_COLUMNS = ("Pod", "CPU", "CPU request/limit", "Memory", "Memory request/limit")
WARN_PERCENT = 80
CRITICAL_PERCENT = 95
MAX_TOP_ROWS = 30
_MI = Decimal(1024 * 1024)


# ---------------------------------------------------------------------------------------
# Usage against requests and limits: pure
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Usage:
    """One container's (or a pod's summed) usage, request and limit: CPU in millicores, memory in Mi."""

    cpu: float
    memory: float
    cpu_request: float | None = None
    cpu_limit: float | None = None
    memory_request: float | None = None
    memory_limit: float | None = None


@dataclass(frozen=True)
class PodUsage:
    name: str
    total: Usage
    status: Status
    detail: str

    def row(self) -> Row:
        t = self.total
        cells = (self.name, f"{t.cpu:.0f}m", _against(t.cpu, t.cpu_request, t.cpu_limit, "m"),
                 f"{t.memory:.0f}Mi", _against(t.memory, t.memory_request, t.memory_limit, "Mi"))
        return Row(cells=cells, status=self.status, detail=self.detail)


def analyse_usage(metrics: Mapping[str, Any], pod: V1Pod | None) -> PodUsage:
    """A PodMetrics item (plain dict) against the pod's spec (None: the pod is gone)."""
    name = _pod_name(metrics)
    specs = {c.name: c for c in ((pod.spec.containers if pod is not None and pod.spec else None) or [])}
    containers: dict[str, Usage] = {}
    for c in metrics.get("containers") or []:
        usage = c.get("usage") or {}
        spec = specs.get(c.get("name"))
        resources = spec.resources if spec is not None and spec.resources is not None else None
        requests = (resources.requests or {}) if resources else {}
        limits = (resources.limits or {}) if resources else {}
        containers[str(c.get("name"))] = Usage(
            cpu=_millicores(usage.get("cpu")) or 0.0, memory=_mebibytes(usage.get("memory")) or 0.0,
            cpu_request=_millicores(requests.get("cpu")), cpu_limit=_millicores(limits.get("cpu")),
            memory_request=_mebibytes(requests.get("memory")), memory_limit=_mebibytes(limits.get("memory")),
        )
    problems: list[tuple[Status, str]] = []
    for container, u in containers.items():
        who = f"container `{container}`: " if len(containers) > 1 else ""
        memory, cpu = _percent(u.memory, u.memory_limit), _percent(u.cpu, u.cpu_limit)
        if memory is not None and memory > WARN_PERCENT:
            status = Status.CRITICAL if memory > CRITICAL_PERCENT else Status.WARNING
            problems.append((status, f"{who}memory at {memory:.0f}% of its {u.memory_limit:.0f}Mi limit "
                                     "(OOMKilled at 100%)"))
        if cpu is not None and cpu > WARN_PERCENT:
            problems.append((Status.WARNING,
                             f"{who}CPU at {cpu:.0f}% of its {u.cpu_limit:.0f}m limit (throttled)"))
    problems.sort(key=lambda p: -p[0].rank)
    return PodUsage(
        name=name,
        total=_sum(list(containers.values())),
        status=Status.worst([s for s, _ in problems]),
        detail="; ".join(text for _, text in problems),
    )


def summarise_usage(
    usages: Iterable[PodUsage], *, title: str, sort: str = "memory", unmeasured: int = 0,
    max_rows: int = MAX_TOP_ROWS,
) -> Result:
    """`unmeasured`: pods metrics-server has no sample of yet (just started, pending)."""
    key = (lambda u: u.total.cpu) if sort == "cpu" else (lambda u: u.total.memory)
    ordered = sorted(usages, key=lambda u: (-key(u), u.name))
    critical = sum(1 for u in ordered if u.status is Status.CRITICAL)
    warning = sum(1 for u in ordered if u.status is Status.WARNING)
    cpu, memory = sum(u.total.cpu for u in ordered), sum(u.total.memory for u in ordered)
    parts = [f"{len(ordered)} pods using {cpu:.0f}m CPU and {memory:.0f}Mi memory"]
    if critical:
        parts.append(f"{critical} above {CRITICAL_PERCENT}% of a memory limit")
    if warning:
        parts.append(f"{warning} above {WARN_PERCENT}% of a limit")
    if unmeasured:
        parts.append(f"{unmeasured} without metrics yet")
    left = len(ordered) - max_rows
    return Result(
        status=Status.worst([u.status for u in ordered]),
        title=title,
        summary=" · ".join(parts),
        fields={"Sorted by": f"{sort} usage"},
        columns=TOP_COLUMNS,
        rows=[u.row() for u in ordered[:max_rows]],
        folded_rows_note=f"… and {left} more pods using less {sort}" if left > 0 else "",
    )


def _pod_name(metrics: Mapping[str, Any]) -> str:
    return str((metrics.get("metadata") or {}).get("name", "?"))


def _sum(containers: list[Usage]) -> Usage:
    def total(values: list[float | None]) -> float | None:
        # A pod's limit is the sum only when every container has one; else it is unbounded.
        return sum(v for v in values if v is not None) if values and None not in values else None

    return Usage(
        cpu=sum(u.cpu for u in containers), memory=sum(u.memory for u in containers),
        cpu_request=total([u.cpu_request for u in containers]),
        cpu_limit=total([u.cpu_limit for u in containers]),
        memory_request=total([u.memory_request for u in containers]),
        memory_limit=total([u.memory_limit for u in containers]),
    )


def _against(used: float, request: float | None, limit: float | None, unit: str) -> str:
    def show(value: float | None) -> str:
        return f"{value:.0f}{unit}" if value is not None else "none"

    percent = _percent(used, limit)
    return f"{show(request)} / {show(limit)}" + (f" ({percent:.0f}%)" if percent is not None else "")


def _percent(used: float, limit: float | None) -> float | None:
    return used * 100 / limit if limit else None


def _millicores(quantity: object) -> float | None:
    value = _quantity(quantity)
    return float(value * 1000) if value is not None else None


def _mebibytes(quantity: object) -> float | None:
    value = _quantity(quantity)
    return float(value / _MI) if value is not None else None


def _quantity(quantity: object) -> Decimal | None:
    if quantity is None:
        return None
    try:
        return parse_quantity(str(quantity))
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------
# The `top` diagnostic: API calls
# ---------------------------------------------------------------------------------------


async def pod_usage(
    api: ApiClient,
    namespace: str,
    *,
    sort: str = "memory",
    timeout: float = 8.0,
    cache: QueryCache | None = None,
) -> Result:
    """Each pod's CPU and memory use (metrics-server) against its requests and limits."""
    title = f"Top · {namespace}"
    custom, core = client.CustomObjectsApi(api), client.CoreV1Api(api)
    host = api.configuration.host

    async def fetch() -> Result:
        try:
            metrics = await cached(
                cache, ("k8s.podmetrics", host, namespace),
                lambda: custom.list_namespaced_custom_object("metrics.k8s.io", "v1beta1", namespace, "pods",
                                                             _request_timeout=timeout),
            )
        except ApiException as e:
            if e.status == 404:
                return Result(status=Status.UNKNOWN, title=title,
                              summary="metrics-server is not installed (metrics.k8s.io not served)")
            if e.status == 503:
                return Result(status=Status.UNKNOWN, title=title, summary="metrics-server is not answering "
                              "(metrics.k8s.io: 503 Service Unavailable)")
            raise
        pods = await cached(cache, ("k8s.pods", host, namespace, None),
                            lambda: read_list(api, core.list_namespaced_pod_without_preload_content(
                                namespace, _request_timeout=timeout), "V1PodList"))
        items = list(metrics.get("items") or []) if isinstance(metrics, dict) else []  # JSON: a dict
        if not items:
            gone = not pods.items and await namespace_missing(api, namespace, timeout=timeout, cache=cache)
            summary = (f"Namespace `{namespace}` not found" if gone
                       else f"No pod metrics in namespace `{namespace}`")
            return Result(status=Status.UNKNOWN, title=title, summary=summary)
        by_name = {p.metadata.name: p for p in pods.items if p.metadata is not None}
        measured = {_pod_name(m) for m in items}
        running = {n for n, p in by_name.items()
                   if p.status is not None and p.status.phase in ("Running", "Pending")}
        usages = [analyse_usage(m, by_name.get(_pod_name(m))) for m in items]
        return summarise_usage(usages, title=title, sort=sort, unmeasured=len(running - measured))

    return await call_api(api, title, fetch, timeout=timeout)
