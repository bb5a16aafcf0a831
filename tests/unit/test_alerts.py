import json
from pathlib import Path

import pytest

from bot.alerting.ingest import AlertPayloadError, match_post, parse_post, parse_webhook
from bot.alerting.model import Alert

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "alertmanager"


def load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def slack_event(post: dict) -> dict:
    """A notifier post as Slack delivers it in a message event."""
    return {"type": "message", "subtype": "bot_message", "bot_id": "B0AM", "text": post.get("text", ""),
            "attachments": post["attachments"], "channel": "C0ALERTS", "ts": "1732500000.000100"}


def alert(name: str, fingerprint: str, **labels: str) -> Alert:
    description = labels.pop("description", "")
    return Alert(fingerprint=fingerprint, status="firing", labels={"alertname": name, **labels},
                 annotations={"description": description} if description else {})


def test_real_webhook_body_is_parsed_alert_by_alert():
    notification = parse_webhook(load("webhook-firing.json"))
    (a,) = notification.alerts
    assert a.name == "HighErrorRate" and a.severity == "critical"
    assert a.fingerprint == "7d2d332feada5c59"
    assert a.summary == "High 5xx error rate on checkout"
    assert a.starts_at is not None and a.ends_at is None
    assert notification.group_labels == {"alertname": "HighErrorRate", "service": "checkout"}


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda b: b.update(version="3"), "unsupported webhook version"),
        (lambda b: b.update(alerts=[]), "non-empty list"),
        (lambda b: b["alerts"][0]["labels"].pop("alertname"), "alertname is missing"),
        (lambda b: b["alerts"][0].update(status="exploded"), "firing or resolved"),
        (lambda b: b["alerts"][0].update(fingerprint="<!channel>"), "fingerprint"),
        (lambda b: b["alerts"][0].update(labels={"alertname": 5}), "object of strings"),
    ],
)
def test_malformed_webhook_bodies_are_refused_with_the_reason(mutate, message):
    body = load("webhook-firing.json")
    mutate(body)
    with pytest.raises(AlertPayloadError, match=message):
        parse_webhook(body)


def test_default_template_post_is_read_for_its_label_values():
    post = parse_post(slack_event(load("slack-default-firing.json")))
    assert post is not None and post.kind == "default" and post.status == "firing"
    assert post.firing_count == 1
    assert post.group_values == ("HighErrorRate", "checkout") and post.common_values == ("critical",)


def test_default_post_matches_only_the_alert_whose_values_it_names():
    post = parse_post(slack_event(load("slack-default-firing.json")))
    right = alert("HighErrorRate", "aa", service="checkout", severity="critical")
    other_service = alert("HighErrorRate", "bb", service="payments", severity="critical")
    other_alert = alert("HighCPUUsage", "cc", service="checkout", severity="critical")
    assert match_post(post, [right, other_service, other_alert]) == [right]


def test_runbook_receiver_post_matches_by_description_even_when_the_value_changed():
    post = parse_post(slack_event({"attachments": [{
        "title": "🚨 Critical Alert", "text": "Error rate is 7.31% for the last 5 minutes", "color": "danger"}]}))
    assert post.kind == "runbook" and post.severity == "critical"
    firing = alert("HighErrorRate", "aa", severity="critical",
                   description="Error rate is 7.02% for the last 5 minutes")
    warning_twin = alert("HighErrorRate", "bb", severity="warning",
                         description="Error rate is 7.02% for the last 5 minutes")
    unrelated = alert("DatabaseDown", "cc", severity="critical",
                      description="PostgreSQL database has been down for more than 1 minute")
    assert match_post(post, [firing, warning_twin, unrelated]) == [firing]


def test_post_that_matches_nothing_gets_no_alerts():
    post = parse_post(slack_event({"attachments": [{"title": "⚠️ Warning Alert", "text": "Something else"}]}))
    assert match_post(post, [alert("HighErrorRate", "aa", severity="warning", description="Error rate")]) == []


def test_recommended_template_matches_exactly_by_fingerprint():
    post = parse_post(slack_event({"attachments": [{
        "title": "[FIRING:2] HighErrorRate critical", "text": "…",
        "footer": "chatops fingerprints: 7d2d332feada5c59 0123abcd"}]}))
    assert post.kind == "recommended" and post.fingerprints == ("0123abcd", "7d2d332feada5c59")
    a, b, c = alert("X", "7d2d332feada5c59"), alert("X", "0123abcd"), alert("X", "ffff")
    assert match_post(post, [a, b, c]) == [a, b]


def test_ordinary_messages_are_not_alert_posts():
    assert parse_post({"type": "message", "text": "[FIRING:1] in plain text is not a notifier post"}) is None
    assert parse_post({"type": "message", "attachments": [{"title": "Deploy finished"}]}) is None


def test_default_template_resolved_post_is_read_as_resolved_with_the_same_label_values():
    firing = parse_post(slack_event(load("slack-default-firing.json")))
    resolved = parse_post(slack_event(load("slack-default-resolved.json")))
    assert resolved is not None and firing is not None and resolved.status == "resolved"
    assert (resolved.group_values, resolved.common_values) == (firing.group_values, firing.common_values)
