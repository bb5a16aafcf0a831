"""Kubernetes: the `deploy` diagnostic (`kubectl rollout status` + `describe deploy`), and the
lookups the other Kubernetes diagnostics share (a deployment and its pods, missing objects).

`rollout_state` and `summarise_rollout` are pure; `deployment_rollout` makes the API calls.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TypeVar

from kubernetes.aio import client
from kubernetes.aio.client import ApiClient, ApiException, V1Deployment, V1Pod, V1ReplicaSet

from diagnostics.cache import QueryCache, cached
from diagnostics.kubernetes._text import one_line, truncate
from diagnostics.kubernetes.client import call_api, read_list
from diagnostics.kubernetes.pod_health import humanise_age
from diagnostics.kubernetes.pods import label_selector_string, selector_matches
from diagnostics.result import Result, Row, Status

T = TypeVar("T")
REVISION = "deployment.kubernetes.io/revision"
CONDITION_COLUMNS = ("Condition", "Status", "Reason", "Changed")


# ---------------------------------------------------------------------------------------
# Rollout analysis: pure
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rollout:
    state: str  # "complete", "progressing", "paused", "stalled"
    detail: str = ""  # why it is not complete, in kubectl's words


def rollout_state(dep: V1Deployment) -> Rollout:
    """What `kubectl rollout status` would say, without waiting."""
    spec, st = dep.spec, dep.status or client.V1DeploymentStatus()
    desired = _desired(dep)
    progressing = _condition(dep, "Progressing")
    if progressing is not None and (progressing.status == "False"
                                    or progressing.reason == "ProgressDeadlineExceeded"):
        message = truncate(one_line(progressing.message or ""))
        reason = progressing.reason or "Progressing=False"
        return Rollout("stalled", reason + (f" — {message}" if message else ""))
    if spec is not None and spec.paused:
        return Rollout("paused", "the deployment is paused (kubectl rollout resume)")
    generation = dep.metadata.generation if dep.metadata is not None else None
    if generation is not None and (st.observed_generation or 0) < generation:
        return Rollout("progressing", "waiting for the controller to observe the new spec")
    updated, current, available = st.updated_replicas or 0, st.replicas or 0, st.available_replicas or 0
    if updated < desired:
        return Rollout("progressing", f"{updated} of {desired} new replicas updated")
    if current > updated:
        return Rollout("progressing", f"{current - updated} old replicas pending termination")
    done = progressing is not None and progressing.reason == "NewReplicaSetAvailable"
    if available < updated and not done:
        # Once the controller has said NewReplicaSetAvailable, pods failing later are an
        # availability problem (the summary's "n/m available"), not a rollout in progress.
        return Rollout("progressing", f"{available} of {updated} updated replicas available")
    return Rollout("complete")


def summarise_rollout(
    deployment: V1Deployment, replicasets: Iterable[V1ReplicaSet], *, now: datetime, title: str | None = None
) -> Result:
    """The `deploy` Result: rollout state, replica counts, images, revision, conditions."""
    dep = deployment
    name = dep.metadata.name if dep.metadata else "?"
    namespace = dep.metadata.namespace if dep.metadata else "?"
    st = dep.status or client.V1DeploymentStatus()
    desired, available = _desired(dep), st.available_replicas or 0
    rollout = rollout_state(dep)

    if desired == 0:
        status, summary = Status.OK, "scaled to 0 replicas"
    else:
        status = _status(rollout, desired, available)
        head = {"complete": "rollout complete", "progressing": "rollout in progress",
                "paused": "rollout paused", "stalled": "rollout stalled"}[rollout.state]
        head = f"{head}: {rollout.detail}" if rollout.detail else head
        summary = f"{head} · {available}/{desired} available"
    fields = {
        "Desired": str(desired),
        "Updated": str(st.updated_replicas or 0),
        "Ready": str(st.ready_replicas or 0),
        "Available": str(available),
        "Revision": _annotation(dep.metadata, REVISION) or "?",
        "Last rollout": _last_rollout(dep, list(replicasets), now),
        **images_field(dep),
        **_replicaset_fields(dep, list(replicasets)),
    }
    return Result(
        status=status,
        title=title or f"Deployment · {name} ({namespace})",
        summary=summary,
        fields=fields,
        columns=CONDITION_COLUMNS,
        rows=[_condition_row(c, now) for c in (st.conditions or [])],
    )


def _status(rollout: Rollout, desired: int, available: int) -> Status:
    if rollout.state == "stalled" or available == 0:
        return Status.CRITICAL
    if rollout.state != "complete" or available < desired:
        return Status.WARNING
    return Status.OK


def images_field(dep: V1Deployment) -> dict[str, str]:
    """{"Image": image} for one container, {"Images": "app: …\\nsidecar: …"} for several."""
    template = dep.spec.template if dep.spec is not None else None
    pod_spec = template.spec if template is not None else None
    containers = (pod_spec.containers if pod_spec is not None else None) or []
    if len(containers) == 1:
        return {"Image": containers[0].image or "?"}
    if not containers:
        return {}
    return {"Images": "\n".join(f"{c.name}: {c.image or '?'}" for c in containers)}


def _last_rollout(dep: V1Deployment, replicasets: Sequence[V1ReplicaSet], now: datetime) -> str:
    """When the current revision's ReplicaSet was created; else the Progressing condition's update."""
    revision = _annotation(dep.metadata, REVISION)
    current = [rs for rs in replicasets if revision and _annotation(rs.metadata, REVISION) == revision]
    created = [rs.metadata.creation_timestamp for rs in current or replicasets
               if rs.metadata and rs.metadata.creation_timestamp]
    when: datetime | None = None
    if created:
        when = max(created)
    else:
        progressing = _condition(dep, "Progressing")
        when = progressing.last_update_time if progressing is not None else None
    if when is None:
        return "unknown"
    return f"{humanise_age(when, now)} ago ({when.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC)"


def _replicaset_fields(dep: V1Deployment, replicasets: Sequence[V1ReplicaSet]) -> dict[str, str]:
    """During a rollout: the new ReplicaSet and the old ones still running pods."""
    revision = _annotation(dep.metadata, REVISION)
    old = [rs for rs in replicasets if _annotation(rs.metadata, REVISION) != revision and _replicas(rs)]
    if not old:
        return {}
    new = [rs for rs in replicasets if _annotation(rs.metadata, REVISION) == revision]
    return {
        "New ReplicaSet": ", ".join(_describe_replicaset(rs) for rs in new) or "not created yet",
        "Old ReplicaSets": ", ".join(_describe_replicaset(rs) for rs in old),
    }


def _describe_replicaset(rs: V1ReplicaSet) -> str:
    ready = (rs.status.ready_replicas or 0) if rs.status is not None else 0
    name = rs.metadata.name if rs.metadata is not None else "?"
    return f"{name} (rev {_annotation(rs.metadata, REVISION) or '?'}): {ready}/{_replicas(rs)} ready"


def _condition_row(c: client.V1DeploymentCondition, now: datetime) -> Row:
    bad = ((c.type == "Progressing" and (c.status == "False" or c.reason == "ProgressDeadlineExceeded"))
           or (c.type == "ReplicaFailure" and c.status == "True"))
    unavailable = c.type == "Available" and c.status != "True"
    status = Status.CRITICAL if bad else Status.WARNING if unavailable else Status.OK
    changed = c.last_transition_time or c.last_update_time
    return Row(
        cells=(c.type or "", c.status or "", c.reason or "", f"{humanise_age(changed, now)} ago" if changed else ""),
        status=status,
        detail=truncate(one_line(c.message or "")) if status is not Status.OK else "",
    )


def _desired(dep: V1Deployment) -> int:
    return dep.spec.replicas if dep.spec is not None and dep.spec.replicas is not None else 1


def _replicas(rs: V1ReplicaSet) -> int:
    return (rs.spec.replicas or 0) if rs.spec is not None else 0


def _condition(dep: V1Deployment, kind: str) -> client.V1DeploymentCondition | None:
    conditions = (dep.status.conditions if dep.status is not None else None) or []
    return next((c for c in conditions if c.type == kind), None)


def _annotation(meta: client.V1ObjectMeta | None, key: str) -> str:
    return ((meta.annotations if meta is not None else None) or {}).get(key, "")


def owned_by(rs: V1ReplicaSet, dep: V1Deployment) -> bool:
    owners = (rs.metadata.owner_references if rs.metadata is not None else None) or []
    name = dep.metadata.name if dep.metadata is not None else None
    return any(o.kind == "Deployment" and o.name == name for o in owners)


# ---------------------------------------------------------------------------------------
# The `deploy` diagnostic: API calls
# ---------------------------------------------------------------------------------------


async def deployment_rollout(
    api: ApiClient,
    deployment: str,
    namespace: str,
    *,
    timeout: float = 8.0,
    now: datetime | None = None,
    cache: QueryCache | None = None,
) -> Result:
    """Rollout status, replicas, images, revision and conditions of one deployment."""
    title = f"Deployment · {deployment} ({namespace})"
    apps = client.AppsV1Api(api)
    host = api.configuration.host

    async def fetch() -> Result | tuple[V1Deployment, list[V1ReplicaSet]]:
        dep = await read_deployment(api, deployment, namespace, timeout=timeout, cache=cache)
        if dep is None:
            what = f"Deployment `{deployment}`"
            return await missing(api, title, what, namespace, timeout=timeout, cache=cache)
        selector = label_selector_string(dep.spec.selector if dep.spec is not None else None)
        listed = await cached(
            cache, ("k8s.replicasets", host, namespace, selector),
            lambda: read_list(api, apps.list_namespaced_replica_set_without_preload_content(
                namespace, label_selector=selector, _request_timeout=timeout), "V1ReplicaSetList"),
        )
        # Ownership, not the selector, says which ReplicaSets are this deployment's.
        return dep, [rs for rs in listed.items if owned_by(rs, dep)]

    fetched = await call_api(api, title, fetch, timeout=timeout)
    if isinstance(fetched, Result):
        return fetched
    dep, replicasets = fetched
    return summarise_rollout(dep, replicasets, now=now or datetime.now(timezone.utc), title=title)


# ---------------------------------------------------------------------------------------
# Lookups shared by the Kubernetes diagnostics (called inside their call_api fetch)
# ---------------------------------------------------------------------------------------


async def read_or_none(cache: QueryCache | None, key: Hashable, read: Callable[[], Awaitable[T]]) -> T | None:
    """`cached(cache, key, read)`, or None when the object does not exist (404); other errors raise."""
    try:
        return await cached(cache, key, read)
    except ApiException as e:
        if e.status == 404:
            return None
        raise


async def read_deployment(
    api: ApiClient, name: str, namespace: str, *, timeout: float, cache: QueryCache | None
) -> V1Deployment | None:
    """The deployment, or None if there is none of that name (other API errors raise)."""
    apps = client.AppsV1Api(api)
    # The same key as the `pods` diagnostic: the two share one read when asked together.
    return await read_or_none(
        cache, ("k8s.deployment", api.configuration.host, namespace, name),
        lambda: apps.read_namespaced_deployment(name, namespace, _request_timeout=timeout),
    )


async def deployment_pods(
    api: ApiClient, dep: V1Deployment, namespace: str, *, timeout: float, cache: QueryCache | None
) -> list[V1Pod]:
    """The deployment's pods: listed by its selector, and filtered by it again here for
    servers (and emulators) that ignore label selectors."""
    core = client.CoreV1Api(api)
    selector = dep.spec.selector if dep.spec is not None else None
    text = label_selector_string(selector)
    listed = await cached(
        cache, ("k8s.pods", api.configuration.host, namespace, text),
        lambda: read_list(api, core.list_namespaced_pod_without_preload_content(
            namespace, label_selector=text, _request_timeout=timeout), "V1PodList"),
    )
    return [p for p in listed.items
            if selector_matches(selector, (p.metadata.labels if p.metadata else None) or {})]


async def missing(
    api: ApiClient, title: str, what: str, namespace: str, *, timeout: float, cache: QueryCache | None = None
) -> Result:
    """UNKNOWN one-liner: "`what` not found in namespace `ns`", or the namespace itself when it
    is the namespace that is missing (the likelier typo)."""
    if await namespace_missing(api, namespace, timeout=timeout, cache=cache):
        summary = f"Namespace `{namespace}` not found"
    else:
        summary = f"{what} not found in namespace `{namespace}`"
    return Result(status=Status.UNKNOWN, title=title, summary=summary)


async def namespace_missing(
    api: ApiClient, namespace: str, *, timeout: float, cache: QueryCache | None = None
) -> bool:
    """True only when the API says so: a bot allowed to read pods but not namespaces (401/403)
    assumes the namespace exists."""
    core = client.CoreV1Api(api)
    try:
        await cached(cache, ("k8s.namespace", api.configuration.host, namespace),
                     lambda: core.read_namespace(namespace, _request_timeout=timeout))
    except ApiException as e:
        if e.status == 404:
            return True
        if e.status in (401, 403):
            return False
        raise
    return False
