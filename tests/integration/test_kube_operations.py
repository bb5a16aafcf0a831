"""operations.kubernetes against the `kube` fixture (kmock with the API server's write semantics)
over real HTTP with the real `kubernetes.aio` client: previews are server-side dry runs that
persist nothing, apply writes once and only if the previewed values still hold."""

from __future__ import annotations

from typing import Any

import kmock as kmock_lib
import pytest

from operations import model
from operations.kubernetes import apply, preview, revert
from operations.model import Breaker, Change, ChangedSincePreview, Limits, OperationError, Outcome, Restart, Scale
from tests.plugins.kube import KubeCluster, container

pytestmark = pytest.mark.integration

TIMEOUT = 5.0
DEPLOYMENT = "/apis/apps/v1/namespaces/prod/deployments/checkout"
CONFIGMAP = "/api/v1/namespaces/prod/configmaps/claude-deployment-config"
AT = "2025-03-14T12:00:00Z"


def stored(kube: KubeCluster, resource: str = "apps/v1/deployments", name: str = "checkout") -> dict[str, Any]:
    return kube.kmock.objects[resource, "prod", name].raw


def someone_writes(kube: KubeCluster, change: dict[str, Any], resource: str = "apps/v1/deployments",
                   name: str = "checkout") -> None:
    """Another client's write, straight into the emulator's store (with a new resourceVersion)."""
    obj = kube.kmock.objects[resource, "prod", name]
    new = obj.raw
    for key, value in change.items():
        new = {**new, key: {**new.get(key, {}), **value}}
    new["metadata"] = {**new["metadata"], "resourceVersion": kube.next_resource_version()}
    obj.history.append(new)


def containers(kube: KubeCluster) -> list[dict[str, Any]]:
    return stored(kube)["spec"]["template"]["spec"]["containers"]


@pytest.fixture
def checkout(kube: KubeCluster) -> dict[str, Any]:
    return kube.seed_deployment("checkout", "prod", replicas=3)


@pytest.fixture
def two_containers(kube: KubeCluster) -> dict[str, Any]:
    return kube.seed_deployment("checkout", "prod", replicas=3, containers=[
        container("app", requests={"memory": "2Gi", "cpu": "500m"}, limits={"memory": "4Gi"}),
        container("sidecar", requests={"memory": "64Mi"}, limits={"memory": "256Mi", "cpu": "200m"}),
    ])


# ------------------------------------------------------------------------ scale


async def test_a_scale_preview_is_the_servers_dry_run_of_the_exact_write_and_persists_nothing(
        kube, kube_api, checkout):
    before = stored(kube)
    shown = await preview(kube_api, Scale("prod", "checkout", 8), timeout=TIMEOUT)

    assert shown.target == "Deployment prod/checkout"
    assert shown.changes == (Change("replicas", "3", "8"),)
    assert shown.observed == {"replicas": 3} and shown.warnings == ()
    assert stored(kube) == before and kube.writes == []
    (dry_run,) = kube.dry_runs
    assert (dry_run.path, dry_run.content_type) == (DEPLOYMENT + "/scale", "application/json-patch+json")
    assert dry_run.body == [{"op": "test", "path": "/spec/replicas", "value": 3},
                            {"op": "replace", "path": "/spec/replicas", "value": 8}]


async def test_scale_apply_writes_once_conditional_on_the_previewed_value(kube, kube_api, checkout):
    spec = Scale("prod", "checkout", 8)
    shown = await preview(kube_api, spec, timeout=TIMEOUT)

    outcome = await apply(kube_api, spec, shown, timeout=TIMEOUT)

    assert outcome == Outcome(changes=(Change("replicas", "3", "8"),))
    assert stored(kube)["spec"]["replicas"] == 8
    (write,) = kube.writes
    assert write.path == DEPLOYMENT + "/scale" and not write.dry_run
    assert write.body == kube.dry_runs[0].body  # exactly what was previewed
    assert {"op": "test", "path": "/spec/replicas", "value": 3} in write.body


async def test_a_value_changed_after_the_preview_is_refused_and_nothing_is_written(kube, kube_api, checkout):
    spec = Scale("prod", "checkout", 8)
    shown = await preview(kube_api, spec, timeout=TIMEOUT)
    someone_writes(kube, {"spec": {"replicas": 5}})

    with pytest.raises(ChangedSincePreview) as changed:
        await apply(kube_api, spec, shown, timeout=TIMEOUT)

    assert changed.value.message == "replicas is 5 now; the preview read 3"
    assert not changed.value.temporary
    assert stored(kube)["spec"]["replicas"] == 5 and kube.writes == []


async def test_a_write_landing_between_the_re_read_and_the_patch_fails_its_test_op(kube, kube_api, checkout):
    spec = Scale("prod", "checkout", 8)
    shown = await preview(kube_api, spec, timeout=TIMEOUT)

    def sneak_in(request: kmock_lib.Request) -> None:
        someone_writes(kube, {"spec": {"replicas": 5}})  # then on to the emulated write

    kube.kmock["patch", DEPLOYMENT + "/scale"] << sneak_in
    with pytest.raises(ChangedSincePreview) as changed:
        await apply(kube_api, spec, shown, timeout=TIMEOUT)

    assert changed.value.message == "replicas is 5 now; the preview read 3"
    assert stored(kube)["spec"]["replicas"] == 5 and kube.writes == []


async def test_a_write_landing_during_the_preview_fails_its_dry_run(kube, kube_api, checkout):
    def sneak_in(request: kmock_lib.Request) -> None:
        someone_writes(kube, {"spec": {"replicas": 5}})

    kube.kmock["patch", DEPLOYMENT + "/scale"] << sneak_in
    with pytest.raises(OperationError) as changed:
        await preview(kube_api, Scale("prod", "checkout", 8), timeout=TIMEOUT)

    assert changed.value.message == "Deployment prod/checkout changed while it was being previewed; ask again"
    assert changed.value.temporary and kube.dry_runs == []


async def test_applying_what_is_already_there_writes_nothing(kube, kube_api, checkout):
    spec = Scale("prod", "checkout", 8)
    shown = await preview(kube_api, spec, timeout=TIMEOUT)
    first = await apply(kube_api, spec, shown, timeout=TIMEOUT)

    again = await apply(kube_api, spec, shown, timeout=TIMEOUT)  # a crash before "applied" was recorded

    assert not first.already and again == Outcome(changes=(Change("replicas", "3", "8"),), already=True)
    assert len(kube.writes) == 1


async def test_scaling_from_zero_tests_the_scales_spec_as_read(kube, kube_api):
    kube.seed_deployment("checkout", "prod", replicas=0)
    spec = Scale("prod", "checkout", 2)
    shown = await preview(kube_api, spec, timeout=TIMEOUT)
    outcome = await apply(kube_api, spec, shown, timeout=TIMEOUT)

    assert shown.changes == (Change("replicas", "0", "2"),) and outcome.changes == shown.changes
    # A Scale of 0 has no spec.replicas (omitempty): the test is on its parent.
    assert kube.writes[0].body == [{"op": "test", "path": "/spec", "value": {}},
                                   {"op": "add", "path": "/spec/replicas", "value": 2}]
    assert stored(kube)["spec"]["replicas"] == 2


async def test_a_horizontal_pod_autoscaler_on_the_deployment_is_a_warning(kube, kube_api, checkout):
    kube.seed_hpa("prod", "checkout", "checkout", min_replicas=2, max_replicas=10)
    kube.seed_hpa("prod", "payments", "payments")

    shown = await preview(kube_api, Scale("prod", "checkout", 8), timeout=TIMEOUT)

    assert shown.warnings == ("HorizontalPodAutoscaler checkout manages this Deployment (min 2, max 10) "
                              "and will override a manual scale",)


async def test_not_being_allowed_to_list_autoscalers_is_a_warning_not_a_refusal(kube, kube_api, checkout):
    kube.kmock["get /apis/autoscaling/v2/namespaces/prod/horizontalpodautoscalers"] << kmock_lib.KubernetesError(
        status=403, reason="Forbidden", message="horizontalpodautoscalers.autoscaling is forbidden")

    shown = await preview(kube_api, Scale("prod", "checkout", 8), timeout=TIMEOUT)

    (warning,) = shown.warnings
    assert warning.startswith("could not check for a HorizontalPodAutoscaler: Kubernetes refused the request (403")
    assert shown.changes == (Change("replicas", "3", "8"),)


# ------------------------------------------------------------------------ restart


async def test_a_restart_sets_restartedAt_on_the_pod_template_once(kube, kube_api, checkout):
    spec = Restart("prod", "checkout", AT)
    shown = await preview(kube_api, spec, timeout=TIMEOUT)
    assert "annotations" not in stored(kube)["spec"]["template"]["metadata"] and kube.writes == []

    outcome = await apply(kube_api, spec, shown, timeout=TIMEOUT)
    again = await apply(kube_api, spec, shown, timeout=TIMEOUT)

    assert shown.changes == outcome.changes == (Change("restartedAt", None, AT),)
    template = stored(kube)["spec"]["template"]["metadata"]
    assert template["annotations"] == {"kubectl.kubernetes.io/restartedAt": AT}
    # No annotations to test: the test op holds the template's metadata as read.
    (write,) = kube.writes
    assert write.body == [
        {"op": "test", "path": "/spec/template/metadata", "value": {"labels": {"app": "checkout"}}},
        {"op": "add", "path": "/spec/template/metadata/annotations",
         "value": {"kubectl.kubernetes.io/restartedAt": AT}},
    ]
    assert again.already and revert(spec, shown, outcome) is None


async def test_a_paused_deployment_is_not_restarted(kube, kube_api):
    kube.seed_deployment("checkout", "prod", replicas=3, paused=True)

    with pytest.raises(OperationError) as refused:
        await preview(kube_api, Restart("prod", "checkout", AT), timeout=TIMEOUT)

    assert refused.value.message.startswith("Deployment prod/checkout is paused")
    assert not refused.value.temporary and kube.dry_runs == [] and kube.writes == []


# ------------------------------------------------------------------------ limits


async def test_limits_without_a_container_on_a_two_container_pod_are_refused_naming_them(
        kube, kube_api, two_containers):
    with pytest.raises(OperationError) as ambiguous:
        await preview(kube_api, Limits("prod", "checkout", None, memory="6Gi"), timeout=TIMEOUT)
    with pytest.raises(OperationError) as unknown:
        await preview(kube_api, Limits("prod", "checkout", "web", memory="6Gi"), timeout=TIMEOUT)

    assert ambiguous.value.message == "Deployment prod/checkout has 2 containers (app, sidecar): name the one to change"
    assert unknown.value.message == "Deployment prod/checkout has no container 'web' (it has app, sidecar)"
    assert not ambiguous.value.temporary and kube.dry_runs == []


async def test_limits_change_one_container_and_add_a_limit_that_was_not_set(kube, kube_api, two_containers):
    spec = Limits("prod", "checkout", "app", memory="6Gi", cpu="2000m")
    shown = await preview(kube_api, spec, timeout=TIMEOUT)
    assert kube.writes == [] and containers(kube)[0]["resources"]["limits"] == {"memory": "4Gi"}

    outcome = await apply(kube_api, spec, shown, timeout=TIMEOUT)

    assert shown.changes == (Change("memory limit of app", "4Gi", "6Gi"), Change("cpu limit of app", None, "2000m"))
    assert outcome.changes == shown.changes
    assert shown.observed == {"memory limit of app": "4Gi", "cpu limit of app": None, "container": "app"}
    app, sidecar = containers(kube)
    assert app["resources"]["limits"] == {"memory": "6Gi", "cpu": "2000m"}
    assert sidecar["resources"]["limits"] == {"memory": "256Mi", "cpu": "200m"}
    (write,) = kube.writes
    assert {"op": "test", "path": "/spec/template/spec/containers/0/name", "value": "app"} in write.body
    assert {"op": "test", "path": "/spec/template/spec/containers/0/resources/limits/memory",
            "value": "4Gi"} in write.body


async def test_a_limit_below_the_request_is_refused_before_anything_is_sent(kube, kube_api, two_containers):
    with pytest.raises(OperationError) as below:
        await preview(kube_api, Limits("prod", "checkout", "app", memory="1Gi"), timeout=TIMEOUT)
    with pytest.raises(OperationError) as junk:
        await preview(kube_api, Limits("prod", "checkout", "app", memory="lots"), timeout=TIMEOUT)

    assert below.value.message == ("memory limit 1Gi of app would be below its request 2Gi; "
                                   "the API server refuses a limit below the request")
    assert junk.value.message.startswith("memory limit: 'lots' is not a Kubernetes quantity")
    assert kube.dry_runs == []


async def test_a_limit_already_at_the_value_in_another_spelling_is_already_applied(kube, kube_api, two_containers):
    spec = Limits("prod", "checkout", "sidecar", cpu="0.2")
    shown = await preview(kube_api, spec, timeout=TIMEOUT)
    outcome = await apply(kube_api, spec, shown, timeout=TIMEOUT)

    assert shown.warnings == ("cpu limit of sidecar is already 0.2",)
    assert outcome.already and kube.writes == []


async def test_limits_revert_to_what_the_preview_read_and_remove_what_was_not_set(kube, kube_api, two_containers):
    spec = Limits("prod", "checkout", "app", memory="6Gi", cpu="2")
    shown = await preview(kube_api, spec, timeout=TIMEOUT)
    outcome = await apply(kube_api, spec, shown, timeout=TIMEOUT)

    back = revert(spec, shown, outcome)
    assert back == Limits("prod", "checkout", "app", memory="4Gi", remove=("cpu",))
    undone = await apply(kube_api, back, await preview(kube_api, back, timeout=TIMEOUT), timeout=TIMEOUT)

    assert undone.changes == (Change("memory limit of app", "6Gi", "4Gi"), Change("cpu limit of app", "2", None))
    assert containers(kube)[0]["resources"]["limits"] == {"memory": "4Gi"}


async def test_a_single_container_needs_no_name_and_keeps_the_one_the_preview_chose(kube, kube_api, checkout):
    spec = Limits("prod", "checkout", None, memory="1Gi")
    shown = await preview(kube_api, spec, timeout=TIMEOUT)
    sidecar = container("sidecar", limits={"memory": "64Mi"})
    template = stored(kube)["spec"]["template"]
    someone_writes(kube, {"spec": {"template": {**template, "spec": {"containers": [
        *template["spec"]["containers"], sidecar]}}}})

    await apply(kube_api, spec, shown, timeout=TIMEOUT)

    assert shown.changes == (Change("memory limit of app", "512Mi", "1Gi"),)
    assert [c["resources"]["limits"]["memory"] for c in containers(kube)] == ["1Gi", "64Mi"]


# ------------------------------------------------------------------------ breaker


async def test_the_breaker_sets_its_key_in_the_configmap_and_reverts_to_the_opposite(kube, kube_api):
    kube.seed_configmap("prod", "claude-deployment-config", {"circuit-breaker-enabled": "false", "other": "x"})
    spec = Breaker("prod", enabled=True)
    shown = await preview(kube_api, spec, timeout=TIMEOUT)
    assert kube.writes == [] and stored(kube, "v1/configmaps", "claude-deployment-config")["data"][
        "circuit-breaker-enabled"] == "false"

    outcome = await apply(kube_api, spec, shown, timeout=TIMEOUT)

    assert shown.target == "ConfigMap prod/claude-deployment-config"
    assert shown.changes == outcome.changes == (Change("circuit-breaker-enabled", "false", "true"),)
    assert stored(kube, "v1/configmaps", "claude-deployment-config")["data"] == {
        "circuit-breaker-enabled": "true", "other": "x"}
    assert [w.path for w in kube.writes] == [CONFIGMAP]
    assert revert(spec, shown, outcome) == Breaker("prod", enabled=False)


async def test_the_breaker_key_and_even_data_may_be_absent(kube, kube_api):
    kube.seed_configmap("prod", "claude-deployment-config", None)
    spec = Breaker("prod", enabled=True)
    shown = await preview(kube_api, spec, timeout=TIMEOUT)
    outcome = await apply(kube_api, spec, shown, timeout=TIMEOUT)

    assert shown.changes == (Change("circuit-breaker-enabled", None, "true"),) and not outcome.already
    assert stored(kube, "v1/configmaps", "claude-deployment-config")["data"] == {"circuit-breaker-enabled": "true"}
    assert revert(spec, shown, outcome) == Breaker("prod", enabled=False)


# ------------------------------------------------------------------------ revert, impersonation, failures


def previewed(**observed: Any) -> model.Preview:
    return model.Preview(target="Deployment prod/checkout", changes=(), observed=observed)


def test_revert_specs_put_back_what_the_preview_read():
    done = Outcome(())
    assert revert(Scale("prod", "checkout", 8), previewed(replicas=3), done) == Scale("prod", "checkout", 3)
    assert revert(Scale("prod", "checkout", 3), previewed(replicas=3), done) is None  # nothing changed
    assert revert(Scale("prod", "checkout", 2), previewed(replicas=None), done) == Scale("prod", "checkout", 0)
    assert revert(Restart("prod", "checkout", AT), previewed(restartedAt=None), done) is None
    assert revert(Breaker("prod", enabled=False), previewed(**{"circuit-breaker-enabled": "true"}), done) == Breaker(
        "prod", enabled=True)
    assert revert(Breaker("prod", enabled=True), previewed(**{"circuit-breaker-enabled": None}), done) == Breaker(
        "prod", enabled=False)
    assert revert(Limits("prod", "checkout", "app", remove=("cpu",)),
                  previewed(**{"cpu limit of app": "2", "container": "app"}), done) == Limits(
        "prod", "checkout", "app", cpu="2")
    assert revert(Limits("prod", "checkout", None, memory="6Gi"),
                  previewed(**{"memory limit of app": "6Gi", "container": "app"}), done) is None


async def test_impersonation_goes_on_every_request_reads_and_dry_runs_included(kube, kube_api, checkout):
    spec = Scale("prod", "checkout", 8)
    shown = await preview(kube_api, spec, timeout=TIMEOUT, impersonate="slack:U0BOB00001")
    await apply(kube_api, spec, shown, timeout=TIMEOUT, impersonate="slack:U0BOB00001")

    requests = [r for r in kube.kmock if r.url.path.startswith("/apis/")]
    assert [(r.method.value, r.url.path) for r in requests] == [
        ("GET", DEPLOYMENT + "/scale"),
        ("GET", "/apis/autoscaling/v2/namespaces/prod/horizontalpodautoscalers"),
        ("PATCH", DEPLOYMENT + "/scale"),
        ("GET", DEPLOYMENT + "/scale"),
        ("PATCH", DEPLOYMENT + "/scale"),
    ]
    assert all(r.headers.get("Impersonate-User") == "slack:U0BOB00001" for r in requests)
    assert kube.dry_runs[0].impersonate == kube.writes[0].impersonate == "slack:U0BOB00001"


async def test_without_impersonation_no_such_header_is_sent(kube, kube_api, checkout):
    await preview(kube_api, Scale("prod", "checkout", 8), timeout=TIMEOUT)

    assert not any("Impersonate-User" in r.headers for r in kube.kmock)


@pytest.mark.parametrize("spec, message", [
    (Scale("prod", "nope", 2), "Deployment prod/nope not found"),
    (Restart("prod", "nope", AT), "Deployment prod/nope not found"),
    (Breaker("prod", enabled=True), "ConfigMap prod/claude-deployment-config not found"),
])
async def test_a_missing_object_is_a_permanent_error(kube, kube_api, spec, message):
    kube.seed_namespace("prod")

    with pytest.raises(OperationError) as missing:
        await preview(kube_api, spec, timeout=TIMEOUT)

    assert missing.value.message == message and not missing.value.temporary


async def test_an_unreachable_api_is_a_temporary_error(unreachable_kube_api):
    with pytest.raises(OperationError) as unreachable:
        await preview(unreachable_kube_api, Scale("prod", "checkout", 8), timeout=TIMEOUT)

    server = unreachable_kube_api.configuration.host
    assert unreachable.value.message == f"Kubernetes: cannot connect to {server}: connection refused"
    assert unreachable.value.temporary


@pytest.mark.parametrize("status, reason, temporary", [
    (503, "ServiceUnavailable", True), (500, "InternalError", True), (409, "Conflict", True),
    (403, "Forbidden", False), (422, "Invalid", False),
])
async def test_api_errors_on_the_write_say_whether_to_try_again(kube, kube_api, checkout, status, reason, temporary):
    spec = Scale("prod", "checkout", 8)
    shown = await preview(kube_api, spec, timeout=TIMEOUT)
    kube.kmock["patch", DEPLOYMENT + "/scale"] << kmock_lib.KubernetesError(
        status=status, reason=reason, message=f"the write was refused ({reason})",
        details={"causes": [{"reason": "FieldValueInvalid", "field": "spec.replicas"}]})

    with pytest.raises(OperationError) as failed:
        await apply(kube_api, spec, shown, timeout=TIMEOUT)

    assert type(failed.value) is OperationError and failed.value.temporary is temporary
    assert failed.value.message.startswith("Kubernetes")
    assert f"the write was refused ({reason})" in failed.value.message and "\n" not in failed.value.message
    assert stored(kube)["spec"]["replicas"] == 3 and kube.writes == []
