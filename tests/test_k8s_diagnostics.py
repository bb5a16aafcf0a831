"""The runbook's Kubernetes checks (deploy, events, nodes, logs, top, config), each through
kmock over real HTTP with the real `kubernetes.aio` client."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from datetime import timedelta
from typing import Any

import kmock as kmock_lib
import pytest

from bot.all_sections import Sections
from bot.commands.table import build_table
from bot.errors import UsageError
from diagnostics.cache import QueryCache
from diagnostics.kubernetes import (
    LogQuery,
    configmap_contents,
    deployment_rollout,
    node_status,
    pod_status,
    pod_usage,
    recent_events,
    workload_logs,
)
from diagnostics.kubernetes import logs as logs_module
from diagnostics.result import Result, Status
from tests.plugins.kube import (
    NOW,
    KubeCluster,
    crashloop,
    log_lines,
    node,
    oom_killed,
    running_ready,
    seed_checkout_prod,
    ts,
)

pytestmark = pytest.mark.integration


def pod_name(kube: KubeCluster, suffix: str, namespace: str = "prod") -> str:
    (name,) = [n for ns, n in kube.pods if ns == namespace and n.endswith(f"-{suffix}")]
    return name


def requests_to(kube: KubeCluster, path_part: str) -> list[str]:
    """Paths of the requests kmock received that contain `path_part` (iterating kmock yields them)."""
    return [str(r.url.path) for r in kube.kmock if path_part in str(r.url.path)]


def stalled_status(updated: int = 1, available: int = 3) -> dict:
    return {
        "observedGeneration": 4, "replicas": 4, "updatedReplicas": updated, "readyReplicas": available,
        "availableReplicas": available, "unavailableReplicas": 1,
        "conditions": [
            {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
             "message": "Deployment has minimum availability.",
             "lastUpdateTime": ts(timedelta(days=2)), "lastTransitionTime": ts(timedelta(days=2))},
            {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
             "message": 'ReplicaSet "checkout-7f9c6d5b8d" has timed out progressing.',
             "lastUpdateTime": ts(timedelta(minutes=2)), "lastTransitionTime": ts(timedelta(minutes=2))},
        ],
    }


# --- deploy -------------------------------------------------------------------------------


async def test_completed_rollout_is_ok_with_replicas_image_revision_and_last_rollout(kube, kube_api):
    kube.seed_deployment("checkout", "prod", pods=[running_ready(name=f"ok{i}") for i in range(3)],
                         rolled_out=timedelta(hours=5))

    result = await deployment_rollout(kube_api, "checkout", "prod", now=NOW)

    assert result.status is Status.OK
    assert result.title == "Deployment · checkout (prod)"
    assert result.summary == "rollout complete · 3/3 available"
    assert result.fields == {
        "Desired": "3", "Updated": "3", "Ready": "3", "Available": "3", "Revision": "3",
        "Last rollout": "5h ago (2025-03-14 07:00 UTC)",
        "Image": "registry.example.com/shop/checkout:1.4.2",
    }
    assert [r.cells[:3] for r in result.rows] == [
        ("Available", "True", "MinimumReplicasAvailable"), ("Progressing", "True", "NewReplicaSetAvailable"),
    ]
    assert all(r.status is Status.OK for r in result.rows)


async def test_stalled_rollout_is_critical_with_the_deadline_reason_and_both_replicasets(kube, kube_api):
    dep = kube.seed_deployment("checkout", "prod", replicas=3, status=stalled_status(),
                               pods=[running_ready(name=f"ok{i}") for i in range(3)],
                               rolled_out=timedelta(days=2))
    dep["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = "4"
    kube.kmock.objects["apps/v1/deployments", "prod", "checkout"] = dep
    kube.seed_replicaset(dep, "7f9c6d5b8d", revision=4, created=timedelta(minutes=12), replicas=1,
                         image="registry.example.com/shop/checkout:1.5.0")

    result = await deployment_rollout(kube_api, "checkout", "prod", now=NOW)

    assert result.status is Status.CRITICAL
    assert result.summary == ('rollout stalled: ProgressDeadlineExceeded — ReplicaSet "checkout-7f9c6d5b8d" '
                              "has timed out progressing. · 3/3 available")
    assert result.fields["Revision"] == "4"
    assert result.fields["Last rollout"] == "12m ago (2025-03-14 11:48 UTC)"
    assert result.fields["New ReplicaSet"] == "checkout-7f9c6d5b8d (rev 4): 0/1 ready"
    assert result.fields["Old ReplicaSets"].endswith("(rev 3): 3/3 ready")
    progressing = [r for r in result.rows if r.cells[0] == "Progressing"][0]
    assert progressing.status is Status.CRITICAL
    assert progressing.detail == 'ReplicaSet "checkout-7f9c6d5b8d" has timed out progressing.'


async def test_rollout_in_progress_is_a_warning_saying_how_far_it_got(kube: KubeCluster, kube_api):
    status = stalled_status(updated=2, available=3)
    status["conditions"][1].update(status="True", reason="ReplicaSetUpdated",
                                   message='ReplicaSet "checkout-7f9c6d5b8d" is progressing.')
    kube.seed_deployment("checkout", "prod", replicas=3, status=status, pods=[running_ready(name="ok")])

    result = await deployment_rollout(kube_api, "checkout", "prod", now=NOW)

    assert result.status is Status.WARNING
    assert result.summary == "rollout in progress: 2 of 3 new replicas updated · 3/3 available"


async def test_deployment_with_nothing_available_is_critical(kube: KubeCluster, kube_api):
    kube.seed_deployment("checkout", "prod", pods=[crashloop(name="a"), oom_killed(name="b")])

    result = await deployment_rollout(kube_api, "checkout", "prod", now=NOW)

    assert result.status is Status.CRITICAL
    assert result.summary.endswith("· 0/2 available")
    available = [r for r in result.rows if r.cells[0] == "Available"][0]
    assert available.status is Status.WARNING
    assert available.detail == "Deployment does not have minimum availability."


async def test_missing_deployment_or_namespace_is_a_one_line_unknown(kube: KubeCluster, kube_api):
    kube.seed_namespace("prod")

    missing = await deployment_rollout(kube_api, "checkout", "prod")
    no_namespace = await deployment_rollout(kube_api, "checkout", "prdo")

    assert missing.status is Status.UNKNOWN
    assert missing.summary == "Deployment `checkout` not found in namespace `prod`"
    assert (no_namespace.status, no_namespace.summary) == (Status.UNKNOWN, "Namespace `prdo` not found")


async def test_deploy_and_pods_asked_together_share_one_deployment_read(kube: KubeCluster, kube_api):
    seed_checkout_prod(kube)
    cache = QueryCache(ttl=5)

    await asyncio.gather(deployment_rollout(kube_api, "checkout", "prod", cache=cache),
                         pod_status(kube_api, "checkout", "prod", cache=cache))

    assert len(requests_to(kube, "/deployments/checkout")) == 1


# --- events -------------------------------------------------------------------------------


async def test_repeated_warnings_fold_into_one_row_with_summed_counts_warnings_first(kube, kube_api):
    pod = "checkout-5d8c7b9f4d-x2x9q"
    kube.seed_event("prod", f"Pod/{pod}", "BackOff", "Back-off restarting failed container app", count=30,
                    last_seen=timedelta(minutes=1))
    kube.seed_event("prod", f"Pod/{pod}", "BackOff", "Back-off restarting failed container app", count=7,
                    last_seen=timedelta(minutes=20))
    kube.seed_event("prod", f"Pod/{pod}", "Unhealthy", "Readiness probe failed: HTTP 503", count=12,
                    last_seen=timedelta(minutes=3))
    kube.seed_event("prod", "Deployment/checkout", "ScalingReplicaSet",
                    "Scaled up replica set checkout-5d8c7b9f4d to 3", type="Normal",
                    last_seen=timedelta(seconds=30))

    result = await recent_events(kube_api, "prod", now=NOW)

    assert result.status is Status.WARNING
    assert result.summary == "Warnings: BackOff ×37, Unhealthy ×12 · 1 normal event"
    assert [r.cells for r in result.rows] == [
        (f"pod/{pod}", "BackOff ×37", "1m ago"),
        (f"pod/{pod}", "Unhealthy ×12", "3m ago"),
        ("deployment/checkout", "ScalingReplicaSet", "30s ago"),
    ]
    assert result.rows[0].detail == "Back-off restarting failed container app"
    assert [r.status for r in result.rows] == [Status.WARNING, Status.WARNING, Status.OK]


async def test_events_for_a_deployment_include_its_replicasets_and_pods_but_not_lookalikes(kube: KubeCluster,
                                                                                           kube_api):
    for involved in ("Deployment/checkout", "ReplicaSet/checkout-5d8c7b9f4d", "Pod/checkout-5d8c7b9f4d-x2x9q",
                     "Deployment/checkout-worker", "Pod/checkout-worker-6c9d8f7b5c-abcde",
                     "Pod/payments-7c6d5-q1w2e"):
        kube.seed_event("prod", involved, "Event", f"about {involved}")

    deployment = await recent_events(kube_api, "prod", involved=("Deployment", "checkout"), now=NOW)
    pod = await recent_events(kube_api, "prod", involved=("Pod", "checkout-5d8c7b9f4d-x2x9q"), now=NOW)

    assert sorted(r.cells[0] for r in deployment.rows) == [
        "deployment/checkout", "pod/checkout-5d8c7b9f4d-x2x9q", "replicaset/checkout-5d8c7b9f4d",
    ]
    assert deployment.title == "Events · deployment/checkout (prod)"
    assert [r.cells[0] for r in pod.rows] == ["pod/checkout-5d8c7b9f4d-x2x9q"]


async def test_many_events_are_bounded_with_a_note_of_the_rest(kube: KubeCluster, kube_api):
    for i in range(40):
        kube.seed_event("prod", f"Pod/web-{i:02}", "Pulled", "Container image already present",
                        type="Normal", last_seen=timedelta(minutes=i))
    kube.seed_event("prod", "Pod/web-old", "FailedMount", "MountVolume.SetUp failed",
                    last_seen=timedelta(minutes=59))

    result = await recent_events(kube_api, "prod", now=NOW, max_rows=30)

    assert len(result.rows) == 30
    assert result.rows[0].cells[0] == "pod/web-old"  # a warning beats any newer normal event
    assert result.rows[1].cells[0] == "pod/web-00"
    assert result.folded_rows_note == "… and 11 older events not shown"


async def test_only_normal_events_is_ok_and_no_events_says_so(kube: KubeCluster, kube_api):
    kube.seed_event("prod", "Deployment/checkout", "ScalingReplicaSet", "Scaled up", type="Normal")
    kube.seed_namespace("quiet")

    normal = await recent_events(kube_api, "prod", now=NOW)
    quiet = await recent_events(kube_api, "quiet", now=NOW)
    nowhere = await recent_events(kube_api, "nosuch", now=NOW)

    assert (normal.status, normal.summary) == (Status.OK, "No warnings · 1 normal event")
    assert quiet.status is Status.OK
    assert quiet.summary.startswith("No events for namespace `quiet`")
    assert (nowhere.status, nowhere.summary) == (Status.UNKNOWN, "Namespace `nosuch` not found")


# --- nodes --------------------------------------------------------------------------------


async def test_all_nodes_ready_is_ok_with_roles_age_and_kubelet_version(kube: KubeCluster, kube_api):
    kube.seed_node(node("cp-1", roles=["control-plane"], age=timedelta(days=90)))
    kube.seed_node(node("worker-1", kubelet="v1.30.2", age=timedelta(hours=3)))

    result = await node_status(kube_api, now=NOW)

    assert result.status is Status.OK
    assert result.summary == "2/2 nodes ready"
    assert [r.cells for r in result.rows] == [
        ("cp-1", "Ready", "control-plane", "90d", "v1.30.4"),
        ("worker-1", "Ready", "worker", "3h", "v1.30.2"),
    ]


async def test_not_ready_node_is_critical_and_listed_first_with_why(kube: KubeCluster, kube_api):
    kube.seed_node(node("a-fine"))
    kube.seed_node(node("b-pressed", pressures=["MemoryPressure", "DiskPressure"]))
    kube.seed_node(node("c-cordoned", unschedulable=True))
    kube.seed_node(node("d-down", ready=False, not_ready_for=timedelta(minutes=7)))

    result = await node_status(kube_api, now=NOW)

    assert result.status is Status.CRITICAL
    assert result.summary == "3/4 nodes ready · 1 NotReady · 1 MemoryPressure · 1 DiskPressure · 1 cordoned"
    assert [r.cells[:2] for r in result.rows] == [
        ("d-down", "NotReady"), ("b-pressed", "Ready"), ("c-cordoned", "Ready,SchedulingDisabled"),
        ("a-fine", "Ready"),
    ]
    down, pressed, cordoned, fine = result.rows
    assert down.status is Status.CRITICAL
    assert down.detail == "NotReady for 7m — NodeStatusUnknown: Kubelet stopped posting node status"
    assert pressed.status is Status.WARNING
    assert pressed.detail == ("MemoryPressure for 4m: kubelet has insufficient memory available; "
                              "DiskPressure for 4m: kubelet has disk pressure")
    assert cordoned.status is Status.WARNING and "cordoned" in cordoned.detail
    assert fine.status is Status.OK and fine.detail == ""


async def test_pressure_without_not_ready_is_a_warning(kube: KubeCluster, kube_api):
    kube.seed_node(node("a", pressures=["PIDPressure"]))

    result = await node_status(kube_api, now=NOW)

    assert result.status is Status.WARNING
    assert result.summary == "1/1 nodes ready · 1 PIDPressure"


async def test_a_node_the_client_cannot_model_is_one_flagged_row_and_the_others_are_shown(kube: KubeCluster, kube_api):
    kube.seed_node(node("a-fine"))
    kube.seed_node(node("b-down", ready=False))
    odd = node("node-x")
    del odd["status"]["nodeInfo"]["kubeletVersion"]
    kube.seed_node(odd)

    result = await node_status(kube_api, now=NOW)

    assert result.status is Status.CRITICAL  # b-down still decides
    assert result.summary == "1/2 nodes ready · 1 NotReady · 1 unreadable"
    assert [(r.cells[0], r.status) for r in result.rows] == [
        ("b-down", Status.CRITICAL), ("node-x", Status.WARNING), ("a-fine", Status.OK),
    ]
    flagged = result.rows[1]
    assert flagged.detail == "the API's answer lacks NodeSystemInfo.kubeletVersion; not analysed"
    assert "pydantic" not in repr(result) and "validation error" not in repr(result)


async def test_an_answer_that_is_not_a_node_list_is_an_error_without_a_dump(kube: KubeCluster, kube_api):
    kube.kmock["get /api/v1/nodes"] << {"kind": "Status"}

    result = await node_status(kube_api, now=NOW)

    assert result.status is Status.ERROR
    assert result.summary.endswith(": not a node list")


# --- logs ---------------------------------------------------------------------------------


@pytest.fixture
def crashing_checkout(kube: KubeCluster) -> KubeCluster:
    """checkout: a ready pod and a crashlooping one whose lines interleave in time."""
    kube.seed_deployment("checkout", "prod", pods=[running_ready(name="aaaaa"), crashloop(name="bbbbb")])
    kube.seed_deployment("payments", "prod", pods=[running_ready(name="ccccc")])
    kube.set_log("prod", "aaaaa", log_lines("GET /cart 200", "GET /cart 200", "POST /pay 502 upstream error",
                                            start=timedelta(seconds=60), step=timedelta(seconds=20)))
    kube.set_log("prod", "bbbbb", log_lines("starting checkout 1.4.2", "connecting to db",
                                            start=timedelta(seconds=50), step=timedelta(seconds=20)))
    kube.set_log("prod", "bbbbb", log_lines("starting checkout 1.4.2", "panic: DATABASE_URL is not set",
                                            start=timedelta(minutes=3)), previous=True)
    kube.set_log("prod", "ccccc", log_lines("payments line"))
    return kube


async def test_deployment_logs_are_merged_by_time_with_pod_prefixes(crashing_checkout: KubeCluster, kube_api):
    result = await workload_logs(kube_api, "checkout", "prod", now=NOW)

    assert result.lines == [
        "[aaaaa] 2025-03-14T11:59:00.000Z GET /cart 200",
        "[bbbbb] 2025-03-14T11:59:10.000Z starting checkout 1.4.2",
        "[aaaaa] 2025-03-14T11:59:20.000Z GET /cart 200",
        "[bbbbb] 2025-03-14T11:59:30.000Z connecting to db",
        "[aaaaa] 2025-03-14T11:59:40.000Z POST /pay 502 upstream error",
    ]
    assert result.summary == "5 lines from 2 pods · 1 mention error/fatal/panic"
    assert result.status is Status.WARNING
    assert result.files == []
    (hint,) = result.rows
    assert hint.cells[0].endswith("-bbbbb")
    assert hint.detail == "CrashLoopBackOff, 7 restarts — add --previous for the crashed container's log"
    logs_read = requests_to(crashing_checkout, "/log")
    assert len(logs_read) == 2 and not any("payments" in p for p in logs_read)


async def test_previous_reads_the_crashed_log_and_notes_pods_without_one(crashing_checkout, kube_api):
    result = await workload_logs(kube_api, "checkout", "prod", LogQuery(previous=True), now=NOW)

    assert result.title == "Logs (previous) · checkout (prod)"
    assert result.lines == [
        "[bbbbb] 2025-03-14T11:57:00.000Z starting checkout 1.4.2",
        "[bbbbb] 2025-03-14T11:57:01.000Z panic: DATABASE_URL is not set",
    ]
    (no_previous,) = result.rows
    assert no_previous.cells[0].endswith("-aaaaa")
    assert no_previous.detail.startswith('no log: previous terminated container "app" in pod')


@pytest.mark.parametrize(
    ("grep", "expected"),
    [("ERROR", ["POST /pay 502 upstream error"]), ("CONNECTING TO", ["connecting to db"]), ("[a-z]+", [])],
    ids=["case-insensitive", "phrase", "not-a-regex"],
)
async def test_grep_keeps_lines_containing_the_text_in_any_case(crashing_checkout, kube_api, grep, expected):
    result = await workload_logs(kube_api, "checkout", "prod", LogQuery(grep=grep), now=NOW)

    assert [line.split(" ", 2)[2] for line in result.lines] == expected
    if not expected:
        assert result.summary == "No lines matching `[a-z]+` in 5 lines from 2 pods"


async def test_tail_keeps_the_newest_lines_and_since_is_sent_to_the_server(crashing_checkout, kube_api):
    tailed = await workload_logs(kube_api, "checkout", "prod", LogQuery(tail=2), now=NOW)
    since = await workload_logs(kube_api, "checkout", "prod", LogQuery(since_seconds=35), now=NOW)

    assert [line[:7] for line in tailed.lines] == ["[bbbbb]", "[aaaaa]"]
    assert tailed.lines[-1].endswith("POST /pay 502 upstream error")
    assert [line.split(" ", 2)[2] for line in since.lines] == ["connecting to db",
                                                              "POST /pay 502 upstream error"]
    assert since.fields["Since"] == "35s"


async def test_large_logs_are_parsed_and_merged_off_the_event_loop_small_ones_on_it(kube, kube_api, monkeypatch):
    # 2 pods x 2,000 lines of 100 characters (200 KB each): parsed on the loop, they would block it
    # ~20 ms each, and merging them ~40 ms more; a deployment of 20 pods, half a second.
    kube.seed_deployment("checkout", "prod", pods=[running_ready(name="aaaaa"), running_ready(name="bbbbb")])
    kube.seed_deployment("payments", "prod", pods=[running_ready(name="ccccc")])
    for pod in ("aaaaa", "bbbbb"):
        kube.set_log("prod", pod, log_lines(*[f"{pod} line {i:04} " + "x" * 80 for i in range(2000)],
                                            step=timedelta(milliseconds=100)))
    kube.set_log("prod", "ccccc", log_lines("payments line"))
    threads: dict[str, set[int]] = {"parse_log": set(), "summarise_logs": set()}
    def recording(name: str) -> Any:
        real, seen = getattr(logs_module, name), threads[name]

        def run(*args: Any, **kwargs: Any) -> Any:
            seen.add(threading.get_ident())
            return real(*args, **kwargs)
        return run

    for name in threads:
        monkeypatch.setattr(logs_module, name, recording(name))
    loop_thread = threading.get_ident()

    large = await workload_logs(kube_api, "checkout", "prod", LogQuery(since_seconds=3600), now=NOW)

    assert large.summary.startswith("4000 lines from 2 pods")
    assert threads["parse_log"] and loop_thread not in threads["parse_log"]
    assert threads["summarise_logs"] and loop_thread not in threads["summarise_logs"]

    for seen in threads.values():
        seen.clear()
    small = await workload_logs(kube_api, "payments", "prod", now=NOW)

    assert small.lines[-1].endswith("payments line")
    assert threads == {"parse_log": {loop_thread}, "summarise_logs": {loop_thread}}  # no thread hop for a line


async def test_a_large_pod_list_is_decoded_off_the_event_loop_a_small_one_on_it(kube, kube_api, monkeypatch):
    from kubernetes.aio.client import ApiClient

    kube.seed_deployment("checkout", "prod", pods=[running_ready(name=f"p{i:03}") for i in range(60)])
    kube.seed_deployment("payments", "staging", pods=[running_ready(name="one")])
    decoded: dict[str, set[int]] = {}
    real = ApiClient.response_deserialize

    def recording(self: Any, response_data: Any, response_types_map: Any = None) -> Any:
        decoded.setdefault((response_types_map or {}).get("200"), set()).add(threading.get_ident())
        return real(self, response_data, response_types_map)

    monkeypatch.setattr(ApiClient, "response_deserialize", recording)
    loop_thread = threading.get_ident()

    large = await pod_status(kube_api, "checkout", "prod")
    assert "60" in large.summary, large.summary
    assert decoded["V1PodList"] and loop_thread not in decoded["V1PodList"]

    decoded.clear()
    small = await pod_status(kube_api, "payments", "staging")
    assert small.rows and decoded["V1PodList"] == {loop_thread}


async def test_a_pod_name_reads_just_that_pod_without_a_prefix(crashing_checkout: KubeCluster, kube_api):
    name = pod_name(crashing_checkout, "aaaaa")

    result = await workload_logs(kube_api, name, "prod", kind="pod", now=NOW)

    assert result.lines[0] == "2025-03-14T11:59:00.000Z GET /cart 200"
    assert len(result.lines) == 3


async def test_long_log_keeps_the_newest_lines_inline_and_the_whole_log_as_a_file(kube, kube_api):
    kube.seed_deployment("checkout", "prod", pods=[running_ready(name="aaaaa")])
    texts = [f"line {i:03} " + "x" * 300 for i in range(150)]
    kube.set_log("prod", "aaaaa", log_lines(*texts))

    result = await workload_logs(kube_api, "checkout", "prod", LogQuery(tail=500), now=NOW)

    assert len(result.lines) == 20
    assert result.lines[0].startswith("[aaaaa] ") and "line 130 " in result.lines[0]
    assert all(len(line) <= 140 for line in result.lines)
    (attachment,) = result.files
    assert attachment.filename == "logs-checkout-prod.txt"
    assert attachment.mimetype == "text/plain"
    content = attachment.content.decode().splitlines()
    assert len(content) == 150
    assert content[0].endswith(texts[0]) and content[-1].endswith(texts[-1])
    assert result.folded_rows_note == "newest 20 of 150 lines shown; all of them in logs-checkout-prod.txt"


async def test_pods_logs_are_read_concurrently(crashing_checkout: KubeCluster, kube_api):
    async def slow(request: kmock_lib.Request) -> kmock_lib.Response:
        await asyncio.sleep(0.6)
        return kmock_lib.Response(status=200, payload=b"2025-03-14T11:59:00Z slow\n",
                                  headers={"Content-Type": "text/plain"})

    crashing_checkout.kmock["get", re.compile(r".*/log")] << slow

    started = time.monotonic()
    result = await workload_logs(kube_api, "checkout", "prod", now=NOW)

    assert time.monotonic() - started < 1.1
    assert len(result.lines) == 2


async def test_missing_workload_says_neither_a_deployment_nor_a_pod(kube: KubeCluster, kube_api):
    kube.seed_namespace("prod")

    result = await workload_logs(kube_api, "nosuch", "prod")

    assert result.status is Status.UNKNOWN
    assert result.summary == "Deployment or pod `nosuch` not found in namespace `prod`"


# --- top ----------------------------------------------------------------------------------


async def test_top_compares_use_with_limits_and_flags_pods_near_their_memory_limit(kube, kube_api):
    kube.seed_deployment("checkout", "prod", pods=[running_ready(name="calm"), running_ready(name="warm"),
                                                   running_ready(name="full"), running_ready(name="busy")])
    for suffix, usage in {"calm": ("120m", "200Mi"), "warm": ("300m", "430Mi"), "full": ("250m", "500Mi"),
                          "busy": ("950m", "100Mi")}.items():
        kube.seed_pod_metrics("prod", pod_name(kube, suffix), {"app": usage})

    by_memory = await pod_usage(kube_api, "prod")
    by_cpu = await pod_usage(kube_api, "prod", sort="cpu")

    assert by_memory.status is Status.CRITICAL
    assert [r.cells[0][-4:] for r in by_memory.rows] == ["full", "warm", "calm", "busy"]
    assert [r.cells[0][-4:] for r in by_cpu.rows] == ["busy", "warm", "full", "calm"]
    full, warm, calm, busy = by_memory.rows
    assert full.cells[1:] == ("250m", "250m / 1000m (25%)", "500Mi", "512Mi / 512Mi (98%)")
    assert full.status is Status.CRITICAL
    assert full.detail == "memory at 98% of its 512Mi limit (OOMKilled at 100%)"
    assert warm.status is Status.WARNING
    assert warm.detail == "memory at 84% of its 512Mi limit (OOMKilled at 100%)"
    assert (busy.status, busy.detail) == (Status.WARNING, "CPU at 95% of its 1000m limit (throttled)")
    assert calm.status is Status.OK
    assert by_memory.summary == ("4 pods using 1620m CPU and 1230Mi memory · 1 above 95% of a memory limit · "
                                 "2 above 80% of a limit")


async def test_top_well_within_limits_is_ok(kube: KubeCluster, kube_api):
    kube.seed_deployment("checkout", "prod", pods=[running_ready(name="calm")])
    kube.seed_pod_metrics("prod", pod_name(kube, "calm"), {"app": ("12345678n", "204800Ki")})

    result = await pod_usage(kube_api, "prod")

    assert result.status is Status.OK
    assert result.rows[0].cells[1:] == ("12m", "250m / 1000m (1%)", "200Mi", "512Mi / 512Mi (39%)")


async def test_top_without_metrics_server_says_it_is_not_installed(kube: KubeCluster, kube_api):
    seed_checkout_prod(kube)

    result = await pod_usage(kube_api, "prod")

    assert (result.status, result.summary) == (
        Status.UNKNOWN, "metrics-server is not installed (metrics.k8s.io not served)")


async def test_top_with_metrics_server_down_says_it_is_not_answering(kube: KubeCluster, kube_api):
    kube.kmock["get /apis/metrics.k8s.io/v1beta1/namespaces/prod/pods"] << kmock_lib.KubernetesError(
        status=503, reason="Service Unavailable",
        message="the server is currently unable to handle the request")

    result = await pod_usage(kube_api, "prod")

    assert result.status is Status.UNKNOWN
    assert result.summary == "metrics-server is not answering (metrics.k8s.io: 503 Service Unavailable)"


# --- config -------------------------------------------------------------------------------


async def test_configmap_shows_keys_and_cut_values_and_binary_sizes(kube: KubeCluster, kube_api):
    kube.seed_configmap("prod", "checkout-config", {
        "LOG_LEVEL": "info",
        "FEATURE_FLAGS": "x" * 500,
        "app.yaml": "server:\n  port: 8080\n  timeout: 5s\n",
        "DB_PASSWORD": "hunter2",
    }, binary_data={"cert.der": b"\x30" * 2048})

    result = await configmap_contents(kube_api, "checkout-config", "prod", now=NOW)

    cells = {r.cells[0]: r.cells[1] for r in result.rows}
    assert [r.cells[0] for r in result.rows] == ["DB_PASSWORD", "FEATURE_FLAGS", "LOG_LEVEL", "app.yaml",
                                                 "cert.der"]
    assert cells["LOG_LEVEL"] == "info"
    assert cells["FEATURE_FLAGS"] == "x" * 119 + "…"
    assert cells["app.yaml"] == "server: … (3 lines, 35 B)"
    assert cells["cert.der"] == "binary, 2.0 KiB"
    assert cells["DB_PASSWORD"] == "hidden (7 characters)" and "hunter2" not in repr(result)
    assert result.status is Status.WARNING
    assert result.summary == ("4 keys · 1 binary key · "
                              "1 named like a credential (value hidden; keep it in a Secret)")


async def test_plain_configmap_is_ok_and_a_missing_one_is_unknown(kube: KubeCluster, kube_api):
    kube.seed_configmap("prod", "checkout-config", {"LOG_LEVEL": "info"})

    shown = await configmap_contents(kube_api, "checkout-config", "prod", now=NOW)
    missing = await configmap_contents(kube_api, "nosuch", "prod")

    assert (shown.status, shown.summary) == (Status.OK, "1 key")
    assert missing.status is Status.UNKNOWN
    assert missing.summary == "ConfigMap `nosuch` not found in namespace `prod`"


@pytest.mark.parametrize("text", ["config secret/db-credentials -n prod", "config secrets/x",
                                  "config SECRET/x"])
def test_config_refuses_a_secret_before_anything_runs(text):
    with pytest.raises(UsageError, match="Secrets are never read"):
        build_table(Sections()).parse(text, "prod")


async def test_config_never_calls_the_secrets_api(kube: KubeCluster, kube_api):
    kube.seed_configmap("prod", "db", {"HOST": "db.internal"})

    await configmap_contents(kube_api, "db", "prod")
    await configmap_contents(kube_api, "nosuch", "prod")

    assert requests_to(kube, "/configmaps/")
    assert requests_to(kube, "/secrets") == []


# --- every diagnostic: an unreachable API server ------------------------------------------


DIAGNOSTICS = {
    "deploy": lambda api, t: deployment_rollout(api, "checkout", "prod", timeout=t),
    "events": lambda api, t: recent_events(api, "prod", timeout=t),
    "nodes": lambda api, t: node_status(api, timeout=t),
    "logs": lambda api, t: workload_logs(api, "checkout", "prod", timeout=t),
    "top": lambda api, t: pod_usage(api, "prod", timeout=t),
    "config": lambda api, t: configmap_contents(api, "checkout-config", "prod", timeout=t),
}


@pytest.mark.parametrize("name", list(DIAGNOSTICS))
async def test_unreachable_api_server_is_an_error_naming_the_url_in_time(unreachable_kube_api, name):
    started = time.monotonic()
    result: Result = await DIAGNOSTICS[name](unreachable_kube_api, 2.0)

    assert time.monotonic() - started < 2
    assert result.status is Status.ERROR
    url = unreachable_kube_api.configuration.host
    assert result.summary == f"Kubernetes: cannot connect to {url}: connection refused"


@pytest.mark.parametrize("name", ["deploy", "logs", "config"])
async def test_a_hanging_api_server_is_a_timeout_error_within_the_timeout(kube, kube_api, name):
    async def hang() -> dict:
        await asyncio.sleep(10)
        return {}

    kube.kmock["get", re.compile(r"/api.*")] << hang

    started = time.monotonic()
    result = await DIAGNOSTICS[name](kube_api, 0.5)

    assert time.monotonic() - started < 1.5
    assert result.status is Status.ERROR
    assert result.summary == f"Kubernetes: timed out after 0.5 s at {kube.url}"


async def test_a_log_cut_by_the_servers_byte_limit_says_so(kube, kube_api):
    kube.seed_deployment("checkout", "prod", pods=[running_ready(name="aaaaa")])
    kube.set_log("prod", "aaaaa", log_lines(*[f"line {i:05} " + "x" * 500 for i in range(1500)]))  # ~780 KiB

    result = await workload_logs(kube_api, "checkout", "prod", LogQuery(since_seconds=3600), now=NOW)

    assert any("only the first 512 KiB read" in row.detail for row in result.rows), result.rows
