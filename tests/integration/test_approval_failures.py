"""Approvals when things fail part-way: Slack edits failing, a crash between two steps, a backend
down for longer than an approval is good for, late edits. Nothing may be lost, doubled or stuck.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest

from bot.actions.desk import Desk
from bot.actions.request import load_request
from bot.state import keys
from bot.state.store import NewJob
from operations.model import OperationError
from tests import approvals
from tests.approvals import ALICE, BOB, CAROL, MALLORY, POLICY, Ops
from tests.slack_requests import send_block_action, send_slash_command

pytestmark = pytest.mark.integration

FAST = "\ndelivery: {poll_seconds: 0.05, retry_initial_seconds: 0.05, retry_max_seconds: 0.3}\n"


async def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until `condition()` holds (the bot's work is asynchronous); fail after `timeout`."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)


async def fast_ops(start_bot, bot_env, kube, policy_yaml, http, fake_slack, signing_secret, extra: str = FAST):
    kube.seed_deployment("checkout", "prod", replicas=3)
    bot = await start_bot({**bot_env, "KUBECONFIG": kube.kubeconfig_path,
                           "CHATOPS_CONFIG": policy_yaml(POLICY + extra)})
    return Ops(bot, http, fake_slack, signing_secret)


@pytest.fixture
async def fast(start_bot, bot_env, kube, policy_yaml, http, fake_slack, signing_secret):
    return await fast_ops(start_bot, bot_env, kube, policy_yaml, http, fake_slack, signing_secret)


@pytest.fixture
def crashed(monkeypatch) -> list[str]:
    """Recording an expiry timer fails once (as a crash right after the preview was stored); the
    list names the timer's job once it happened."""
    real = Desk.submit
    happened: list[str] = []

    async def crash_once(self, job_id, kind, payload, due=None):
        if kind == keys.KIND_ACTION_EXPIRE and not happened:
            happened.append(job_id)
            raise ConnectionError("the store went away")
        await real(self, job_id, kind, payload, due)

    monkeypatch.setattr(Desk, "submit", crash_once)
    return happened


async def approved_and_done(ops):
    message = await ops.ask("scale checkout 8 -n prod")
    await ops.click(message, "ops-approve", BOB)
    await ops.idle()
    assert "applied in" in ops.text(message)
    return message


async def test_a_refused_revert_click_leaves_revert_to_others(ops, kube):
    message = await approved_and_done(ops)
    revert = approvals.buttons(ops.current(message))["ops-revert"]

    await ops.click(message, "ops-revert", MALLORY, value=revert)  # in no group: may not request a scale
    await ops.idle()
    assert "ops-revert" in approvals.buttons(ops.current(message)) and ops.ephemerals_to(MALLORY)
    await ops.click(message, "ops-revert", ALICE, value=revert)
    await ops.idle()

    asked = ops.slack.messages("C0OPS")[-1]
    assert asked.ts != message.ts and "replicas 8 → 3" in ops.text(asked)


async def test_a_revert_click_whose_first_attempt_failed_still_requests_the_revert(fast, fake_slack):
    message = await approved_and_done(fast)

    fake_slack.fail("chat.postMessage", "internal_error")  # the revert request's post fails once
    await fast.click(fast.current(message), "ops-revert", ALICE)
    await fast.idle()

    asked = fast.slack.messages("C0OPS")[-1]
    assert asked.ts != message.ts and "replicas 8 → 3" in fast.text(asked)


async def test_a_cancel_whose_edit_failed_once_still_shows_on_the_message(fast, fake_slack, kube):
    message = await fast.ask("scale checkout 8 -n prod")

    fake_slack.fail("chat.update", "internal_error")
    await fast.click(message, "ops-cancel", ALICE)
    await fast.idle()

    assert "Cancelled" in fast.text(message) and not approvals.buttons(fast.current(message))
    assert not fast.ephemerals_to(ALICE) and (await approvals.audit_events(fast.bot)).count("cancelled") == 1


async def test_an_expiry_whose_edit_failed_once_still_shows_on_the_message(fast, fake_slack):
    message = await fast.ask("scale checkout 8 -n prod")
    store = fast.bot.runtime.store
    request = await load_request(store, approvals.buttons(message)["ops-approve"])
    assert request is not None

    fake_slack.fail("chat.update", "internal_error")
    # The approval window ends now: the stored expiry moved back, and its timer (the same job) due now.
    await store.put(request.key, {**request.to_json(), "expires_at": store.clock.now() - 1})
    await fast.bot.worker.submit([NewJob(id=keys.expire(request.id), kind=keys.KIND_ACTION_EXPIRE,
                                         lane=keys.LANE_TIMERS, payload={"request": request.id})])
    await eventually(lambda: "Expired" in fast.text(message))
    await fast.idle()

    assert not approvals.buttons(fast.current(message))
    assert (await approvals.audit_events(fast.bot)).count("expired") == 1


async def test_a_crash_before_the_expiry_timer_was_recorded_still_gets_one(fast, crashed):
    message = await fast.ask("scale checkout 8 -n prod")
    await fast.idle()

    assert crashed and await fast.bot.runtime.store.job(crashed[0]) is not None  # the expiry timer exists
    assert await approvals.audit_events(fast.bot) == ["requested"]  # once, though the job ran twice
    assert "Approval needed" in fast.text(message)


async def test_a_preview_that_keeps_failing_is_refused_in_time_and_the_requester_told(
        start_bot, bot_env, kube, policy_yaml, http, fake_slack, signing_secret, monkeypatch):
    async def down(self, spec, *, impersonate=""):
        raise OperationError("Kubernetes: cannot connect to https://k8s (ClientConnectorError)", temporary=True)

    monkeypatch.setattr("bot.actions.backends.Backends.preview", down)
    ops = await fast_ops(start_bot, bot_env, kube, policy_yaml, http, fake_slack, signing_secret,
                         FAST.replace("{", "{give_up_after_minutes: 0.05, "))  # deadlines at half of 3 s
    await send_slash_command(http, ops.url, signing_secret, text="scale checkout 8 -n prod", user_id=ALICE,
                             user_name="alice", response_url=fake_slack.response_url())
    await eventually(lambda: bool(ops.ephemerals_to(ALICE)))
    await ops.idle()

    (line,) = ops.ephemerals_to(ALICE)
    assert "Nothing requested" in line and "cannot connect" in line and "tried for" in line
    assert not fake_slack.messages("C0OPS") and not await ops.bot.runtime.store.read_log(keys.FAILED_WORK_LOG)
    assert "refused" in await approvals.audit_events(ops.bot)


async def test_an_approved_change_whose_backend_stays_down_fails_in_time_instead_of_hanging(
        start_bot, bot_env, kube, policy_yaml, http, fake_slack, signing_secret, monkeypatch):
    async def down(self, spec, preview, request_id, *, impersonate=""):
        raise OperationError("Kubernetes: HTTP 503 at https://k8s", temporary=True)

    ops = await fast_ops(start_bot, bot_env, kube, policy_yaml, http, fake_slack, signing_secret,
                         FAST.replace("{", "{give_up_after_minutes: 0.05, "))
    message = await ops.ask("scale checkout 8 -n prod")
    monkeypatch.setattr("bot.actions.backends.Backends.apply", down)
    await ops.click(message, "ops-approve", BOB)
    await eventually(lambda: "Failed" in ops.text(message))
    await ops.idle()

    assert "HTTP 503" in ops.text(message) and "gave up after" in ops.text(message)
    assert kube.writes == [] and "applying" not in ops.text(message)
    assert not await ops.bot.runtime.store.read_log(keys.FAILED_WORK_LOG)


async def test_a_slow_edit_of_the_approval_never_overwrites_the_final_message(ops, kube, fake_slack):
    message = await ops.ask("scale checkout 8 -n prod")

    fake_slack.rate_limit("chat.update", times=1, retry_after=1)  # the first edit waits a second
    await ops.click(message, "ops-approve", BOB)
    await ops.idle()

    assert approvals.replicas(kube) == 8
    assert "applied in" in ops.text(message) and "ops-revert" in approvals.buttons(ops.current(message))


async def test_clicks_on_unknown_or_malformed_requests_are_told_and_audited(ops, kube):
    message = await ops.ask("scale checkout 8 -n prod")
    before = await approvals.audit_events(ops.bot)

    await ops.click(message, "ops-approve", BOB, value="r0000000000000000")
    await ops.click(message, "ops-approve", CAROL, value='{"replicas": 100}')
    await ops.idle()

    assert "no longer known" in ops.ephemerals_to(BOB)[0] and "not one of the bot's" in ops.ephemerals_to(CAROL)[0]
    assert await approvals.audit_events(ops.bot) == [*before, "refused", "refused"]
    assert kube.writes == []


async def test_audit_by_name_finds_what_the_approver_did(ops, kube, fake_slack):
    message = await ops.ask("scale checkout 8 -n prod")
    await ops.click(message, "ops-approve", BOB)  # Slack sends the name u0bob00001 with the click
    await ops.idle()

    await send_slash_command(ops.http, ops.url, ops.secret, text=f"audit --user @{BOB.lower()}", user_id=CAROL,
                             response_url=fake_slack.response_url())
    await ops.idle()
    report = json.dumps(fake_slack.messages("C0OPS")[-1].blocks)
    assert "2 entries" in report and "approved" in report and "executed" in report


async def test_every_audit_entry_after_the_post_carries_its_permalink(ops, kube):
    message = await ops.ask("scale checkout 8 -n prod")
    await ops.click(message, "ops-approve", BOB)
    await ops.idle()

    entries = {e.entry["event"]: e.entry["permalink"] for e in await ops.bot.runtime.store.read_log("audit")}
    assert set(entries) == {"requested", "approved", "executed"}
    # "requested" is recorded before the message exists (it names the request by its id)
    assert entries["approved"].startswith("https://") and entries["executed"] == entries["approved"]


async def test_slack_retrying_one_click_to_two_replicas_approves_once(start_bot, bot_env, kube, policy_yaml, http,
                                                                      fake_slack, signing_secret, redis_server):
    kube.seed_deployment("checkout", "prod", replicas=3)
    env = {**bot_env, "KUBECONFIG": kube.kubeconfig_path, "CHATOPS_CONFIG": policy_yaml(POLICY),
           "STATE_URL": redis_server.url}
    first = Ops(await start_bot(env), http, fake_slack, signing_secret)
    second = Ops(await start_bot(env), http, fake_slack, signing_secret)
    message = await first.ask("scale checkout 8 -n prod")
    click = [{"action_id": "ops-approve", "value": approvals.buttons(message)["ops-approve"],
              "action_ts": "1764470000.123456"}]

    await asyncio.gather(*(send_block_action(http, ops.url, signing_secret, click, user=BOB,
                                             message={"type": "message", "ts": message.ts})
                           for ops in (first, second, first)))
    await asyncio.gather(first.idle(), second.idle())

    assert len(kube.writes) == 1 and approvals.replicas(kube) == 8
    assert not first.ephemerals_to(BOB)  # one click, retried: nobody is told "already approved"
    assert (await approvals.audit_events(first.bot)).count("approved") == 1


async def test_a_post_whose_answer_was_lost_still_shows_how_the_request_ended(fast, fake_slack, kube):
    fast.bot.poster.settle_seconds = 1.0  # the lost attempt is looked for after 1 s (not 11 s)
    fake_slack.lose_answers("chat.postMessage", times=1, status=503)
    channel = "C0INCIDENT1"  # an ID as long as Slack's: the bot looks a lost post up by the channel's ID
    await send_slash_command(fast.http, fast.url, fast.secret, text="scale checkout 8 -n prod", user_id=ALICE,
                             user_name="alice", channel_id=channel, response_url=fake_slack.response_url())
    await eventually(lambda: len(fake_slack.messages(channel)) == 1)
    (message,) = fake_slack.messages(channel)

    # Approved before the request job learnt the message's ts (its answer was lost).
    await send_block_action(fast.http, fast.url, fast.secret, [{"action_id": "ops-approve",
                                                               "value": approvals.buttons(message)["ops-approve"]}],
                            user=BOB, channel=channel, message={"type": "message", "ts": message.ts})
    await eventually(lambda: approvals.replicas(kube) == 8)
    await eventually(lambda: "applied in" in json.dumps(fake_slack.messages(channel)[0].blocks))
    await fast.idle()

    assert len(fake_slack.messages(channel)) == 1 and "ops-revert" in approvals.buttons(fake_slack.messages(channel)[0])


async def test_a_write_whose_answer_was_lost_is_its_own_and_can_be_reverted(fast, kube, monkeypatch):
    from bot.actions.backends import Backends

    real = Backends.apply
    calls: list[int] = []

    async def lost_answer(self, spec, preview, request_id, *, impersonate=""):
        outcome = await real(self, spec, preview, request_id, impersonate=impersonate)
        calls.append(1)
        if len(calls) == 1:
            raise OperationError("Kubernetes: timed out after 10 s", temporary=True)  # written; answer lost
        return outcome

    monkeypatch.setattr(Backends, "apply", lost_answer)
    message = await fast.ask("scale checkout 8 -n prod")
    await fast.click(message, "ops-approve", BOB)
    await fast.idle()

    assert approvals.replicas(kube) == 8 and len(kube.writes) == 1 and len(calls) == 2
    assert "nothing written" not in fast.text(message) and "ops-revert" in approvals.buttons(fast.current(message))


async def test_request_again_is_its_own_kind_and_ends_when_applied(ops, kube):
    message = await ops.ask("scale checkout 8 -n prod")
    approvals.scale_behind_the_bot(kube, 5)
    await ops.click(message, "ops-approve", BOB)
    await ops.idle()

    await ops.click(ops.current(message), "ops-revert", ALICE)  # "Request again"
    await ops.idle()
    again = ops.slack.messages("C0OPS")[-1]
    assert "replicas 5 → 8" in ops.text(again)
    assert "asks again for" in ops.text(again) and "reverts" not in ops.text(again)
    await ops.click(again, "ops-approve", BOB)
    await ops.idle()

    assert approvals.replicas(kube) == 8
    assert not approvals.buttons(ops.current(message)) and "reverted by" not in ops.text(message)


async def test_revert_of_a_request_that_wrote_nothing_is_refused_on_the_server(ops, kube):
    message = await ops.ask("scale checkout 8 -n prod")
    request_id = approvals.buttons(message)["ops-approve"]
    approvals.scale_behind_the_bot(kube, 8)  # someone else scaled to 8 meanwhile
    await ops.click(message, "ops-approve", BOB)
    await ops.idle()
    assert "nothing written" in ops.text(message) and "ops-revert" not in approvals.buttons(ops.current(message))
    before = len(ops.slack.messages("C0OPS"))

    await ops.click(message, "ops-revert", ALICE, value=request_id)  # a stale or forged Revert
    await ops.idle()

    assert len(ops.slack.messages("C0OPS")) == before and "nothing of its to revert" in ops.ephemerals_to(ALICE)[0]


async def test_a_refusal_whose_first_telling_failed_is_told_on_the_retry(fast, fake_slack):
    fake_slack.fail("chat.postEphemeral", "channel_not_found")
    fake_slack.fail("response_url", "fatal_error", status=500)
    url = fake_slack.response_url()
    await send_slash_command(fast.http, fast.url, fast.secret, text="scale checkout 8 -n prod", user_id=MALLORY,
                             user_name="mallory", response_url=url)
    await eventually(lambda: bool(fast.ephemerals_to(MALLORY)))
    await fast.idle()

    assert "may request" in fast.ephemerals_to(MALLORY)[0] or "oncall" in fast.ephemerals_to(MALLORY)[0]
    assert (await approvals.audit_events(fast.bot)).count("refused") == 1


async def test_metrics_count_an_event_once_though_its_step_ran_twice(fast, crashed):
    await fast.ask("scale checkout 8 -n prod")
    await fast.idle()

    assert crashed and await approvals.audit_events(fast.bot) == ["requested"]
    metrics = fast.bot.runtime.metrics.exposition().decode()
    assert 'chatops_mitigations_total{action="scale",event="requested"} 1.0' in metrics
