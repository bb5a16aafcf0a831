"""Alert threads: webhook and Alertmanager posts -> the playbook in the alert's thread."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from pathlib import Path

import pytest
import yaml

from bot.alerting.state import group_notices, load_thread
from bot.alerting.threads import ROUND_STEPS
from bot.state import keys
from tests.plugins.kube import seed_checkout_prod
from tests.slack_requests import send_slash_command
from tests.storms import fingerprints, grouped, storm

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "alertmanager"
TOKEN = "am-webhook-token-123"
# Slack or Alertmanager failing is retried within a fraction of a second in these tests.
FAST_RETRIES = {"poll_seconds": 0.05, "retry_initial_seconds": 0.05, "retry_max_seconds": 0.3}


def webhook_body(**alert_changes) -> dict:
    body = json.loads((FIXTURES / "webhook-firing.json").read_text())
    body["alerts"][0].update(alert_changes)
    body["status"] = body["alerts"][0]["status"]
    return body


@pytest.fixture
def chatops_yaml(tmp_path):
    def write(**alerts) -> str:
        config = {
            "alerts": {"post_interval": 0, "edit_interval": 0.05, **alerts},
            "delivery": FAST_RETRIES,
            "playbooks": {
                "HighErrorRate": {"steps": ["pods {deployment} -n prod", "monitoring"], "actions": ["circuit-breaker"]},
                "default": {"steps": ["pods {deployment} -n prod"]},
            },
        }
        path = tmp_path / "chatops.yaml"
        path.write_text(yaml.safe_dump(config))
        return str(path)
    return write


@pytest.fixture
async def bot(start_bot, bot_env, kube, chatops_yaml, alertmanager):
    seed_checkout_prod(kube)
    return await start_bot({**bot_env, "KUBECONFIG": kube.kubeconfig_path, "ALERTMANAGER_WEBHOOK_TOKEN": TOKEN,
                            "ALERTMANAGER_URL": alertmanager.url, "CHATOPS_CONFIG": chatops_yaml()})


@pytest.fixture
async def eager_bot(start_bot, bot_env, kube, chatops_yaml):
    """A bot whose cool-down is 0: every repeat is due a "still firing" note."""
    seed_checkout_prod(kube)
    return await start_bot({**bot_env, "KUBECONFIG": kube.kubeconfig_path, "ALERTMANAGER_WEBHOOK_TOKEN": TOKEN,
                            "CHATOPS_CONFIG": chatops_yaml(cooldown_minutes=0)})


async def post_webhook(http, bot, body, token=TOKEN):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.post(f"http://127.0.0.1:{bot.port}/alertmanager", json=body, headers=headers) as response:
        return response.status, await response.json()


def group_id(body: dict) -> str:
    """The id of the thread a webhook notification's group has."""
    from bot.alerting.ingest import parse_webhook

    (notice,) = group_notices(parse_webhook(body))
    return notice.id


def thread(fake_slack, channel, ts):
    return [m for m in fake_slack.messages(channel) if m.thread_ts == ts]


async def test_webhook_alert_is_posted_to_its_severity_channel_with_the_playbook_in_its_thread(
    bot, http, fake_slack
):
    status, body = await post_webhook(http, bot, webhook_body())
    assert (status, body) == (200, {"accepted": 1})
    await bot.threads.drain()
    (alert_post,) = [m for m in fake_slack.messages("#alerts-critical") if m.thread_ts is None]
    text = json.dumps(alert_post.blocks, ensure_ascii=False)
    assert "CRITICAL · HighErrorRate" in text and "High 5xx error rate on checkout" in text
    assert "https://runbooks.example/HighErrorRate" in text
    (reply,) = thread(fake_slack, "#alerts-critical", alert_post.ts)
    reply_text = json.dumps(reply.blocks, ensure_ascii=False)
    assert "Investigation · HighErrorRate" in reply_text  # the finished state, reached by editing
    assert "Pods · checkout (prod)" in reply_text and "CrashLoopBackOff" in reply_text
    assert "circuit-breaker" in reply_text
    assert reply.edits >= 1
    # The key findings are kept for the post-mortem: the results that are not OK.
    stored = await load_thread(bot.runtime.store, keys.thread("webhook", group_id(webhook_body())))
    assert stored is not None and any(f.startswith("Pods · checkout (prod): ") for f in stored.findings)


@pytest.mark.parametrize("token, expected", [(None, 401), ("wrong", 401)])
async def test_webhook_without_the_right_token_is_refused_and_posts_nothing(bot, http, fake_slack, token, expected):
    status, _ = await post_webhook(http, bot, webhook_body(), token=token)
    assert status == expected
    await bot.threads.drain()
    assert not fake_slack.messages()


async def test_malformed_webhook_body_gets_400_with_the_reason(bot, http, fake_slack):
    body = webhook_body()
    del body["alerts"][0]["labels"]["alertname"]
    status, answer = await post_webhook(http, bot, body)
    assert status == 400 and "alertname is missing" in answer["error"]
    async with http.post(f"http://127.0.0.1:{bot.port}/alertmanager", data="{not json",
                         headers={"Authorization": f"Bearer {TOKEN}"}) as response:
        assert response.status == 400
    assert not fake_slack.messages()


async def test_webhook_endpoint_is_off_without_a_token(start_bot, bot_env, http):
    bot = await start_bot(bot_env)
    status, answer = await post_webhook(http, bot, webhook_body())
    assert status == 404 and "ALERTMANAGER_WEBHOOK_TOKEN" in answer["error"]


async def test_repeat_notification_opens_no_new_thread_and_resolved_edits_the_alert(bot, http, fake_slack):
    await post_webhook(http, bot, webhook_body())
    await post_webhook(http, bot, webhook_body())  # Alertmanager's repeat_interval, same fingerprint
    await bot.threads.drain()
    roots = [m for m in fake_slack.messages("#alerts-critical") if m.thread_ts is None]
    assert len(roots) == 1
    assert len(thread(fake_slack, "#alerts-critical", roots[0].ts)) == 1  # within the cool-down: silent

    await post_webhook(http, bot, webhook_body(status="resolved", endsAt="2026-11-25T00:05:12.618Z"))
    await bot.threads.drain()
    root = [m for m in fake_slack.messages("#alerts-critical") if m.thread_ts is None][0]
    assert "RESOLVED after 23 min" in json.dumps(root.blocks)
    replies = thread(fake_slack, "#alerts-critical", root.ts)
    assert replies[-1].text == ":white_check_mark: Resolved after 23 min."


async def test_repeat_after_the_cooldown_notes_how_long_it_has_been_firing(eager_bot, http, fake_slack):
    bot = eager_bot
    await post_webhook(http, bot, webhook_body())
    await bot.threads.drain()
    await post_webhook(http, bot, webhook_body())
    await bot.threads.drain()
    root = [m for m in fake_slack.messages("#alerts-critical") if m.thread_ts is None][0]
    notes = [m.text for m in thread(fake_slack, "#alerts-critical", root.ts) if "Still firing" in (m.text or "")]
    assert len(notes) == 1 and notes[0].startswith(":repeat: Still firing for ")


async def test_a_restart_in_the_middle_of_a_thread_opens_no_second_thread(
    start_bot, bot_env, kube, chatops_yaml, http, fake_slack
):
    seed_checkout_prod(kube)
    env = {**bot_env, "KUBECONFIG": kube.kubeconfig_path, "ALERTMANAGER_WEBHOOK_TOKEN": TOKEN,
           "CHATOPS_CONFIG": chatops_yaml()}
    first = await start_bot(env)
    await post_webhook(http, first, webhook_body())
    await first.threads.drain()
    await first.stop()
    second = await start_bot(env)  # same STATE_URL
    await post_webhook(http, second, webhook_body())
    await second.threads.drain()
    assert len([m for m in fake_slack.messages("#alerts-critical") if m.thread_ts is None]) == 1


async def test_alertmanager_post_in_a_channel_gets_the_playbook_in_its_thread_once(
    bot, alertmanager, fake_slack, signing_secret
):
    alertmanager.post_alerts([{"labels": {"alertname": "HighErrorRate", "service": "checkout",
                                          "severity": "critical"},
                               "annotations": {"description": "Error rate is 7.3%"}}])
    fake_slack.deliver_events_to(f"http://127.0.0.1:{bot.port}/slack/events", signing_secret)
    # Alertmanager's default Slack post for that alert, as the notifier sends it.
    post = json.loads((FIXTURES / "slack-default-firing.json").read_text())
    channel = fake_slack.channel_id("#alerts")
    event = {"type": "message", "subtype": "bot_message", "bot_id": "B0AM", "text": "",
             "attachments": post["attachments"], "channel": channel, "ts": "1732500999.000100"}
    fake_slack.deliver_event(event)
    fake_slack.deliver_event(copy.deepcopy(event))  # Slack retrying it (same channel and ts)
    assert await fake_slack.deliveries_answered() == [200, 200]  # both recorded (or merged)
    await bot.threads.drain()
    replies = thread(fake_slack, channel, "1732500999.000100")
    assert len(replies) == 1
    assert "Pods · checkout (prod)" in json.dumps(replies[0].blocks, ensure_ascii=False)


async def test_a_post_that_matches_no_alert_gets_no_reply(bot, fake_slack, signing_secret, caplog):
    caplog.set_level(logging.INFO, logger="bot.alerting.threads")
    fake_slack.deliver_events_to(f"http://127.0.0.1:{bot.port}/slack/events", signing_secret)
    post = json.loads((FIXTURES / "slack-default-firing.json").read_text())
    fake_slack.deliver_event({"type": "message", "subtype": "bot_message", "bot_id": "B0AM", "text": "",
                              "attachments": post["attachments"], "channel": "C0ALERTS", "ts": "1.000200"})
    assert await fake_slack.deliveries_answered() == [200]  # barrier: the post's job is recorded
    await bot.threads.drain()  # ... and done
    assert not fake_slack.messages()
    assert "no active alert matches" in caplog.text


async def test_a_storm_of_300_alerts_in_3_groups_is_3_posts_listing_them_with_one_investigation_each(
    start_bot, bot_env, kube, chatops_yaml, http, fake_slack, signing_secret
):
    seed_checkout_prod(kube)
    # The bot paces itself to one post per 10 ms per channel (Slack's is ~1 s; scaled down for
    # the test); the fake rejects posts closer than 3 ms, and on top answers 429 twice.
    bot = await start_bot({**bot_env, "KUBECONFIG": kube.kubeconfig_path, "ALERTMANAGER_WEBHOOK_TOKEN": TOKEN,
                           "CHATOPS_CONFIG": chatops_yaml(post_interval=0.01)})
    fake_slack.pace_per_channel(min_interval=0.003, retry_after=1)
    fake_slack.rate_limit("chat.postMessage", times=2, retry_after=1)
    body = storm(300)
    answers = [await post_webhook(http, bot, group) for group in grouped(body, 3)]
    assert answers == [(200, {"accepted": 100})] * 3
    command = await send_slash_command(http, f"http://127.0.0.1:{bot.port}/slack/events", signing_secret,
                                       text="help")
    assert command.status == 200 and command.elapsed < 3
    await asyncio.wait_for(bot.threads.drain(), 60)

    roots = [m for m in fake_slack.messages("#alerts-critical") if m.thread_ts is None]
    assert len(roots) == 3
    for root in roots:
        text = json.dumps(root.blocks, ensure_ascii=False)
        assert "CRITICAL · HighErrorRate* — 100 alerts" in text and "*100 firing*" in text
        assert text.count(":red_circle:") == 5 and "… and 95 more firing" in text  # folded past a handful
        (reply,) = thread(fake_slack, "#alerts-critical", root.ts)
        reply_text = json.dumps(reply.blocks, ensure_ascii=False)
        # The 100 alerts' steps are the same two: each ran once.
        assert "Investigation · HighErrorRate* — 100 alerts — 2 checks" in reply_text
        assert reply_text.count("/ops pods checkout -n prod") == 1
    assert len(fake_slack.calls_to("chat.postMessage")) - fake_slack.ratelimited_count == 6
    # Nothing lost: the three threads hold every alert of the storm, once.
    held = []
    for group in grouped(body, 3):
        thread_doc = await load_thread(bot.runtime.store, keys.thread("webhook", group_id(group)))
        assert thread_doc is not None and thread_doc.ts in {r.ts for r in roots}
        held.extend(thread_doc.alerts)
    assert sorted(held) == sorted(fingerprints(body))
    assert fake_slack.ratelimited_count >= 2  # the forced 429s were waited out and retried


async def test_alerts_joining_and_resolving_edit_the_groups_one_post_and_the_groups_resolution_ends_it(
    bot, http, fake_slack
):
    body = storm(3)
    a, b, c = body["alerts"]
    await post_webhook(http, bot, {**body, "alerts": [a, b]})
    await bot.threads.drain()
    await post_webhook(http, bot, {**body, "alerts": [a, b, c]})  # c joins the group
    await bot.threads.drain()
    (root,) = [m for m in fake_slack.messages("#alerts-critical") if m.thread_ts is None]
    text = json.dumps(root.blocks, ensure_ascii=False)
    assert "— 3 alerts" in text and "*3 firing*" in text and "pod-2" in text
    assert root.edits >= 1

    b_resolved = {**b, "status": "resolved", "endsAt": "2026-11-25T00:01:00Z"}
    await post_webhook(http, bot, {**body, "alerts": [a, b_resolved, c]})
    await bot.threads.drain()
    (root,) = [m for m in fake_slack.messages("#alerts-critical") if m.thread_ts is None]
    text = json.dumps(root.blocks, ensure_ascii=False)
    assert "*2 firing*" in text and "*1 resolved*" in text and "RESOLVED" not in text
    assert not any("Resolved" in (m.text or "") for m in thread(fake_slack, "#alerts-critical", root.ts))

    ended = [{**x, "status": "resolved", "endsAt": "2026-11-25T00:05:12.618Z"} for x in (a, b_resolved, c)]
    ended[1] = b_resolved
    await post_webhook(http, bot, {**body, "status": "resolved", "alerts": ended})
    await bot.threads.drain()
    (root,) = [m for m in fake_slack.messages("#alerts-critical") if m.thread_ts is None]
    text = json.dumps(root.blocks, ensure_ascii=False)
    assert "RESOLVED after 23 min · HighErrorRate* — 3 alerts" in text and "*3 resolved*" in text
    replies = thread(fake_slack, "#alerts-critical", root.ts)
    assert replies[-1].text == ":white_check_mark: Resolved after 23 min."
    assert len(replies) == 2  # the investigation (the joining alert had no new step), the resolution


async def test_an_alert_absent_from_a_whole_groups_notification_stopped_firing_but_not_from_a_truncated_one(
    bot, http, fake_slack
):
    body = storm(3)
    a, b, c = body["alerts"]
    await post_webhook(http, bot, {**body, "alerts": [a, b, c]})
    await post_webhook(http, bot, {**body, "alerts": [a, b], "truncatedAlerts": 1})  # max_alerts: 2
    await bot.threads.drain()
    (root,) = [m for m in fake_slack.messages("#alerts-critical") if m.thread_ts is None]
    assert "*3 firing*" in json.dumps(root.blocks, ensure_ascii=False)
    await post_webhook(http, bot, {**body, "alerts": [a, b, c], "truncatedAlerts": 40})  # the group grew
    await bot.threads.drain()
    (root,) = [m for m in fake_slack.messages("#alerts-critical") if m.thread_ts is None]
    assert "— 43 alerts" in json.dumps(root.blocks, ensure_ascii=False)
    assert "40 more that Alertmanager left out" in json.dumps(root.blocks, ensure_ascii=False)
    # send_resolved off: Alertmanager leaves a resolved alert out of the group's next notification.
    await post_webhook(http, bot, {**body, "alerts": [a, b]})
    await bot.threads.drain()
    (root,) = [m for m in fake_slack.messages("#alerts-critical") if m.thread_ts is None]
    text = json.dumps(root.blocks, ensure_ascii=False)
    assert "*2 firing*" in text and "*1 resolved*" in text


async def test_alerts_joining_with_steps_not_run_yet_get_a_second_round_of_only_those(
    start_bot, bot_env, kube, chatops_yaml, http, fake_slack, tmp_path
):
    seed_checkout_prod(kube)
    config = tmp_path / "rounds.yaml"
    steps = ["pods checkout -n prod", "metric node-cpu instance={instance}"]
    config.write_text(yaml.safe_dump({"alerts": {"post_interval": 0, "edit_interval": 0.05},
                                      "playbooks": {"HighErrorRate": {"steps": steps}}}))
    bot = await start_bot({**bot_env, "KUBECONFIG": kube.kubeconfig_path, "ALERTMANAGER_WEBHOOK_TOKEN": TOKEN,
                           "CHATOPS_CONFIG": str(config)})
    body = storm(3)
    a, b, c = body["alerts"]
    await post_webhook(http, bot, {**body, "alerts": [a, b]})
    await bot.threads.drain()
    await post_webhook(http, bot, {**body, "alerts": [a, b, c]})
    await bot.threads.drain()
    (root,) = [m for m in fake_slack.messages("#alerts-critical") if m.thread_ts is None]
    first, second = thread(fake_slack, "#alerts-critical", root.ts)
    first_text, second_text = (json.dumps(m.blocks, ensure_ascii=False) for m in (first, second))
    assert "— 3 checks" in first_text and "instance=pod-0" in first_text and "pod-2" not in first_text
    assert "alerts that joined — 1 checks" in second_text
    assert "instance=pod-2" in second_text and "pods checkout -n prod" not in second_text
    await post_webhook(http, bot, {**body, "alerts": [a, b, c]})  # a repeat: nothing new to run
    await bot.threads.drain()
    assert len(thread(fake_slack, "#alerts-critical", root.ts)) == 2


async def test_a_group_with_more_distinct_steps_than_a_round_takes_runs_some_and_lists_the_rest(
    start_bot, bot_env, kube, http, fake_slack, tmp_path
):
    seed_checkout_prod(kube)
    config = tmp_path / "many.yaml"
    steps = ["metric node-cpu instance={instance}"]  # a step of its own for each alert
    config.write_text(yaml.safe_dump({"alerts": {"post_interval": 0, "edit_interval": 0.05},
                                      "playbooks": {"HighErrorRate": {"steps": steps}}}))
    bot = await start_bot({**bot_env, "KUBECONFIG": kube.kubeconfig_path, "ALERTMANAGER_WEBHOOK_TOKEN": TOKEN,
                           "CHATOPS_CONFIG": str(config)})
    await post_webhook(http, bot, storm(12))
    await bot.threads.drain()
    (root,) = [m for m in fake_slack.messages("#alerts-critical") if m.thread_ts is None]
    (reply,) = thread(fake_slack, "#alerts-critical", root.ts)
    text = json.dumps(reply.blocks, ensure_ascii=False)
    assert f"— 12 alerts — {ROUND_STEPS} checks" in text
    run = [i for i in range(12) if f"instance=pod-{i}`" in text]
    assert f"{12 - ROUND_STEPS} more distinct steps, not run" in text
    assert len(run) == 12  # every step named: run, or listed


@pytest.mark.parametrize("receiver", ["default", "runbook", "recommended"])
async def test_each_kind_of_alertmanager_post_gets_its_playbook_in_its_thread(
    receiver, start_bot, bot_env, kube, chatops_yaml, alertmanager_factory, fake_slack, signing_secret
):
    from tests.integration.test_alertmanager_posts import ALERTS, config

    seed_checkout_prod(kube)
    with alertmanager_factory(config(f"{fake_slack.base_url}/services/T0/B0/X", receiver)) as am:
        bot = await start_bot({**bot_env, "KUBECONFIG": kube.kubeconfig_path, "ALERTMANAGER_URL": am.url,
                               "CHATOPS_CONFIG": chatops_yaml()})
        fake_slack.deliver_events_to(f"http://127.0.0.1:{bot.port}/slack/events", signing_secret)
        await asyncio.to_thread(am.post_alerts, ALERTS[:1])  # HighErrorRate
        (call,) = await fake_slack.wait_for("incoming_webhook", timeout=15)
        await fake_slack.wait_for("chat.update", timeout=15)
        await bot.threads.drain()
    post = next(m for m in fake_slack.messages() if m.bot_id == fake_slack.webhook_bot_id)
    replies = thread(fake_slack, post.channel, post.ts)
    assert len(replies) == 1, fake_slack.describe_calls()
    text = json.dumps(replies[0].blocks, ensure_ascii=False)
    assert "Investigation · HighErrorRate" in text and "Pods · checkout (prod)" in text


async def test_listening_can_be_restricted_to_named_channels(
    start_bot, bot_env, kube, chatops_yaml, alertmanager, fake_slack, signing_secret
):
    seed_checkout_prod(kube)
    bot = await start_bot({**bot_env, "KUBECONFIG": kube.kubeconfig_path, "ALERTMANAGER_URL": alertmanager.url,
                           "CHATOPS_CONFIG": chatops_yaml(listen=["#alerts-critical"])})
    alertmanager.post_alerts([{"labels": {"alertname": "HighErrorRate", "service": "checkout",
                                          "severity": "critical"}}])
    fake_slack.deliver_events_to(f"http://127.0.0.1:{bot.port}/slack/events", signing_secret)
    post = json.loads((FIXTURES / "slack-default-firing.json").read_text())
    for name, ts in (("#random", "1.000001"), ("#alerts-critical", "1.000002")):
        fake_slack.deliver_event({"type": "message", "subtype": "bot_message", "bot_id": "B0AM", "text": "",
                                  "attachments": post["attachments"], "channel": fake_slack.channel_id(name),
                                  "ts": ts})
    await fake_slack.wait_for("chat.update", timeout=15)
    await bot.threads.drain()
    assert thread(fake_slack, fake_slack.channel_id("#alerts-critical"), "1.000002")
    assert not thread(fake_slack, fake_slack.channel_id("#random"), "1.000001")


async def test_slack_retrying_the_same_event_gets_no_second_reply(bot, alertmanager, http, fake_slack, signing_secret):
    from tests.slack_requests import send_event

    alertmanager.post_alerts([{"labels": {"alertname": "HighErrorRate", "service": "checkout",
                                          "severity": "critical"}}])
    post = json.loads((FIXTURES / "slack-default-firing.json").read_text())
    event = {"type": "message", "subtype": "bot_message", "bot_id": "B0AM", "text": "",
             "attachments": post["attachments"], "channel": "C0ALERTS", "ts": "1732500777.000100"}
    url = f"http://127.0.0.1:{bot.port}/slack/events"
    first = await send_event(http, url, signing_secret, event, event_id="Ev0RETRY")
    retry = await send_event(http, url, signing_secret, event, event_id="Ev0RETRY", retry_num=1,
                             retry_reason="http_timeout")
    assert first.status == retry.status == 200
    await fake_slack.wait_for("chat.update", timeout=15)
    await bot.threads.drain()
    assert len(thread(fake_slack, "C0ALERTS", "1732500777.000100")) == 1
    metrics = await (await http.get(f"http://127.0.0.1:{bot.port}/metrics")).text()
    assert 'chatops_requests_total{kind="event",outcome="duplicate"} 1.0' in metrics


async def test_alertmanager_posting_with_the_bots_own_token_is_not_dropped_as_a_self_event(
    bot, alertmanager, http, fake_slack, signing_secret
):
    from tests.slack_requests import send_event

    alertmanager.post_alerts([{"labels": {"alertname": "HighErrorRate", "service": "checkout",
                                          "severity": "critical"}}])
    post = json.loads((FIXTURES / "slack-default-firing.json").read_text())
    # chat.postMessage with the bot's token: the event carries the bot's own bot_id and user.
    event = {"type": "message", "bot_id": fake_slack.bot_id, "user": fake_slack.bot_user_id, "text": "",
             "attachments": post["attachments"], "channel": "C0ALERTS", "ts": "1732500888.000100"}
    result = await send_event(http, f"http://127.0.0.1:{bot.port}/slack/events", signing_secret, event)
    assert result.status == 200
    await fake_slack.wait_for("chat.update", timeout=15)
    await bot.threads.drain()
    assert len(thread(fake_slack, "C0ALERTS", "1732500888.000100")) == 1


async def test_an_alert_whose_post_is_refused_is_retried_until_the_bot_is_invited(bot, http, fake_slack):
    fake_slack.not_in_channel.add("#alerts-critical")
    status, _ = await post_webhook(http, bot, webhook_body())
    assert status == 200
    await fake_slack.wait_for("chat.postMessage", ok=False, count=2, timeout=10)  # refused, tried again
    assert not fake_slack.messages()
    fake_slack.not_in_channel.discard("#alerts-critical")  # someone invites the bot
    await asyncio.wait_for(bot.threads.drain(), 15)
    (root,) = [m for m in fake_slack.messages("#alerts-critical") if m.thread_ts is None]
    (reply,) = thread(fake_slack, "#alerts-critical", root.ts)
    assert "Investigation · HighErrorRate" in json.dumps(reply.blocks, ensure_ascii=False)


async def test_a_group_resolved_before_its_post_went_out_is_posted_resolved_without_investigating(
    start_bot, bot_env, kube, chatops_yaml, http, fake_slack
):
    seed_checkout_prod(kube)
    bot = await start_bot({**bot_env, "KUBECONFIG": kube.kubeconfig_path, "ALERTMANAGER_WEBHOOK_TOKEN": TOKEN,
                           "CHATOPS_CONFIG": chatops_yaml(post_interval=0.5)})
    first, second = grouped(storm(2), 2)
    await post_webhook(http, bot, first)
    await post_webhook(http, bot, second)  # the second group's post waits 0.5 s for its turn
    resolved = copy.deepcopy(second)
    resolved["status"] = resolved["alerts"][0]["status"] = "resolved"
    resolved["alerts"][0]["endsAt"] = "2026-11-25T00:05:12.618Z"
    await post_webhook(http, bot, resolved)
    await bot.threads.drain()
    roots = [m for m in fake_slack.messages("#alerts-critical") if m.thread_ts is None]
    assert len(roots) == 2
    late = [m for m in roots if "RESOLVED" in json.dumps(m.blocks)]
    assert len(late) == 1
    replies = thread(fake_slack, "#alerts-critical", late[0].ts)
    assert [m.text for m in replies] == [":white_check_mark: Resolved after 23 min."]


async def test_a_step_needing_a_label_the_alert_lacks_is_reported_and_the_rest_still_run(
    start_bot, bot_env, kube, http, fake_slack, tmp_path
):
    seed_checkout_prod(kube)
    config = tmp_path / "custom.yaml"
    config.write_text(yaml.safe_dump({"alerts": {"post_interval": 0, "edit_interval": 0.05},
                                      "playbooks": {"HighErrorRate": {"steps": ["logs {pod} -n prod",
                                                                                "pods checkout -n prod"]}}}))
    bot = await start_bot({**bot_env, "KUBECONFIG": kube.kubeconfig_path, "ALERTMANAGER_WEBHOOK_TOKEN": TOKEN,
                           "CHATOPS_CONFIG": str(config)})
    await post_webhook(http, bot, webhook_body())
    await bot.threads.drain()
    root = [m for m in fake_slack.messages("#alerts-critical") if m.thread_ts is None][0]
    (reply,) = thread(fake_slack, "#alerts-critical", root.ts)
    text = json.dumps(reply.blocks, ensure_ascii=False)
    assert "the alert has no label 'pod'" in text
    assert "Pods · checkout (prod)" in text


async def test_a_new_firing_of_the_same_alert_ends_the_old_thread_and_opens_a_new_one(bot, http, fake_slack):
    await post_webhook(http, bot, webhook_body())
    await bot.threads.drain()
    # No resolved notification arrived (send_resolved off, say); it fires again later: Alertmanager
    # starts a new firing only after the last one ended.
    await post_webhook(http, bot, webhook_body(startsAt="2026-11-25T02:00:00.000Z"))
    await bot.threads.drain()
    old, new = [m for m in fake_slack.messages("#alerts-critical") if m.thread_ts is None]
    assert "RESOLVED after 2 h 17 min" in json.dumps(old.blocks) and "CRITICAL" in json.dumps(new.blocks)
    first, last = thread(fake_slack, "#alerts-critical", old.ts)
    assert "Investigation · HighErrorRate" in json.dumps(first.blocks, ensure_ascii=False)
    assert last.text == (":white_check_mark: Resolved before it fired again at 02:00 UTC (within 2 h 17 min); "
                         "a new thread follows.")
    (investigation,) = thread(fake_slack, "#alerts-critical", new.ts)
    assert "Investigation · HighErrorRate" in json.dumps(investigation.blocks, ensure_ascii=False)


async def test_a_refire_merged_into_a_resolution_waiting_to_retry_resolves_the_old_thread(
    start_bot, bot_env, kube, tmp_path, http, fake_slack
):
    seed_checkout_prod(kube)
    config = tmp_path / "slow-retries.yaml"
    config.write_text(yaml.safe_dump({"alerts": {"post_interval": 0, "edit_interval": 0.05},
                                      "delivery": {**FAST_RETRIES, "retry_initial_seconds": 30,
                                                   "retry_max_seconds": 30},
                                      "playbooks": {"HighErrorRate": {"steps": ["pods checkout -n prod"]}}}))
    bot = await start_bot({**bot_env, "KUBECONFIG": kube.kubeconfig_path, "ALERTMANAGER_WEBHOOK_TOKEN": TOKEN,
                           "CHATOPS_CONFIG": str(config)})
    retried = bot.runtime.metrics.work.labels(kind="alert-thread", outcome="retried")
    await post_webhook(http, bot, webhook_body())
    await bot.threads.drain()
    fake_slack.outage("500", methods=["chat.postMessage"])  # the resolution can't say so in the thread...
    await post_webhook(http, bot, webhook_body(status="resolved", endsAt="2026-11-25T00:05:12.618Z"))
    while retried._value.get() < 1:  # ...so its job waits 30 s to try again (barrier: recorded as retried)
        await fake_slack.wait_for("chat.postMessage", ok=False, count=1, timeout=10)
        await asyncio.sleep(0.01)
    fake_slack.recover()
    # It fires again meanwhile: the newer notification is merged into the waiting job, which runs now.
    await post_webhook(http, bot, webhook_body(startsAt="2026-11-25T02:00:00.000Z"))
    await asyncio.wait_for(bot.threads.drain(), 15)  # well before the 30 s retry
    old, new = [m for m in fake_slack.messages("#alerts-critical") if m.thread_ts is None]
    assert "RESOLVED after 23 min" in json.dumps(old.blocks)  # the resolution's own end time
    assert [m.text for m in thread(fake_slack, "#alerts-critical", old.ts)][1:] == [
        ":white_check_mark: Resolved before it fired again at 02:00 UTC (within 23 min); a new thread follows."]
    assert len(thread(fake_slack, "#alerts-critical", new.ts)) == 1


async def test_a_webhook_alert_without_starts_at_is_refused_with_the_reason(bot, http, fake_slack):
    body = webhook_body()
    del body["alerts"][0]["startsAt"]
    status, answer = await post_webhook(http, bot, body)
    assert status == 400 and "startsAt" in answer["error"]
    assert await bot.runtime.store.pending() == 0


async def test_a_still_firing_note_slack_refused_is_posted_when_it_is_taken(eager_bot, http, fake_slack):
    bot = eager_bot
    await post_webhook(http, bot, webhook_body())
    await bot.threads.drain()
    fake_slack.fail("chat.postMessage", "not_in_channel")  # someone removed the bot; it is back soon
    await post_webhook(http, bot, webhook_body())
    await bot.threads.drain()
    root = [m for m in fake_slack.messages("#alerts-critical") if m.thread_ts is None][0]
    notes = [m.text for m in thread(fake_slack, "#alerts-critical", root.ts) if "Still firing" in (m.text or "")]
    assert len(notes) == 1


class _ResolvesDuringTheNote:
    """The state store, except that a resolution is stored by someone else (another replica, a
    resolved notification) between the moment the "still firing" note reads the thread and the
    moment it writes it back: exactly the interleaving that used to flip a resolved thread back."""

    def __init__(self, store, key: str) -> None:
        self._store, self._key = store, key
        self.interleaved = False

    def __getattr__(self, name):
        return getattr(self._store, name)

    async def put_if(self, key, value, version, ttl=None):
        if key == self._key and not self.interleaved and value.get("status") == "firing" \
                and any(name.startswith("note:") for name in value.get("posts", {})):
            self.interleaved = True
            current = await self._store.get(key)
            resolved = {**current.value, "status": "resolved", "ends_at": "2026-11-25T00:05:12.618000+00:00"}
            assert await self._store.put_if(key, resolved, current.version, ttl=ttl)
        return await self._store.put_if(key, value, version, ttl=ttl)


async def test_a_resolution_stored_while_a_still_firing_note_is_decided_is_not_overwritten(
    eager_bot, http, fake_slack
):
    from bot.alerting.state import load_thread

    bot = eager_bot
    await post_webhook(http, bot, webhook_body())
    await bot.threads.drain()
    key = "thread:webhook:" + group_id(webhook_body())
    interleaving = _ResolvesDuringTheNote(bot.threads.store, key)
    bot.threads.store = interleaving
    await post_webhook(http, bot, webhook_body())  # a repeat: after the cool-down (0), a note is due
    await bot.threads.drain()
    assert interleaving.interleaved
    thread = await load_thread(bot.runtime.store, key)
    assert thread is not None and thread.status == "resolved"  # not flipped back to firing
    root = [m for m in fake_slack.messages("#alerts-critical") if m.thread_ts is None][0]
    assert not [m for m in thread_messages(fake_slack, root) if "Still firing" in (m.text or "")]


def thread_messages(fake_slack, root):
    return [m for m in fake_slack.messages(root.channel) if m.thread_ts == root.ts]


async def test_a_post_in_a_channel_whose_name_slack_cannot_tell_now_is_answered_500_and_redelivered(
    start_bot, bot_env, kube, chatops_yaml, alertmanager, http, fake_slack, signing_secret
):
    from tests.slack_requests import send_event

    seed_checkout_prod(kube)
    bot = await start_bot({**bot_env, "KUBECONFIG": kube.kubeconfig_path, "ALERTMANAGER_URL": alertmanager.url,
                           "CHATOPS_CONFIG": chatops_yaml(listen=["#alerts-critical"])})
    alertmanager.post_alerts([{"labels": {"alertname": "HighErrorRate", "service": "checkout",
                                          "severity": "critical"}}])
    post = json.loads((FIXTURES / "slack-default-firing.json").read_text())
    channel = fake_slack.channel_id("#alerts-critical")
    event = {"type": "message", "subtype": "bot_message", "bot_id": "B0AM", "text": "",
             "attachments": post["attachments"], "channel": channel, "ts": "1732500555.000100"}
    url = f"http://127.0.0.1:{bot.port}/slack/events"
    fake_slack.fail("conversations.info", "internal_error")  # Slack can't say the channel's name right now
    first = await send_event(http, url, signing_secret, event, event_id="Ev0NAME")
    assert first.status == 500  # not accepted, so Slack delivers it again
    retry = await send_event(http, url, signing_secret, event, event_id="Ev0NAME", retry_num=1,
                             retry_reason="http_error")
    assert retry.status == 200
    await bot.threads.drain()
    assert len(thread(fake_slack, channel, "1732500555.000100")) == 1


async def test_an_alertmanager_post_of_three_alerts_gets_one_thread_and_its_repeat_no_second(
    bot, alertmanager, fake_slack, signing_secret
):
    alertmanager.post_alerts([{"labels": {"alertname": "HighErrorRate", "service": "checkout", "severity": "critical",
                                          "instance": f"pod-{i}"},
                               "annotations": {"description": "Error rate is 7.3%"}} for i in range(3)])
    fake_slack.deliver_events_to(f"http://127.0.0.1:{bot.port}/slack/events", signing_secret)
    post = json.loads((FIXTURES / "slack-default-firing.json").read_text())
    post["attachments"][0]["title"] = "[FIRING:3] HighErrorRate checkout (critical)"
    channel = fake_slack.channel_id("#alerts")

    def posted(ts: str, attachments) -> None:
        fake_slack.deliver_event({"type": "message", "subtype": "bot_message", "bot_id": "B0AM", "text": "",
                                  "attachments": attachments, "channel": channel, "ts": ts})

    posted("1732500999.000100", post["attachments"])
    await fake_slack.deliveries_answered()
    await bot.threads.drain()
    (reply,) = thread(fake_slack, channel, "1732500999.000100")
    assert "Investigation · HighErrorRate* — 3 alerts — 2 checks" in json.dumps(reply.blocks, ensure_ascii=False)

    posted("1732504599.000100", post["attachments"])  # Alertmanager's repeat_interval: the group posted again
    await fake_slack.deliveries_answered()
    await bot.threads.drain()
    assert thread(fake_slack, channel, "1732504599.000100") == []  # no second investigation

    resolved = json.loads((FIXTURES / "slack-default-resolved.json").read_text())
    alertmanager.post_alerts([{"labels": {"alertname": "HighErrorRate", "service": "checkout", "severity": "critical",
                                          "instance": f"pod-{i}"}, "endsAt": "2026-01-01T00:00:00Z"} for i in range(3)])
    posted("1732508199.000100", resolved["attachments"])
    await fake_slack.deliveries_answered()
    await bot.threads.drain()
    replies = [m.text for m in thread(fake_slack, channel, "1732500999.000100")]
    assert len(replies) == 2 and replies[-1].startswith(":white_check_mark: Resolved after ")


async def test_an_alert_posted_firing_anew_ends_its_older_posts_thread_and_gets_a_new_one(
    bot, alertmanager, fake_slack, signing_secret
):
    labels = {"alertname": "HighErrorRate", "service": "checkout", "severity": "critical"}
    fake_slack.deliver_events_to(f"http://127.0.0.1:{bot.port}/slack/events", signing_secret)
    post = json.loads((FIXTURES / "slack-default-firing.json").read_text())
    channel = fake_slack.channel_id("#alerts")
    for ts in ("1732500999.000100", "1732590999.000100"):
        alertmanager.post_alerts([{"labels": labels, "annotations": {"description": "Error rate is 7.3%"}}])
        bot.runtime.clients.cache.clear()  # Alertmanager's answer is shared a few seconds: these are days apart
        fake_slack.deliver_event({"type": "message", "subtype": "bot_message", "bot_id": "B0AM", "text": "",
                                  "attachments": post["attachments"], "channel": channel, "ts": ts})
        await fake_slack.deliveries_answered()
        await bot.threads.drain()
        # It ends quietly (send_resolved off) and fires again: Alertmanager gives it a new startsAt.
        alertmanager.post_alerts([{"labels": labels, "endsAt": "2026-01-01T00:00:00Z"}])
    old, new = thread(fake_slack, channel, "1732500999.000100"), thread(fake_slack, channel, "1732590999.000100")
    assert len(old) == 2 and old[-1].text.startswith(":white_check_mark: Resolved after ")
    assert len(new) == 1 and "Investigation · HighErrorRate" in json.dumps(new[0].blocks, ensure_ascii=False)
