"""A real Alertmanager posting to Slack with each kind of template; the bot reads each post
and matches it to the alert through Alertmanager's API v2."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.alerting.ingest import alert_from_api, match_post, parse_post

pytestmark = pytest.mark.integration

TEMPLATE = Path(__file__).resolve().parents[2] / "manifests" / "chatops.tmpl"

RECEIVERS = {
    "default": "",
    "runbook": """
    title: '🚨 Critical Alert'
    text: '{{ range .Alerts }}{{ .Annotations.description }}{{ end }}'""",
    "recommended": """
    title: '{{ template "chatops.title" . }}'
    text: '{{ template "chatops.text" . }}'
    footer: '{{ template "chatops.footer" . }}'""",
}


def config(hook_url: str, receiver: str) -> str:
    return f"""
global:
  slack_api_url: '{hook_url}'
route:
  receiver: slack
  group_by: ['alertname']
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
- name: slack
  slack_configs:
  - channel: '#alerts-critical'
    send_resolved: true{RECEIVERS[receiver]}
templates:
- '{TEMPLATE}'
"""


ALERTS = [
    {"labels": {"alertname": "HighErrorRate", "service": "checkout", "severity": "critical"},
     "annotations": {"summary": "High error rate detected",
                     "description": "Error rate is 7.31% for the last 5 minutes"}},
    {"labels": {"alertname": "DatabaseDown", "job": "postgresql", "severity": "critical"},
     "annotations": {"summary": "Database is down",
                     "description": "PostgreSQL database has been down for more than 1 minute"}},
]


@pytest.mark.parametrize("receiver", ["default", "runbook", "recommended"])
async def test_each_kind_of_post_is_matched_to_exactly_its_alert(receiver, alertmanager_factory, fake_slack):
    with alertmanager_factory(config(f"{fake_slack.base_url}/services/T0/B0/X", receiver)) as alertmanager:
        await asyncio.to_thread(alertmanager.post_alerts, ALERTS)
        calls = await fake_slack.wait_for("incoming_webhook", timeout=15, count=2)
        active = [alert_from_api(a) for a in await asyncio.to_thread(alertmanager.alerts)]
    by_name = {a.name: a for a in active}
    for call in calls:
        message = next(m for m in fake_slack.messages() if m.attachments == call.params["attachments"])
        post = parse_post({"attachments": message.attachments, "channel": message.channel})
        assert post is not None and post.kind == receiver and post.status == "firing"
        matched = match_post(post, active)
        assert len(matched) == 1, (post, matched)
        expected = "HighErrorRate" if "rror" in str(call.params) else "DatabaseDown"
        assert matched[0].fingerprint == by_name[expected].fingerprint
