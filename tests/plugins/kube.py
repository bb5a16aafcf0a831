"""Kubernetes fixtures: kmock (a stateful API emulator over real HTTP) plus realistic pods.

* `kube` — a running kmock with a kubeconfig file pointing at it (`KubeCluster`):
  seed namespaces, deployments and pods, then talk to it with the real client.
* `kube_api` — a `kubernetes.aio` ApiClient built by `make_api_client(kube.kubeconfig_path)`.
* pod builders (`running_ready`, `crashloop`, `oom_killed`, `image_pull_backoff`,
  `pending_unschedulable`, `running_not_ready`) — plain dicts shaped like the API's.
* `seed_checkout_prod(kube)` — the standard scene: `prod/checkout` with one ready, one
  crashlooping and one OOMKilled pod, and another app's pod in the same namespace.

kmock quirks these fixtures absorb (kmock 0.8):

* it ignores label and field selectors: a pod list returns every pod of the namespace,
  so the diagnostic must filter by the deployment's selector itself;
* `GET /api/v1/namespaces/<ns>` is parsed as "namespace <ns>, no resource" and answers
  404 for every namespace, seeded or not; `seed_namespace` adds a reaction serving it;
* the typed client validates responses with pydantic: a seeded deployment needs
  `spec.template.spec.containers`, a container status needs image/imageID/ready/…;
* `("v1/pods", ns, name) in kmock.objects` is always False: `__contains__` does not parse
  the resource string as `__getitem__`/`__setitem__` do (use `kmock.resource(...)` keys);
* a resource with no objects lists as 404 "Resource Not Found" unless declared in
  `kmock.resources`; the `kube` fixture declares pods, namespaces, events, deployments;
* no controller runs: a deployment's `status` is whatever is seeded (derived here from
  the seeded pods unless given).

All timestamps are relative to `NOW`; pass `now=NOW` to the diagnostic for stable ages.
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

import kmock as kmock_lib
from diagnostics.kubernetes import make_api_client

NOW = datetime(2025, 3, 14, 12, 0, 0, tzinfo=timezone.utc)
DEFAULT_IMAGE = "registry.example.com/shop/checkout:1.4.2"

Pod = dict[str, Any]

# (resource, kind, namespaced) the emulator must know even before any object exists.
RESOURCES = [
    ("v1/pods", "Pod", True),
    ("v1/namespaces", "Namespace", False),
    ("v1/events", "Event", True),
    ("apps/v1/deployments", "Deployment", True),
    ("apps/v1/replicasets", "ReplicaSet", True),
]


def ts(ago: timedelta) -> str:
    """An RFC 3339 timestamp `ago` before NOW, as the API writes them."""
    return (NOW - ago).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------------------
# Pod builders: plain dicts like `kubectl get pod -o json`. Metadata that depends on the
# owning deployment (name, namespace, labels, ownerReferences) is filled by
# KubeCluster.seed_deployment, so the same builder serves any deployment.
# ---------------------------------------------------------------------------------------


def _container_spec(image: str, memory_limit: str, readiness_probe: bool) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": "app",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"containerPort": 8080, "name": "http", "protocol": "TCP"}],
        "resources": {
            "requests": {"cpu": "250m", "memory": memory_limit},
            "limits": {"cpu": "1", "memory": memory_limit},
        },
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
    }
    if readiness_probe:
        spec["readinessProbe"] = {
            "httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"},
            "periodSeconds": 10,
            "failureThreshold": 3,
            "successThreshold": 1,
            "timeoutSeconds": 1,
        }
    return spec


def _conditions(
    *, scheduled: bool = True, initialized: bool = True, ready: bool, age: timedelta,
    ready_since: timedelta | None = None, ready_message: str | None = None,
) -> list[dict[str, Any]]:
    def cond(kind: str, ok: bool, since: timedelta, **extra: Any) -> dict[str, Any]:
        return {"type": kind, "status": "True" if ok else "False", "lastProbeTime": None,
                "lastTransitionTime": ts(since), **extra}

    since = ready_since or age
    message = ready_message or "containers with unready status: [app]"
    unready = {"reason": "ContainersNotReady", "message": message}
    return [
        cond("PodReadyToStartContainers", scheduled, age),
        cond("Initialized", initialized, age),
        cond("Ready", ready, since, **({} if ready else unready)),
        cond("ContainersReady", ready, since, **({} if ready else unready)),
        cond("PodScheduled", scheduled, age),
    ]


def _container_status(
    *, image: str, ready: bool, restarts: int, state: dict[str, Any],
    last_state: dict[str, Any] | None = None, started: bool | None = True,
) -> dict[str, Any]:
    running_image = "sha256:" + hashlib.sha256(image.encode()).hexdigest()
    return {
        "name": "app",
        "image": image,
        "imageID": f"{image.split(':')[0]}@{running_image}" if state.get("running") else "",
        "containerID": "containerd://" + hashlib.sha1(repr(state).encode()).hexdigest(),
        "ready": ready,
        "started": started,
        "restartCount": restarts,
        "state": state,
        "lastState": last_state or {},
    }


def _pod(*, phase: str, node: str | None, age: timedelta, image: str, memory_limit: str = "512Mi",
         readiness_probe: bool = True, conditions: list[dict[str, Any]],
         container_statuses: list[dict[str, Any]] | None, name: str | None = None) -> Pod:
    status: dict[str, Any] = {"phase": phase, "conditions": conditions, "qosClass": "Burstable"}
    if node is not None:
        status.update(hostIP="10.0.1.17", podIP="10.244.1.23", startTime=ts(age))
    if container_statuses is not None:
        status["containerStatuses"] = container_statuses
    spec: dict[str, Any] = {
        "containers": [_container_spec(image, memory_limit, readiness_probe)],
        "restartPolicy": "Always",
        "schedulerName": "default-scheduler",
        "serviceAccountName": "default",
        "terminationGracePeriodSeconds": 30,
    }
    if node is not None:
        spec["nodeName"] = node
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        # `name` is a suffix here; seed_deployment prefixes it with the ReplicaSet's name.
        "metadata": {"name": name, "creationTimestamp": ts(age), "labels": {}},
        "spec": spec,
        "status": status,
    }


def running_ready(*, name: str | None = None, image: str = DEFAULT_IMAGE, node: str = "node-a",
                  age: timedelta = timedelta(hours=3, minutes=12), restarts: int = 0) -> Pod:
    state = {"running": {"startedAt": ts(age)}}
    return _pod(
        name=name, phase="Running", node=node, age=age, image=image,
        conditions=_conditions(ready=True, age=age),
        container_statuses=[_container_status(image=image, ready=True, restarts=restarts, state=state)],
    )


def crashloop(
    exit_code: int = 1, reason: str = "Error", *, name: str | None = None, image: str = DEFAULT_IMAGE,
    node: str = "node-b", age: timedelta = timedelta(hours=1), restarts: int = 7,
    last_exit_ago: timedelta = timedelta(minutes=2), message: str | None = None,
) -> Pod:
    """Back-off restarting a container that keeps exiting with `exit_code` (`reason`)."""
    terminated: dict[str, Any] = {
        "exitCode": exit_code, "reason": reason,
        "startedAt": ts(last_exit_ago + timedelta(seconds=20)), "finishedAt": ts(last_exit_ago),
        "containerID": "containerd://" + "f" * 64,
    }
    if message:
        terminated["message"] = message
    waiting = {"waiting": {
        "reason": "CrashLoopBackOff",
        "message": "back-off 5m0s restarting failed container=app pod=checkout_prod",
    }}
    return _pod(
        name=name, phase="Running", node=node, age=age, image=image,
        conditions=_conditions(ready=False, age=age, ready_since=last_exit_ago),
        container_statuses=[_container_status(image=image, ready=False, restarts=restarts, state=waiting,
                                              last_state={"terminated": terminated}, started=False)],
    )


def oom_killed(*, name: str | None = None, memory_limit: str = "512Mi", image: str = DEFAULT_IMAGE,
               node: str = "node-c", age: timedelta = timedelta(hours=2), restarts: int = 4,
               last_exit_ago: timedelta = timedelta(minutes=3)) -> Pod:
    """Killed by the kernel for exceeding its memory limit, now backing off before a restart."""
    pod = crashloop(137, "OOMKilled", name=name, image=image, node=node, age=age, restarts=restarts,
                    last_exit_ago=last_exit_ago)
    pod["spec"]["containers"][0]["resources"]["limits"]["memory"] = memory_limit
    return pod


def image_pull_backoff(
    image: str = "registry.example.com/shop/checkout:1.4.3-rc1", *, name: str | None = None,
    node: str = "node-a", age: timedelta = timedelta(minutes=6), reason: str = "ImagePullBackOff",
) -> Pod:
    message = (f'Back-off pulling image "{image}"' if reason == "ImagePullBackOff" else
               f'rpc error: code = NotFound desc = failed to pull and unpack image "{image}": not found')
    state = {"waiting": {"reason": reason, "message": message}}
    return _pod(
        name=name, phase="Pending", node=node, age=age, image=image,
        conditions=_conditions(ready=False, age=age),
        container_statuses=[
            _container_status(image=image, ready=False, restarts=0, state=state, started=False),
        ],
    )


def pending_unschedulable(message: str = "0/3 nodes are available: 3 Insufficient memory. "
                                         "preemption: 0/3 nodes are available: 3 No preemption victims found "
                                         "for incoming pod.",
                          *, name: str | None = None, image: str = DEFAULT_IMAGE,
                          age: timedelta = timedelta(minutes=9)) -> Pod:
    """Never scheduled: the scheduler's verdict is in the PodScheduled condition."""
    conditions = [{
        "type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message,
        "lastProbeTime": None, "lastTransitionTime": ts(age),
    }]
    return _pod(name=name, phase="Pending", node=None, age=age, image=image,
                conditions=conditions, container_statuses=None)


def running_not_ready(*, name: str | None = None, image: str = DEFAULT_IMAGE, node: str = "node-b",
                      age: timedelta = timedelta(minutes=40), not_ready_for: timedelta = timedelta(minutes=5),
                      message: str = "containers with unready status: [app]") -> Pod:
    """Running, but its readiness probe fails, so it gets no traffic."""
    state = {"running": {"startedAt": ts(age)}}
    return _pod(
        name=name, phase="Running", node=node, age=age, image=image,
        conditions=_conditions(ready=False, age=age, ready_since=not_ready_for, ready_message=message),
        container_statuses=[_container_status(image=image, ready=False, restarts=0, state=state)],
    )


def is_ready(pod: Mapping[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in pod.get("status", {}).get("conditions", []))


# ---------------------------------------------------------------------------------------
# The emulated cluster
# ---------------------------------------------------------------------------------------


@dataclass
class KubeCluster:
    kmock: kmock_lib.KubernetesEmulator
    url: str
    kubeconfig_path: str
    namespaces: set[str] = field(default_factory=set)

    def seed_namespace(self, name: str) -> None:
        self.namespaces.add(name)
        self.kmock.objects["v1/namespaces", None, name] = {
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"},
        }

    def seed_pod(self, namespace: str, pod: Pod) -> Pod:
        self.seed_namespace(namespace)
        pod = copy.deepcopy(pod)
        pod["metadata"]["namespace"] = namespace
        self.kmock.objects["v1/pods", namespace, pod["metadata"]["name"]] = pod
        return pod

    def seed_deployment(
        self,
        name: str,
        namespace: str,
        replicas: int | None = None,
        labels: Mapping[str, str] | None = None,
        *,
        status: Mapping[str, Any] | None = None,
        pods: Iterable[Pod] = (),
        image: str = DEFAULT_IMAGE,
    ) -> dict[str, Any]:
        """A deployment, its pods adopted (names, labels, owner) and, unless given, its status.

        `replicas` defaults to the number of pods; `labels` to {"app": name}.
        """
        pods = [copy.deepcopy(p) for p in pods]
        replicas = len(pods) if replicas is None else replicas
        labels = dict(labels or {"app": name})
        template_hash = hashlib.sha1(f"{namespace}/{name}/{image}".encode()).hexdigest()[:10]
        replicaset = f"{name}-{template_hash}"
        self.seed_namespace(namespace)

        for i, pod in enumerate(pods):
            suffix = pod["metadata"].get("name") or hashlib.sha1(f"{replicaset}/{i}".encode()).hexdigest()[:5]
            pod["metadata"].update(
                name=f"{replicaset}-{suffix}",
                generateName=f"{replicaset}-",
                labels={**labels, "pod-template-hash": template_hash, **pod["metadata"].get("labels", {})},
                ownerReferences=[{
                    "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": replicaset,
                    "uid": _uid(namespace, replicaset), "controller": True, "blockOwnerDeletion": True,
                }],
            )
            self.seed_pod(namespace, pod)

        deployment = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": name, "namespace": namespace, "labels": labels, "generation": 3,
                "uid": _uid(namespace, name), "creationTimestamp": ts(timedelta(days=40)),
                "annotations": {"deployment.kubernetes.io/revision": "3"},
            },
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "strategy": {"type": "RollingUpdate",
                             "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [_container_spec(image, "512Mi", readiness_probe=True)]},
                },
            },
            "status": dict(status) if status is not None else _derived_status(replicas, pods),
        }
        self.kmock.objects["apps/v1/deployments", namespace, name] = deployment
        return deployment


def _derived_status(replicas: int, pods: list[Pod]) -> dict[str, Any]:
    """What the deployment controller would report for these pods (no minReadySeconds)."""
    ready = sum(1 for p in pods if is_ready(p))
    available_ok = ready >= max(replicas - replicas // 4, 1) if replicas else True
    return {
        "observedGeneration": 3,
        "replicas": len(pods),
        "updatedReplicas": len(pods),
        "readyReplicas": ready,
        "availableReplicas": ready,
        "unavailableReplicas": max(replicas - ready, 0),
        "conditions": [
            {"type": "Available", "status": "True" if available_ok else "False",
             "reason": "MinimumReplicasAvailable" if available_ok else "MinimumReplicasUnavailable",
             "message": "Deployment has minimum availability." if available_ok
             else "Deployment does not have minimum availability.",
             "lastUpdateTime": ts(timedelta(minutes=10)), "lastTransitionTime": ts(timedelta(minutes=10))},
            {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
             "message": "ReplicaSet has successfully progressed.",
             "lastUpdateTime": ts(timedelta(days=1)), "lastTransitionTime": ts(timedelta(days=1))},
        ],
    }


def _uid(*parts: str) -> str:
    h = hashlib.md5("/".join(parts).encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def seed_checkout_prod(kube: KubeCluster) -> dict[str, Any]:
    """`prod/checkout`: 1 ready, 1 CrashLoopBackOff, 1 OOMKilled; plus a `payments` pod that
    carries no `app=checkout` label and must never show up (kmock ignores selectors)."""
    deployment = kube.seed_deployment(
        "checkout", "prod", replicas=3,
        pods=[running_ready(name="ready"), crashloop(1, "Error", name="crash"), oom_killed(name="oom")],
    )
    kube.seed_deployment("payments", "prod", replicas=1, pods=[running_ready(name="pay", node="node-z")],
                         image="registry.example.com/shop/payments:2.0.0")
    return deployment


def write_kubeconfig(path: Path, server: str, token: str = "kmock-dummy-token") -> Path:
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "kmock",
        "clusters": [{"name": "kmock", "cluster": {"server": server}}],
        "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "bot", "namespace": "prod"}}],
        "users": [{"name": "bot", "user": {"token": token}}],
        "preferences": {},
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def _serve_namespace(kube: KubeCluster) -> Any:
    # kmock answers GET /api/v1/namespaces/<ns> with 404 for every namespace (it reads the
    # path as "in namespace <ns>", not "the namespace object <ns>"), so serve it ourselves.
    def serve(request: kmock_lib.Request) -> Any:
        # NB: `(str, ns, name) in kmock.objects` is always False (only __getitem__ parses the
        # resource string), hence our own set of seeded namespaces.
        if request.namespace in kube.namespaces:
            return kube.kmock.objects["v1/namespaces", None, request.namespace].raw
        return kmock_lib.KubernetesError(
            status=404, reason="NotFound", message=f'namespaces "{request.namespace}" not found'
        )

    return serve


# ---------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------


@pytest.fixture
async def kube(kmock: kmock_lib.KubernetesEmulator, tmp_path: Path) -> AsyncIterator[KubeCluster]:
    """kmock's own pytest fixture (works with pytest-asyncio's function-scoped loop) + a kubeconfig."""
    url = str(kmock.url).rstrip("/")
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", url)
    cluster = KubeCluster(kmock=kmock, url=url, kubeconfig_path=str(kubeconfig))
    # kmock lists a resource only once it is declared or has an object: without this, an
    # empty namespace's pod list is a 404 "Resource Not Found" instead of an empty list.
    for resource, kind, namespaced in RESOURCES:
        kmock.resources[resource] = kmock_lib.ResourceInfo(kind=kind, namespaced=namespaced)
    # Below the default priority, so a test's own reaction (e.g. a 403) wins.
    (kmock ** -1)["get", re.compile(r"/api/v1/namespaces/[^/]+")] << _serve_namespace(cluster)
    # The official client asks for `/version/`; a real API server answers it like `/version`,
    # kmock only the latter.
    (kmock ** -1)["get", re.compile(r"^/version/$")] << kmock._serve_server_version
    yield cluster


@pytest.fixture
async def kube_api(kube: KubeCluster) -> AsyncIterator[Any]:
    """A real `kubernetes.aio` ApiClient talking to kmock over HTTP; closed at teardown."""
    api = await make_api_client(kube.kubeconfig_path)
    assert api is not None
    try:
        yield api
    finally:
        await api.close()
