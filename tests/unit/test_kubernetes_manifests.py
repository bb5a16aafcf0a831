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
