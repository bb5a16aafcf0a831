"""What the server imports of the Kubernetes client before its first call (in a thread)."""

from __future__ import annotations

import kubernetes.aio.client as kubernetes_client

from diagnostics.kubernetes.client import USED_TYPES, load_models


def test_every_class_named_for_preloading_exists_in_the_client():
    assert [name for name in USED_TYPES if not hasattr(kubernetes_client, name)] == []


def test_preloading_takes_the_models_those_classes_refer_to_and_far_from_all():
    loaded = load_models(("V1PodList",))
    # V1PodList -> V1Pod -> V1PodSpec -> V1Container -> … : the whole tree a pod list is read into
    assert 50 < loaded < len(kubernetes_client.__all__) / 2
    assert load_models() > loaded
