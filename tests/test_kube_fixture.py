"""The `kube` fixture behaves like an API server where the operations depend on it.

Each test pins a semantic that kmock 0.8 lacks (and fails on plain kmock): a dry run that
persists nothing, resourceVersion bumps, 409 on a stale resourceVersion, JSON Patch by RFC 6902
with a failed `test` answered 422, strategic merge of containers by name, the scale subresource,
dryRun validation, writes recorded with their headers. Over real HTTP, with the real
`kubernetes.aio` client where it can send the request, with aiohttp where it can't (a JSON Patch
body that is not a list, a bare `?dryRun`).

What the Python client sends (kubernetes 37, `kubernetes/aio/client/api/*_api.py` and
`rest.py`): `patch_namespaced_*` picks the first JSON type of its list, which is
`application/json-patch+json`, and `RESTClientObject.request` swaps it for
`application/strategic-merge-patch+json` when the body is not a list. So a list is a JSON Patch,
a dict a strategic merge patch, unless `_content_type=` says otherwise.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import kmock as kmock_lib
import pytest
from kubernetes.aio import client
from kubernetes.aio.client import ApiException

from tests.plugins.kube import KubeCluster, container

pytestmark = pytest.mark.integration

DEPLOYMENT = "/apis/apps/v1/namespaces/prod/deployments/checkout"


def stored(kube: KubeCluster, resource: str = "apps/v1/deployments", name: str = "checkout") -> dict[str, Any]:
    return kube.kmock.objects[resource, "prod", name].raw


def versions(kube: KubeCluster, resource: str = "apps/v1/deployments", name: str = "checkout") -> int:
    return len(kube.kmock.objects[resource, "prod", name].history)


def status_of(error: ApiException) -> dict[str, Any]:
    return json.loads(error.body)


@pytest.fixture
def checkout(kube: KubeCluster) -> dict[str, Any]:
    return kube.seed_deployment("checkout", "prod", replicas=3,
                                containers=[container("app", limits={"memory": "4Gi"}),
                                            container("sidecar", limits={"memory": "256Mi"})])


async def raw_patch(kube: KubeCluster, path: str, body: Any, content_type: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session:
        async with session.patch(kube.url + path, data=json.dumps(body),
                                 headers={"Content-Type": content_type}) as response:
            return response.status, await response.json()


# ------------------------------------------------------------------------ dry run


async def test_a_dry_run_answers_the_write_and_persists_and_bumps_nothing(kube, kube_api, checkout):
    before = stored(kube)
    answer = await client.AppsV1Api(kube_api).patch_namespaced_deployment(
        "checkout", "prod", {"spec": {"replicas": 8}}, dry_run="All")

    assert answer.spec.replicas == 8
    assert answer.metadata.resource_version == before["metadata"]["resourceVersion"]
    assert answer.metadata.generation == before["metadata"]["generation"] + 1  # as the real server answers
    assert stored(kube) == before and versions(kube) == 1
    assert kube.writes == []
    (dry_run,) = kube.dry_runs
    assert (dry_run.method, dry_run.path, dry_run.dry_run) == ("PATCH", DEPLOYMENT, True)
    assert dry_run.body == {"spec": {"replicas": 8}}


@pytest.mark.parametrize("query", ["dryRun", "dryRun=", "dryRun=all", "dryRun=true"])
async def test_a_dry_run_is_exactly_dryRun_All_and_anything_else_is_refused(kube, checkout, query):
    status, body = await raw_patch(kube, f"{DEPLOYMENT}?{query}", {"spec": {"replicas": 8}},
                                   "application/merge-patch+json")

    assert status == 422 and body["reason"] == "Invalid"
    assert 'supported values: "All"' in body["message"]
    assert stored(kube)["spec"]["replicas"] == 3 and kube.writes == [] and kube.dry_runs == []


# ------------------------------------------------------------------------ resourceVersion


async def test_every_persisted_write_bumps_the_resource_version_and_a_spec_change_the_generation(
        kube, kube_api, checkout):
    apps = client.AppsV1Api(kube_api)
    first = int(stored(kube)["metadata"]["resourceVersion"])

    scaled = await apps.patch_namespaced_deployment("checkout", "prod", {"spec": {"replicas": 8}})
    labelled = await apps.patch_namespaced_deployment("checkout", "prod", {"metadata": {"labels": {"x": "y"}}})

    assert int(scaled.metadata.resource_version) > first
    assert int(labelled.metadata.resource_version) > int(scaled.metadata.resource_version)
    assert (scaled.metadata.generation, labelled.metadata.generation) == (4, 4)  # labels are not spec
    read = await apps.read_namespaced_deployment("checkout", "prod")
    assert read.metadata.resource_version == labelled.metadata.resource_version and read.spec.replicas == 8
    assert [(w.method, w.dry_run) for w in kube.writes] == [("PATCH", False), ("PATCH", False)]


async def test_a_write_carrying_a_stale_resource_version_is_a_409_conflict_and_changes_nothing(
        kube, kube_api, checkout):
    apps = client.AppsV1Api(kube_api)
    old = await apps.read_namespaced_deployment("checkout", "prod")
    await apps.patch_namespaced_deployment("checkout", "prod", {"spec": {"replicas": 5}})  # someone else
    old.spec.replicas = 8

    with pytest.raises(ApiException) as put:
        await apps.replace_namespaced_deployment("checkout", "prod", old)
    stale = {"metadata": {"resourceVersion": old.metadata.resource_version}, "spec": {"replicas": 8}}
    with pytest.raises(ApiException) as patch:
        await apps.patch_namespaced_deployment("checkout", "prod", stale, _content_type="application/merge-patch+json")

    for error in (put.value, patch.value):
        assert error.status == 409
        assert status_of(error)["kind"] == "Status" and status_of(error)["reason"] == "Conflict"
        assert 'deployments.apps "checkout": the object has been modified' in status_of(error)["message"]
    assert stored(kube)["spec"]["replicas"] == 5 and len(kube.writes) == 1


async def test_a_put_with_the_current_resource_version_is_applied(kube, kube_api, checkout):
    apps = client.AppsV1Api(kube_api)
    current = await apps.read_namespaced_deployment("checkout", "prod")
    current.spec.replicas = 6

    answer = await apps.replace_namespaced_deployment("checkout", "prod", current)

    assert answer.spec.replicas == 6 and answer.metadata.resource_version != current.metadata.resource_version
    assert stored(kube)["spec"]["replicas"] == 6 and kube.writes[0].method == "PUT"


# ------------------------------------------------------------------------ patch types


async def test_a_json_patch_whose_test_op_fails_is_a_422_and_changes_nothing(kube, kube_api, checkout):
    apps = client.AppsV1Api(kube_api)
    with pytest.raises(ApiException) as failed:
        await apps.patch_namespaced_deployment("checkout", "prod", [
            {"op": "test", "path": "/spec/replicas", "value": 5},
            {"op": "replace", "path": "/spec/replicas", "value": 8},
        ])

    assert failed.value.status == 422
    assert status_of(failed.value)["reason"] == "Invalid"
    assert status_of(failed.value)["message"] == "the server rejected our request due to an error in our request"
    assert stored(kube)["spec"]["replicas"] == 3 and versions(kube) == 1 and kube.writes == []


async def test_a_json_patch_applies_when_its_test_holds_and_a_bad_path_is_a_422(kube, kube_api, checkout):
    apps = client.AppsV1Api(kube_api)
    answer = await apps.patch_namespaced_deployment("checkout", "prod", [
        {"op": "test", "path": "/spec/replicas", "value": 3},
        {"op": "replace", "path": "/spec/replicas", "value": 8},
    ])
    with pytest.raises(ApiException) as bad_path:
        await apps.patch_namespaced_deployment("checkout", "prod", [
            {"op": "replace", "path": "/spec/template/metadata/annotations/x", "value": "y"}])

    assert answer.spec.replicas == 8 and stored(kube)["spec"]["replicas"] == 8
    assert kube.writes[0].content_type == "application/json-patch+json"
    assert bad_path.value.status == 422 and len(kube.writes) == 1


async def test_a_json_patch_body_must_be_a_list(kube, checkout):
    status, body = await raw_patch(kube, DEPLOYMENT, {"op": "replace", "path": "/spec/replicas", "value": 8},
                                   "application/json-patch+json")

    assert status == 400 and body["reason"] == "BadRequest"
    assert stored(kube)["spec"]["replicas"] == 3 and kube.writes == []


async def test_a_dict_sent_by_the_client_is_a_strategic_merge_patch_merging_containers_by_name(
        kube, kube_api, checkout):
    patch = {"spec": {"template": {"spec": {"containers": [
        {"name": "sidecar", "resources": {"limits": {"memory": "512Mi"}}}]}}}}
    await client.AppsV1Api(kube_api).patch_namespaced_deployment("checkout", "prod", patch)

    assert kube.writes[0].content_type == "application/strategic-merge-patch+json"
    containers = stored(kube)["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["app", "sidecar"]
    assert containers[0]["resources"]["limits"] == {"memory": "4Gi"}
    assert containers[1]["resources"]["limits"] == {"memory": "512Mi"}
    assert containers[1]["image"] == containers[0]["image"]  # merged into, not replaced

    # The same dict as a merge patch (RFC 7386) replaces the list whole.
    await client.AppsV1Api(kube_api).patch_namespaced_deployment(
        "checkout", "prod", patch, _content_type="application/merge-patch+json")
    assert kube.writes[1].content_type == "application/merge-patch+json"
    assert stored(kube)["spec"]["template"]["spec"]["containers"] == [
        {"name": "sidecar", "resources": {"limits": {"memory": "512Mi"}}}]


async def test_a_write_keeps_the_server_fields(kube, kube_api, checkout):
    before = stored(kube)
    await client.AppsV1Api(kube_api).patch_namespaced_deployment("checkout", "prod", [
        {"op": "replace", "path": "/status/replicas", "value": 99},
        {"op": "replace", "path": "/metadata/uid", "value": "forged"},
    ])

    after = stored(kube)
    assert after["status"] == before["status"] and after["metadata"]["uid"] == before["metadata"]["uid"]


# ------------------------------------------------------------------------ scale subresource


async def test_the_scale_subresource_reads_and_writes_the_deployments_replicas(kube, kube_api, checkout):
    apps = client.AppsV1Api(kube_api)
    scale = await apps.read_namespaced_deployment_scale("checkout", "prod")
    preview = await apps.patch_namespaced_deployment_scale("checkout", "prod", {"spec": {"replicas": 8}},
                                                           dry_run="All")
    assert stored(kube)["spec"]["replicas"] == 3 and kube.writes == []
    written = await apps.patch_namespaced_deployment_scale(
        "checkout", "prod", [{"op": "test", "path": "/spec/replicas", "value": 3},
                             {"op": "replace", "path": "/spec/replicas", "value": 8}])

    assert (scale.kind, scale.api_version, scale.spec.replicas) == ("Scale", "autoscaling/v1", 3)
    assert scale.status.selector == "app=checkout"
    assert scale.metadata.resource_version == checkout["metadata"]["resourceVersion"]
    assert preview.spec.replicas == 8 and written.spec.replicas == 8
    assert stored(kube)["spec"]["replicas"] == 8 and stored(kube)["metadata"]["generation"] == 4
    assert written.metadata.resource_version == stored(kube)["metadata"]["resourceVersion"]
    assert [w.path for w in kube.writes] == [DEPLOYMENT + "/scale"]


async def test_a_scale_of_a_missing_deployment_is_a_404_and_a_negative_one_a_422(kube, kube_api, checkout):
    apps = client.AppsV1Api(kube_api)
    with pytest.raises(ApiException) as missing:
        await apps.read_namespaced_deployment_scale("nope", "prod")
    with pytest.raises(ApiException) as negative:
        await apps.patch_namespaced_deployment_scale("checkout", "prod", {"spec": {"replicas": -1}})

    assert missing.value.status == 404 and status_of(missing.value)["message"] == 'deployments.apps "nope" not found'
    assert negative.value.status == 422 and "must be greater than or equal to 0" in status_of(negative.value)["message"]
    assert stored(kube)["spec"]["replicas"] == 3 and kube.writes == []


# ------------------------------------------------------------------------ configmaps, headers, overrides


async def test_configmap_writes_get_the_same_semantics(kube, kube_api):
    kube.seed_configmap("prod", "claude-deployment-config", {"circuit-breaker-enabled": "false"})
    core = client.CoreV1Api(kube_api)
    first = stored(kube, "v1/configmaps", "claude-deployment-config")["metadata"]["resourceVersion"]

    dry = await core.patch_namespaced_config_map("claude-deployment-config", "prod",
                                                 {"data": {"circuit-breaker-enabled": "true"}}, dry_run="All")
    assert stored(kube, "v1/configmaps", "claude-deployment-config")["data"] == {"circuit-breaker-enabled": "false"}
    written = await core.patch_namespaced_config_map("claude-deployment-config", "prod", [
        {"op": "test", "path": "/data/circuit-breaker-enabled", "value": "false"},
        {"op": "replace", "path": "/data/circuit-breaker-enabled", "value": "true"}])
    with pytest.raises(ApiException) as stale:
        await core.patch_namespaced_config_map("claude-deployment-config", "prod",
                                               {"metadata": {"resourceVersion": first}, "data": {"x": "y"}})

    assert dry.data == {"circuit-breaker-enabled": "true"} and dry.metadata.resource_version == first
    assert written.data == {"circuit-breaker-enabled": "true"} and int(written.metadata.resource_version) > int(first)
    assert stale.value.status == 409
    assert stored(kube, "v1/configmaps", "claude-deployment-config")["data"] == {"circuit-breaker-enabled": "true"}
    assert len(kube.writes) == 1 and len(kube.dry_runs) == 1


async def test_writes_are_recorded_with_their_headers(kube, kube_api, checkout):
    await client.AppsV1Api(kube_api).patch_namespaced_deployment(
        "checkout", "prod", {"spec": {"replicas": 4}}, dry_run="All", _headers={"Impersonate-User": "slack:U0BOB00001"})

    assert kube.dry_runs[0].impersonate == "slack:U0BOB00001"


async def test_a_tests_own_reaction_wins_and_then_nothing_is_written(kube, kube_api, checkout):
    kube.kmock["patch", DEPLOYMENT] << kmock_lib.KubernetesError(
        status=403, reason="Forbidden", message='deployments.apps "checkout" is forbidden')

    with pytest.raises(ApiException) as refused:
        await client.AppsV1Api(kube_api).patch_namespaced_deployment("checkout", "prod", {"spec": {"replicas": 8}})

    assert refused.value.status == 403
    assert stored(kube)["spec"]["replicas"] == 3 and versions(kube) == 1 and kube.writes == []
