"""chatops.yaml `escalation:` (read by the one section reader) and the PagerDuty settings."""

from __future__ import annotations

from typing import Any

import pytest

from bot.all_sections import load_sections
from bot.errors import ConfigError
from bot.incidents.config import EscalationConfig, Related, Sla
from bot.settings import DEFAULT_PAGERDUTY_EVENTS_URL, Settings, load_settings

KEY = "R0UT1NGKEY0000000000000000000001"


def escalation(raw: Any) -> EscalationConfig:
    return load_sections(Settings(sections={"escalation": raw})).escalation


def error_of(raw: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        escalation(raw)
    assert "\n" not in str(caught.value)
    return str(caught.value)


def test_the_defaults_are_the_runbooks_slas():
    for config in (load_sections(Settings()).escalation, escalation(None), escalation({})):
        assert config == EscalationConfig(
            critical=Sla(5, 60), warning=Sla(30, 240), related=Related(3, 10),
            managers_channel="#engineering-managers")
        assert config.sla("critical") == (300, 3600)
        assert config.sla("warning") == (1800, 14400)
        assert config.sla("info") is None and config.sla("page") is None and config.sla(None) is None


def test_fractional_minutes_and_a_key_left_out_keeps_its_default():
    config = escalation({"critical": {"ack_minutes": 0.5}, "warning": {"resolve_minutes": 90.5},
                         "related": {"count": 5}, "managers_channel": "#leads"})
    assert config.sla("CRITICAL") == (30, 3600)
    assert config.sla("warning") == (1800, 5430)
    assert config.related == Related(count=5, within_minutes=10) and config.related.within_seconds == 600
    assert config.managers_channel == "#leads"


@pytest.mark.parametrize("raw, message", [
    ({"critcal": {}}, "critcal: unknown key (did you mean critical?)"),
    ({"critical": {"ack_minute": 5}}, "critical.ack_minute: unknown key (did you mean ack_minutes?)"),
    ({"related": {"within": 5}}, "related.within: unknown key (did you mean within_minutes?)"),
    ({"managers": "#x"}, "managers: unknown key (did you mean managers_channel?)"),
    ({"critical": {"ack_minutes": 0}}, "critical.ack_minutes: must be a number more than 0, not 0"),
    ({"warning": {"resolve_minutes": -1}}, "warning.resolve_minutes: must be a number more than 0, not -1"),
    ({"critical": {"ack_minutes": "5m"}}, "critical.ack_minutes: must be a number more than 0, not '5m'"),
    ({"related": {"count": 1}}, "related.count: must be a whole number of at least 2, not 1"),
    ({"related": {"count": 2.5}}, "related.count: must be a whole number of at least 2, not 2.5"),
    ({"related": {"within_minutes": 0}}, "related.within_minutes: must be a number more than 0, not 0"),
    ({"managers_channel": ""}, "managers_channel: must be a non-empty string, not ''"),
    ({"critical": 5}, "critical: must be a mapping with the keys ack_minutes, resolve_minutes, not 5"),
    ([1], ": must be a mapping with the keys critical, warning, related, managers_channel, not [1]"),
])  # fmt: skip
def test_mistakes_are_one_line_naming_the_key(raw, message):
    """Each message: `chatops.yaml: escalation.<key>: …` (the table leaves that prefix out)."""
    assert error_of(raw) == f"chatops.yaml: escalation{'' if message.startswith(':') else '.'}{message}"


def test_a_typo_in_the_file_names_the_file(tmp_path):
    path = tmp_path / "ops.yaml"
    path.write_text("escalation:\n  related: {count: 3, within_minutes: 10, cuont: 4}\n")
    settings = load_settings({"CHATOPS_CONFIG": str(path)}, mode="cli")
    with pytest.raises(ConfigError, match=r"escalation\.related\.cuont: unknown key \(did you mean count\?\)$"):
        load_sections(settings)


# --------------------------------------------------------------------------- PAGERDUTY_*


def test_pagerduty_settings_are_read_and_the_key_is_a_secret_never_shown():
    settings = load_settings({"PAGERDUTY_ROUTING_KEY": f" {KEY} ",
                              "PAGERDUTY_EVENTS_URL": "http://127.0.0.1:8080/v2/enqueue"}, mode="cli")
    assert settings.pagerduty_routing_key == KEY and settings.pagerduty_configured
    assert settings.pagerduty_events_url == "http://127.0.0.1:8080/v2/enqueue"
    assert KEY in settings.secrets()
    assert KEY not in repr(settings) and KEY not in str(settings)


def test_without_pagerduty_variables_it_is_not_configured_and_the_url_is_pagerdutys():
    settings = load_settings({}, mode="cli")
    assert not settings.pagerduty_configured and settings.pagerduty_routing_key == ""
    assert settings.pagerduty_events_url == DEFAULT_PAGERDUTY_EVENTS_URL == "https://events.pagerduty.com/v2/enqueue"


def test_a_bad_events_url_or_key_is_one_line_without_the_key():
    with pytest.raises(ConfigError, match="^PAGERDUTY_EVENTS_URL='events.pagerduty.com' is not an http"):
        load_settings({"PAGERDUTY_EVENTS_URL": "events.pagerduty.com"}, mode="cli")
    with pytest.raises(ConfigError) as caught:
        load_settings({"PAGERDUTY_ROUTING_KEY": "R0UT1NG KEY"}, mode="cli")
    assert "PAGERDUTY_ROUTING_KEY" in str(caught.value) and "R0UT1NG" not in str(caught.value)


def test_the_routing_key_is_redacted_from_log_lines(capsys):
    import logging

    from bot.runtime.logsetup import setup_logging

    settings = load_settings({"PAGERDUTY_ROUTING_KEY": KEY}, mode="cli")
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        setup_logging("INFO", "text", settings.secrets())
        logging.getLogger("test").warning("posting to PagerDuty with %s", KEY)
    finally:
        root.handlers[:], root.level = handlers, level
    err = capsys.readouterr().err
    assert "posting to PagerDuty" in err and KEY not in err
