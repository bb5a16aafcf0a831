import json
from pathlib import Path

import pytest

from bot.alerting.ingest import parse_webhook
from bot.alerting.model import Alert
from bot.alerting.playbooks import expression, load, load_defaults
from bot.errors import ConfigError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "alertmanager"


def alert(name: str, **labels: str) -> Alert:
    return Alert(fingerprint="f", status="firing", labels={"alertname": name, **labels})


def test_runbook_playbook_fills_namespace_and_deployment_from_labels():
    playbooks = load(None)
    steps = playbooks.commands(alert("APIServerDown", namespace="prod", deployment="checkout"))
    assert steps[0] == "pods checkout -n prod"
    assert "logs checkout -n prod --tail 50" in steps
    assert playbooks.for_alert(alert("APIServerDown")).actions == ("scale-up",)


def test_missing_labels_fall_back_to_the_runbooks_names_and_to_configured_defaults():
    steps = load(None).commands(alert("APIServerDown"))
    assert steps[0] == "pods claude-deployment-api -n claude-deployment-prod"
    custom = load(None, {"namespace": "shop"})
    assert custom.commands(alert("APIServerDown"))[1] == "events -n shop"


def test_node_alerts_target_the_alerts_instance_and_node():
    steps = load(None).commands(alert("HighCPUUsage", instance="node-7:9100"))
    assert steps[0] == "metric node-cpu instance=~node-7:9100"
    assert 'node=~"node-7"' in steps[2]


def test_any_other_alert_graphs_its_own_expression_from_the_generator_url():
    (webhook_alert,) = parse_webhook(json.loads((FIXTURES / "webhook-firing.json").read_text())).alerts
    other = Alert(fingerprint="f", status="firing", labels={"alertname": "SomethingNew"},
                  generator_url=webhook_alert.generator_url)
    assert expression(other).startswith('sum by (service) (rate(http_requests_total{status="500"}[5s]))')
    steps = load(None).commands(other)
    assert steps[0] == "graph " + expression(other)


def test_label_values_that_could_inject_words_are_not_used():
    steps = load(None).commands(alert("APIServerDown", namespace="prod --previous", deployment="x"))
    assert steps[1] == "events -n claude-deployment-prod"


def test_yaml_overrides_and_adds_playbooks():
    playbooks = load({"DiskFull": {"steps": ["nodes"], "actions": []}, "DatabaseDown": {"steps": ["db"]}})
    assert playbooks.commands(alert("DiskFull")) == ["nodes"]
    assert playbooks.commands(alert("DatabaseDown")) == ["db"]


@pytest.mark.parametrize("entry, message", [
    ({"steps": "pods"}, "chatops.yaml: playbooks.X.steps: must be a list, not 'pods'"),
    ({"steps": [""]}, "chatops.yaml: playbooks.X.steps[0]: must be an /ops command line, not ''"),
    ({"steps": ["pods {deployment"]},
     "chatops.yaml: playbooks.X.steps[0]: 'pods {deployment' has a broken placeholder"),
    ("nope", "chatops.yaml: playbooks.X: must be a mapping with the keys steps, actions, not 'nope'"),
    (None, "chatops.yaml: playbooks.X: must be a mapping with the keys steps, actions, not None"),
    ({"step": ["nodes"]}, "chatops.yaml: playbooks.X.step: unknown key (did you mean steps?)"),
    ({"steps": ["nodes"], "actions": "scale-up"}, "chatops.yaml: playbooks.X.actions: must be a list, not 'scale-up'"),
])
def test_malformed_playbooks_stop_the_bot_with_one_line(entry, message):
    with pytest.raises(ConfigError) as e:
        load({"X": entry})
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


@pytest.mark.parametrize("defaults, message", [
    ({"namespace": "two words"}, "chatops.yaml: playbook_defaults.namespace: must be a single word"),
    ({"namespce": "shop"}, "chatops.yaml: playbook_defaults.namespce: unknown key (did you mean namespace?)"),
    ({"node": "n1"}, "chatops.yaml: playbook_defaults.node: unknown key (known: app, deployment, instance,"),
    ({"namespace": 5}, "chatops.yaml: playbook_defaults.namespace: must be a single word (no spaces or braces), not 5"),
    (["namespace"], "chatops.yaml: playbook_defaults: must be a mapping of placeholder names to values"),
])
def test_playbook_defaults_are_single_words(defaults, message):
    with pytest.raises(ConfigError) as e:
        load_defaults(defaults)
    assert str(e.value).startswith(message)


def test_playbook_defaults_may_fill_a_placeholder_a_configured_step_uses():
    playbooks = load({"DiskFull": {"steps": ["logs {pod} -n {namespace}"]}}, {"pod": "web-0"})
    assert playbooks.commands(alert("DiskFull")) == ["logs web-0 -n claude-deployment-prod"]
    assert playbooks.commands(alert("DiskFull", pod="web-1")) == ["logs web-1 -n claude-deployment-prod"]
    with pytest.raises(ConfigError, match="playbook_defaults.pod: unknown key"):
        load(None, {"pod": "web-0"})


def test_the_default_entry_replaces_the_playbook_for_any_other_alert():
    playbooks = load({"default": {"steps": ["nodes"]}})
    assert playbooks.commands(alert("SomethingNew")) == ["nodes"]
    assert playbooks.for_alert(alert("APIServerDown")).steps[0] == "pods {deployment} -n {namespace}"
