import json
from pathlib import Path

import pytest

from bot.alerting.model import Alert
from bot.alerting.ingest import parse_webhook
from bot.errors import ConfigError
from bot.alerting.playbooks import expression, load_playbooks

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "alertmanager"


def alert(name: str, **labels: str) -> Alert:
    return Alert(fingerprint="f", status="firing", labels={"alertname": name, **labels})


def test_runbook_playbook_fills_namespace_and_deployment_from_labels():
    playbooks = load_playbooks({})
    steps = playbooks.commands(alert("APIServerDown", namespace="prod", deployment="checkout"))
    assert steps[0] == "pods checkout -n prod"
    assert "logs checkout -n prod --tail 50" in steps
    assert playbooks.for_alert(alert("APIServerDown")).actions == ("scale-up",)


def test_missing_labels_fall_back_to_the_runbooks_names_and_to_configured_defaults():
    steps = load_playbooks({}).commands(alert("APIServerDown"))
    assert steps[0] == "pods claude-deployment-api -n claude-deployment-prod"
    custom = load_playbooks({"playbook_defaults": {"namespace": "shop"}})
    assert custom.commands(alert("APIServerDown"))[1] == "events -n shop"


def test_node_alerts_target_the_alerts_instance_and_node():
    steps = load_playbooks({}).commands(alert("HighCPUUsage", instance="node-7:9100"))
    assert steps[0] == "metric node-cpu instance=node-7:9100"
    assert 'node="node-7"' in steps[2]


def test_any_other_alert_graphs_its_own_expression_from_the_generator_url():
    (webhook_alert,) = parse_webhook(json.loads((FIXTURES / "webhook-firing.json").read_text())).alerts
    other = Alert(fingerprint="f", status="firing", labels={"alertname": "SomethingNew"},
                  generator_url=webhook_alert.generator_url)
    assert expression(other).startswith('sum by (service) (rate(http_requests_total{status="500"}[5s]))')
    steps = load_playbooks({}).commands(other)
    assert steps[0] == "graph " + expression(other)


def test_label_values_that_could_inject_words_are_not_used():
    steps = load_playbooks({}).commands(alert("APIServerDown", namespace="prod --previous", deployment="x"))
    assert steps[1] == "events -n claude-deployment-prod"


def test_yaml_overrides_and_adds_playbooks():
    playbooks = load_playbooks({"playbooks": {"DiskFull": {"steps": ["nodes"], "actions": []},
                                              "DatabaseDown": {"steps": ["db"]}}})
    assert playbooks.commands(alert("DiskFull")) == ["nodes"]
    assert playbooks.commands(alert("DatabaseDown")) == ["db"]


@pytest.mark.parametrize("entry", [{"steps": "pods"}, {"steps": [""]}, {"steps": ["pods {deployment"]}, "nope"])
def test_malformed_playbooks_stop_the_bot_with_one_line(entry):
    with pytest.raises(ConfigError) as e:
        load_playbooks({"playbooks": {"X": entry}})
    assert "playbooks.X" in str(e.value) and "\n" not in str(e.value)
