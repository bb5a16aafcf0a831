"""The `pods` diagnostic, through kmock over real HTTP with the real `kubernetes.aio` client."""

from __future__ import annotations

import asyncio
import socket
import time
from datetime import timedelta
from pathlib import Path

import kmock as kmock_lib
import pytest
from kubernetes.aio import client

from diagnostics.kubernetes import (
    KubernetesConfigError,
    analyse_pod,
    humanise_age,
    make_api_client,
    pod_status,
)
from diagnostics.result import Result, Row, Status
from tests.plugins.kube import (
    NOW,
    KubeCluster,
    crashloop,
    image_pull_backoff,
    oom_killed,
    pending_unschedulable,
    running_not_ready,
    running_ready,
    seed_checkout_prod,
    write_kubeconfig,
)

pytestmark = pytest.mark.integration


async def check(api: client.ApiClient, deployment: str = "checkout", namespace: str = "prod", **kw) -> Result:
    return await pod_status(api, deployment, namespace, now=NOW, **kw)


def row_for(result: Result, suffix: str) -> Row:
    """The row of the pod whose generated name ends with `-<suffix>`."""
    rows = [r for r in result.rows if r.cells[0].endswith(f"-{suffix}")]
    assert len(rows) == 1, [r.cells[0] for r in result.rows]
    return rows[0]


# --- each unhealthy kind shows the reason a person would look for -----------------------


async def test_crashlooping_pod_shows_last_termination_reason(kube: KubeCluster, kube_api):
    kube.seed_deployment("checkout", "prod", pods=[
        running_ready(name="ok1"), running_ready(name="ok2"),
        crashloop(1, "Error", name="bad", restarts=7, last_exit_ago=timedelta(minutes=2)),
    ])

    result = await check(kube_api)

    bad = row_for(result, "bad")
    assert bad.detail == "CrashLoopBackOff — last exit 1 (Error) 2m ago"
    assert bad.status is Status.CRITICAL
    assert bad.cells[1:4] == ("Running", "0/1", "7")
    assert result.summary == "2/3 ready · 1 CrashLoopBackOff"
    assert result.status is Status.WARNING


async def test_crashlooping_pod_quotes_its_termination_message(kube: KubeCluster, kube_api):
    kube.seed_deployment("checkout", "prod", pods=[
        running_ready(name="ok"),
        crashloop(2, "Error", name="bad", message="panic: DATABASE_URL is not set\ngoroutine 1 [running]"),
    ])

    result = await check(kube_api)

    assert row_for(result, "bad").detail.endswith(": panic: DATABASE_URL is not set goroutine 1 [running]")


async def test_oomkilled_pod_names_exit_code_and_memory_limit(kube: KubeCluster, kube_api):
    kube.seed_deployment("checkout", "prod", pods=[
        running_ready(name="ok1"), running_ready(name="ok2"),
        oom_killed(name="oom", memory_limit="768Mi", last_exit_ago=timedelta(minutes=3)),
    ])

    result = await check(kube_api)

    oom = row_for(result, "oom")
    assert oom.detail.startswith("OOMKilled — exit 137, memory limit 768Mi, 3m ago")
    assert oom.status is Status.CRITICAL
    assert "1 OOMKilled" in result.summary


async def test_image_pull_backoff_names_the_image(kube: KubeCluster, kube_api):
    image = "registry.example.com/shop/checkout:1.4.3-typo"
    kube.seed_deployment("checkout", "prod", pods=[
        running_ready(name="ok1"), running_ready(name="ok2"), image_pull_backoff(image, name="pull"),
    ])

    result = await check(kube_api)

    pull = row_for(result, "pull")
    assert pull.detail == f'ImagePullBackOff — {image}: Back-off pulling image "{image}"'
    assert pull.status is Status.CRITICAL
    assert result.summary == "2/3 ready · 1 ImagePullBackOff"


async def test_err_image_pull_keeps_the_registry_message(kube: KubeCluster, kube_api):
    image = "registry.example.com/shop/checkout:nope"
    kube.seed_deployment("checkout", "prod", pods=[
        running_ready(name="ok"), image_pull_backoff(image, name="pull", reason="ErrImagePull"),
    ])

    result = await check(kube_api)

    detail = row_for(result, "pull").detail
    assert detail.startswith(f"ErrImagePull — {image}: rpc error: code = NotFound")


async def test_pending_pod_shows_scheduler_message(kube: KubeCluster, kube_api):
    message = "0/3 nodes are available: 3 Insufficient memory."
    kube.seed_deployment("checkout", "prod", pods=[
        running_ready(name="ok1"), running_ready(name="ok2"), pending_unschedulable(message, name="pend"),
    ])

    result = await check(kube_api)

    pending = row_for(result, "pend")
    assert pending.detail == f"Unschedulable: {message}"
    assert pending.cells[1] == "Pending"
    assert pending.cells[5] == "—"  # no node yet
    assert result.status is Status.WARNING


async def test_running_but_not_ready_pod_says_its_readiness_probe_fails(kube: KubeCluster, kube_api):
    kube.seed_deployment("checkout", "prod", pods=[
        running_ready(name="ok1"), running_ready(name="ok2"),
        running_not_ready(name="slow", not_ready_for=timedelta(minutes=5)),
    ])

    result = await check(kube_api)

    slow = row_for(result, "slow")
    assert slow.detail == (
        "Running but readiness probe failing for 5m (containers with unready status: [app])"
    )
    assert slow.status is Status.WARNING
    assert slow.cells[1:3] == ("Running", "0/1")
    assert result.summary == "2/3 ready · 1 NotReady"


# --- overall status ---------------------------------------------------------------------


async def test_all_pods_ready_is_ok_with_replica_fields(kube: KubeCluster, kube_api):
    kube.seed_deployment("checkout", "prod", pods=[running_ready(name=f"ok{i}") for i in range(3)])

    result = await check(kube_api)

    assert result.status is Status.OK
    assert result.title == "Pods · checkout (prod)"
    assert result.summary == "3/3 pods ready"
    assert result.columns == ("Pod", "Phase", "Ready", "Restarts", "Age", "Node")
    assert result.fields == {
        "Desired": "3", "Updated": "3", "Ready": "3", "Available": "3",
        "Image": "registry.example.com/shop/checkout:1.4.2",
    }
    assert [r.status for r in result.rows] == [Status.OK] * 3
    assert all(r.detail == "" for r in result.rows)
    assert result.rows[0].cells[1:] == ("Running", "1/1", "0", "3h12m", "node-a")


async def test_zero_available_replicas_is_critical(kube: KubeCluster, kube_api):
    kube.seed_deployment("checkout", "prod", pods=[
        image_pull_backoff(name="a"), image_pull_backoff(name="b"),
    ])

    result = await check(kube_api)

    assert result.fields["Available"] == "0"
    assert result.status is Status.CRITICAL
    assert result.summary == "0/2 ready · 2 ImagePullBackOff"


async def test_majority_crashlooping_is_critical_even_with_one_available(kube: KubeCluster, kube_api):
    kube.seed_deployment("checkout", "prod", pods=[
        running_ready(name="ok"), crashloop(name="c1"), oom_killed(name="c2"),
    ])

    result = await check(kube_api)

    assert result.fields["Available"] == "1"
    assert result.status is Status.CRITICAL


async def test_deployment_with_no_pods_at_all_is_critical_and_says_so(kube: KubeCluster, kube_api):
    kube.seed_deployment("checkout", "prod", replicas=2, pods=[])

    result = await check(kube_api)

    assert result.status is Status.CRITICAL
    assert result.summary == "0/2 ready · no pods found"
    assert result.rows == []


async def test_rollout_with_old_pods_left_is_mentioned_in_the_summary(kube: KubeCluster, kube_api):
    kube.seed_deployment(
        "checkout", "prod", replicas=3, pods=[running_ready(name=f"ok{i}") for i in range(4)],
        status={"replicas": 4, "updatedReplicas": 1, "readyReplicas": 3, "availableReplicas": 3},
    )

    result = await check(kube_api)

    assert result.summary == "3/3 ready · rollout: 1/3 updated"


async def test_replica_failure_condition_explains_missing_pods(kube: KubeCluster, kube_api):
    quota = 'pods "checkout-5d8c7b9f4-x2x9q" is forbidden: exceeded quota: compute, requested: memory=512Mi'
    kube.seed_deployment("checkout", "prod", replicas=2, pods=[], status={
        "replicas": 0, "updatedReplicas": 0, "readyReplicas": 0, "availableReplicas": 0,
        "conditions": [
            {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"},
            {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": quota},
        ],
    })

    result = await check(kube_api)

    assert result.status is Status.CRITICAL
    assert result.lines == [f"ReplicaFailure: FailedCreate — {quota}"]


# --- which pods, in which order ---------------------------------------------------------


async def test_pods_of_other_deployments_are_excluded(kube: KubeCluster, kube_api):
    seed_checkout_prod(kube)
    # The premise: kmock ignores the label selector, so the API itself returns the other pod.
    raw = await client.CoreV1Api(kube_api).list_namespaced_pod("prod", label_selector="app=checkout")
    assert any(p.metadata.name.startswith("payments-") for p in raw.items)

    result = await check(kube_api)

    names = [r.cells[0] for r in result.rows]
    assert len(names) == 3
    assert all(n.startswith("checkout-") for n in names)


async def test_unhealthy_pods_come_first_worst_first(kube: KubeCluster, kube_api):
    kube.seed_deployment("checkout", "prod", pods=[
        running_ready(name="a-ok"), running_not_ready(name="b-slow"), crashloop(name="c-crash"),
        running_ready(name="d-ok"), oom_killed(name="e-oom"), pending_unschedulable(name="f-pend"),
    ])

    result = await check(kube_api)

    order = [r.cells[0].rsplit("-", 2)[-2] + "-" + r.cells[0].rsplit("-", 1)[-1] for r in result.rows]
    assert order == ["e-oom", "c-crash", "f-pend", "b-slow", "a-ok", "d-ok"]
    assert result.summary == "2/6 ready · 1 OOMKilled · 1 CrashLoopBackOff · 1 Unschedulable · 1 NotReady"


async def test_many_healthy_pods_are_folded_with_a_note(kube: KubeCluster, kube_api):
    kube.seed_deployment("checkout", "prod", pods=[
        crashloop(name="crash"), *[running_ready(name=f"ok{i:02}") for i in range(20)],
    ])

    result = await check(kube_api, fold_healthy_over=8)

    assert result.rows[0].cells[0].endswith("-crash")  # unhealthy rows are never folded
    assert len(result.rows) == 1 + 3
    assert result.folded_rows_note == "… and 17 more healthy pods"
    assert result.summary == "20/21 ready · 1 CrashLoopBackOff"


async def test_healthy_pods_up_to_the_threshold_are_all_listed(kube: KubeCluster, kube_api):
    kube.seed_deployment("checkout", "prod", pods=[running_ready(name=f"ok{i}") for i in range(8)])

    result = await check(kube_api, fold_healthy_over=8)

    assert len(result.rows) == 8
    assert result.folded_rows_note == ""


# --- not found, refused, unreachable ----------------------------------------------------


async def test_missing_deployment_says_it_is_not_in_the_namespace(kube: KubeCluster, kube_api):
    kube.seed_namespace("prod")

    result = await check(kube_api, "checkout", "prod")

    assert result.status is Status.UNKNOWN
    assert result.summary == "Deployment `checkout` not found in namespace `prod`"
    assert result.rows == []


async def test_missing_namespace_says_the_namespace_is_not_found(kube: KubeCluster, kube_api):
    seed_checkout_prod(kube)

    result = await check(kube_api, "checkout", "prdo")

    assert result.status is Status.UNKNOWN
    assert result.summary == "Namespace `prdo` not found"


async def test_namespace_read_forbidden_still_reports_the_missing_deployment(kube: KubeCluster, kube_api):
    kube.seed_namespace("prod")
    kube.kmock["get /api/v1/namespaces/prod"] << kmock_lib.KubernetesError(
        status=403, reason="Forbidden", message='namespaces "prod" is forbidden')

    result = await check(kube_api, "checkout", "prod")

    assert result.status is Status.UNKNOWN
    assert result.summary == "Deployment `checkout` not found in namespace `prod`"


async def test_forbidden_request_is_an_error_with_the_api_reason(kube: KubeCluster, kube_api):
    seed_checkout_prod(kube)
    reason = ('pods is forbidden: User "system:serviceaccount:ops:chatops" cannot list resource "pods" '
              'in API group "" in the namespace "prod"')
    kube.kmock["get /api/v1/namespaces/prod/pods"] << kmock_lib.KubernetesError(
        status=403, reason="Forbidden", message=reason)

    result = await check(kube_api)

    assert result.status is Status.ERROR
    assert result.summary == f"Kubernetes refused the request (403 Forbidden): {reason}"


async def test_other_api_errors_name_the_status_and_the_server(kube: KubeCluster, kube_api):
    kube.kmock["get /apis/apps/v1/namespaces/prod/deployments/checkout"] << kmock_lib.KubernetesError(
        status=503, reason="Service Unavailable", message="etcdserver: leader changed")

    result = await check(kube_api)

    assert result.status is Status.ERROR
    assert result.summary == (
        f"Kubernetes: API error 503 Service Unavailable at {kube.url}: etcdserver: leader changed"
    )


async def test_slow_api_server_gives_a_timeout_error_within_the_timeout(kube: KubeCluster, kube_api):
    async def hang() -> dict:
        await asyncio.sleep(10)
        return {}

    kube.kmock["get /apis/apps/v1/namespaces/prod/deployments/checkout"] << hang

    started = time.monotonic()
    result = await check(kube_api, timeout=0.5)

    assert time.monotonic() - started < 2
    assert result.status is Status.ERROR
    assert result.summary == f"Kubernetes: timed out after 0.5 s at {kube.url}"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_unreachable_api_server_gives_a_connection_error_within_the_timeout(tmp_path: Path):
    url = f"http://127.0.0.1:{_closed_port()}"
    api = await make_api_client(str(write_kubeconfig(tmp_path / "kubeconfig", url)))
    assert api is not None
    try:
        started = time.monotonic()
        result = await pod_status(api, "checkout", "prod", timeout=3)
        elapsed = time.monotonic() - started
    finally:
        await api.close()

    assert elapsed < 3
    assert result.status is Status.ERROR
    assert result.summary == f"Kubernetes: cannot connect to {url}: connection refused"
    assert "\n" not in result.summary


# --- client factory ---------------------------------------------------------------------


async def test_client_from_kubeconfig_points_at_its_server_with_its_token(kube: KubeCluster):
    api = await make_api_client(kube.kubeconfig_path)
    assert api is not None
    try:
        assert api.configuration.host == kube.url
        assert api.configuration.api_key["BearerToken"] == "Bearer kmock-dummy-token"
    finally:
        await api.close()


async def test_client_factory_leaves_the_global_default_configuration_alone(kube: KubeCluster):
    before = client.Configuration.get_default_copy().host
    api = await make_api_client(kube.kubeconfig_path)
    assert api is not None
    await api.close()

    assert client.Configuration.get_default_copy().host == before != kube.url


async def test_no_kubeconfig_outside_a_cluster_means_not_configured():
    assert await make_api_client(None, in_cluster=False) is None


async def test_in_cluster_without_a_service_account_raises_a_config_error(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)

    with pytest.raises(KubernetesConfigError, match=r"^in-cluster config: Service host/port is not set\.$"):
        await make_api_client(None, in_cluster=True)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("clusters:\n  - name: a\n    cluster: {server: http://x\n", "not valid YAML (line "),
        ("- just\n- a list\n", "expected a mapping with clusters, contexts and users, but it is a list"),
        ("", "expected a mapping with clusters, contexts and users, but it is empty"),
        ("apiVersion: v1\nkind: Config\nclusters: []\n", "Expected key current-context at the top level"),
        (
            "current-context: c\ncontexts: [{name: c, context: {cluster: a, user: u}}]\n"
            "clusters: [{name: b, cluster: {server: http://x}}]\nusers: []\n",
            "Expected object with name a in clusters list",
        ),
        (
            "current-context: c\ncontexts: [{name: c, context: {cluster: a}}]\n"
            "clusters: [{name: a, cluster: {insecure-skip-tls-verify: true}}]\n",
            "the current context's cluster has no `server` URL",
        ),
    ],
    ids=["bad-yaml", "not-a-mapping", "empty", "no-current-context", "unknown-cluster", "no-server"],
)
async def test_malformed_kubeconfig_raises_a_readable_config_error(
    tmp_path: Path, content: str, expected: str
):
    path = tmp_path / "kubeconfig"
    path.write_text(content)

    with pytest.raises(KubernetesConfigError) as caught:
        await make_api_client(str(path))

    message = str(caught.value)
    assert message.startswith(f"kubeconfig {path}: ")
    assert expected in message
    assert "\n" not in message


async def test_missing_kubeconfig_file_raises_a_config_error_naming_it(tmp_path: Path):
    path = tmp_path / "nope.yaml"

    with pytest.raises(KubernetesConfigError, match=r"^kubeconfig .*nope\.yaml: no such file$"):
        await make_api_client(str(path))


# --- the pure analysis, without a server ------------------------------------------------


def test_terminating_pod_is_flagged_with_how_long():
    pod = running_ready(name="x")
    pod["metadata"].update(name="checkout-x", deletionTimestamp="2025-03-14T11:55:00Z",
                           deletionGracePeriodSeconds=30)

    health = analyse_pod(pod, now=NOW)

    assert health.problem == "Terminating"
    assert health.detail == "Terminating for 5m (grace period 30s)"
    assert health.status is Status.WARNING


def test_evicted_pod_shows_the_eviction_message():
    pod = running_ready(name="x")
    pod["metadata"]["name"] = "checkout-x"
    pod["status"].update(phase="Failed", reason="Evicted",
                         message="The node was low on resource: ephemeral-storage.")

    health = analyse_pod(pod, now=NOW)

    assert health.detail == "Evicted — The node was low on resource: ephemeral-storage."
    assert health.phase == "Failed"


def test_crashlooping_init_container_is_named():
    pod = running_ready(name="x")
    pod["metadata"]["name"] = "checkout-x"
    pod["status"].update(phase="Pending", containerStatuses=[{
        **pod["status"]["containerStatuses"][0], "ready": False,
        "state": {"waiting": {"reason": "PodInitializing"}},
    }], initContainerStatuses=[{
        "name": "migrate", "image": "registry.example.com/shop/migrate:7", "imageID": "", "ready": False,
        "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"exitCode": 2, "reason": "Error", "finishedAt": "2025-03-14T11:59:00Z"}},
    }])

    health = analyse_pod(pod, now=NOW)

    assert health.problem == "Init:CrashLoopBackOff"
    assert health.detail == "Init:CrashLoopBackOff — init container `migrate` last exit 2 (Error) 1m ago"
    assert health.status is Status.CRITICAL
    assert health.restarts == 4


@pytest.mark.parametrize(
    ("ago", "shown"),
    [
        (timedelta(seconds=42), "42s"),
        (timedelta(minutes=12, seconds=5), "12m"),
        (timedelta(hours=3, minutes=12), "3h12m"),
        (timedelta(hours=5), "5h"),
        (timedelta(days=1, hours=6), "1d6h"),
        (timedelta(days=4, hours=7), "4d"),
    ],
)
def test_ages_are_humanised_like_kubectl(ago: timedelta, shown: str):
    assert humanise_age(NOW - ago, NOW) == shown
