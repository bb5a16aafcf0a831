"""Kubernetes: the `pods` diagnostic and the label-selector helpers it uses.

The diagnostic is the runbook's `kubectl get deploy,pods -l app=…` for one deployment,
plus the reason a person would dig out with `kubectl describe pod` for every pod that
is not healthy. `pod_status` makes the API calls; the analysis is in `pod_health`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone

from kubernetes.aio import client
from kubernetes.aio.client import ApiClient, ApiException, V1Deployment, V1Pod

from diagnostics.cache import QueryCache, cached
from diagnostics.kubernetes.client import call_api, read_list
from diagnostics.kubernetes.pod_health import summarise_deployment
from diagnostics.result import Result, Status

# ---------------------------------------------------------------------------------------
# The `pods` diagnostic: API calls
# ---------------------------------------------------------------------------------------


async def pod_status(
    api: ApiClient,
    deployment: str,
    namespace: str,
    *,
    timeout: float = 8.0,
    now: datetime | None = None,
    fold_healthy_over: int = 8,
    cache: QueryCache | None = None,
) -> Result:
    """One deployment's replicas and each of its pods, unhealthy ones first with their reason.

    With a `cache`, identical reads in flight at once (many alerts about one namespace)
    share one API call.
    """
    title = f"Pods · {deployment} ({namespace})"
    apps = client.AppsV1Api(api)
    core = client.CoreV1Api(api)
    host = api.configuration.host

    async def fetch() -> Result | tuple[V1Deployment, list[V1Pod]]:
        try:
            dep = await cached(
                cache, ("k8s.deployment", host, namespace, deployment),
                lambda: apps.read_namespaced_deployment(deployment, namespace, _request_timeout=timeout),
            )
        except ApiException as e:
            if e.status != 404:
                raise
            return await _not_found(core, title, deployment, namespace, timeout)
        selector = dep.spec.selector if dep.spec is not None else None
        selector_text = label_selector_string(selector)
        pod_list = await cached(
            cache, ("k8s.pods", host, namespace, selector_text),
            lambda: read_list(api, core.list_namespaced_pod_without_preload_content(
                namespace, label_selector=selector_text, _request_timeout=timeout), "V1PodList"),
        )
        # The server filters by the selector; filtering again guards against servers (and
        # emulators) that ignore it and against a selector we failed to express as a string.
        return dep, [p for p in pod_list.items if selector_matches(selector, _labels(p))]

    fetched = await call_api(api, title, fetch, timeout=timeout)
    if isinstance(fetched, Result):
        return fetched
    dep, pods = fetched
    return summarise_deployment(
        dep, pods, title=title, now=now or datetime.now(timezone.utc), fold_healthy_over=fold_healthy_over
    )


async def _not_found(
    core: client.CoreV1Api, title: str, deployment: str, namespace: str, timeout: float
) -> Result:
    """A missing deployment, or its whole namespace missing (the likelier typo)."""
    missing_deployment = Result(
        status=Status.UNKNOWN,
        title=title,
        summary=f"Deployment `{deployment}` not found in namespace `{namespace}`",
    )
    try:
        await core.read_namespace(namespace, _request_timeout=timeout)
    except ApiException as e:
        if e.status == 404:
            return Result(status=Status.UNKNOWN, title=title, summary=f"Namespace `{namespace}` not found")
        if e.status in (401, 403):
            # Many bots may read deployments but not namespaces: that's no error of the check.
            return missing_deployment
        raise
    return missing_deployment


# ---------------------------------------------------------------------------------------
# Label selectors (client-side, mirroring the API server's semantics)
# ---------------------------------------------------------------------------------------


def label_selector_string(selector: client.V1LabelSelector | None) -> str | None:
    """The selector in the `-l` syntax the API accepts, or None for "everything"."""
    if selector is None:
        return None
    parts = [f"{k}={v}" for k, v in sorted((selector.match_labels or {}).items())]
    for req in selector.match_expressions or []:
        values = ",".join(req.values or [])
        match req.operator:
            case "In":
                parts.append(f"{req.key} in ({values})")
            case "NotIn":
                parts.append(f"{req.key} notin ({values})")
            case "Exists":
                parts.append(req.key)
            case "DoesNotExist":
                parts.append(f"!{req.key}")
    return ",".join(parts) or None


def selector_matches(selector: client.V1LabelSelector | None, labels: Mapping[str, str]) -> bool:
    if selector is None:
        # A deployment always has a selector; without one, select nothing rather than the namespace.
        return False
    for key, value in (selector.match_labels or {}).items():
        if labels.get(key) != value:
            return False
    for req in selector.match_expressions or []:
        values = set(req.values or [])
        match req.operator:
            case "In" if labels.get(req.key) not in values:
                return False
            case "NotIn" if req.key in labels and labels[req.key] in values:
                return False
            case "Exists" if req.key not in labels:
                return False
            case "DoesNotExist" if req.key in labels:
                return False
    return True


def _labels(pod: V1Pod) -> Mapping[str, str]:
    return (pod.metadata.labels if pod.metadata is not None else None) or {}
