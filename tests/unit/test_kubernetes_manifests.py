from pathlib import Path

import yaml

DIR = Path(__file__).resolve().parents[2] / "manifests" / "kubernetes"


def documents():
    for path in sorted(DIR.glob("*.yaml")):
        yield from (d for d in yaml.safe_load_all(path.read_text()) if d)


def test_kustomization_lists_every_manifest():
    kustomization = yaml.safe_load((DIR / "kustomization.yaml").read_text())
    files = {p.name for p in DIR.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files


def test_the_bots_role_reads_only_and_never_secrets():
    rules = [rule for doc in documents() if doc.get("kind") == "ClusterRole" for rule in doc["rules"]]
    assert rules
    for rule in rules:
        assert set(rule["verbs"]) <= {"get", "list", "watch"}
        assert "secrets" not in rule["resources"] and "*" not in rule["resources"]


def test_deployment_probes_health_and_gets_its_tokens_from_a_secret():
    (deployment,) = [d for d in documents() if d.get("kind") == "Deployment"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    names = {e["name"] for e in container["env"]}
    assert not names & {"SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "ALERTMANAGER_WEBHOOK_TOKEN"}
    assert container["envFrom"] == [{"secretRef": {"name": "ops-bot"}}]


def test_the_sqlite_state_lives_on_a_claim_that_outlives_the_pod_and_one_pod_holds_it():
    (deployment,) = [d for d in documents() if d.get("kind") == "Deployment"]
    spec = deployment["spec"]
    container = spec["template"]["spec"]["containers"][0]
    state_url = next(e["value"] for e in container["env"] if e["name"] == "STATE_URL")
    mount = next(m for m in container["volumeMounts"] if state_url.startswith(f"sqlite:///{m['mountPath']}/"))
    volume = next(v for v in spec["template"]["spec"]["volumes"] if v["name"] == mount["name"])
    claims = {d["metadata"]["name"] for d in documents() if d.get("kind") == "PersistentVolumeClaim"}
    assert volume["persistentVolumeClaim"]["claimName"] in claims  # not an emptyDir: accepted work survives
    assert spec["replicas"] == 1 and spec["strategy"]["type"] == "Recreate"


def test_the_mitigations_role_grants_exactly_the_requests_the_operations_make_in_a_target_namespace():
    operations = DIR / "operations"
    kustomization = yaml.safe_load((operations / "kustomization.yaml").read_text())
    docs = [d for d in yaml.safe_load_all((operations / "rbac.yaml").read_text()) if d]
    (role,) = [d for d in docs if d["kind"] == "Role"]
    (binding,) = [d for d in docs if d["kind"] == "RoleBinding"]

    grants = {(group, resource, verb) for rule in role["rules"] for group in rule["apiGroups"]
              for resource in rule["resources"] for verb in rule["verbs"]}
    assert grants == {
        ("apps", "deployments", "get"), ("apps", "deployments", "patch"),
        ("apps", "deployments/scale", "get"), ("apps", "deployments/scale", "patch"),
        ("autoscaling", "horizontalpodautoscalers", "list"),
        ("", "configmaps", "get"), ("", "configmaps", "patch"),
    }
    assert kustomization["resources"] == ["rbac.yaml"] and "namespace" not in kustomization
    bot_namespace = yaml.safe_load((DIR / "kustomization.yaml").read_text())["namespace"]
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] != bot_namespace
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": role["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "ops-bot", "namespace": bot_namespace}]
    assert not [d for d in docs if d["kind"].startswith("Cluster")]  # impersonation stays commented out
