"""chatops.yaml's sections: one reader, every section parsed once into its typed object, and
one line for any unknown key or bad value, in the terminal as when serving."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.alerting.config import AlertSettings
from bot.all_sections import Sections, load_sections
from bot.errors import ConfigError
from bot.sections import Where, key, read, text, whole
from bot.settings import SECTIONS, Settings, load_settings
from bot.state.config import DeliveryConfig
from diagnostics.elasticsearch import LogFields
from diagnostics.http import DEFAULT_DEPENDENCIES
from diagnostics.presets import DEFAULT_PRESETS, SloTargets

ROOT = Path(__file__).resolve().parents[2]
DEPENDENCY = {"name": "api", "url": "https://api.internal/healthz"}


def sections_from(**raw: Any) -> Sections:
    """The sections of a chatops.yaml holding `raw` (no file named: messages say chatops.yaml)."""
    return load_sections(Settings(sections=raw))


def error_of(**raw: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        sections_from(**raw)
    message = str(caught.value)
    assert "\n" not in message
    return message


# --------------------------------------------------------------------------- the reader


def test_every_section_settings_accepts_is_parsed_into_a_field_of_sections():
    assert [f.name for f in dataclasses.fields(Sections)] == list(SECTIONS)


@dataclasses.dataclass(frozen=True)
class _Spec:
    name: str = key(text)
    count: int = key(whole(at_least=1), 1)


def test_the_reader_converts_declared_keys_and_names_the_path_of_a_mistake():
    where = Where("ops.yaml", "things[2]")
    assert read(_Spec, {"name": " x ", "count": 3}, where) == _Spec("x", 3)
    with pytest.raises(ConfigError, match=r"^ops.yaml: things\[2\].name: missing \(required\)$"):
        read(_Spec, {"count": 3}, where)
    with pytest.raises(ConfigError, match=r"^ops.yaml: things\[2\].cuont: unknown key \(did you mean count\?\)$"):
        read(_Spec, {"name": "x", "cuont": 3}, where)
    with pytest.raises(ConfigError, match=r"^ops.yaml: things\[2\].zzz: unknown key \(known: name, count\)$"):
        read(_Spec, {"name": "x", "zzz": 3}, where)
    with pytest.raises(ConfigError) as caught:
        read(_Spec, {"name": "x", "count": 0}, where)
    assert str(caught.value) == "ops.yaml: things[2].count: must be a whole number of at least 1, not 0"


# --------------------------------------------------------------------------- every section


# A typo of one key in each section, and the key it should have been.
UNKNOWN_KEYS = {
    "presets": ({"error-rate": {"warnin": 1}}, "presets.error-rate.warnin", "warning"),
    "slo": ({"api_p95": 300}, "slo.api_p95", "api_p95_ms"),
    "elasticsearch": ({"indx": "logs-*"}, "elasticsearch.indx", "index"),
    "dependencies": ([DEPENDENCY, {**DEPENDENCY, "name": "b", "methd": "GET"}], "dependencies[1].methd", "method"),
    "aws": ({"rds_instanse": "claude-db"}, "aws.rds_instanse", "rds_instance"),
    "playbooks": ({"DiskFull": {"step": ["nodes"]}}, "playbooks.DiskFull.step", "steps"),
    "playbook_defaults": ({"namepsace": "shop"}, "playbook_defaults.namepsace", "namespace"),
    "alerts": ({"cooldown": 5}, "alerts.cooldown", "cooldown_minutes"),
    "delivery": ({"lease_second": 30}, "delivery.lease_second", "lease_seconds"),
    "policy": ({"groups": {"a": ["U0ALICE001"]}, "actions": {"scale": {"request": ["a"], "approve": ["a"],
                                                                        "max_replica": 3}}},
               "policy.actions.scale.max_replica", "max_replicas"),
    "actions": ({"breaker": {"config_map": "x"}}, "actions.breaker.config_map", "configmap"),
    "escalation": ({"critical": {"ack_minute": 5}}, "escalation.critical.ack_minute", "ack_minutes"),
}


def test_every_section_is_covered():
    assert set(UNKNOWN_KEYS) == set(SECTIONS) == set(WRONG_VALUES) == set(WRONG_SHAPES)


@pytest.mark.parametrize("section", UNKNOWN_KEYS)
def test_an_unknown_key_in_any_section_is_one_line_with_the_closest_key(section):
    raw, path, meant = UNKNOWN_KEYS[section]
    assert error_of(**{section: raw}) == f"chatops.yaml: {path}: unknown key (did you mean {meant}?)"


# A value of the wrong type or out of range in each section, and what the message says.
WRONG_VALUES = {
    "presets": ({"error-rate": {"warning": "high"}}, "presets.error-rate.warning: must be a number, not 'high'"),
    "slo": ({"api_p95_ms": "fast"}, "slo.api_p95_ms: must be a number more than 0, not 'fast'"),
    "elasticsearch": ({"index": 5}, "elasticsearch.index: must be a non-empty string, not 5"),
    "dependencies": ([{**DEPENDENCY, "timeout": "3s"}],
                     "dependencies[0].timeout: must be a number of seconds more than 0, at most 120, not '3s'"),
    "aws": ({"rds_instance": 5}, "aws.rds_instance: must be a non-empty string, not 5"),
    "playbooks": ({"DiskFull": {"steps": "nodes"}}, "playbooks.DiskFull.steps: must be a list, not 'nodes'"),
    "playbook_defaults": ({"namespace": ["a"]},
                          "playbook_defaults.namespace: must be a single word (no spaces or braces), not ['a']"),
    "alerts": ({"concurrency": 2.5}, "alerts.concurrency: must be a whole number of at least 1, not 2.5"),
    "delivery": ({"command_concurrency": 0},
                 "delivery.command_concurrency: must be a whole number of at least 1, not 0"),
    "policy": ({"groups": {}, "actions": {}, "approval_minutes": 0},
               "policy.approval_minutes: must be a number more than 0, not 0"),
    "actions": ({"raise_limits": {"memory": "lots"}},
                "actions.raise_limits.memory: 'lots' is not a Kubernetes quantity (a number with an optional "
                "suffix: Ki Mi Gi Ti Pi Ei, m k M G T P E, or an exponent like 1e3)"),
    "escalation": ({"related": {"count": 1}},
                   "escalation.related.count: must be a whole number of at least 2, not 1"),
}


@pytest.mark.parametrize("section", WRONG_VALUES)
def test_a_wrong_value_in_any_section_says_what_it_must_be(section):
    raw, message = WRONG_VALUES[section]
    assert error_of(**{section: raw}) == f"chatops.yaml: {message}"


# A whole section of the wrong shape.
WRONG_SHAPES = {
    "presets": "presets: must be a mapping of preset names to values, not 'x'",
    "slo": "slo: must be a mapping with the keys availability_percent, api_p95_ms, error_rate_percent, "
           "db_p95_ms, labels, not 'x'",
    "elasticsearch": "elasticsearch: must be a mapping with the keys index, app_field, default_app, "
                     "message_field, level_field, endpoint_field, response_time_field, timestamp_field, not 'x'",
    "dependencies": "dependencies: must be a list, not 'x'",
    "aws": "aws: must be a mapping with the keys rds_instance, target_group_arn, cache_cluster, not 'x'",
    "playbooks": "playbooks: must be a mapping of alert names to values, not 'x'",
    "playbook_defaults": "playbook_defaults: must be a mapping of placeholder names to values, not 'x'",
    "alerts": "alerts: must be a mapping with the keys channels, listen, cooldown_minutes, concurrency, "
              "edit_interval, post_interval, not 'x'",
    "delivery": "delivery: must be a mapping with the keys lease_seconds, poll_seconds, retry_initial_seconds, "
                "retry_max_seconds, give_up_after_minutes, command_concurrency, slack_timeout_seconds, not 'x'",
    "policy": "policy: must be a mapping with the keys groups, actions, approval_minutes, two_person, impersonate, "
              "not 'x'",
    "actions": "actions: must be a mapping with the keys breaker, raise_limits, not 'x'",
    "escalation": "escalation: must be a mapping with the keys critical, warning, related, managers_channel, "
                  "not 'x'",
}


@pytest.mark.parametrize("section", WRONG_SHAPES)
def test_a_section_of_the_wrong_shape_says_what_it_must_be(section):
    assert error_of(**{section: "x"}) == f"chatops.yaml: {WRONG_SHAPES[section]}"


# --------------------------------------------------------------------------- the two bugs


def test_alerts_cooldown_for_cooldown_minutes_stops_the_bot(tmp_path):
    config = tmp_path / "chatops.yaml"
    config.write_text("alerts:\n  cooldown: 5\n")
    settings = load_settings({"CHATOPS_CONFIG": str(config)}, mode="cli")
    with pytest.raises(ConfigError) as caught:
        load_sections(settings)
    assert str(caught.value) == f"{config}: alerts.cooldown: unknown key (did you mean cooldown_minutes?)"


def test_a_playbook_step_for_steps_stops_the_bot_instead_of_running_no_step(tmp_path):
    config = tmp_path / "chatops.yaml"
    config.write_text("playbooks:\n  DiskFull:\n    step: [nodes]\n")
    settings = load_settings({"CHATOPS_CONFIG": str(config)}, mode="cli")
    with pytest.raises(ConfigError) as caught:
        load_sections(settings)
    assert str(caught.value) == f"{config}: playbooks.DiskFull.step: unknown key (did you mean steps?)"


def test_the_file_is_named_as_the_user_gave_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "ops.yaml").write_text("alerts: {cooldown: 5}\n")
    settings = load_settings({"CHATOPS_CONFIG": "conf/ops.yaml"}, mode="cli")
    with pytest.raises(ConfigError, match=r"^conf/ops.yaml: alerts.cooldown: unknown key"):
        load_sections(settings)


# --------------------------------------------------------------------------- what they parse into


def test_absent_sections_are_the_defaults():
    sections = sections_from()
    assert sections == Sections()
    assert dict(sections.presets.by_name) == DEFAULT_PRESETS
    assert sections.slo == SloTargets() and sections.elasticsearch == LogFields()
    assert sections.dependencies == DEFAULT_DEPENDENCIES
    assert sections.aws.rds_instance == sections.aws.target_group_arn == sections.aws.cache_cluster == ""
    assert sections.alerts == AlertSettings() and sections.alerts.cooldown == 600
    assert sections.alerts.channel_for("critical") == "#alerts-critical"
    assert sections.delivery == DeliveryConfig()
    assert sections.policy is None  # no policy: every mutating command refused
    assert sections.playbooks.defaults["namespace"] == "claude-deployment-prod"


def test_empty_sections_are_the_defaults_too():
    # `alerts:` with nothing under it is YAML null.
    raw = yaml.safe_load("alerts:\ndelivery:\nslo:\naws:\nelasticsearch:\npresets:\nplaybooks:\nplaybook_defaults:\n"
                         "policy:\n")
    assert load_sections(Settings(sections=raw)) == Sections()


def test_sections_are_frozen():
    sections = sections_from(alerts={"cooldown_minutes": 5})
    with pytest.raises(dataclasses.FrozenInstanceError):
        sections.alerts.cooldown_minutes = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        sections.alerts.channels["critical"] = "#elsewhere"  # type: ignore[index]
    with pytest.raises(TypeError):
        sections.presets.by_name["new"] = sections.presets.by_name["error-rate"]  # type: ignore[index]


def test_alerts_are_read_with_their_channels_over_the_defaults():
    alerts = sections_from(alerts={"channels": {"critical": "#pager"}, "listen": ["C0123"], "cooldown_minutes": 5,
                                   "concurrency": 2, "edit_interval": 0, "post_interval": 0.5}).alerts
    assert alerts.channel_for("critical") == "#pager" and alerts.channel_for("warning") == "#alerts-warning"
    assert alerts.listen == ("C0123",) and alerts.cooldown == 300 and alerts.concurrency == 2
    assert (alerts.edit_interval, alerts.post_interval) == (0, 0.5)


def test_delivery_is_parsed_into_delivery_config():
    delivery = sections_from(delivery={
        "lease_seconds": 45, "poll_seconds": 0.5, "retry_initial_seconds": 2, "retry_max_seconds": 120,
        "give_up_after_minutes": 300, "command_concurrency": 4, "slack_timeout_seconds": 5,
    }).delivery
    assert delivery == DeliveryConfig(45.0, 0.5, 2.0, 120.0, 300.0, 4, 5.0)
    assert isinstance(delivery.lease_seconds, float) and isinstance(delivery.command_concurrency, int)
    assert sections_from(delivery={"poll_seconds": 2}).delivery == DeliveryConfig(poll_seconds=2.0)


@pytest.mark.parametrize("delivery, message", [
    ({"lease_seconds": 0}, "delivery.lease_seconds: must be a number more than 0, not 0"),
    ({"poll_seconds": True}, "delivery.poll_seconds: must be a number more than 0, not True"),
    ({"give_up_after_minutes": "4h"}, "delivery.give_up_after_minutes: must be a number more than 0, not '4h'"),
    ({"command_concurrency": 2.0}, "delivery.command_concurrency: must be a whole number of at least 1, not 2.0"),
    ({"retry_initial_seconds": 10, "retry_max_seconds": 5},
     "delivery.retry_max_seconds: must be at least retry_initial_seconds (10), not 5.0"),
])  # fmt: skip
def test_delivery_numbers_must_be_positive(delivery, message):
    assert error_of(delivery=delivery) == f"chatops.yaml: {message}"


def test_the_first_problem_is_the_one_reported():
    message = error_of(alerts={"cooldown": 5}, slo={"api_p95": 1})
    assert message.startswith("chatops.yaml: slo.api_p95: unknown key")


# --------------------------------------------------------------------------- the process


def _run_app(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "KUBE", "PROMETHEUS", "CHATOPS"))}
    return subprocess.run([sys.executable, str(ROOT / "app.py"), *args], env={**clean, **env}, cwd=cwd,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("args, env", [
    (["ops", "help"], {}),
    (["ops", "pods", "checkout"], {}),
    ([], {"SLACK_BOT_TOKEN": "xoxb-1-2-abc", "SLACK_SIGNING_SECRET": "s3cr3t-signing", "PORT": "0"}),
], ids=["ops help", "ops pods", "serve"])
def test_a_bad_chatops_yaml_exits_2_with_the_same_one_line_in_the_terminal_and_serving(tmp_path, args, env):
    (tmp_path / "chatops.yaml").write_text("alerts:\n  cooldown: 5\n")
    proc = _run_app(args, {"CHATOPS_CONFIG": "chatops.yaml", **env}, tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        "config error: chatops.yaml: alerts.cooldown: unknown key (did you mean cooldown_minutes?)"]
    assert proc.stdout == ""


def test_a_playbook_step_that_is_no_command_stops_the_terminal_too(tmp_path):
    (tmp_path / "chatops.yaml").write_text("playbooks:\n  DiskFull:\n    steps: ['metric node-dsk']\n")
    proc = _run_app(["ops", "help"], {}, tmp_path)  # ./chatops.yaml is read without CHATOPS_CONFIG
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "config error: chatops.yaml: playbooks.DiskFull.steps[0]: 'metric node-dsk': Unknown preset `node-dsk`. "
        "Did you mean `node-disk` or `node-ready` or `node-cpu`?"]


def test_settings_import_no_checks_and_no_commands():
    code = ("import sys, bot.settings; "
            "print(sorted(m for m in sys.modules if m.startswith(('bot.checks', 'bot.commands', 'bot.clients'))))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
