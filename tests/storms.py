"""Alert storms for tests: Alertmanager webhook bodies, and what "every alert posted once with its
investigation" means in the fake Slack."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "alertmanager"
FINISHED = "Investigation · HighErrorRate"  # the investigation reply's heading once every step is done


def storm(count: int, start: int = 0) -> dict[str, Any]:
    """An Alertmanager webhook body carrying `count` firing HighErrorRate alerts, one per pod, as
    a route grouping by instance sends them: each alert its own group (`notifications`)."""
    body = json.loads((FIXTURES / "webhook-firing.json").read_text())
    template = body["alerts"][0]
    body["alerts"] = []
    for i in range(start, start + count):
        alert = copy.deepcopy(template)
        alert["fingerprint"] = f"{i:016x}"
        alert["labels"] = {**alert["labels"], "instance": f"pod-{i}"}
        body["alerts"].append(alert)
    return body


def notifications(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The storm's alerts each in its own group, as Alertmanager sends them (a notification each)."""
    return [{**body, "alerts": [alert], "groupKey": f'{{}}/{{}}:{{instance="{alert["labels"]["instance"]}"}}',
             "groupLabels": {"instance": alert["labels"]["instance"]}} for alert in body["alerts"]]


def grouped(body: dict[str, Any], groups: int) -> list[dict[str, Any]]:
    """The storm's alerts in `groups` Alertmanager groups, a notification each (every alert of a
    group in it, as Alertmanager sends a group whole)."""
    return [{**body, "alerts": body["alerts"][i::groups], "groupKey": f'{{}}/{{}}:{{shard="{i}"}}',
             "groupLabels": {"shard": str(i)}} for i in range(groups)]


def split(body: dict[str, Any], parts: int) -> list[list[dict[str, Any]]]:
    """The storm's notifications (an alert each) dealt to `parts` replicas."""
    each = notifications(body)
    return [each[i::parts] for i in range(parts)]


def fingerprints(body: dict[str, Any]) -> list[str]:
    return [alert["fingerprint"] for alert in body["alerts"]]


def is_finished_investigation(message: Any) -> bool:
    """A thread reply whose heading (its first block) says the investigation is complete. Cheap:
    tests wait on it while hundreds of messages arrive, and it runs over all of them each time."""
    if not message.thread_ts or not message.blocks:
        return False
    heading = message.blocks[0].get("text") or {}
    return FINISHED in str(heading.get("text", ""))


def assert_each_alert_posted_once_with_its_investigation(fake_slack: Any, expected: list[str],
                                                         channel: str = "#alerts-critical") -> None:
    messages = fake_slack.messages(channel)
    roots = [m for m in messages if m.thread_ts is None]
    posted = [json.dumps(root.blocks) for root in roots]
    for fingerprint in expected:
        assert sum(f"`{fingerprint}`" in text for text in posted) == 1, f"{fingerprint}: {len(roots)} roots"
    assert len(roots) == len(expected)
    for root in roots:
        replies = [m for m in messages if m.thread_ts == root.ts]
        assert len(replies) == 1, [r.text for r in replies]
        assert is_finished_investigation(replies[0]), replies[0].text


CHECKOUT_ALERT = {"alertname": "HighErrorRate", "service": "checkout", "severity": "critical"}
POST_TS = "1732500999.000100"


async def alertmanager_posts_checkout_alert(alertmanager: Any, fake_slack: Any, bot: Any, secret: str,
                                           severity: str = "critical") -> str:
    """HighErrorRate on checkout fires in Alertmanager, which posts it in #alerts (its default
    template, at POST_TS); the bot is told by a signed event. Returns the channel's ID."""
    labels = {**CHECKOUT_ALERT, "severity": severity}
    alertmanager.post_alerts([{"labels": labels, "annotations": {"description": "Error rate is 7.3%"}}])
    fake_slack.deliver_events_to(f"http://127.0.0.1:{bot.port}/slack/events", secret)
    post = json.loads((FIXTURES / "slack-default-firing.json").read_text())
    post["attachments"][0]["title"] = post["attachments"][0]["title"].replace("(critical)", f"({severity})")
    channel = str(fake_slack.channel_id("#alerts"))
    fake_slack.deliver_event({"type": "message", "subtype": "bot_message", "bot_id": "B0AM", "text": "",
                              "attachments": post["attachments"], "channel": channel, "ts": POST_TS})
    await fake_slack.deliveries_answered()
    return channel
