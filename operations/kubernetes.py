"""Kubernetes writes: Scale, Restart, Limits and Breaker, previewed by the API server itself.

    preview(api, spec, timeout=…)           read, compute the write, send it with ?dryRun=All
    apply(api, spec, preview, timeout=…)    re-read, compare with the preview, send it for real
    revert(spec, preview, outcome)          the spec that puts back what the preview read

The write is one JSON Patch (`application/json-patch+json`) on the object the spec names: the
Deployment's `scale` subresource for Scale (an autoscaling/v1 Scale), the Deployment for Restart
and Limits, the ConfigMap for Breaker. Its `test` ops hold the previewed fields to what was read
(operations.json_patch), so the write is conditional on exactly those fields and never on the
object's resourceVersion, which controllers bump constantly on a crash-looping Deployment. The
preview sends the same path, body and Content-Type as apply, only with `dryRun=All`, and takes
"after" from the server's answer: admission and defaulting included, it is what apply would do.

Objects are read and written as raw JSON (`*_without_preload_content`), not as the typed models:
a `test` op compares the JSON the server holds, and the models drop what they don't model (a
pod template's `"creationTimestamp": null`, say), which would fail every test on a parent.

`impersonate` (`slack:<user>`) puts `Impersonate-User` on every request, reads and dry runs
included, so the cluster's RBAC decides and its audit log names the person. The client's
`_headers=` is where per-call headers go; it fills the dict it is given (Accept, Content-Type), so
each call gets a fresh one.

Failures are OperationError, one line naming Kubernetes and the API host (the diagnostics'
wording, diagnostics.kubernetes.client.failure_message): temporary for timeouts, connection
failures, 5xx, 429 and 409 (a concurrent write); permanent for 403, 404, a 422 from validation, a
paused Deployment, an ambiguous container. A 422 without field causes is a failed `test` op (the
API server words it "the server rejected our request due to an error in our request"):
ChangedSincePreview.
"""

from __future__ import annotations

import asyncio
import json
import operator
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import pydantic
from kubernetes.aio import client
from kubernetes.aio.client import ApiClient, ApiException

from diagnostics.kubernetes.client import CALL_FAILURES, failure_message
from operations.json_patch import Path, conditional_patch, value_at
from operations.model import (
    JSON,
    Breaker,
    Change,
    ChangedSincePreview,
    Limits,
    OperationError,
    Outcome,
    Preview,
    Restart,
    Scale,
)
from operations.quantity import parse_quantity, same_quantity

KubeSpec = Scale | Restart | Limits | Breaker
JSON_PATCH = "application/json-patch+json"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
CONTAINERS: Path = ("spec", "template", "spec", "containers")
LIMIT_KINDS = ("memory", "cpu")
# HTTP statuses after which the same write may well succeed later.
TEMPORARY_STATUSES = frozenset({409, 429})

T = TypeVar("T")


# ---------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------


async def preview(api: ApiClient, spec: KubeSpec, *, timeout: float, impersonate: str | None = None) -> Preview:
    """What `spec` would change, computed by a server-side dry run of the exact write; writes nothing."""
    session = _Session(api, timeout, impersonate)
    return await session.run(lambda: _preview(session, spec))


async def apply(api: ApiClient, spec: KubeSpec, preview: Preview, *, timeout: float,
                impersonate: str | None = None) -> Outcome:
    """The write `preview` showed, conditional on the values it read; ChangedSincePreview (and no
    write) if a previewed field holds neither what the preview read nor the desired value."""
    session = _Session(api, timeout, impersonate)
    return await session.run(lambda: _apply(session, spec, preview))


async def current_replicas(api: ApiClient, namespace: str, deployment: str, *, timeout: float) -> int:
    """The Deployment's replicas now, from its scale subresource (what "Scale up" adds to)."""
    session = _Session(api, timeout, None)
    scale = await session.run(lambda: session.read(_target(api, Scale(namespace, deployment, 0))))
    return int((scale.get("spec") or {}).get("replicas") or 0)


def revert(spec: KubeSpec, preview: Preview, outcome: Outcome) -> KubeSpec | None:
    """The spec that puts back what `preview` read, or None when there is nothing to put back
    (a restart; or a change that found every field already as asked)."""
    if isinstance(spec, Scale):
        before = preview.observed.get("replicas")
        replicas = before if isinstance(before, int) else 0
        return None if replicas == spec.replicas else replace(spec, replicas=replicas)
    if isinstance(spec, Breaker):
        before = preview.observed.get(spec.key)
        if before == _flag(spec.enabled):
            return None
        return replace(spec, enabled=before == "true" if before in ("true", "false") else not spec.enabled)
    if isinstance(spec, Limits):
        return _revert_limits(spec, preview)
    return None


def _revert_limits(spec: Limits, preview: Preview) -> Limits | None:
    container = str(preview.observed.get("container") or spec.container)
    put_back: dict[str, str] = {}
    remove: list[str] = []
    for kind in LIMIT_KINDS:
        if getattr(spec, kind) is None and kind not in spec.remove:
            continue  # not touched
        before = preview.observed.get(_limit_name(kind, container))
        if same_quantity(before, None if kind in spec.remove else getattr(spec, kind)):
            continue  # already as asked: nothing was changed
        if before is None:
            remove.append(kind)
        else:
            put_back[kind] = str(before)
    if not put_back and not remove:
        return None
    return Limits(spec.namespace, spec.deployment, container, memory=put_back.get("memory"),
                  cpu=put_back.get("cpu"), remove=tuple(remove))


# ---------------------------------------------------------------------------------------
# Preview and apply
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    """One previewed field of the written object: its name (the Change's field and the key in
    Preview.observed), where it is, and the value asked for (None: removed)."""

    name: str
    path: Path
    desired: JSON
    same: Callable[[JSON, JSON], bool] = operator.eq
    unset: str | None = None  # how a field that is not set reads ("0" replicas)

    def show(self, value: JSON) -> str | None:
        if value is None:
            return self.unset
        if isinstance(value, bool):
            return "true" if value else "false"
        return value if isinstance(value, str) else json.dumps(value)

    def spoken(self, value: JSON) -> str:
        shown = self.show(value)
        return "not set" if shown is None else shown


@dataclass(frozen=True)
class Plan:
    """The write for one spec on the object as read: its fields, the guards tested but not
    changed, and what else apply and revert need (`extra`, kept in Preview.observed)."""

    fields: tuple[Field, ...]
    guards: tuple[tuple[Path, JSON], ...] = ()
    extra: Mapping[str, JSON] = field(default_factory=dict)

    def patch(self, document: JSON, fields: Sequence[Field]) -> list[dict[str, JSON]]:
        return conditional_patch(document, [(f.path, f.desired) for f in fields], self.guards)


async def _preview(session: _Session, spec: KubeSpec) -> Preview:
    target = _target(session.api, spec)
    document = await session.read(target)
    plan = _plan(spec, document, target.title)
    warnings = await _autoscaler_warnings(session, spec) if isinstance(spec, Scale) else []
    pending = [f for f in plan.fields if not f.same(value_at(document, f.path), f.desired)]
    warnings += [f"{f.name} is already {f.spoken(f.desired)}" for f in plan.fields if f not in pending]
    try:
        answer = await session.patch(target, plan.patch(document, pending), dry_run=True)
    except ApiException as e:
        if not _failed_test(e):
            raise
        raise OperationError(f"{target.title} changed while it was being previewed; ask again",
                             temporary=True) from None
    return Preview(
        target=target.title,
        changes=tuple(Change(f.name, f.show(value_at(document, f.path)), f.show(value_at(answer, f.path)))
                      for f in plan.fields),
        warnings=tuple(warnings),
        observed={**{f.name: value_at(document, f.path) for f in plan.fields}, **plan.extra},
    )


async def _apply(session: _Session, spec: KubeSpec, preview: Preview) -> Outcome:
    if isinstance(spec, Limits) and spec.container is None and preview.observed.get("container"):
        # The container the preview chose, even if the pod template has gained one since.
        spec = replace(spec, container=str(preview.observed["container"]))
    target = _target(session.api, spec)
    document = await session.read(target)
    plan = _plan(spec, document, target.title)
    pending = _pending(plan, document, preview)
    if not pending:
        return Outcome(changes=_changes(plan, preview, document), already=True)
    try:
        answer = await session.patch(target, plan.patch(document, pending), dry_run=False)
    except ApiException as e:
        if not _failed_test(e):
            raise
        # Someone wrote between the re-read and the write: say what, if it is a previewed field.
        now = await session.read(target)
        replanned = _plan(spec, now, target.title)
        if not _pending(replanned, now, preview):
            return Outcome(changes=_changes(replanned, preview, now), already=True)
        raise ChangedSincePreview(f"{target.title} changed while the change was being written; "
                                  "nothing was written") from None
    return Outcome(changes=_changes(plan, preview, answer))


def _pending(plan: Plan, document: JSON, preview: Preview) -> list[Field]:
    """The fields still to write; ChangedSincePreview if one holds neither value."""
    pending = []
    for f in plan.fields:
        now, before = value_at(document, f.path), preview.observed.get(f.name)
        if f.same(now, f.desired):
            continue
        if not f.same(now, before):
            raise ChangedSincePreview(f"{f.name} is {f.spoken(now)} now; the preview read {f.spoken(before)}")
        pending.append(f)
    return pending


def _changes(plan: Plan, preview: Preview, written: JSON) -> tuple[Change, ...]:
    return tuple(Change(f.name, f.show(preview.observed.get(f.name)), f.show(value_at(written, f.path)))
                 for f in plan.fields)


def _failed_test(e: ApiException) -> bool:
    """A 422 without field causes: a JSON Patch op that failed (a `test`), not validation."""
    if e.status != 422:
        return False
    try:
        status = json.loads(e.body or "")
    except ValueError:
        return False
    return isinstance(status, dict) and not ((status.get("details") or {}).get("causes"))


# ---------------------------------------------------------------------------------------
# Plans: pure, from the object as read
# ---------------------------------------------------------------------------------------


def _plan(spec: KubeSpec, document: JSON, title: str) -> Plan:
    if isinstance(spec, Scale):
        if spec.replicas < 0:
            raise OperationError(f"{title}: replicas must be 0 or more, not {spec.replicas}")
        # Go's omitempty: a Scale of 0 replicas has no spec.replicas.
        return Plan(fields=(Field("replicas", ("spec", "replicas"), spec.replicas, same=_same_count, unset="0"),))
    if isinstance(spec, Restart):
        if value_at(document, ("spec", "paused")):
            raise OperationError(f"{title} is paused: a restart would not roll out until it is resumed "
                                 f"(kubectl rollout resume deployment/{spec.deployment} -n {spec.namespace})")
        path = ("spec", "template", "metadata", "annotations", RESTARTED_AT)
        return Plan(fields=(Field("restartedAt", path, spec.at),))
    if isinstance(spec, Limits):
        return _limits_plan(spec, document, title)
    return Plan(fields=(Field(spec.key, ("data", spec.key), _flag(spec.enabled)),))


def _limits_plan(spec: Limits, document: JSON, title: str) -> Plan:
    index, name = _container(spec.container, value_at(document, CONTAINERS) or [], title)
    asked = {kind: getattr(spec, kind) for kind in LIMIT_KINDS if getattr(spec, kind) is not None}
    asked.update({kind: None for kind in spec.remove if kind in LIMIT_KINDS})
    if not asked:
        raise OperationError(f"{title}: no limit to change (give a memory or a cpu limit)")
    container = (*CONTAINERS, index)
    fields = []
    for kind, value in asked.items():
        if value is not None:
            _check_limit(kind, value, value_at(document, (*container, "resources", "requests", kind)), name)
        fields.append(Field(_limit_name(kind, name), (*container, "resources", "limits", kind), value,
                            same=same_quantity))
    return Plan(fields=tuple(fields), guards=(((*container, "name"), name),), extra={"container": name})


def _container(asked: str | None, containers: Sequence[JSON], title: str) -> tuple[int, str]:
    names = [str(c.get("name")) for c in containers if isinstance(c, dict)]
    if asked is None and len(names) == 1:
        return 0, names[0]
    if asked is None:
        raise OperationError(f"{title} has {len(names)} containers ({', '.join(names)}): name the one to change")
    if asked not in names:
        raise OperationError(f"{title} has no container {asked!r} (it has {', '.join(names) or 'none'})")
    return names.index(asked), asked


def _check_limit(kind: str, value: str, request: JSON, container: str) -> None:
    """A limit must be a positive quantity, and not below the container's request: the API server
    refuses that (`must be less than or equal to … limit`), so say it plainly before asking."""
    try:
        limit = parse_quantity(value)
    except ValueError as e:
        raise OperationError(f"{kind} limit: {e}") from None
    if limit <= 0:
        raise OperationError(f"{kind} limit must be more than 0, not {value}")
    try:
        below = isinstance(request, str) and limit < parse_quantity(request)
    except ValueError:
        return  # a request we can't read: the dry run will tell
    if below:
        raise OperationError(f"{kind} limit {value} of {container} would be below its request {request}; "
                             "the API server refuses a limit below the request")


def _same_count(a: JSON, b: JSON) -> bool:
    return (a or 0) == (b or 0)


def _limit_name(kind: str, container: str) -> str:
    return f"{kind} limit of {container}"


def _flag(enabled: bool) -> str:
    return "true" if enabled else "false"


# ---------------------------------------------------------------------------------------
# The HorizontalPodAutoscaler warning
# ---------------------------------------------------------------------------------------


async def _autoscaler_warnings(session: _Session, spec: Scale) -> list[str]:
    """An HPA targeting the Deployment sets its replicas itself: a manual scale won't last."""
    autoscaling = client.AutoscalingV2Api(session.api)
    try:
        listed = await autoscaling.list_namespaced_horizontal_pod_autoscaler(
            spec.namespace, _request_timeout=session.timeout, _headers=session.headers())
    except (ApiException, pydantic.ValidationError) as e:
        # Not allowed to list them, autoscaling/v2 not served, an HPA the client can't model:
        # say so, don't refuse the scale.
        return [f"could not check for a HorizontalPodAutoscaler: {failure_message(e, session.server, session.timeout)}"]
    warnings = []
    for hpa in listed.items:
        ref = hpa.spec.scale_target_ref
        if ref.kind == "Deployment" and ref.name == spec.deployment:
            name = hpa.metadata.name if hpa.metadata is not None else "?"
            bounds = f"min {hpa.spec.min_replicas or 1}, max {hpa.spec.max_replicas}"
            warnings.append(f"HorizontalPodAutoscaler {name} manages this Deployment ({bounds}) "
                            "and will override a manual scale")
    return warnings


# ---------------------------------------------------------------------------------------
# Talking to the API
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """The object a spec writes, and how to read and patch it as raw JSON."""

    title: str  # "Deployment prod/checkout"
    read: Callable[..., Awaitable[Any]]
    patch: Callable[..., Awaitable[Any]]
    name: str
    namespace: str


def _target(api: ApiClient, spec: KubeSpec) -> Target:
    if isinstance(spec, Breaker):
        core = client.CoreV1Api(api)
        return Target(f"ConfigMap {spec.namespace}/{spec.configmap}",
                      core.read_namespaced_config_map_without_preload_content,
                      core.patch_namespaced_config_map_without_preload_content, spec.configmap, spec.namespace)
    apps = client.AppsV1Api(api)
    title = f"Deployment {spec.namespace}/{spec.deployment}"
    if isinstance(spec, Scale):
        return Target(title, apps.read_namespaced_deployment_scale_without_preload_content,
                      apps.patch_namespaced_deployment_scale_without_preload_content, spec.deployment, spec.namespace)
    return Target(title, apps.read_namespaced_deployment_without_preload_content,
                  apps.patch_namespaced_deployment_without_preload_content, spec.deployment, spec.namespace)


@dataclass(frozen=True)
class _Session:
    api: ApiClient
    timeout: float
    impersonate: str | None

    @property
    def server(self) -> str:
        return str(self.api.configuration.host)

    def headers(self) -> dict[str, str]:
        # A fresh dict per call: the client adds Accept and Content-Type to the one it is given.
        return {"Impersonate-User": self.impersonate} if self.impersonate else {}

    async def run(self, work: Callable[[], Awaitable[T]]) -> T:
        """`work` under one timeout (each call also has its own), failures as OperationError."""
        try:
            async with asyncio.timeout(self.timeout):
                return await work()
        except OperationError:
            raise
        except CALL_FAILURES as e:
            temporary = not isinstance(e, ApiException) or _temporary(e.status)
            raise OperationError(failure_message(e, self.server, self.timeout), temporary=temporary) from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:  # a body that is not JSON
            raise OperationError(f"Kubernetes: unexpected response from {self.server}: {e}") from None

    async def read(self, target: Target) -> JSON:
        try:
            return await self._json(target.read(target.name, target.namespace, _request_timeout=self.timeout,
                                                _headers=self.headers()))
        except ApiException as e:
            if e.status == 404:
                raise OperationError(f"{target.title} not found") from None
            raise

    async def patch(self, target: Target, body: list[dict[str, JSON]], *, dry_run: bool) -> JSON:
        return await self._json(target.patch(target.name, target.namespace, body, dry_run="All" if dry_run else None,
                                             _content_type=JSON_PATCH, _request_timeout=self.timeout,
                                             _headers=self.headers()))

    @staticmethod
    async def _json(call: Awaitable[Any]) -> JSON:
        response = await call
        data = await response.read()
        if not 200 <= response.status < 300:
            raise ApiException(status=response.status, reason=response.reason, body=data.decode("utf-8", "replace"))
        return json.loads(data)


def _temporary(status: int | None) -> bool:
    return status is None or status >= 500 or status in TEMPORARY_STATUSES
