"""The runbook's alert rules shipped in manifests/ are valid Prometheus rules."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from tests.servers.missing import require_binary

RULES = Path(__file__).resolve().parents[2] / "manifests" / "prometheus" / "runbook-alerts.yaml"


def rule_groups() -> dict:
    """The PrometheusRule resources' `.spec.groups`, as a plain rules file."""
    return {"groups": [g for doc in yaml.safe_load_all(RULES.read_text()) for g in doc["spec"]["groups"]]}


def test_runbook_rules_pass_promtool(tmp_path):
    promtool = require_binary("promtool", package="prometheus")
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(rule_groups()))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 7 rules found" in result.stdout


def test_every_runbook_alert_has_a_playbook():
    from bot.alerting.playbooks import DEFAULT_PLAYBOOKS

    names = {rule["alert"] for group in rule_groups()["groups"] for rule in group["rules"]}
    assert names == set(DEFAULT_PLAYBOOKS)


def test_recommended_alertmanager_receivers_pass_amtool():
    amtool = require_binary("amtool", package="prometheus-alertmanager")
    manifests = RULES.parents[1]
    result = subprocess.run([amtool, "check-config", "alertmanager-slack-receivers.yml"], cwd=manifests,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
