"""Kubernetes: the `nodes` diagnostic — `kubectl get nodes` plus the conditions that explain
an unhealthy node (NotReady, memory/disk/PID pressure, network unavailable, cordoned).

`analyse_node` and `summarise_nodes` are pure; `node_status` makes the API call. It reads the
list as plain JSON and models each node on its own: a node the typed client cannot model (an
API answer lacking `nodeInfo.kubeletVersion`, say) is one flagged row, not a failed command.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pydantic
from kubernetes.aio import client
from kubernetes.aio.client import ApiClient, ApiException, V1Node

from diagnostics.blocking import off_loop
from diagnostics.cache import QueryCache, cached
from diagnostics.kubernetes._text import one_line, truncate
from diagnostics.kubernetes.client import call_api
from diagnostics.kubernetes.pod_health import humanise_age
from diagnostics.result import Result, Row, Status

NODE_COLUMNS = ("Node", "Status", "Roles", "Age", "Version")
PRESSURE_CONDITIONS = ("MemoryPressure", "DiskPressure", "PIDPressure", "NetworkUnavailable")
# Healthy nodes listed in full up to this many; beyond it a few are kept and the rest counted.
HEALTHY_NODES_LISTED = 12
_HEALTHY_KEPT_WHEN_FOLDED = 3


# ---------------------------------------------------------------------------------------
# Node analysis: pure
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeHealth:
    name: str
    ready: str  # "True", "False", "Unknown"
    problems: tuple[str, ...]  # short kinds for the summary: "NotReady", "MemoryPressure", "cordoned"
    row: Row

    @property
    def healthy(self) -> bool:
        return not self.problems


def analyse_node(node: V1Node, *, now: datetime) -> NodeHealth:
    meta = node.metadata or client.V1ObjectMeta()
    conditions = {c.type: c for c in ((node.status.conditions if node.status else None) or [])}
    ready = conditions.get("Ready")
    ready_status = ready.status if ready is not None else "Unknown"
    cordoned = bool(node.spec is not None and node.spec.unschedulable)

    problems: list[str] = []
    details: list[str] = []
    if ready_status != "True":
        problems.append("NotReady")
        details.append(_not_ready_detail(ready, now))
    for kind in PRESSURE_CONDITIONS:
        c = conditions.get(kind)
        if c is not None and c.status == "True":
            problems.append(kind)
            message = truncate(one_line(c.message or "")).rstrip(".") or c.reason or ""
            details.append(f"{kind}{_for(c, now)}" + (f": {message}" if message else ""))
    if cordoned:
        problems.append("cordoned")
        details.append("cordoned: no new pods are scheduled here")

    status_text = "Ready" if ready_status == "True" else "NotReady"
    if cordoned:
        status_text += ",SchedulingDisabled"
    info = node.status.node_info if node.status is not None else None
    row = Row(
        cells=(meta.name or "?", status_text, ",".join(node_roles(meta.labels or {})) or "<none>",
               humanise_age(meta.creation_timestamp, now), info.kubelet_version if info else "?"),
        status=Status.CRITICAL if "NotReady" in problems else Status.WARNING if problems else Status.OK,
        detail="; ".join(details),
    )
    return NodeHealth(name=meta.name or "?", ready=ready_status, problems=tuple(problems), row=row)


def node_roles(labels: dict[str, str]) -> list[str]:
    """Roles as kubectl shows them: `node-role.kubernetes.io/<role>` labels, and `kubernetes.io/role`."""
    roles = {key.split("/", 1)[1] for key in labels if key.startswith("node-role.kubernetes.io/")}
    if labels.get("kubernetes.io/role"):
        roles.add(labels["kubernetes.io/role"])
    return sorted(r for r in roles if r)


def read_node(item: Any, *, now: datetime) -> NodeHealth:
    """One node of the API's plain JSON list, modelled and analysed; a node the client cannot
    model is flagged as unreadable (its row says which fields are amiss), never a pydantic dump."""
    try:
        node = V1Node.from_dict(item if isinstance(item, dict) else {})
    except pydantic.ValidationError as e:
        metadata = item.get("metadata") if isinstance(item, dict) else None
        name = str(metadata.get("name") or "?") if isinstance(metadata, dict) else "?"
        row = Row(cells=(name, "Unknown"), status=Status.WARNING, detail=f"{_amiss(e)}; not analysed")
        return NodeHealth(name=name, ready="Unknown", problems=("unreadable",), row=row)
    assert node is not None  # from_dict answers None for None only
    return analyse_node(node, now=now)


def _amiss(e: pydantic.ValidationError) -> str:
    """What the client could not model, named by the API's type and field ("NodeSystemInfo.kubeletVersion")."""
    model = e.title.removeprefix("V1")
    lacks: list[str] = []
    odd: list[str] = []
    for error in e.errors()[:3]:
        where = ".".join([model, *(str(part) for part in error["loc"])])
        (lacks if error.get("input") is None else odd).append(where)
    parts = [f"{what} {', '.join(names)}" for what, names in
             (("the API's answer lacks", lacks), ("the API's answer has an unexpected", odd)) if names]
    return "; ".join(parts)


def summarise_nodes(nodes: Iterable[V1Node], *, now: datetime, title: str = "Nodes") -> Result:
    return _summary([analyse_node(n, now=now) for n in nodes], title)


def _summary(analysed: list[NodeHealth], title: str) -> Result:
    if not analysed:
        return Result(status=Status.UNKNOWN, title=title, summary="The API lists no nodes")
    severity = {Status.CRITICAL: 0, Status.WARNING: 1, Status.OK: 2}
    unhealthy = sorted((n for n in analysed if not n.healthy), key=lambda n: (severity[n.row.status], n.name))
    healthy = sorted((n for n in analysed if n.healthy), key=lambda n: n.name)
    note = ""
    if len(healthy) > HEALTHY_NODES_LISTED:
        note = f"… and {len(healthy) - _HEALTHY_KEPT_WHEN_FOLDED} more healthy nodes"
        healthy = healthy[:_HEALTHY_KEPT_WHEN_FOLDED]

    ready = sum(1 for n in analysed if n.ready == "True")
    kinds = Counter(p for n in analysed for p in n.problems)
    readable = len(analysed) - kinds["unreadable"]
    order = ["NotReady", *PRESSURE_CONDITIONS, "cordoned", "unreadable"]
    parts = [f"{ready}/{readable} nodes ready"] + [f"{kinds[k]} {k}" for k in order if kinds[k]]
    return Result(
        status=Status.worst([n.row.status for n in analysed]),
        title=title,
        summary=" · ".join(parts),
        columns=NODE_COLUMNS,
        rows=[n.row for n in [*unhealthy, *healthy]],
        folded_rows_note=note,
    )


def _not_ready_detail(ready: client.V1NodeCondition | None, now: datetime) -> str:
    if ready is None:
        return "NotReady: the node reports no Ready condition"
    reason = ready.reason or f"Ready={ready.status}"
    message = truncate(one_line(ready.message or "")).rstrip(".")
    return f"NotReady{_for(ready, now)} — {reason}" + (f": {message}" if message else "")


def _for(c: client.V1NodeCondition, now: datetime) -> str:
    return f" for {humanise_age(c.last_transition_time, now)}" if c.last_transition_time else ""


# ---------------------------------------------------------------------------------------
# The `nodes` diagnostic: API call
# ---------------------------------------------------------------------------------------


async def node_status(
    api: ApiClient, *, timeout: float = 8.0, now: datetime | None = None, cache: QueryCache | None = None
) -> Result:
    """Every node's readiness, pressure conditions, cordon, roles, age and kubelet version."""
    title = "Nodes"
    core = client.CoreV1Api(api)

    async def listed() -> list[Any] | Result:
        response = await core.list_node_without_preload_content(_request_timeout=timeout)
        data = await response.read()
        if not 200 <= response.status < 300:
            raise ApiException(status=response.status, reason=response.reason, body=data.decode("utf-8", "replace"))
        try:
            items = (await off_loop(len(data), json.loads, data)).get("items")
        except (ValueError, AttributeError):  # not JSON, or not an object
            items = None
        if not isinstance(items, list):
            server = api.configuration.host
            return Result.error(title, f"Kubernetes: unexpected response from {server}: not a node list")
        return items

    fetched = await call_api(api, title, lambda: cached(cache, ("k8s.nodes", api.configuration.host), listed),
                             timeout=timeout)
    if isinstance(fetched, Result):
        return fetched
    moment = now or datetime.now(timezone.utc)
    return _summary([read_node(item, now=moment) for item in fetched], title)
