"""Kubernetes fixtures: kmock (a stateful API emulator over real HTTP) plus realistic pods.

* `kube` — a running kmock with a kubeconfig file pointing at it (`KubeCluster`):
  seed namespaces, deployments and pods, then talk to it with the real client.
* `kube_api` — a `kubernetes.aio` ApiClient built by `make_api_client(kube.kubeconfig_path)`.
* API-server write semantics kmock lacks (tests/plugins/kube_writes.py): `dryRun=All` persists
  nothing, writes bump resourceVersion (seeded objects get one too) and a Deployment's generation,
  a stale resourceVersion is a 409, PATCH bodies by Content-Type (JSON Patch, merge, strategic
  merge), the `deployments/{name}/scale` subresource; every write recorded in `kube.writes`
  (persisted) or `kube.dry_runs`, with its headers (`Write.impersonate`).
* pod builders (`running_ready`, `crashloop`, `oom_killed`, `image_pull_backoff`,
  `pending_unschedulable`, `running_not_ready`) — plain dicts shaped like the API's.
* `seed_checkout_prod(kube)` — the standard scene: `prod/checkout` with one ready, one
  crashlooping and one OOMKilled pod, and another app's pod in the same namespace.
* more of the cluster for the other diagnostics: `seed_event`, `seed_node` (with the
  `node` builder), `seed_configmap`, `seed_replicaset` (seed_deployment seeds the current
  one), `set_log` (what `pods/<name>/log` answers), `seed_pod_metrics` (metrics.k8s.io),
  `seed_hpa` (autoscaling/v2); `seed_deployment(paused=…, containers=[container(…), …])`.

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
  `kmock.resources`; the `kube` fixture declares the resources in RESOURCES;
* no controller runs: a deployment's `status` is whatever is seeded (derived here from
  the seeded pods unless given);
* it has no `pods/<name>/log` subresource (it would answer the pod as JSON): the fixture
  serves one as text/plain from `set_log`, honouring tailLines, sinceSeconds (against
  NOW), timestamps, previous and limitBytes;
* a callable answering a `kmock.Response` merges that Response's status and headers into
  the reaction itself, so every answer of the log reaction sets its own Content-Type;
* metrics.k8s.io is not served (404, as without metrics-server) until `seed_pod_metrics`
  declares the resource and stores PodMetrics objects, which kmock then lists;
* the requests it received are not `kmock.requests`: iterate `kmock` itself;
* error answers carry a Python traceback in the Status `details` (clients ignore it).

All timestamps are relative to `NOW`; pass `now=NOW` to the diagnostic for stable ages.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import itertools
import re
import socket
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import kmock as kmock_lib
import pytest
import yaml

from diagnostics.kubernetes import make_api_client
from diagnostics.kubernetes.client import load_models
from tests.plugins.kube_writes import ApiServerEmulator, Write, write_reactions

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
    ("v1/nodes", "Node", False),
    ("v1/configmaps", "ConfigMap", True),
    ("autoscaling/v2/horizontalpodautoscalers", "HorizontalPodAutoscaler", True),
    # No v1/secrets on purpose: nothing in the bot may read them, so any request for one
    # is a 404 and stays visible in kmock.requests.
]
METRICS_RESOURCE = "metrics.k8s.io/v1beta1/pods"


def ts(ago: timedelta) -> str:
    """An RFC 3339 timestamp `ago` before NOW, as the API writes them."""
    return (NOW - ago).strftime("%Y-%m-%dT%H:%M:%SZ")


def log_stamp(at: datetime) -> str:
    """A log line's timestamp as the kubelet writes it with timestamps=true (RFC 3339, nanoseconds)."""
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond:06d}000Z"


LogLines = list[tuple[timedelta, str]]


def log_lines(*texts: str, start: timedelta = timedelta(minutes=10),
              step: timedelta = timedelta(seconds=1)) -> LogLines:
    """(ago, text) pairs for `set_log`: the first text `start` before NOW, then one every `step`."""
    return [(start - i * step, text) for i, text in enumerate(texts)]


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


def container(name: str, *, image: str = DEFAULT_IMAGE, requests: Mapping[str, str] | None = None,
              limits: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A pod template's container for `seed_deployment(containers=…)`; `resources` holds only
    what is given (no `limits` key at all when `limits` is None)."""
    resources: dict[str, Any] = {}
    if requests is not None:
        resources["requests"] = dict(requests)
    if limits is not None:
        resources["limits"] = dict(limits)
    return {"name": name, "image": image, "imagePullPolicy": "IfNotPresent", "resources": resources,
            "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"}


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


# What the kubelet reports per pressure condition: (reason, message) when fine, then when not.
_PRESSURE_WORDING = {
    "MemoryPressure": ("KubeletHasSufficientMemory", "kubelet has sufficient memory available",
                       "KubeletHasInsufficientMemory", "kubelet has insufficient memory available"),
    "DiskPressure": ("KubeletHasNoDiskPressure", "kubelet has no disk pressure",
                     "KubeletHasDiskPressure", "kubelet has disk pressure"),
    "PIDPressure": ("KubeletHasSufficientPID", "kubelet has sufficient PID available",
                    "KubeletHasInsufficientPID", "kubelet has insufficient PID available"),
}


def node(
    name: str, *, ready: bool = True, pressures: Iterable[str] = (), unschedulable: bool = False,
    roles: Iterable[str] = ("worker",), kubelet: str = "v1.30.4", age: timedelta = timedelta(days=30),
    not_ready_for: timedelta = timedelta(minutes=7), not_ready_reason: str = "NodeStatusUnknown",
    not_ready_message: str = "Kubelet stopped posting node status.",
) -> dict[str, Any]:
    """A node like `kubectl get node -o json`; `pressures` names conditions that are True
    (MemoryPressure, DiskPressure, PIDPressure, NetworkUnavailable)."""
    pressures = set(pressures)

    def cond(kind: str, ok: bool, reason: str, message: str, since: timedelta = age) -> dict[str, Any]:
        return {"type": kind, "status": "True" if ok else "False", "reason": reason, "message": message,
                "lastHeartbeatTime": ts(timedelta(seconds=20)), "lastTransitionTime": ts(since)}

    conditions = [cond("NetworkUnavailable", "NetworkUnavailable" in pressures,
                       "NoRouteCreated" if "NetworkUnavailable" in pressures else "RouteCreated",
                       "node has no route" if "NetworkUnavailable" in pressures else "route created")]
    for kind, (ok_reason, ok_message, bad_reason, bad_message) in _PRESSURE_WORDING.items():
        if kind in pressures:
            conditions.append(cond(kind, True, bad_reason, bad_message, timedelta(minutes=4)))
        else:
            conditions.append(cond(kind, False, ok_reason, ok_message))
    if ready:
        conditions.append(cond("Ready", True, "KubeletReady", "kubelet is posting ready status"))
    else:
        conditions.append({**cond("Ready", False, not_ready_reason, not_ready_message, not_ready_for),
                           "status": "Unknown" if not_ready_reason == "NodeStatusUnknown" else "False"})
    labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
              **{f"node-role.kubernetes.io/{role}": "" for role in roles}}
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels, "creationTimestamp": ts(age), "uid": _uid("node", name)},
        "spec": {"unschedulable": True} if unschedulable else {},
        "status": {
            "conditions": conditions,
            "nodeInfo": {
                "architecture": "amd64", "bootID": _uid("boot", name),
                "containerRuntimeVersion": "containerd://1.7.13", "kernelVersion": "6.1.0-18-cloud-amd64",
                "kubeProxyVersion": kubelet, "kubeletVersion": kubelet,
                "machineID": hashlib.md5(name.encode()).hexdigest(), "operatingSystem": "linux",
                "osImage": "Debian GNU/Linux 12 (bookworm)", "systemUUID": _uid("system", name),
            },
        },
    }


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
    pods: set[tuple[str, str]] = field(default_factory=set)  # (namespace, name), for the log handler
    # (namespace, pod, previous?) -> the container's log as (when, text) lines
    logs: dict[tuple[str, str, bool], list[tuple[datetime, str]]] = field(default_factory=dict)
    # Every write the emulated API server persisted, and every dry run it answered (kube_writes).
    writes: list[Write] = field(default_factory=list)
    dry_runs: list[Write] = field(default_factory=list)
    _versions: Iterator[int] = field(default_factory=lambda: itertools.count(1001))

    def next_resource_version(self) -> str:
        """A cluster-wide resourceVersion, as etcd's revision: "1001", "1002", …"""
        return str(next(self._versions))

    def _store(self, resource: str, namespace: str | None, obj: dict[str, Any]) -> dict[str, Any]:
        obj["metadata"]["resourceVersion"] = self.next_resource_version()
        self.kmock.objects[resource, namespace, obj["metadata"]["name"]] = obj
        return obj

    def seed_namespace(self, name: str) -> None:
        self.namespaces.add(name)
        self._store("v1/namespaces", None, {
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"},
        })

    def seed_pod(self, namespace: str, pod: Pod) -> Pod:
        self.seed_namespace(namespace)
        pod = copy.deepcopy(pod)
        pod["metadata"]["namespace"] = namespace
        self._store("v1/pods", namespace, pod)
        self.pods.add((namespace, pod["metadata"]["name"]))
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
        rolled_out: timedelta = timedelta(days=1),
        paused: bool = False,
        containers: Sequence[Mapping[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """A deployment, its current ReplicaSet (revision 3, created `rolled_out` ago), its pods
        adopted (names, labels, owner) and, unless given, its status.

        `replicas` defaults to the number of pods; `labels` to {"app": name}; `containers` (the
        pod template's, see `container`) to one container `app` running `image`.
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

        template_containers = ([copy.deepcopy(dict(c)) for c in containers] if containers is not None
                               else [_container_spec(image, "512Mi", readiness_probe=True)])
        deployment: dict[str, Any] = {
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
                    "spec": {"containers": template_containers},
                },
                **({"paused": True} if paused else {}),
            },
            "status": dict(status) if status is not None else _derived_status(replicas, pods),
        }
        self._store("apps/v1/deployments", namespace, deployment)
        self.seed_replicaset(deployment, template_hash, revision=3, created=rolled_out, replicas=replicas,
                             ready=sum(1 for p in pods if is_ready(p)), image=image)
        return deployment

    def seed_replicaset(self, deployment: Mapping[str, Any], template_hash: str, *, revision: int,
                        created: timedelta, replicas: int, ready: int = 0, image: str = DEFAULT_IMAGE) -> str:
        """A ReplicaSet owned by `deployment`, named `<deployment>-<template_hash>`; returns the name."""
        meta = deployment["metadata"]
        name, namespace = f"{meta['name']}-{template_hash}", meta["namespace"]
        labels = {**deployment["spec"]["selector"]["matchLabels"], "pod-template-hash": template_hash}
        self._store("apps/v1/replicasets", namespace, {
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {
                "name": name, "namespace": namespace, "labels": labels, "creationTimestamp": ts(created),
                "uid": _uid(namespace, name),
                "annotations": {"deployment.kubernetes.io/revision": str(revision)},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": meta["name"],
                                     "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}],
            },
            "spec": {
                "replicas": replicas, "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels},
                             "spec": {"containers": [_container_spec(image, "512Mi", readiness_probe=True)]}},
            },
            "status": {"replicas": replicas, "readyReplicas": ready, "availableReplicas": ready},
        })
        return name

    def seed_event(
        self, namespace: str, involved: str, reason: str, message: str, *, type: str = "Warning",
        count: int = 1, last_seen: timedelta = timedelta(minutes=1), first_seen: timedelta | None = None,
    ) -> dict[str, Any]:
        """A core/v1 Event about `involved` ("Pod/checkout-abc-x1"), as the kubelet or a controller
        records it: `count` occurrences, the first `first_seen` and the last `last_seen` ago."""
        self.seed_namespace(namespace)
        kind, _, obj = involved.partition("/")
        first_seen = first_seen or last_seen
        name = f"{obj}.{hashlib.sha1(f'{involved}/{reason}/{message}/{last_seen}'.encode()).hexdigest()[:16]}"
        event = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": ts(first_seen)},
            "involvedObject": {"apiVersion": "apps/v1" if kind in ("Deployment", "ReplicaSet") else "v1",
                               "kind": kind, "name": obj, "namespace": namespace,
                               "uid": _uid(namespace, obj)},
            "reason": reason, "message": message, "type": type, "count": count,
            "firstTimestamp": ts(first_seen), "lastTimestamp": ts(last_seen),
            "source": {"component": "kubelet" if kind == "Pod" else "deployment-controller"},
            "reportingComponent": "", "reportingInstance": "",
        }
        return self._store("v1/events", namespace, event)

    def seed_node(self, node_object: Mapping[str, Any]) -> None:
        self._store("v1/nodes", None, copy.deepcopy(dict(node_object)))

    def seed_configmap(self, namespace: str, name: str, data: Mapping[str, str] | None,
                       binary_data: Mapping[str, bytes] | None = None) -> dict[str, Any]:
        """`data` None: a ConfigMap with no `data` at all (as `kubectl create configmap x` makes)."""
        self.seed_namespace(namespace)
        configmap: dict[str, Any] = {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": ts(timedelta(days=3)),
                         "uid": _uid(namespace, "configmap", name)},
        }
        if data is not None:
            configmap["data"] = dict(data)
        if binary_data:
            configmap["binaryData"] = {k: base64.b64encode(v).decode() for k, v in binary_data.items()}
        return self._store("v1/configmaps", namespace, configmap)

    def seed_hpa(self, namespace: str, name: str, deployment: str, *, min_replicas: int | None = 2,
                 max_replicas: int = 10, cpu_utilization: int = 70) -> dict[str, Any]:
        """An autoscaling/v2 HorizontalPodAutoscaler scaling Deployment `deployment` on CPU."""
        self.seed_namespace(namespace)
        spec: dict[str, Any] = {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment},
            "maxReplicas": max_replicas,
            "metrics": [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": cpu_utilization}}}],
        }
        if min_replicas is not None:
            spec["minReplicas"] = min_replicas
        return self._store("autoscaling/v2/horizontalpodautoscalers", namespace, {
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": ts(timedelta(days=10)),
                         "uid": _uid(namespace, "hpa", name)},
            "spec": spec,
            "status": {"currentReplicas": min_replicas or 1, "desiredReplicas": min_replicas or 1},
        })

    def set_log(self, namespace: str, pod: str, lines: LogLines, *, previous: bool = False) -> None:
        """What `GET …/pods/<pod>/log` answers (`previous=True`: the last terminated container's log).

        `pod` is the full name, or for a pod seeded by seed_deployment its suffix: the one pod
        of `namespace` whose name ends with `-<pod>`."""
        if (namespace, pod) not in self.pods:
            (pod,) = [name for ns, name in self.pods if ns == namespace and name.endswith(f"-{pod}")]
        self.logs[namespace, pod, previous] = [(NOW - ago, text) for ago, text in lines]

    def seed_pod_metrics(self, namespace: str, pod: str, usage: Mapping[str, tuple[str, str]]) -> None:
        """metrics-server's PodMetrics: container -> (cpu, memory) usage, e.g. {"app": ("412m", "498Mi")}.
        The first call makes metrics.k8s.io served at all."""
        self.kmock.resources[METRICS_RESOURCE] = kmock_lib.ResourceInfo(kind="PodMetrics", namespaced=True)
        self._store(METRICS_RESOURCE, namespace, {
            "kind": "PodMetrics", "apiVersion": "metrics.k8s.io/v1beta1",
            "metadata": {"name": pod, "namespace": namespace, "creationTimestamp": ts(timedelta(0))},
            "timestamp": ts(timedelta(seconds=30)), "window": "30s",
            "containers": [{"name": c, "usage": {"cpu": cpu, "memory": memory}}
                           for c, (cpu, memory) in usage.items()],
        })


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


def _serve_log(kube: KubeCluster) -> Any:
    # kmock has no `log` subresource; a real API server answers it as text/plain.
    def serve(request: kmock_lib.Request) -> Any:
        namespace, pod, params = request.namespace or "", request.name or "", request.params
        if (namespace, pod) not in kube.pods:
            return kmock_lib.KubernetesError(status=404, reason="NotFound", message=f'pods "{pod}" not found')
        previous = params.get("previous") == "true"
        lines = kube.logs.get((namespace, pod, previous))
        if lines is None and previous:
            return kmock_lib.KubernetesError(
                status=400, reason="BadRequest",
                message=f'previous terminated container "app" in pod "{pod}" not found')
        lines = lines or []
        if "sinceSeconds" in params:
            since = NOW - timedelta(seconds=int(params["sinceSeconds"]))
            lines = [(at, text) for at, text in lines if at >= since]
        if "tailLines" in params:
            lines = lines[len(lines) - min(int(params["tailLines"]), len(lines)):]
        stamped = params.get("timestamps") == "true"
        body = "".join(f"{log_stamp(at)} {text}\n" if stamped else f"{text}\n" for at, text in lines).encode()
        if "limitBytes" in params:
            body = body[: int(params["limitBytes"])]
        return kmock_lib.Response(status=200, payload=body, headers={"Content-Type": "text/plain"})

    return serve


# ---------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------


@pytest.fixture
async def kube(tmp_path: Path) -> AsyncIterator[KubeCluster]:
    """kmock's emulator with the API server's write semantics (kube_writes.ApiServerEmulator),
    served over HTTP as kmock's own `kmock` fixture serves it, + a kubeconfig."""
    # The Kubernetes client's classes, imported once per test process before the test starts (the
    # bot waits for them at start, in warm_up: seconds when several workers import at once).
    await asyncio.to_thread(load_models)
    async with ApiServerEmulator() as kmock, kmock_lib.Server(kmock):
        yield await _cluster(kmock, tmp_path)


async def _cluster(kmock: ApiServerEmulator, tmp_path: Path) -> KubeCluster:
    url = str(kmock.url).rstrip("/")
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", url)
    cluster = KubeCluster(kmock=kmock, url=url, kubeconfig_path=str(kubeconfig))
    # kmock lists a resource only once it is declared or has an object: without this, an
    # empty namespace's pod list is a 404 "Resource Not Found" instead of an empty list.
    for resource, kind, namespaced in RESOURCES:
        kmock.resources[resource] = kmock_lib.ResourceInfo(kind=kind, namespaced=namespaced)
    # Below the default priority, so a test's own reaction (e.g. a 403) wins.
    (kmock ** -1)["get", re.compile(r"/api/v1/namespaces/[^/]+")] << _serve_namespace(cluster)
    (kmock ** -1)["get", re.compile(r"/api/v1/namespaces/[^/]+/pods/[^/]+/log")] << _serve_log(cluster)
    # The official client asks for `/version/`; a real API server answers it like `/version`,
    # kmock only the latter.
    (kmock ** -1)["get", re.compile(r"^/version/$")] << kmock._serve_server_version
    # dryRun, resourceVersion, patch types and the scale subresource (kube_writes).
    for method, path, reaction in write_reactions(cluster):
        (kmock ** -1)[method, path] << reaction
    return cluster


@pytest.fixture
async def kube_api(kube: KubeCluster) -> AsyncIterator[Any]:
    """A real `kubernetes.aio` ApiClient talking to kmock over HTTP; closed at teardown."""
    api = await make_api_client(kube.kubeconfig_path)
    assert api is not None
    try:
        yield api
    finally:
        await api.close()


@pytest.fixture
async def unreachable_kube_api(tmp_path: Path) -> AsyncIterator[Any]:
    """An ApiClient whose kubeconfig points at a loopback port nothing listens on;
    `api.configuration.host` is that URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    api = await make_api_client(str(write_kubeconfig(tmp_path / "unreachable", f"http://127.0.0.1:{port}")))
    assert api is not None
    try:
        yield api
    finally:
        await api.close()
