"""From a real Prometheus evaluating the runbook's HighErrorRate rule, through a real
Alertmanager notifying both Slack (the runbook's receiver) and the bot's webhook, to the
playbook in both threads, and back to resolved when the service recovers."""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest
import yaml

from tests.integration.test_alert_rules import rule_groups
from tests.plugins.kube import seed_checkout_prod

pytestmark = pytest.mark.integration

TOKEN = "e2e-webhook-token"


def high_error_rate_rules() -> str:
    (rule,) = [r for g in rule_groups()["groups"] for r in g["rules"] if r["alert"] == "HighErrorRate"]
    rule["for"] = "0s"  # the runbook waits 5 minutes; the expression and threshold are the runbook's
    return yaml.safe_dump({"groups": [{"name": "critical", "rules": [rule]}]})


def alertmanager_config(hook: str, bot_url: str) -> str:
    return yaml.safe_dump({
        "route": {"receiver": "critical-alerts", "group_by": ["alertname"], "group_wait": "0s",
                  "group_interval": "1s", "repeat_interval": "1h"},
        "receivers": [{
            "name": "critical-alerts",
            # The runbook's own receiver: the post says neither the alert's name nor its labels.
            "slack_configs": [{"api_url": hook, "channel": "#alerts-critical", "send_resolved": True,
                               "title": "🚨 Critical Alert",
                               "text": "{{ range .Alerts }}{{ .Annotations.description }}{{ end }}"}],
            "webhook_configs": [{"url": f"{bot_url}/alertmanager", "send_resolved": True,
                                 "http_config": {"authorization": {"credentials": TOKEN}}}],
        }],
    })


async def traffic(exporter, errors: bool) -> None:
    """Requests keep coming: half of them 5xx while `errors`, else a flood of 200s."""
    while True:
        exporter.inc("http_requests_total", 10 if errors else 1_000_000, labels={"status": "200"})
        if errors:
            exporter.inc("http_requests_total", 10, labels={"status": "500"})
        await asyncio.sleep(0.5)


def roots_and_threads(fake_slack, channel, poster):
    """The posts `poster` (a bot_id) made in `channel`, each with its thread."""
    messages = fake_slack.messages(channel)
    return {m.ts: (m, [r for r in messages if r.thread_ts == m.ts]) for m in messages
            if m.thread_ts is None and m.bot_id == poster}


async def wait_until(condition, timeout: float, what: str, debug=None) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}; {debug() if debug else ''}")
        await asyncio.sleep(0.2)


async def test_runbook_alert_from_firing_to_resolved_in_both_threads(
    start_bot, bot_env, kube, prometheus_factory, metrics_exporter, alertmanager_factory, fake_slack,
    signing_secret, unused_tcp_port, tmp_path
):
    seed_checkout_prod(kube)
    bot_url = f"http://127.0.0.1:{unused_tcp_port}"
    config = tmp_path / "chatops.yaml"
    config.write_text(yaml.safe_dump({
        "alerts": {"post_interval": 0.05, "edit_interval": 0.1},
        "playbooks": {"HighErrorRate": {"steps": ["pods checkout -n prod", "monitoring"],
                                        "actions": ["circuit-breaker"]}},
    }))
    metrics_exporter.set("http_requests_total", 0, labels={"status": "200"})
    metrics_exporter.set("http_requests_total", 0, labels={"status": "500"})
    load = asyncio.create_task(traffic(metrics_exporter, errors=True))
    with alertmanager_factory(alertmanager_config(f"{fake_slack.base_url}/services/T0/B0/X", bot_url)) as am, \
            prometheus_factory(scrape_configs=[metrics_exporter.scrape_config(job_name="claude-deployment-api")],
                               rule_files={"critical.yml": high_error_rate_rules()},
                               alertmanager_url=am.url) as prometheus:
        bot = await start_bot({**bot_env, "PORT": str(unused_tcp_port), "KUBECONFIG": kube.kubeconfig_path,
                               "PROMETHEUS_URL": prometheus.url, "ALERTMANAGER_URL": am.url,
                               "ALERTMANAGER_WEBHOOK_TOKEN": TOKEN, "CHATOPS_CONFIG": str(config)})
        fake_slack.deliver_events_to(f"{bot_url}/slack/events", signing_secret)
        # Both post to #alerts-critical, which Slack stores (and answers) under its channel ID.
        critical = "#alerts-critical"
        by_bot, by_am = fake_slack.bot_id, fake_slack.webhook_bot_id

        def investigated(poster):
            return [thread for root, thread in roots_and_threads(fake_slack, critical, poster).values()
                    if any("Investigation · HighErrorRate" in json.dumps(r.blocks, ensure_ascii=False)
                           for r in thread)]

        # Firing: the bot's own post (webhook) and Alertmanager's post each get the playbook.
        await wait_until(lambda: investigated(by_bot) and investigated(by_am), 60, "both investigations")
        ((bot_root, _),) = roots_and_threads(fake_slack, critical, by_bot).values()
        assert "CRITICAL · HighErrorRate" in json.dumps(bot_root.blocks, ensure_ascii=False)
        ((am_root, _),) = roots_and_threads(fake_slack, critical, by_am).values()
        assert am_root.attachments[0]["title"] == "🚨 Critical Alert"
        assert bot_root.channel == am_root.channel == fake_slack.channel_id(critical)
        for poster in (by_bot, by_am):
            (thread,) = investigated(poster)
            text = json.dumps(thread[0].blocks, ensure_ascii=False)
            assert "Pods · checkout (prod)" in text and "Prometheus" in text

        # The service recovers: the ratio falls under 5 %, the alert resolves, both threads say so.
        load.cancel()
        load = asyncio.create_task(traffic(metrics_exporter, errors=False))

        def resolved(poster):
            return any((r.text or "").startswith(":white_check_mark: Resolved after")
                       for _, thread in roots_and_threads(fake_slack, critical, poster).values() for r in thread)

        await wait_until(lambda: resolved(by_bot) and resolved(by_am), 60, "both threads resolved",
                         debug=lambda: fake_slack.describe_calls() + str(prometheus.query("ALERTS")))
        ((bot_root, _),) = roots_and_threads(fake_slack, critical, by_bot).values()
        assert "RESOLVED after" in json.dumps(bot_root.blocks)
        load.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await load
        await bot.threads.drain()
