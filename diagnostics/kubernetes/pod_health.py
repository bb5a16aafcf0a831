"""Kubernetes pod and deployment analysis: pure functions, testable without a server.

V1Pod/V1Deployment models (or the plain dicts the API returns) in, PodHealth and Result
out: `analyse_pod` says what is wrong with one pod, `summarise_deployment` builds the
`pods` diagnostic's Result for a deployment and its pods.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from kubernetes.aio import client
from kubernetes.aio.client import V1Deployment, V1Pod

from diagnostics.kubernetes._text import one_line, truncate
from diagnostics.result import Result, Row, Status

POD_COLUMNS = ("Pod", "Phase", "Ready", "Restarts", "Age", "Node")

# Healthy rows kept when the rest are folded into `folded_rows_note`.
HEALTHY_ROWS_KEPT_WHEN_FOLDED = 3

# A container that restarted this recently is still worth a look even if it is ready now:
# a pod flapping between Running and CrashLoopBackOff would otherwise look healthy half the time.
RECENT_RESTART_SECONDS = 15 * 60


# ---------------------------------------------------------------------------------------
# Pod analysis: pure functions
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PodHealth:
    """One pod as the table shows it, and what (if anything) is wrong with it."""

    name: str
    phase: str
    ready: str  # "1/2"
    restarts: int
    age: str
    node: str
    problem: str = ""  # short kind for the summary: "CrashLoopBackOff", "OOMKilled", …; "" = healthy
    detail: str = ""
    status: Status = Status.OK
    severity: int = 0  # orders unhealthy rows, worst first

    @property
    def healthy(self) -> bool:
        return not self.problem

    def row(self) -> Row:
        cells = (self.name, self.phase, self.ready, str(self.restarts), self.age, self.node)
        return Row(cells=cells, status=self.status, detail=self.detail)


@dataclass(frozen=True)
class _Problem:
    kind: str
    detail: str
    severity: int

    @property
    def status(self) -> Status:
        return Status.CRITICAL if self.severity >= _CRITICAL_FROM else Status.WARNING


# Severity of each kind of problem; at or above _CRITICAL_FROM the pod cannot serve at all.
_SEVERITY = {
    "OOMKilled": 90,
    "CrashLoopBackOff": 85,
    "Init": 80,  # any Init:… failure
    "ImagePullBackOff": 75,
    "ErrImagePull": 75,
    "InvalidImageName": 75,
    "ContainerConfig": 70,  # CreateContainerConfigError, RunContainerError, …
    "Error": 65,
    "Failed": 60,
    "Unschedulable": 50,
    "Pending": 45,
    "ContainerCreating": 40,
    "NotReady": 35,
    "Evicted": 30,
    "Terminating": 20,
    "Restarted": 10,
}
_CRITICAL_FROM = 60
_CRASHING = {"OOMKilled", "CrashLoopBackOff"}
_IMAGE_PULL = {"ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull"}
# Waiting reasons that are a normal step of starting, not a failure.
_STARTING = {"ContainerCreating", "PodInitializing"}


def as_pod(pod: V1Pod | Mapping[str, Any]) -> V1Pod:
    """Accept the typed model or the API's plain dict (as tests and fixtures build them)."""
    if isinstance(pod, V1Pod):
        return pod
    parsed = V1Pod.from_dict(dict(pod))
    assert parsed is not None  # from_dict answers None for None only
    return parsed


def as_deployment(deployment: V1Deployment | Mapping[str, Any]) -> V1Deployment:
    if isinstance(deployment, V1Deployment):
        return deployment
    parsed = V1Deployment.from_dict(dict(deployment))
    assert parsed is not None  # from_dict answers None for None only
    return parsed


def analyse_pod(pod: V1Pod | Mapping[str, Any], *, now: datetime) -> PodHealth:
    pod = as_pod(pod)
    meta = pod.metadata or client.V1ObjectMeta()
    status = pod.status or client.V1PodStatus()
    statuses = status.container_statuses or []
    containers = pod.spec.containers if pod.spec is not None else []
    ready_count = sum(1 for s in statuses if s.ready)
    total = len(containers) or len(statuses)
    restarts = sum(s.restart_count for s in [*statuses, *(status.init_container_statuses or [])])
    problems = _pod_problems(pod, now)
    worst = max(problems, key=lambda p: p.severity, default=None)
    return PodHealth(
        name=meta.name or "?",
        phase=status.phase or "Unknown",
        ready=f"{ready_count}/{total}",
        restarts=restarts,
        age=humanise_age(meta.creation_timestamp or status.start_time, now),
        node=(pod.spec.node_name if pod.spec is not None else None) or "—",
        problem=worst.kind if worst else "",
        detail="; ".join(p.detail for p in sorted(problems, key=lambda p: -p.severity)),
        status=worst.status if worst else Status.OK,
        severity=worst.severity if worst else 0,
    )


def _pod_problems(pod: V1Pod, now: datetime) -> list[_Problem]:
    meta = pod.metadata or client.V1ObjectMeta()
    status = pod.status or client.V1PodStatus()
    if meta.deletion_timestamp is not None:
        # A terminating pod's containers are being stopped; their state is not news.
        return [_terminating(meta, now)]
    if status.phase == "Failed":
        return [_failed(status)]
    if status.phase == "Succeeded":
        detail = "Completed — its containers exited (a deployment's pods should keep running)"
        return [_Problem("Completed", detail, _SEVERITY["Failed"])]
    init_problem = _init_problem(pod, now)
    if init_problem is not None:
        return [init_problem]
    problems = [p for s in status.container_statuses or [] if (p := _container_problem(pod, s, now))]
    if problems:
        return problems
    if status.phase == "Pending" or not status.container_statuses:
        return [_pending(status, now)]
    ready = _condition(status, "Ready")
    if ready is not None and ready.status != "True":
        return [_not_ready(pod, ready, now)]
    return []


def _terminating(meta: client.V1ObjectMeta, now: datetime) -> _Problem:
    since = humanise_age(meta.deletion_timestamp, now)
    grace = meta.deletion_grace_period_seconds
    detail = f"Terminating for {since}"
    if grace is not None:
        detail += f" (grace period {grace}s)"
    if meta.finalizers:
        detail += f", waiting on finalizers: {', '.join(meta.finalizers)}"
    return _Problem("Terminating", detail, _SEVERITY["Terminating"])


def _failed(status: client.V1PodStatus) -> _Problem:
    reason = status.reason or "Failed"
    message = truncate(one_line(status.message or ""))
    kind = "Evicted" if reason == "Evicted" else "Failed"
    detail = f"{reason} — {message}" if message else reason
    return _Problem(kind, detail, _SEVERITY[kind])


def _init_problem(pod: V1Pod, now: datetime) -> _Problem | None:
    for s in (pod.status.init_container_statuses if pod.status else None) or []:
        waiting = s.state.waiting if s.state else None
        terminated = s.state.terminated if s.state else None
        last = s.last_state.terminated if s.last_state else None
        if waiting is not None and waiting.reason not in (None, *_STARTING):
            detail = f"Init:{waiting.reason} — init container `{s.name}`"
            if last is not None:
                detail += f" last exit {_exit(last)} {_ago(last.finished_at, now)}"
            elif waiting.message:
                detail += f": {truncate(one_line(waiting.message))}"
            return _Problem(f"Init:{waiting.reason}", detail, _SEVERITY["Init"])
        if terminated is not None and terminated.exit_code != 0:
            detail = f"Init:Error — init container `{s.name}` exit {_exit(terminated)}"
            return _Problem("Init:Error", detail, _SEVERITY["Init"])
    return None


def _container_problem(pod: V1Pod, s: client.V1ContainerStatus, now: datetime) -> _Problem | None:
    state = s.state or client.V1ContainerState()
    last = s.last_state.terminated if s.last_state else None
    who = f"container `{s.name}`: " if _container_count(pod) > 1 else ""

    # OOM first: it has its own fix (raise the limit), whatever state the restart loop is in.
    problem = _oom_problem(pod, s, state, last, who, now)
    if problem is None:
        problem = _waiting_problem(pod, s, state, last, who, now)
    if problem is not None:
        return problem

    if state.terminated is not None and state.terminated.exit_code != 0:
        detail = f"{who}exited {_exit(state.terminated)} {_ago(state.terminated.finished_at, now)}"
        return _Problem("Error", detail, _SEVERITY["Error"])

    if state.running is not None and not s.ready:
        return _not_ready(pod, _condition(pod.status, "Ready"), now, s)

    recent = last is not None and _seconds_since(last.finished_at, now) < RECENT_RESTART_SECONDS
    if last is not None and recent and last.exit_code != 0:
        detail = f"{who}restarted — last exit {_exit(last)} {_ago(last.finished_at, now)}"
        return _Problem("Restarted", detail, _SEVERITY["Restarted"])
    return None


def _oom_problem(pod: V1Pod, s: client.V1ContainerStatus, state: client.V1ContainerState,
                 last: client.V1ContainerStateTerminated | None, who: str, now: datetime) -> _Problem | None:
    """OOMKilled now, or last time if the container is not ready again."""
    oom = state.terminated if state.terminated and state.terminated.reason == "OOMKilled" else None
    if oom is None and last is not None and last.reason == "OOMKilled" and not s.ready:
        oom = last
    if oom is None:
        return None
    detail = f"{who}OOMKilled — exit {oom.exit_code}, memory limit {_memory_limit(pod, s.name)}"
    if oom.finished_at is not None:
        detail += f", {_ago(oom.finished_at, now)}"
    if state.waiting is not None and state.waiting.reason == "CrashLoopBackOff":
        detail += " · CrashLoopBackOff"
    return _Problem("OOMKilled", detail, _SEVERITY["OOMKilled"])


def _waiting_problem(pod: V1Pod, s: client.V1ContainerStatus, state: client.V1ContainerState,
                     last: client.V1ContainerStateTerminated | None, who: str, now: datetime) -> _Problem | None:
    """A waiting container: restart loop, image, still starting, or stuck on its configuration."""
    waiting = state.waiting
    if waiting is None or waiting.reason is None:
        return None
    reason = waiting.reason

    if reason == "CrashLoopBackOff":
        detail = f"{who}CrashLoopBackOff"
        if last is not None:
            detail += f" — last exit {_exit(last)} {_ago(last.finished_at, now)}"
            if last.message:
                detail += f": {truncate(one_line(last.message))}"
        return _Problem("CrashLoopBackOff", detail, _SEVERITY["CrashLoopBackOff"])

    message = truncate(one_line(waiting.message or ""))
    if reason in _IMAGE_PULL:
        image = _spec_image(pod, s.name) or s.image
        detail = f"{who}{reason} — {image}" + (f": {message}" if message else "")
        return _Problem(reason, detail, _SEVERITY.get(reason, _SEVERITY["ImagePullBackOff"]))

    if reason in _STARTING:
        return _Problem(reason, f"{who}{reason}", _SEVERITY["ContainerCreating"])

    # CreateContainerConfigError (missing secret/configmap key), RunContainerError, …
    detail = f"{who}{reason}" + (f" — {message}" if message else "")
    return _Problem(reason, detail, _SEVERITY["ContainerConfig"])


def _not_ready(
    pod: V1Pod,
    ready: client.V1PodCondition | None,
    now: datetime,
    s: client.V1ContainerStatus | None = None,
) -> _Problem:
    container = _spec_container(pod, s.name) if s is not None else None
    who = f"container `{s.name}`: " if s is not None and _container_count(pod) > 1 else ""
    if s is not None and s.started is False and container is not None and container.startup_probe is not None:
        why = "startup probe not passing yet"
    elif container is not None and container.readiness_probe is not None:
        why = "readiness probe failing"
    else:
        why = "not ready"
    detail = f"{who}Running but {why}" if why != "not ready" else f"{who}Running but not ready"
    if ready is not None and ready.last_transition_time is not None:
        detail += f" for {humanise_age(ready.last_transition_time, now)}"
    if ready is not None and ready.message:
        detail += f" ({truncate(one_line(ready.message))})"
    return _Problem("NotReady", detail, _SEVERITY["NotReady"])


def _pending(status: client.V1PodStatus, now: datetime) -> _Problem:
    scheduled = _condition(status, "PodScheduled")
    if scheduled is not None and scheduled.status == "False":
        reason = scheduled.reason or "Unschedulable"
        message = truncate(one_line(scheduled.message or "")) or "the scheduler gave no message"
        return _Problem("Unschedulable", f"{reason}: {message}", _SEVERITY["Unschedulable"])
    since = humanise_age(status.start_time, now) if status.start_time else ""
    detail = "Pending — scheduled, containers not started yet" + (f" ({since})" if since else "")
    return _Problem("Pending", detail, _SEVERITY["Pending"])


def _condition(status: client.V1PodStatus | None, kind: str) -> client.V1PodCondition | None:
    for c in (status.conditions if status is not None else None) or []:
        if c.type == kind:
            return c
    return None


def _spec_container(pod: V1Pod, name: str) -> client.V1Container | None:
    for c in (pod.spec.containers if pod.spec is not None else None) or []:
        if c.name == name:
            return c
    return None


def _container_count(pod: V1Pod) -> int:
    return len(pod.spec.containers) if pod.spec is not None and pod.spec.containers else 1


def _spec_image(pod: V1Pod, name: str) -> str | None:
    container = _spec_container(pod, name)
    return container.image if container is not None else None


def _memory_limit(pod: V1Pod, name: str) -> str:
    container = _spec_container(pod, name)
    limits = (container.resources.limits if container and container.resources else None) or {}
    return str(limits["memory"]) if "memory" in limits else "none set"


def _exit(terminated: client.V1ContainerStateTerminated) -> str:
    return f"{terminated.exit_code} ({terminated.reason})" if terminated.reason else str(terminated.exit_code)


def _ago(when: datetime | None, now: datetime) -> str:
    return f"{humanise_age(when, now)} ago" if when is not None else "(time unknown)"


def _seconds_since(when: datetime | None, now: datetime) -> float:
    if when is None:
        return float("inf")
    return (now - _aware(when)).total_seconds()


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)


def humanise_age(since: datetime | None, now: datetime) -> str:
    """kubectl-like ages: "42s", "12m", "3h12m", "1d6h", "4d"."""
    if since is None:
        return "?"
    seconds = max(0, int((_aware(now) - _aware(since)).total_seconds()))
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 60:
        return f"{seconds}s"
    if minutes < 60:
        return f"{minutes}m"
    if hours < 24:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if days < 2:
        rest = hours % 24
        return f"{days}d{rest}h" if rest else f"{days}d"
    return f"{days}d"


# ---------------------------------------------------------------------------------------
# Deployment summary: pure
# ---------------------------------------------------------------------------------------


def summarise_deployment(
    deployment: V1Deployment | Mapping[str, Any],
    pods: Iterable[V1Pod | Mapping[str, Any]],
    *,
    now: datetime,
    title: str | None = None,
    fold_healthy_over: int = 8,
) -> Result:
    """The Result for a deployment and the pods already known to belong to it."""
    dep = as_deployment(deployment)
    name = dep.metadata.name if dep.metadata else "?"
    namespace = dep.metadata.namespace if dep.metadata else "?"
    analysed = [analyse_pod(p, now=now) for p in pods]
    unhealthy = sorted((p for p in analysed if not p.healthy), key=lambda p: (-p.severity, p.name))
    healthy = sorted((p for p in analysed if p.healthy), key=lambda p: p.name)

    desired = dep.spec.replicas if dep.spec is not None and dep.spec.replicas is not None else 1
    st = dep.status or client.V1DeploymentStatus()
    ready, available, updated = st.ready_replicas or 0, st.available_replicas or 0, st.updated_replicas or 0

    shown_healthy, folded_note = _fold(healthy, fold_healthy_over)
    return Result(
        status=_overall_status(desired, ready, available, unhealthy),
        title=title or f"Pods · {name} ({namespace})",
        summary=_summary(desired, ready, updated, st.replicas or 0, unhealthy, pod_count=len(analysed)),
        fields={
            "Desired": str(desired),
            "Updated": str(updated),
            "Ready": str(ready),
            "Available": str(available),
            **_image_field(dep),
        },
        columns=POD_COLUMNS,
        rows=[p.row() for p in [*unhealthy, *shown_healthy]],
        lines=_condition_lines(dep),
        folded_rows_note=folded_note,
    )


def _fold(healthy: list[PodHealth], fold_over: int) -> tuple[list[PodHealth], str]:
    if len(healthy) <= fold_over:
        return healthy, ""
    kept = healthy[: min(HEALTHY_ROWS_KEPT_WHEN_FOLDED, fold_over)]
    folded = len(healthy) - len(kept)
    return kept, f"… and {folded} more healthy pod{'s' if folded != 1 else ''}"


def _overall_status(desired: int, ready: int, available: int, unhealthy: Sequence[PodHealth]) -> Status:
    if desired == 0:
        # Scaled to zero on purpose; leftovers (terminating pods) are worth a look, no more.
        return Status.WARNING if unhealthy else Status.OK
    crashing = sum(1 for p in unhealthy if p.problem in _CRASHING)
    if available == 0 or ready == 0 or crashing * 2 > desired:
        return Status.CRITICAL
    if unhealthy or ready < desired or available < desired:
        return Status.WARNING
    return Status.OK


def _summary(
    desired: int, ready: int, updated: int, current: int, unhealthy: Sequence[PodHealth], *, pod_count: int
) -> str:
    if desired == 0:
        return "scaled to 0 replicas" + (f" · {pod_count} pods still present" if pod_count else "")
    parts = [f"{ready}/{desired} ready"]
    # Most severe kinds first, so the summary reads like the table.
    kinds = Counter(p.problem for p in unhealthy)
    severity = {p.problem: p.severity for p in unhealthy}
    parts += [f"{n} {kind}" for kind, n in sorted(kinds.items(), key=lambda kv: (-severity[kv[0]], kv[0]))]
    if pod_count == 0:
        parts.append("no pods found")
    if updated < desired and current > updated:
        # Pods of the previous revision are still around: a rollout is in progress or stuck.
        parts.append(f"rollout: {updated}/{desired} updated")
    if len(parts) == 1 and ready >= desired:
        return f"{ready}/{desired} pods ready"
    return " · ".join(parts)


def _image_field(dep: V1Deployment) -> dict[str, str]:
    template = dep.spec.template if dep.spec is not None else None
    pod_spec = template.spec if template is not None else None
    containers = (pod_spec.containers if pod_spec is not None else None) or []
    images = [c.image for c in containers if c.image]
    if not images:
        return {}
    return {"Image" if len(images) == 1 else "Images": ", ".join(images)}


def _condition_lines(dep: V1Deployment) -> list[str]:
    """Deployment conditions that explain missing pods (quota, stalled rollout)."""
    lines = []
    for c in (dep.status.conditions if dep.status is not None else None) or []:
        failed = c.type == "ReplicaFailure" and c.status == "True"
        stalled = c.type == "Progressing" and c.status == "False"
        if failed or stalled:
            message = truncate(one_line(c.message or ""))
            lines.append(f"{c.type}: {c.reason or c.status}" + (f" — {message}" if message else ""))
    return lines
