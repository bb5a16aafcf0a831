"""The incident in the alert's thread: acknowledge (button or `@ops ack`), and commands as mentions."""

from __future__ import annotations

import asyncio
import json

import pytest
import yaml

from tests.integration.test_alert_threads import TOKEN, post_webhook, thread, webhook_body
from tests.plugins.kube import seed_checkout_prod
from tests.slack_requests import send_block_action
from tests.storms import alertmanager_posts_checkout_alert

pytestmark = pytest.mark.integration

ALICE, BOB = "U0ALICE001", "U0BOB00001"


def chatops(tmp_path, extra: dict | None = None) -> str:
    config = {"alerts": {"post_interval": 0, "edit_interval": 0.05},
              "delivery": {"poll_seconds": 0.05, "retry_initial_seconds": 0.05, "retry_max_seconds": 0.3},
              "playbooks": {"HighErrorRate": {"steps": ["pods checkout -n prod"]}}, **(extra or {})}
    path = tmp_path / "chatops.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


@pytest.fixture
async def bot(start_bot, bot_env, kube, tmp_path, alertmanager):
    seed_checkout_prod(kube)
    return await start_bot({**bot_env, "KUBECONFIG": kube.kubeconfig_path, "ALERTMANAGER_WEBHOOK_TOKEN": TOKEN,
                            "ALERTMANAGER_URL": alertmanager.url, "CHATOPS_CONFIG": chatops(tmp_path)})


async def idle(bot) -> None:
    """Everything due is done (the SLA's timers, due in minutes, stay recorded)."""
    await asyncio.wait_for(bot.worker.idle(["alerts", "investigations", "commands", "incidents", "actions"]), 30)


def ack_value(message) -> str | None:
    return next((e["value"] for b in message.blocks or [] if b["type"] == "actions" for e in b["elements"]
                 if e["action_id"] == "ops-ack"), None)


async def click_ack(http, bot, signing_secret, message, user: str, value: str, response_url: str = ""):
    fields = {"response_url": response_url} if response_url else {}
    return await send_block_action(http, f"http://127.0.0.1:{bot.port}/slack/events", signing_secret,
                                   [{"action_id": "ops-ack", "value": value, "action_ts": f"{user}.1"}],
                                   user=user, channel=message.channel,
                                   message={"type": "message", "ts": message.ts}, **fields)


async def webhook_thread(http, bot, fake_slack):
    assert (await post_webhook(http, bot, webhook_body()))[0] == 200
    await bot.threads.drain()
    (root,) = [m for m in fake_slack.messages("#alerts-critical") if m.thread_ts is None]
    return root


def ephemerals_to(fake_slack, user: str) -> list[str]:
    return [m.text for m in fake_slack.ephemerals if m.recipient == user]


async def test_acknowledging_a_webhook_alert_says_who_in_the_thread_and_on_the_alert_once(
    bot, http, fake_slack, signing_secret
):
    root = await webhook_thread(http, bot, fake_slack)
    value = ack_value(root)
    assert value is not None and value.startswith("thread:webhook:")

    results = await asyncio.gather(click_ack(http, bot, signing_secret, root, ALICE, value),
                                   click_ack(http, bot, signing_secret, root, BOB, value))
    assert [r.status for r in results] == [200, 200]
    await idle(bot)

    notes = [m.text for m in thread(fake_slack, "#alerts-critical", root.ts) if "Acknowledged" in (m.text or "")]
    assert len(notes) == 1 and notes[0].startswith(":eyes: Acknowledged by <@U0")
    winner = ALICE if ALICE in notes[0] else BOB
    loser = BOB if winner == ALICE else ALICE
    (root,) = [m for m in fake_slack.messages("#alerts-critical") if m.thread_ts is None]
    text = json.dumps(root.blocks)
    assert ack_value(root) is None and f"Acknowledged by <@{winner}> at " in text
    (told,) = ephemerals_to(fake_slack, loser)
    assert told.startswith(f"Already acknowledged by <@{winner}> at ")


async def test_ack_as_a_mention_in_the_alerts_thread_acknowledges_it(bot, http, fake_slack, signing_secret):
    root = await webhook_thread(http, bot, fake_slack)
    fake_slack.deliver_events_to(f"http://127.0.0.1:{bot.port}/slack/events", signing_secret)
    fake_slack.deliver_event({"type": "app_mention", "user": ALICE, "text": "<@U0BOT> ack", "channel": root.channel,
                              "ts": "1764000000.000200", "thread_ts": root.ts})
    assert await fake_slack.deliveries_answered() == [200]
    await idle(bot)
    notes = [m.text for m in thread(fake_slack, "#alerts-critical", root.ts) if "Acknowledged" in (m.text or "")]
    assert notes == [notes[0]] and notes[0].startswith(f":eyes: Acknowledged by <@{ALICE}> after ")


async def test_ack_mentioned_outside_an_alert_thread_says_there_is_nothing_to_acknowledge(bot, fake_slack,
                                                                                         signing_secret):
    fake_slack.deliver_events_to(f"http://127.0.0.1:{bot.port}/slack/events", signing_secret)
    channel = fake_slack.channel_id("#ops")
    fake_slack.deliver_event({"type": "app_mention", "user": ALICE, "text": "<@U0BOT> ack", "channel": channel,
                              "ts": "1764000000.000300", "thread_ts": "1764000000.000100"})
    await fake_slack.deliveries_answered()
    await idle(bot)
    (reply,) = fake_slack.messages(channel)
    assert reply.thread_ts == "1764000000.000100" and "nothing to acknowledge" in reply.text


async def test_who_may_acknowledge_can_be_narrowed_by_the_policy(start_bot, bot_env, kube, tmp_path, http,
                                                               fake_slack, signing_secret):
    seed_checkout_prod(kube)
    policy = {"groups": {"oncall": [BOB]}, "actions": {"ack": {"request": ["oncall"]}}}
    bot = await start_bot({**bot_env, "KUBECONFIG": kube.kubeconfig_path, "ALERTMANAGER_WEBHOOK_TOKEN": TOKEN,
                           "CHATOPS_CONFIG": chatops(tmp_path, {"policy": policy})})
    root = await webhook_thread(http, bot, fake_slack)
    await click_ack(http, bot, signing_secret, root, ALICE, ack_value(root))
    await idle(bot)
    assert ephemerals_to(fake_slack, ALICE) == ["you are not in oncall, who may acknowledge alerts"]
    assert not [m for m in thread(fake_slack, "#alerts-critical", root.ts) if "Acknowledged" in (m.text or "")]
    await click_ack(http, bot, signing_secret, root, BOB, ack_value(root))
    await idle(bot)
    assert [m for m in thread(fake_slack, "#alerts-critical", root.ts) if "Acknowledged" in (m.text or "")]


async def test_an_alertmanager_posts_thread_is_acknowledged_from_the_bots_reply(bot, alertmanager, fake_slack,
                                                                              http, signing_secret):
    channel = await alertmanager_posts_checkout_alert(alertmanager, fake_slack, bot, signing_secret)
    await idle(bot)
    (reply,) = thread(fake_slack, channel, "1732500999.000100")
    value = ack_value(reply)
    assert value is not None and value.startswith("thread:post:")
    await click_ack(http, bot, signing_secret, reply, ALICE, value)
    await idle(bot)
    notes = [m.text for m in thread(fake_slack, channel, "1732500999.000100") if "Acknowledged" in (m.text or "")]
    assert len(notes) == 1 and f"<@{ALICE}>" in notes[0]


async def test_a_command_mentioned_in_a_thread_is_answered_in_that_thread(bot, http, fake_slack, signing_secret):
    root = await webhook_thread(http, bot, fake_slack)
    fake_slack.deliver_events_to(f"http://127.0.0.1:{bot.port}/slack/events", signing_secret)
    fake_slack.deliver_event({"type": "app_mention", "user": ALICE, "text": "<@U0BOT> pods checkout -n prod",
                              "channel": root.channel, "ts": "1764000000.000400", "thread_ts": root.ts})
    fake_slack.deliver_event({"type": "app_mention", "user": ALICE, "text": "<@U0BOT> podz", "channel": root.channel,
                              "ts": "1764000000.000500", "thread_ts": root.ts})
    fake_slack.deliver_event({"type": "app_mention", "user": ALICE, "text": "<@U0BOT> scale checkout 9 -n prod",
                              "channel": root.channel, "ts": "1764000000.000600", "thread_ts": root.ts})
    await fake_slack.deliveries_answered()
    await idle(bot)
    replies = thread(fake_slack, "#alerts-critical", root.ts)[1:]  # after the investigation
    assert len(replies) == 3
    answer = next(m for m in replies if "Pods · checkout (prod)" in json.dumps(m.blocks or [], ensure_ascii=False))
    assert f"requested by <@{ALICE}>" in json.dumps(answer.blocks)
    assert any("podz" in (m.text or "") and "Unknown" in (m.text or "") for m in replies), [m.text for m in replies]
    assert any("Changes are asked for with" in (m.text or "") for m in replies)
    assert [m for m in fake_slack.messages("#alerts-critical") if m.thread_ts is None] == [root]


async def test_acknowledge_works_over_socket_mode(start_bot, bot_env, kube, tmp_path, fake_slack, http):
    from urllib.parse import parse_qsl

    from tests.slack_requests import block_action_body

    seed_checkout_prod(kube)
    bot = await start_bot({**bot_env, "SLACK_APP_TOKEN": fake_slack.app_token, "SLACK_SIGNING_SECRET": "",
                           "KUBECONFIG": kube.kubeconfig_path, "ALERTMANAGER_WEBHOOK_TOKEN": TOKEN,
                           "CHATOPS_CONFIG": chatops(tmp_path)})
    await fake_slack.socket_connected(timeout=10)
    root = await webhook_thread(http, bot, fake_slack)
    click = json.loads(dict(parse_qsl(block_action_body(
        [{"action_id": "ops-ack", "value": ack_value(root), "action_ts": "1.1"}], user=ALICE,
        channel=root.channel, message={"type": "message", "ts": root.ts})))["payload"])
    await fake_slack.socket_send("interactive", click, timeout=3)
    await idle(bot)
    notes = [m.text for m in thread(fake_slack, "#alerts-critical", root.ts) if "Acknowledged" in (m.text or "")]
    assert len(notes) == 1 and f"<@{ALICE}>" in notes[0]


async def test_two_replicas_sharing_redis_record_one_acknowledgement(start_bot, bot_env, kube, tmp_path, http,
                                                                     fake_slack, signing_secret, redis_server):
    seed_checkout_prod(kube)
    env = {**bot_env, "KUBECONFIG": kube.kubeconfig_path, "ALERTMANAGER_WEBHOOK_TOKEN": TOKEN,
           "CHATOPS_CONFIG": chatops(tmp_path), "STATE_URL": redis_server.url}
    first, second = [await start_bot(env) for _ in range(2)]
    root = await webhook_thread(http, first, fake_slack)
    await asyncio.gather(click_ack(http, first, signing_secret, root, ALICE, ack_value(root)),
                         click_ack(http, second, signing_secret, root, BOB, ack_value(root)))
    await asyncio.gather(idle(first), idle(second))
    notes = [m.text for m in thread(fake_slack, "#alerts-critical", root.ts) if "Acknowledged" in (m.text or "")]
    assert len(notes) == 1
    assert len(ephemerals_to(fake_slack, ALICE) + ephemerals_to(fake_slack, BOB)) == 1  # the other one is told


async def test_a_button_of_an_earlier_firing_does_not_acknowledge_the_alert_firing_again(
    bot, http, fake_slack, signing_secret
):
    old_root = await webhook_thread(http, bot, fake_slack)
    old_button = ack_value(old_root)  # as someone's Slack still shows it
    await post_webhook(http, bot, webhook_body(startsAt="2026-11-25T02:00:00.000Z"))  # it fired again since
    await idle(bot)
    await click_ack(http, bot, signing_secret, old_root, ALICE, old_button)
    await idle(bot)
    assert ephemerals_to(fake_slack, ALICE) == [
        "This is an earlier firing of this alert: it has fired again since, in a new thread; act there."]
    assert not [m for m in fake_slack.messages("#alerts-critical") if "Acknowledged" in (m.text or "")]


async def test_a_mention_keeps_the_people_it_names_after_the_verb_and_a_verb_may_end_with_a_full_stop(
    bot, http, fake_slack, signing_secret
):
    root = await webhook_thread(http, bot, fake_slack)
    fake_slack.deliver_events_to(f"http://127.0.0.1:{bot.port}/slack/events", signing_secret)
    fake_slack.deliver_event({"type": "app_mention", "user": ALICE, "text": "<@U0BOT> ack.", "channel": root.channel,
                              "ts": "1764000000.000800", "thread_ts": root.ts})
    fake_slack.deliver_event({"type": "app_mention", "user": ALICE, "channel": root.channel, "ts": "1764000000.000900",
                              "thread_ts": root.ts, "text": "<@U0BOT> escalate <@U0BOB00001> reports failed checkouts"})
    await fake_slack.deliveries_answered()
    await idle(bot)
    texts = [m.text or "" for m in thread(fake_slack, "#alerts-critical", root.ts)]
    assert any(t.startswith(f":eyes: Acknowledged by <@{ALICE}>") for t in texts)
    assert any("Escalated by" in t and "&lt;@U0BOB00001&gt; reports failed checkouts" in t for t in texts), texts
