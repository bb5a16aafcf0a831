"""PagerDuty events as the client builds them: Events API v2 bodies, severities, cut summaries,
only http(s) links, stable dedup keys, Retry-After."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from bot.incidents.pagerduty import MAX_SUMMARY, PagerDutyEvent, dedup_key, pagerduty_severity, retry_after

KEY = "R0UT1NGKEY0000000000000000000001"


@pytest.mark.parametrize("alert, expected", [
    ("critical", "critical"), ("warning", "warning"), ("info", "info"), ("CRITICAL", "critical"),
    ("page", "error"), ("", "error"), (None, "error"), ("error", "error"),
])  # fmt: skip
def test_alert_severities_map_to_pagerduty_and_anything_else_is_error(alert, expected):
    assert pagerduty_severity(alert) == expected
    assert PagerDutyEvent.trigger("k", "s", "src", alert or "").severity == expected


def test_a_trigger_body_has_the_payload_links_and_the_dedup_key():
    when = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
    event = PagerDutyEvent.trigger(
        "chatops/alert/abc", "HighErrorRate on checkout", "prod-cluster", "critical",
        links=[("https://slack.example/archives/C1/p1", "Slack thread"), ("javascript:alert(1)", "bad"),
               ("ftp://files/x", "ftp"), ("http://grafana:3000/d/x", "")],
        custom_details={"alerts": ["a", "b"], "namespace": "prod"}, timestamp=when)
    assert event.body(KEY) == {
        "routing_key": KEY,
        "event_action": "trigger",
        "dedup_key": "chatops/alert/abc",
        "payload": {"summary": "HighErrorRate on checkout", "source": "prod-cluster", "severity": "critical",
                    "timestamp": "2024-05-01T12:00:00+00:00",
                    "custom_details": {"alerts": ["a", "b"], "namespace": "prod"}},
        "links": [{"href": "https://slack.example/archives/C1/p1", "text": "Slack thread"},
                  {"href": "http://grafana:3000/d/x"}],
    }


def test_a_naive_timestamp_is_taken_as_utc_and_optional_fields_are_left_out():
    body = PagerDutyEvent.trigger("k", "s", "src", timestamp=datetime(2024, 5, 1, 12, 0)).body(KEY)
    assert body["payload"] == {"summary": "s", "source": "src", "severity": "error",
                               "timestamp": "2024-05-01T12:00:00+00:00"}
    assert "links" not in body


@pytest.mark.parametrize("make, action", [(PagerDutyEvent.acknowledge, "acknowledge"),
                                          (PagerDutyEvent.resolve, "resolve")])
def test_acknowledge_and_resolve_carry_only_the_dedup_key(make, action):
    assert make("chatops/alert/abc").body(KEY) == {
        "routing_key": KEY, "event_action": action, "dedup_key": "chatops/alert/abc"}


def test_the_summary_is_cut_to_pagerdutys_limit_on_one_line():
    event = PagerDutyEvent.trigger("k", "word\n" * 1000, "src")
    assert len(event.summary) == MAX_SUMMARY and event.summary.endswith("…") and "\n" not in event.summary


@pytest.mark.parametrize("build", [
    lambda: PagerDutyEvent("page", "k"),  # type: ignore[arg-type]  # the point: a wrong action
    lambda: PagerDutyEvent.resolve(""),
    lambda: PagerDutyEvent.resolve("k" * 256),
    lambda: PagerDutyEvent.trigger("k", "  ", "src"),
    lambda: PagerDutyEvent.trigger("k", "summary", ""),
])  # fmt: skip
def test_an_event_pagerduty_would_refuse_is_a_programming_error(build):
    with pytest.raises(ValueError):
        build()


def test_events_are_frozen_and_their_details_cannot_change_afterwards():
    details = {"a": 1}
    event = PagerDutyEvent.trigger("k", "s", "src", custom_details=details)
    details["a"] = 2
    assert event.custom_details == {"a": 1}
    with pytest.raises(AttributeError):
        event.dedup_key = "other"  # type: ignore[misc]  # the point: frozen


def test_dedup_keys_are_stable_per_kind_and_identity():
    key = dedup_key("group", "{}:{alertname=\"HighErrorRate\"}")
    assert key == dedup_key("group", "{}:{alertname=\"HighErrorRate\"}")
    assert key.startswith("chatops/group/") and len(key) == len("chatops/group/") + 32
    assert key != dedup_key("alert", "{}:{alertname=\"HighErrorRate\"}")
    assert key != dedup_key("group", "{}:{alertname=\"HighLatency\"}")
    with pytest.raises(ValueError):
        dedup_key("a/b", "x")


def test_retry_after_in_seconds_or_as_a_date():
    assert retry_after("7") == 7.0
    assert retry_after("1.5") == 1.5
    assert retry_after(None) is None and retry_after("soon") is None and retry_after("nan") is None
    assert retry_after("-3") == 0.0
    later = retry_after(format_datetime(datetime.now(timezone.utc) + timedelta(minutes=5), usegmt=True))
    assert later is not None and 200 < later <= 300
