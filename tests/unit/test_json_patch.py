"""operations.json_patch: each patch is applied with the `jsonpatch` library (RFC 6902) to check
that it writes what was asked on the document as read, and nothing if a tested value moved."""

import copy

import jsonpatch
import pytest

from operations.json_patch import conditional_patch, pointer, value_at

LIMITS = ("spec", "containers", 0, "resources", "limits")


def deployment(resources: dict) -> dict:
    return {"metadata": {"name": "checkout", "resourceVersion": "7"},
            "spec": {"containers": [{"name": "app", "resources": resources}]}}


def test_pointers_escape_tilde_and_slash():
    assert pointer(("metadata", "annotations", "kubectl.kubernetes.io/restartedAt")) == (
        "/metadata/annotations/kubectl.kubernetes.io~1restartedAt")
    assert pointer(("a~b", 0)) == "/a~0b/0" and pointer(()) == ""


def test_value_at_reads_null_and_absent_alike():
    document = {"a": {"b": None, "c": [1, {"d": 2}]}}
    assert value_at(document, ("a", "c", 1, "d")) == 2
    assert value_at(document, ("a", "b")) is None and value_at(document, ("a", "x", "y")) is None
    assert value_at(document, ("a", "c", 5)) is None and value_at(document, ()) is document


def test_a_set_field_is_tested_then_replaced():
    document = deployment({"limits": {"memory": "4Gi"}})
    patch = conditional_patch(document, [((*LIMITS, "memory"), "6Gi")], [(("spec", "containers", 0, "name"), "app")])

    assert patch == [
        {"op": "test", "path": "/spec/containers/0/name", "value": "app"},
        {"op": "test", "path": "/spec/containers/0/resources/limits/memory", "value": "4Gi"},
        {"op": "replace", "path": "/spec/containers/0/resources/limits/memory", "value": "6Gi"},
    ]
    assert value_at(jsonpatch.apply_patch(document, patch), (*LIMITS, "memory")) == "6Gi"


def test_two_fields_under_a_missing_parent_test_the_nearest_parent_and_add_it_once():
    document = deployment({"requests": {"memory": "1Gi"}})
    patch = conditional_patch(document, [((*LIMITS, "memory"), "6Gi"), ((*LIMITS, "cpu"), "2")])

    assert patch == [
        {"op": "test", "path": "/spec/containers/0/resources", "value": {"requests": {"memory": "1Gi"}}},
        {"op": "add", "path": "/spec/containers/0/resources/limits", "value": {"memory": "6Gi"}},
        {"op": "add", "path": "/spec/containers/0/resources/limits/cpu", "value": "2"},
    ]
    written = jsonpatch.apply_patch(document, patch)
    assert value_at(written, LIMITS) == {"memory": "6Gi", "cpu": "2"}
    assert value_at(written, ("spec", "containers", 0, "resources", "requests")) == {"memory": "1Gi"}


def test_the_parent_test_fails_when_anything_in_it_moved():
    document = deployment({"requests": {"memory": "1Gi"}})
    patch = conditional_patch(document, [((*LIMITS, "memory"), "6Gi")])
    moved = copy.deepcopy(document)
    moved["spec"]["containers"][0]["resources"]["limits"] = {"memory": "5Gi"}

    with pytest.raises(jsonpatch.JsonPatchTestFailed):
        jsonpatch.apply_patch(moved, patch)


def test_a_field_under_the_document_itself_tests_its_resource_version():
    document = {"metadata": {"name": "claude-deployment-config", "resourceVersion": "7"}}
    patch = conditional_patch(document, [(("data", "circuit-breaker-enabled"), "true")])

    assert patch == [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "7"},
        {"op": "add", "path": "/data", "value": {"circuit-breaker-enabled": "true"}},
    ]


def test_removing_tests_and_removes_and_removing_what_is_absent_writes_nothing():
    document = deployment({"limits": {"memory": "4Gi"}})
    patch = conditional_patch(document, [((*LIMITS, "memory"), None), ((*LIMITS, "cpu"), None)])

    assert patch == [
        {"op": "test", "path": "/spec/containers/0/resources/limits/memory", "value": "4Gi"},
        {"op": "test", "path": "/spec/containers/0/resources/limits", "value": {"memory": "4Gi"}},
        {"op": "remove", "path": "/spec/containers/0/resources/limits/memory"},
    ]
    assert value_at(jsonpatch.apply_patch(document, patch), LIMITS) == {}


def test_a_null_member_is_replaced_by_add():
    document = {"metadata": {"annotations": None, "resourceVersion": "7"}}
    patch = conditional_patch(document, [(("metadata", "annotations", "a"), "b")])

    assert patch[-1] == {"op": "add", "path": "/metadata/annotations", "value": {"a": "b"}}
    assert jsonpatch.apply_patch(document, patch)["metadata"]["annotations"] == {"a": "b"}


def test_the_document_as_read_is_not_changed():
    document = deployment({})
    before = copy.deepcopy(document)
    conditional_patch(document, [((*LIMITS, "memory"), "6Gi")])
    assert document == before
