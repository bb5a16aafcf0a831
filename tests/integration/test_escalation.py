"""Escalation on the runbook's SLAs: durable timers on the store's clock (a FakeClock here, moved
past the deadlines), PagerDuty (the loopback fake, which checks the Events v2 schema), the
managers' channel and the thread."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime

import pytest
import yaml

from bot.state.clock import FakeClock
from tests.integration.test_alert_threads import TOKEN, post_webhook, thread, webhook_body
from tests.plugins.kube import seed_checkout_prod
from tests.slack_requests import send_block_action, send_slash_command
from tests.storms import CHECKOUT_ALERT, POST_TS, alertmanager_posts_checkout_alert, grouped, storm

pytestmark = pytest.mark.integration

ALICE = "U0ALICE001"
STARTS = datetime.fromisoformat(webhook_body()["alerts"][0]["startsAt"].replace("Z", "+00:00")).timestamp()
MANAGERS = "#engineering-managers"


def config(tmp_path, **extra) -> str:
    path = tmp_path / "chatops.yaml"
    path.write_text(yaml.safe_dump({
        "alerts": {"post_interval": 0, "edit_interval": 0.05},
        "delivery": {"poll_seconds": 0.05, "retry_initial_seconds": 0.05, "retry_max_seconds": 0.3},
        "playbooks": {"HighErrorRate": {"steps": ["pods checkout -n prod"]}}, **extra}))
    return str(path)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=STARTS + 10)  # the alert fired 10 s ago


@pytest.fixture
def env(bot_env, kube, tmp_path, pagerduty) -> dict[str, str]:
    seed_checkout_prod(kube)
    return {**bot_env, "KUBECONFIG": kube.kubeconfig_path, "ALERTMANAGER_WEBHOOK_TOKEN": TOKEN,
            "CHATOPS_CONFIG": config(tmp_path), "PAGERDUTY_ROUTING_KEY": pagerduty.routing_key,
            "PAGERDUTY_EVENTS_URL": pagerduty.url}


async def settle(*bots) -> None:
    """Every bot idle: nothing due is left (timers due later stay recorded)."""
    await asyncio.wait_for(asyncio.gather(*(b.worker.idle([lane for lane in ("alerts", "investigations",
                                                                             "incidents", "commands")])
                                            for b in bots)), 30)


def deadlines_handled(*bots) -> float:
    return sum(b.runtime.metrics.work.labels(kind="incident-escalate", outcome="done")._value.get() for b in bots)


async def passes(clock: FakeClock, seconds: float, *bots, ran: int = 1) -> None:
    """Time moves on; `ran` deadlines come due and are handled (on any of the bots: the worker
    polls every 50 ms), then everything they started settles."""
    before = deadlines_handled(*bots)
    clock.advance(seconds)
    async with asyncio.timeout(30):
        while deadlines_handled(*bots) < before + ran:
            await asyncio.sleep(0.02)
    await settle(*bots)


async def firing(start_bot, env, clock, http, fake_slack):
    """A bot on the clock, and the thread of the checkout alert it was just notified of."""
    bot = await start_bot(env, clock=clock)
    await post_webhook(http, bot, webhook_body())
    await settle(bot)
    return bot, root_of(fake_slack)


@pytest.fixture
async def am_bot(start_bot, env, alertmanager):
    """A bot reading Alertmanager's posts, on a clock started now (Alertmanager stamps real times)."""
    import time

    clock = FakeClock(start=time.time())
    return await start_bot({**env, "ALERTMANAGER_URL": alertmanager.url}, clock=clock), clock


def root_of(fake_slack):
    (root,) = [m for m in fake_slack.messages("#alerts-critical") if m.thread_ts is None]
    return root


def notes(fake_slack, root, word: str) -> list[str]:
    return [m.text for m in thread(fake_slack, "#alerts-critical", root.ts) if word in (m.text or "")]


async def test_a_critical_alert_unacknowledged_for_5_min_pages_once_tells_managers_and_the_thread(
    start_bot, env, clock, http, fake_slack, pagerduty
):
    bot = await start_bot(env, clock=clock)
    await post_webhook(http, bot, webhook_body())
    await settle(bot)
    assert pagerduty.events == [] and not fake_slack.messages(MANAGERS)

    await passes(clock, 5 * 60, bot)  # the acknowledgement deadline
    (trigger,) = await pagerduty.wait_for(1, action="trigger")
    assert trigger["payload"]["severity"] == "critical"
    assert "not acknowledged within 5 min" in trigger["payload"]["summary"]
    assert trigger["links"] and trigger["links"][0]["href"].startswith("https://")  # the thread's permalink
    (told,) = fake_slack.messages(MANAGERS)
    assert "HighErrorRate" in told.text and "not acknowledged within 5 min" in told.text
    assert "firing for 5 min" in told.text and trigger["links"][0]["href"] in told.text
    root = root_of(fake_slack)
    (note,) = notes(fake_slack, root, "Escalated")
    assert note == (":rotating_light: Escalated: critical alert not acknowledged within 5 min. Paging the on-call "
                    "through PagerDuty; telling #engineering-managers.")

    await passes(clock, 55 * 60, bot)  # the resolution deadline: the same incident, not a second page
    assert [e["event_action"] for e in pagerduty.events] == ["trigger"]  # the incident is open: not sent again
    assert len(pagerduty.incidents) == 1
    assert len(fake_slack.messages(MANAGERS)) == 2 and len(notes(fake_slack, root, "Escalated")) == 2

    resolved = webhook_body(status="resolved", endsAt="2026-11-25T00:50:00Z")
    await post_webhook(http, bot, resolved)
    await settle(bot)
    await pagerduty.wait_for(2)
    assert pagerduty.events[-1]["event_action"] == "resolve" and not pagerduty.incidents[0].open
    metrics = await (await http.get(f"http://127.0.0.1:{bot.port}/metrics")).text()
    assert 'chatops_escalations_total{kind="ack"} 1.0' in metrics
    assert 'chatops_escalations_total{kind="resolve"} 1.0' in metrics


async def test_an_acknowledged_alert_is_not_escalated_and_an_acknowledgement_after_a_page_acknowledges_it(
    start_bot, env, clock, http, fake_slack, pagerduty, signing_secret
):
    bot = await start_bot(env, clock=clock)
    await post_webhook(http, bot, grouped(storm(1), 1)[0])  # a second alert, acknowledged in time
    await post_webhook(http, bot, webhook_body())
    await settle(bot)
    first, second = [m for m in fake_slack.messages("#alerts-critical") if m.thread_ts is None]
    value = next(e["value"] for b in first.blocks if b["type"] == "actions" for e in b["elements"])
    await send_block_action(http, f"http://127.0.0.1:{bot.port}/slack/events", signing_secret,
                            [{"action_id": "ops-ack", "value": value, "action_ts": "1.1"}], user=ALICE,
                            channel=first.channel, message={"type": "message", "ts": first.ts})
    await settle(bot)

    await passes(clock, 5 * 60, bot)
    (trigger,) = await pagerduty.wait_for(1)  # only the alert nobody acknowledged
    assert not notes(fake_slack, first, "Escalated") and notes(fake_slack, second, "Escalated")

    value = next(e["value"] for b in second.blocks if b["type"] == "actions" for e in b["elements"])
    await send_block_action(http, f"http://127.0.0.1:{bot.port}/slack/events", signing_secret,
                            [{"action_id": "ops-ack", "value": value, "action_ts": "2.1"}], user=ALICE,
                            channel=second.channel, message={"type": "message", "ts": second.ts})
    await settle(bot)
    (_, acknowledge) = await pagerduty.wait_for(2)
    assert acknowledge == {"routing_key": pagerduty.routing_key, "event_action": "acknowledge",
                           "dedup_key": trigger["dedup_key"]}
    assert pagerduty.incident(trigger["dedup_key"]).status == "acknowledged"


async def test_a_deadline_that_passed_while_the_bot_was_down_escalates_once_it_is_back(
    start_bot, env, clock, http, fake_slack, pagerduty
):
    first = await start_bot(env, clock=clock)
    await post_webhook(http, first, webhook_body())
    await settle(first)
    await first.stop()
    clock.advance(20 * 60)  # down through the deadline
    second = await start_bot(env, clock=clock)  # same STATE_URL
    async with asyncio.timeout(30):
        while deadlines_handled(second) < 1:  # the deadline that passed while it was down, handled at start
            await asyncio.sleep(0.02)
    await settle(second)
    await pagerduty.wait_for(1)
    assert len(fake_slack.messages(MANAGERS)) == 1
    metrics = await (await http.get(f"http://127.0.0.1:{second.port}/metrics")).text()
    assert "chatops_timers_overdue_total 1.0" in metrics


async def test_two_replicas_sharing_redis_escalate_a_due_deadline_once(
    start_bot, env, clock, http, fake_slack, pagerduty, redis_server
):
    env = {**env, "STATE_URL": redis_server.url}
    bots = [await start_bot(env, clock=clock) for _ in range(2)]
    await post_webhook(http, bots[0], webhook_body())
    await settle(*bots)
    await passes(clock, 5 * 60, *bots)
    await pagerduty.wait_for(1)
    await settle(*bots)
    assert deadlines_handled(*bots) == 1  # one replica took the due deadline
    assert len(pagerduty.events) == 1 and len(fake_slack.messages(MANAGERS)) == 1
    assert len(notes(fake_slack, root_of(fake_slack), "Escalated")) == 1


async def test_a_page_pagerduty_refuses_is_reported_once_in_the_thread_and_managers_are_still_told(
    start_bot, env, clock, http, fake_slack, pagerduty
):
    bot = await start_bot({**env, "PAGERDUTY_ROUTING_KEY": "a-key-pagerduty-does-not-know"}, clock=clock)
    await post_webhook(http, bot, webhook_body())
    await settle(bot)
    await passes(clock, 5 * 60, bot)
    root = root_of(fake_slack)
    (refused,) = notes(fake_slack, root, "PagerDuty refused")
    assert refused.startswith(":warning: PagerDuty refused the trigger: ") and "routing_key" in refused
    assert "a-key-pagerduty-does-not-know" not in json.dumps([m.text for m in fake_slack.messages()])
    assert len(fake_slack.messages(MANAGERS)) == 1
    assert [r.status for r in pagerduty.requests] == [400]  # never retried


async def test_pagerduty_answering_429_then_500_is_retried_until_it_takes_the_page(
    start_bot, env, clock, http, fake_slack, pagerduty
):
    bot = await start_bot(env, clock=clock)
    await post_webhook(http, bot, webhook_body())
    await settle(bot)
    pagerduty.rate_limit(times=1, retry_after=1)
    pagerduty.fail(times=1, status=500)
    retried = bot.runtime.metrics.work.labels(kind="incident-page-sync", outcome="retried")
    clock.advance(5 * 60)
    for failures in (1, 2):  # each retry waits its backoff on the store's clock: moved on once recorded
        await pagerduty.wait_for_requests(failures)
        async with asyncio.timeout(10):
            while retried._value.get() < failures:
                await asyncio.sleep(0.01)
        clock.advance(2)
    await pagerduty.wait_for(1)
    await settle(bot)
    assert [r.status for r in pagerduty.requests] == [429, 500, 202]
    assert len(notes(fake_slack, root_of(fake_slack), "Escalated")) == 1


async def test_without_pagerduty_the_managers_and_the_thread_are_told_that_nobody_was_paged(
    start_bot, env, clock, http, fake_slack, pagerduty
):
    env = {k: v for k, v in env.items() if not k.startswith("PAGERDUTY_")}
    bot = await start_bot(env, clock=clock)
    await post_webhook(http, bot, webhook_body())
    await settle(bot)
    await passes(clock, 5 * 60, bot)
    (note,) = notes(fake_slack, root_of(fake_slack), "Escalated")
    assert "PagerDuty is not configured (PAGERDUTY_ROUTING_KEY), so nobody was paged" in note
    (told,) = fake_slack.messages(MANAGERS)
    assert "PagerDuty is not configured" in told.text
    assert pagerduty.requests == []


async def test_three_related_critical_alerts_within_10_min_escalate_once_as_one_incident(
    start_bot, env, clock, http, fake_slack, pagerduty
):
    bot = await start_bot(env, clock=clock)
    for group in grouped(storm(4), 4):  # four groups, a thread each, all critical
        await post_webhook(http, bot, group)
    await settle(bot)
    (related,) = await pagerduty.wait_for(1)
    assert related["payload"]["summary"].startswith("Related critical alerts: HighErrorRate")
    (told,) = fake_slack.messages(MANAGERS)
    assert "critical alerts within 10 min" in told.text and "escalated as one incident" in told.text
    roots = [m for m in fake_slack.messages("#alerts-critical") if m.thread_ts is None]
    noted = [r for r in roots if notes(fake_slack, r, "Escalated with related alerts")]
    assert len(noted) == 4  # the fourth joined the open incident
    assert len(pagerduty.events) == 1 and len(fake_slack.messages(MANAGERS)) == 1  # one page, told once

    groups = grouped(storm(4), 4)
    for group in groups[:3]:
        await post_webhook(http, bot, resolved_group(group))
    await settle(bot)
    assert pagerduty.incident(related["dedup_key"]).open  # one of its alerts still fires
    await post_webhook(http, bot, resolved_group(groups[3]))
    await settle(bot)
    (_, resolve) = await pagerduty.wait_for(2)
    assert resolve["event_action"] == "resolve" and not pagerduty.incident(related["dedup_key"]).open


def resolved_group(group: dict) -> dict:
    alerts = [{**a, "status": "resolved", "endsAt": "2026-11-25T00:05:12.618Z"} for a in group["alerts"]]
    return {**group, "status": "resolved", "alerts": alerts}


async def test_escalating_by_hand_in_a_thread_and_from_anywhere(
    start_bot, env, clock, http, fake_slack, pagerduty, signing_secret
):
    bot, root = await firing(start_bot, env, clock, http, fake_slack)
    fake_slack.deliver_events_to(f"http://127.0.0.1:{bot.port}/slack/events", signing_secret)
    fake_slack.deliver_event({"type": "app_mention", "user": ALICE, "channel": root.channel, "ts": "1764000000.000700",
                              "thread_ts": root.ts, "text": "<@U0BOT> escalate customers report failed checkouts"})
    await fake_slack.deliveries_answered()
    await settle(bot)
    (note,) = notes(fake_slack, root, "Escalated")
    assert note.startswith(f":rotating_light: Escalated by <@{ALICE}>: customers report failed checkouts.")
    (trigger,) = await pagerduty.wait_for(1)

    answer = await send_slash_command(http, f"http://127.0.0.1:{bot.port}/slack/events", signing_secret,
                                      text="escalate checkout down for EU customers", user_id=ALICE,
                                      response_url=fake_slack.response_url())
    assert answer.status == 200 and "Escalating" in answer.json["text"]
    await settle(bot)
    (_, manual) = await pagerduty.wait_for(2)
    assert manual["payload"]["summary"] == "Manual incident: checkout down for EU customers"
    assert manual["dedup_key"] != trigger["dedup_key"]
    said = [m.text for m in fake_slack.messages("C0OPS")]
    assert said and said[0].startswith(f":rotating_light: <@{ALICE}> opened an incident: checkout down for EU")
    assert len(fake_slack.messages(MANAGERS)) == 2


async def test_the_post_mortem_of_a_thread_that_went_through_ack_escalation_a_mitigation_and_resolution(
    start_bot, env, clock, http, fake_slack, pagerduty, signing_secret, kube, policy_yaml
):
    from tests.approvals import BOB, CAROL, POLICY, buttons

    kube.seed_deployment("checkout", "prod", replicas=3)
    chatops = POLICY + """
alerts: {post_interval: 0, edit_interval: 0.05}
delivery: {poll_seconds: 0.05, retry_initial_seconds: 0.05, retry_max_seconds: 0.3}
playbook_defaults: {namespace: prod}
playbooks:
  HighErrorRate: {steps: ["pods {deployment} -n {namespace}"], actions: [scale-up]}
"""
    bot = await start_bot({**env, "CHATOPS_CONFIG": policy_yaml(chatops)}, clock=clock)
    url = f"http://127.0.0.1:{bot.port}/slack/events"
    await post_webhook(http, bot, webhook_body())
    await settle(bot)
    root = root_of(fake_slack)
    await passes(clock, 6 * 60, bot)  # not acknowledged in 5 min: escalated
    clock.advance(60)
    ack = next(e["value"] for b in root.blocks if b["type"] == "actions" for e in b["elements"])
    await send_block_action(http, url, signing_secret, [{"action_id": "ops-ack", "value": ack, "action_ts": "1.1"}],
                            user=ALICE, channel=root.channel, message={"type": "message", "ts": root.ts})
    await settle(bot)
    (reply,) = [m for m in thread(fake_slack, "#alerts-critical", root.ts) if "Investigation" in (m.text or "")]
    scale_up = next(e for b in reply.blocks if b["type"] == "actions" for e in b["elements"]
                    if e["action_id"] == "ops-offer-scale-up")
    await send_block_action(http, url, signing_secret, [{"action_id": scale_up["action_id"],
                                                         "value": scale_up["value"]}],
                            user=CAROL, channel=root.channel, message={"type": "message", "ts": reply.ts})
    await settle(bot)
    await asyncio.wait_for(bot.worker.idle(["actions"]), 30)
    request = [m for m in thread(fake_slack, "#alerts-critical", root.ts) if "replicas 3 → 5" in json.dumps(
        m.blocks or [], ensure_ascii=False)][-1]
    await send_block_action(http, url, signing_secret, [{"action_id": "ops-approve",
                                                         "value": buttons(request)["ops-approve"]}],
                            user=BOB, channel=root.channel, message={"type": "message", "ts": request.ts})
    await asyncio.wait_for(bot.worker.idle(["actions"]), 30)
    clock.advance(20 * 60)
    await post_webhook(http, bot, webhook_body(status="resolved", endsAt="2026-11-25T00:12:12.618Z"))
    await settle(bot)

    resolution = [m for m in thread(fake_slack, "#alerts-critical", root.ts) if "Resolved after" in (m.text or "")]
    (draft,) = [e for m in resolution for b in m.blocks if b["type"] == "actions" for e in b["elements"]
                if e["action_id"] == "ops-postmortem"]
    await send_block_action(http, url, signing_secret, [{"action_id": "ops-postmortem", "value": draft["value"],
                                                         "action_ts": "9.1"}],
                            user=ALICE, channel=root.channel, message={"type": "message", "ts": resolution[0].ts})
    await settle(bot)
    (file,) = fake_slack.files
    assert file.thread_ts == root.ts and file.filename.endswith(".md")
    markdown = (file.content or b"").decode()
    assert "**Acknowledged** by <@U0ALICE001>" in markdown
    assert "**Escalated** (ack)" in markdown and "PagerDuty: triggered" in markdown
    assert "Mitigation **requested**" in markdown and "Mitigation **approved**" in markdown
    assert "replicas 3 → 5" in markdown and "**Resolved** after 30 min" in markdown
    assert "Acknowledge within 5 min | missed by" in markdown and "Resolve within 1 h | met" in markdown
    assert "Pods · checkout (prod)" in markdown  # a key finding of the investigation
    for section in ("## Root cause", "## Impact", "## Action items"):
        assert section in markdown
    (announced,) = [m.text for m in thread(fake_slack, "#alerts-critical", root.ts) if ":memo:" in (m.text or "")]
    assert announced.startswith(f":memo: <@{ALICE}> asked for a post-mortem draft: HighErrorRate")


async def test_a_resolution_before_the_deadlines_stops_them(start_bot, env, clock, http, fake_slack, pagerduty):
    bot = await start_bot(env, clock=clock)
    await post_webhook(http, bot, webhook_body())
    await settle(bot)
    assert await bot.runtime.store.pending("timers") == 2
    await post_webhook(http, bot, webhook_body(status="resolved", endsAt="2026-11-24T23:44:00Z"))
    await settle(bot)
    assert await bot.runtime.store.pending("timers") == 0  # cancelled: nothing is left to come due


class _AcknowledgedMeanwhile:
    """A store in front of the real one: when the escalation writes the thread, someone's click is
    stored first (the race of an acknowledgement against the deadline, made to happen every time)."""

    def __init__(self, store, user: str) -> None:
        self._store, self.user, self.raced = store, user, False

    def __getattr__(self, name):
        return getattr(self._store, name)

    async def put_if(self, key, value, version, ttl=None):
        if not self.raced and key.startswith("thread:") and value.get("escalations"):
            self.raced = True
            current = await self._store.get(key)
            acked = {**current.value, "acked_by": self.user, "acked_at": self._store.clock.now(), "acked_job": "x"}
            assert await self._store.put_if(key, acked, current.version, ttl=ttl)
        return await self._store.put_if(key, value, version, ttl=ttl)


async def test_an_acknowledgement_that_lands_while_the_deadline_is_decided_wins(
    start_bot, env, clock, http, fake_slack, pagerduty
):
    bot = await start_bot(env, clock=clock)
    await post_webhook(http, bot, webhook_body())
    await settle(bot)
    racing = _AcknowledgedMeanwhile(bot.runtime.store, ALICE)
    bot.threads.incidents.store = racing
    await passes(clock, 5 * 60, bot)
    assert racing.raced  # the escalation did try, and met the acknowledgement
    assert pagerduty.requests == [] and not fake_slack.messages(MANAGERS)
    assert not notes(fake_slack, root_of(fake_slack), "Escalated")


async def test_an_alertmanager_post_whose_alert_ended_without_a_resolved_post_is_resolved_not_escalated(
    am_bot, alertmanager, http, fake_slack, pagerduty, signing_secret
):
    import time

    bot, clock = am_bot
    channel = await alertmanager_posts_checkout_alert(alertmanager, fake_slack, bot, signing_secret)
    await settle(bot)
    assert await bot.runtime.store.pending("timers") == 3  # the SLA's two, and the first look at the API

    # The receiver has send_resolved off: the alert ends in Alertmanager and nothing is posted.
    ended = datetime.fromtimestamp(time.time() - 1).astimezone().isoformat()
    alertmanager.post_alerts([{"labels": CHECKOUT_ALERT, "endsAt": ended}])
    await passes(clock, 5 * 60 + 30, bot)  # Alertmanager's startsAt came a moment after the clock's start
    assert pagerduty.requests == [] and not fake_slack.messages(MANAGERS)
    replies = [m.text for m in thread(fake_slack, channel, "1732500999.000100")]
    assert replies[-1].startswith(":white_check_mark: Resolved after ")
    assert await bot.runtime.store.pending("timers") == 0


async def test_an_alertmanager_post_of_an_info_alert_that_ended_quietly_is_resolved_by_a_look_at_the_api(
    am_bot, alertmanager, http, fake_slack, pagerduty, signing_secret
):
    import time

    bot, clock = am_bot
    labels = {**CHECKOUT_ALERT, "severity": "info"}  # no SLA: no deadline would ever look
    channel = await alertmanager_posts_checkout_alert(alertmanager, fake_slack, bot, signing_secret, "info")
    await settle(bot)
    await passes(clock, 5 * 60 + 30, bot)  # a look: still firing, so another is due
    assert len(thread(fake_slack, channel, POST_TS)) == 1
    ended = datetime.fromtimestamp(time.time() - 1).astimezone().isoformat()
    alertmanager.post_alerts([{"labels": labels, "endsAt": ended}])
    await passes(clock, 5 * 60, bot)
    replies = [m.text for m in thread(fake_slack, channel, POST_TS)]
    assert len(replies) == 2 and replies[-1].startswith(":white_check_mark: Resolved after ")
    assert await bot.runtime.store.pending("timers") == 0


async def test_an_acknowledgement_before_pagerduty_took_the_page_means_no_page_at_all(
    start_bot, env, clock, http, fake_slack, pagerduty, signing_secret
):
    bot, root = await firing(start_bot, env, clock, http, fake_slack)
    pagerduty.rate_limit(times=1, retry_after=5)  # the page waits its turn...
    retried = bot.runtime.metrics.work.labels(kind="incident-page-sync", outcome="retried")
    clock.advance(5 * 60)
    async with asyncio.timeout(10):
        while retried._value.get() < 1:
            await asyncio.sleep(0.01)
    value = next(e["value"] for b in root.blocks if b["type"] == "actions" for e in b["elements"])
    await send_block_action(http, f"http://127.0.0.1:{bot.port}/slack/events", signing_secret,
                            [{"action_id": "ops-ack", "value": value, "action_ts": "1.1"}], user=ALICE,
                            channel=root.channel, message={"type": "message", "ts": root.ts})  # ...and is acked
    await settle(bot)
    clock.advance(10)
    async with asyncio.timeout(10):
        while await bot.runtime.store.pending("incidents"):
            await asyncio.sleep(0.02)
    assert [r.status for r in pagerduty.requests] == [429]  # never a trigger after the acknowledgement
    assert pagerduty.incidents == []


async def test_the_deadlines_are_recorded_and_page_even_while_slack_refuses_the_alert_post(
    start_bot, env, clock, http, fake_slack, pagerduty
):
    bot = await start_bot(env, clock=clock)
    fake_slack.not_in_channel.add("#alerts-critical")  # the bot is not in #alerts-critical (yet)
    await post_webhook(http, bot, webhook_body())
    async with asyncio.timeout(10):
        while await bot.runtime.store.pending("timers") < 2:
            await asyncio.sleep(0.02)
    clock.advance(5 * 60)
    (trigger,) = await pagerduty.wait_for(1)
    assert "not acknowledged within 5 min" in trigger["payload"]["summary"] and "links" not in trigger
    # Someone invites the bot: the alert is posted, and the escalation's note goes in its thread (it
    # waited for the post), not to the channel's top level.
    fake_slack.not_in_channel.discard("#alerts-critical")
    async with asyncio.timeout(20):
        while not [m for m in fake_slack.messages("#alerts-critical") if "Escalated" in (m.text or "")]:
            clock.advance(5)  # the retries' backoff, on the store's clock
            await asyncio.sleep(0.05)
    root = root_of(fake_slack)
    assert len(notes(fake_slack, root, "Escalated")) == 1
    assert [m for m in fake_slack.messages("#alerts-critical") if m.thread_ts is None] == [root]


async def test_a_managers_channel_the_bot_is_not_in_is_said_once_in_the_thread_and_the_page_still_goes_out(
    start_bot, env, clock, http, fake_slack, pagerduty
):
    fake_slack.not_in_channel.add(MANAGERS)
    bot, root = await firing(start_bot, env, clock, http, fake_slack)
    await passes(clock, 5 * 60, bot)
    await pagerduty.wait_for(1)
    (said,) = notes(fake_slack, root, "Could not tell")
    assert said == (":warning: Could not tell #engineering-managers: Slack answered `not_in_channel` (invite the "
                    "bot there, or set `escalation.managers_channel`).")
    failed = bot.runtime.metrics.work.labels(kind="incident-escalate", outcome="retried")._value.get()
    assert failed == 0  # said, not retried for hours


async def test_an_alertmanager_posts_alert_still_firing_at_its_deadline_is_escalated_in_that_thread(
    am_bot, alertmanager, http, fake_slack, pagerduty, signing_secret
):

    bot, clock = am_bot
    channel = await alertmanager_posts_checkout_alert(alertmanager, fake_slack, bot, signing_secret)
    await settle(bot)
    await passes(clock, 5 * 60 + 30, bot, ran=2)  # the first look at the API (still firing) and the deadline
    (trigger,) = await pagerduty.wait_for(1)
    assert "not acknowledged within 5 min" in trigger["payload"]["summary"]
    notes_ = [m.text for m in thread(fake_slack, channel, POST_TS) if "Escalated" in (m.text or "")]
    assert len(notes_) == 1 and len(fake_slack.messages(MANAGERS)) == 1


async def test_a_post_mortem_asked_for_with_a_mention_in_the_thread_is_uploaded_there(
    start_bot, env, clock, http, fake_slack, pagerduty, signing_secret
):
    bot, root = await firing(start_bot, env, clock, http, fake_slack)
    fake_slack.deliver_events_to(f"http://127.0.0.1:{bot.port}/slack/events", signing_secret)
    fake_slack.deliver_event({"type": "app_mention", "user": ALICE, "text": "<@U0BOT> postmortem",
                              "channel": root.channel, "ts": "1764000000.001000", "thread_ts": root.ts})
    await fake_slack.deliveries_answered()
    await settle(bot)
    (file,) = fake_slack.files
    assert file.thread_ts == root.ts and "**Still firing** when this draft was made" in (file.content or b"").decode()
