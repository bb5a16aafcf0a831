"""Mitigations behind approval buttons, end to end: signed slash commands and clicks to the real
server, kmock (with the API server's dry-run and conflict semantics) behind it, the real
Alertmanager for silences, the fake Slack recording the approval message and every edit.

Every write the bot makes to kmock is recorded (`kube.writes`): each test checks that nothing was
written before an approval, and exactly one write after it.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from bot.actions.audit import Audit
from tests.approvals import (
    ALICE,
    BOB,
    CAROL,
    MALLORY,
    POLICY,
    Ops,
    audit_events,
    buttons,
    replicas,
    scale_behind_the_bot,
)
from tests.slack_requests import send_block_action, send_slash_command

pytestmark = pytest.mark.integration


async def test_scale_is_previewed_by_a_dry_run_and_applied_once_after_an_approval(ops, kube):
    message = await ops.ask("scale checkout 8 -n prod")

    assert "replicas 3 → 8" in ops.text(message) and "Deployment prod/checkout" in ops.text(message)
    assert set(buttons(message)) == {"ops-approve", "ops-cancel"}
    assert kube.writes == [] and len(kube.dry_runs) == 1 and replicas(kube) == 3

    assert await ops.click(message, "ops-approve", BOB) == 200
    await ops.idle()

    assert replicas(kube) == 8 and len(kube.writes) == 1
    done = ops.text(message)
    assert f"approved by <@{BOB}>" in done and "applied in" in done and "replicas 3 → 8" in done
    assert set(buttons(ops.current(message))) == {"ops-revert"}
    assert await audit_events(ops.bot) == ["requested", "approved", "executed"]
    metrics = ops.bot.runtime.metrics.exposition().decode()
    assert 'chatops_mitigations_total{action="scale",event="executed"} 1.0' in metrics


async def test_the_requester_cannot_approve_their_own_change(ops, kube):
    message = await ops.ask("scale checkout 8 -n prod")

    assert await ops.click(message, "ops-approve", ALICE) == 200
    await ops.idle()

    assert kube.writes == [] and replicas(kube) == 3
    (line,) = ops.ephemerals_to(ALICE)
    assert "two-person rule" in line
    assert "Approval needed" in ops.text(message)
    assert (await audit_events(ops.bot))[-1] == "refused"


async def test_someone_outside_the_approvers_cannot_approve(ops, kube):
    message = await ops.ask("restart checkout -n prod")

    await ops.click(message, "ops-approve", CAROL)  # oncall may request restarts, only leads approve
    await ops.click(message, "ops-approve", MALLORY)
    await ops.idle()

    assert kube.writes == []
    assert "leads" in ops.ephemerals_to(CAROL)[0] and ops.ephemerals_to(MALLORY)
    assert "Approval needed" in ops.text(message)


async def test_a_forged_button_value_changes_nothing(ops, kube, fake_slack):
    message = await ops.ask("scale checkout 8 -n prod")

    await ops.click(message, "ops-approve", BOB, value="r0000000000000000")
    await ops.click(message, "ops-approve", BOB, value='{"replicas": 100}')
    await ops.idle()

    assert kube.writes == [] and replicas(kube) == 3
    told = ops.ephemerals_to(BOB)
    assert len(told) == 2 and any("no longer known" in line for line in told)
    assert "Approval needed" in ops.text(message)


async def test_a_double_click_applies_the_change_once(ops, kube):
    message = await ops.ask("scale checkout 8 -n prod")

    await asyncio.gather(ops.click(message, "ops-approve", BOB), ops.click(message, "ops-approve", BOB),
                         ops.click(message, "ops-approve", CAROL))
    await ops.idle()

    assert len(kube.writes) == 1 and replicas(kube) == 8
    refused = ops.ephemerals_to(BOB) + ops.ephemerals_to(CAROL)
    assert len(refused) == 2 and all("already approved" in line for line in refused)


async def test_a_value_changed_since_the_preview_is_not_overwritten(ops, kube):
    message = await ops.ask("scale checkout 8 -n prod")
    scale_behind_the_bot(kube, 5)  # someone scaled it meanwhile

    await ops.click(message, "ops-approve", BOB)
    await ops.idle()

    assert kube.writes == [] and replicas(kube) == 5
    assert "changed since the preview" in ops.text(message)
    assert "ops-revert" in buttons(ops.current(message))  # "Request again"
    assert (await audit_events(ops.bot))[-1] == "changed"


async def test_revert_asks_for_the_inverse_change_through_the_same_approval(ops, kube):
    message = await ops.ask("scale checkout 8 -n prod")
    await ops.click(message, "ops-approve", BOB)
    await ops.idle()

    await ops.click(ops.current(message), "ops-revert", ALICE)
    await ops.idle()
    revert = ops.slack.messages("C0OPS")[-1]
    assert revert.ts != message.ts and "replicas 8 → 3" in ops.text(revert)
    assert replicas(kube) == 8  # nothing until it is approved

    await ops.click(revert, "ops-approve", BOB)
    await ops.idle()

    assert replicas(kube) == 3 and len(kube.writes) == 2
    assert "reverted by request" in ops.text(message) and "ops-revert" not in buttons(ops.current(message))


async def test_cancel_by_the_requester_ends_the_request(ops, kube):
    message = await ops.ask("scale checkout 8 -n prod")
    approve = buttons(message)["ops-approve"]

    await ops.click(message, "ops-cancel", ALICE)
    await ops.idle()
    await ops.click(message, "ops-approve", BOB, value=approve)
    await ops.idle()

    assert kube.writes == [] and "Cancelled" in ops.text(message) and not buttons(ops.current(message))
    assert "cancelled" in ops.ephemerals_to(BOB)[0]


async def test_a_request_nobody_approves_expires_and_its_message_says_so(start_bot, bot_env, kube, policy_yaml,
                                                                          http, fake_slack, signing_secret):
    kube.seed_deployment("checkout", "prod", replicas=3)
    bot = await start_bot({**bot_env, "KUBECONFIG": kube.kubeconfig_path,
                           "CHATOPS_CONFIG": policy_yaml(POLICY.replace("approval_minutes: 10",
                                                                         "approval_minutes: 0.02"))})
    ops = Ops(bot, http, fake_slack, signing_secret)
    message = await ops.ask("scale checkout 8 -n prod")
    approve = buttons(message)["ops-approve"]

    await fake_slack.wait_for("chat.update", timeout=10)  # the expiry timer's edit, ~1.2 s later
    assert "Expired" in ops.text(message) and not buttons(ops.current(message))
    await ops.click(message, "ops-approve", BOB, value=approve)
    await ops.idle()
    assert kube.writes == [] and "expired" in ops.ephemerals_to(BOB)[0]


async def test_without_a_policy_every_change_is_refused_with_how_to_enable_it(start_bot, bot_env, kube, http,
                                                                              fake_slack, signing_secret):
    kube.seed_deployment("checkout", "prod", replicas=3)
    bot = await start_bot({**bot_env, "KUBECONFIG": kube.kubeconfig_path})
    ops = Ops(bot, http, fake_slack, signing_secret)

    line = await ops.refused("scale checkout 8 -n prod")

    assert "policy" in line
    assert not fake_slack.messages("C0OPS") and kube.writes == [] and kube.dry_runs == []


async def test_limits_over_the_policys_maximum_are_refused_before_any_preview(ops, kube):
    line = await ops.refused("limits checkout --memory 16Gi -n prod")

    assert "8Gi" in line
    assert kube.dry_runs == [] and not ops.slack.messages("C0OPS")


async def test_a_namespace_outside_the_rule_is_refused(ops, kube):
    kube.seed_deployment("checkout", "staging", replicas=3)

    line = await ops.refused("scale checkout 4 -n staging")

    assert "staging" in line and kube.dry_runs == []


async def test_a_silence_is_previewed_with_the_alerts_it_covers_and_created_once(ops, alertmanager):
    alertmanager.post_alerts([{"labels": {"alertname": "HighErrorRate", "service": "checkout",
                                          "severity": "critical"}}])
    message = await ops.ask("silence HighErrorRate service=checkout --for 1h --comment deploy-fix")
    assert "HighErrorRate" in ops.text(message)

    await ops.click(message, "ops-approve", ALICE)  # two_person: false for silences
    await ops.idle()

    silences = [s for s in await asyncio.to_thread(_silences, alertmanager.url) if s["status"]["state"] == "active"]
    assert len(silences) == 1 and silences[0]["createdBy"] == ALICE.lower()
    assert {(m["name"], m["value"]) for m in silences[0]["matchers"]} == {
        ("alertname", "HighErrorRate"), ("service", "checkout")}


def _silences(url: str) -> list[dict[str, Any]]:
    import urllib.request

    with urllib.request.urlopen(f"{url}/api/v2/silences", timeout=5) as response:
        return json.loads(response.read())


async def test_audit_lists_what_happened_newest_first(ops, kube, fake_slack):
    message = await ops.ask("scale checkout 8 -n prod")
    await ops.click(message, "ops-approve", BOB)
    await ops.idle()

    result = await send_slash_command(ops.http, ops.url, ops.secret, text="audit --action scale", user_id=CAROL,
                                      response_url=fake_slack.response_url())
    assert result.status == 200
    await ops.idle()
    report = json.dumps(fake_slack.messages("C0OPS")[-1].blocks)
    assert report.index("executed") < report.index("approved") < report.index("requested")


@pytest.fixture
async def two_replicas(start_bot, bot_env, kube, policy_yaml, redis_server):
    """Two bot processes sharing one real Redis: any of them may get any click."""
    kube.seed_deployment("checkout", "prod", replicas=3)
    env = {**bot_env, "KUBECONFIG": kube.kubeconfig_path, "CHATOPS_CONFIG": policy_yaml(),
           "STATE_URL": redis_server.url}
    return [await start_bot(env), await start_bot(env)]


async def test_the_same_click_on_two_replicas_at_once_writes_once(two_replicas, http, fake_slack, signing_secret,
                                                                  kube):
    first, second = (Ops(bot, http, fake_slack, signing_secret) for bot in two_replicas)
    message = await first.ask("scale checkout 8 -n prod")

    await asyncio.gather(first.click(message, "ops-approve", BOB), second.click(message, "ops-approve", BOB),
                         first.click(message, "ops-approve", CAROL), second.click(message, "ops-approve", CAROL))
    await asyncio.gather(first.idle(), second.idle())

    assert len(kube.writes) == 1 and replicas(kube) == 8
    assert len(first.ephemerals_to(BOB) + first.ephemerals_to(CAROL)) == 3  # the three that lost


async def test_a_request_made_through_one_replica_is_approved_through_the_other(two_replicas, http, fake_slack,
                                                                                signing_secret, kube):
    first, second = (Ops(bot, http, fake_slack, signing_secret) for bot in two_replicas)
    message = await first.ask("scale checkout 8 -n prod")
    assert kube.writes == []

    await second.click(message, "ops-approve", BOB)
    await asyncio.gather(first.idle(), second.idle())

    assert len(kube.writes) == 1 and replicas(kube) == 8
    assert "applied in" in first.text(message)


async def test_approval_works_over_socket_mode(start_bot, bot_env, kube, policy_yaml, fake_slack):
    from urllib.parse import parse_qsl

    from tests.slack_requests import block_action_body, slash_command_body

    kube.seed_deployment("checkout", "prod", replicas=3)
    bot = await start_bot({**bot_env, "SLACK_APP_TOKEN": fake_slack.app_token, "SLACK_SIGNING_SECRET": "",
                           "KUBECONFIG": kube.kubeconfig_path, "CHATOPS_CONFIG": policy_yaml()})
    await fake_slack.socket_connected(timeout=10)
    await fake_slack.socket_send("slash_commands", dict(parse_qsl(slash_command_body(
        text="scale checkout 8 -n prod", user_id=ALICE, response_url=fake_slack.response_url()))), timeout=3)
    await fake_slack.wait_for("chat.postMessage", timeout=10)
    (message,) = fake_slack.messages("C0OPS")
    assert kube.writes == []

    click = json.loads(dict(parse_qsl(block_action_body([{"action_id": "ops-approve", "value": buttons(message)[
        "ops-approve"]}], user=BOB, message={"type": "message", "ts": message.ts})))["payload"])
    await fake_slack.socket_send("interactive", click, timeout=3)
    await asyncio.wait_for(bot.worker.idle(["actions"]), 15)

    assert len(kube.writes) == 1 and replicas(kube) == 8


ALERT_POLICY = POLICY.replace("namespaces: [prod], ", "") + """
playbook_defaults: {namespace: prod}
playbooks:
  HighErrorRate: {steps: ["pods {deployment} -n {namespace}"], actions: [scale-up, circuit-breaker]}
"""


async def open_alert_thread(start_bot, bot_env, kube, policy_yaml, alertmanager, http, fake_slack, signing_secret,
                            extra: str = ""):
    """A webhook alert (HighErrorRate on checkout) posted and investigated: (ops, its root, the reply)."""
    from tests.integration.test_alert_threads import TOKEN, webhook_body

    kube.seed_deployment("checkout", "prod", replicas=3)
    bot = await start_bot({**bot_env, "KUBECONFIG": kube.kubeconfig_path, "ALERTMANAGER_URL": alertmanager.url,
                           "ALERTMANAGER_WEBHOOK_TOKEN": TOKEN, "CHATOPS_CONFIG": policy_yaml(ALERT_POLICY + extra)})
    ops = Ops(bot, http, fake_slack, signing_secret)
    async with http.post(f"http://127.0.0.1:{bot.port}/alertmanager", json=webhook_body(),
                         headers={"Authorization": f"Bearer {TOKEN}"}) as response:
        assert response.status == 200
    await asyncio.wait_for(bot.threads.drain(), 15)
    root = [m for m in fake_slack.messages("#alerts-critical") if m.thread_ts is None][0]
    (reply,) = [m for m in fake_slack.messages("#alerts-critical") if m.thread_ts == root.ts]
    return ops, root, reply


@pytest.fixture
async def alert_thread(start_bot, bot_env, kube, policy_yaml, alertmanager, http, fake_slack, signing_secret):
    return await open_alert_thread(start_bot, bot_env, kube, policy_yaml, alertmanager, http, fake_slack,
                                   signing_secret)


def offer(reply, action_id: str) -> dict:
    return next(e for b in reply.blocks if b["type"] == "actions" for e in b["elements"] if e["action_id"] == action_id)


async def test_a_mitigation_offered_in_an_alert_thread_makes_a_request_in_that_thread(
    alert_thread, kube, http, fake_slack, signing_secret
):
    ops, root, reply = alert_thread
    offers = [e for b in reply.blocks if b["type"] == "actions" for e in b["elements"]]
    assert [e["action_id"] for e in offers] == ["ops-offer-scale-up", "ops-offer-circuit-breaker", "ops-offer-silence"]

    scale_up = offers[0]
    await send_block_action(http, ops.url, signing_secret, [{"action_id": scale_up["action_id"],
                                                             "value": scale_up["value"]}],
                            user=CAROL, channel=root.channel, message={"type": "message", "ts": reply.ts,
                                                                       "thread_ts": root.ts})
    await ops.idle()
    request = [m for m in fake_slack.messages("#alerts-critical") if m.thread_ts == root.ts][-1]
    assert request.ts != reply.ts and "replicas 3 → 5" in json.dumps(request.blocks, ensure_ascii=False)
    assert kube.writes == []

    approve = buttons(request)["ops-approve"]
    await send_block_action(http, ops.url, signing_secret, [{"action_id": "ops-approve", "value": approve}],
                            user=BOB, channel=root.channel, message={"type": "message", "ts": request.ts})
    await ops.idle()
    assert replicas(kube) == 5 and len(kube.writes) == 1
    # The trail names the alert thread it happened in (the post-mortem reads it from there).
    trail = await Audit(ops.bot.runtime.store).read()
    assert {e.event for e in trail if e.thread == f"{root.channel}:{root.ts}"} >= {"requested", "approved", "executed"}


async def test_with_impersonation_every_write_carries_the_persons_identity(start_bot, bot_env, kube, policy_yaml,
                                                                           http, fake_slack, signing_secret):
    kube.seed_deployment("checkout", "prod", replicas=3)
    bot = await start_bot({**bot_env, "KUBECONFIG": kube.kubeconfig_path,
                           "CHATOPS_CONFIG": policy_yaml(POLICY + "  impersonate: true\n")})
    ops = Ops(bot, http, fake_slack, signing_secret)
    message = await ops.ask("scale checkout 8 -n prod")
    await ops.click(message, "ops-approve", BOB)
    await ops.idle()

    assert [d.impersonate for d in kube.dry_runs] == [f"slack:{ALICE}"]  # the preview: as the requester
    assert [w.impersonate for w in kube.writes] == [f"slack:{BOB}"]  # the write: as the approver


async def test_an_approver_in_a_slack_user_group_may_approve(start_bot, bot_env, kube, policy_yaml, http,
                                                             fake_slack, signing_secret):
    kube.seed_deployment("checkout", "prod", replicas=3)
    fake_slack.set_usergroup("S0LEADS001", [MALLORY])
    bot = await start_bot({**bot_env, "KUBECONFIG": kube.kubeconfig_path,
                           "CHATOPS_CONFIG": policy_yaml(POLICY.replace(f"leads: [{BOB}]", "leads: [S0LEADS001]"))})
    ops = Ops(bot, http, fake_slack, signing_secret)
    message = await ops.ask("restart checkout -n prod")

    await ops.click(message, "ops-approve", BOB)  # no longer a lead
    await ops.idle()
    assert kube.writes == []
    await ops.click(message, "ops-approve", MALLORY)  # in the leads' Slack user group
    await ops.idle()

    (write,) = kube.writes
    restarted = kube.kmock.objects["apps/v1/deployments", "prod", "checkout"]["spec"]["template"]["metadata"]
    assert "kubectl.kubernetes.io/restartedAt" in restarted["annotations"]


async def test_a_click_from_another_workspace_in_a_shared_channel_is_refused(ops, kube, http, fake_slack):
    message = await ops.ask("scale checkout 8 -n prod")

    result = await send_block_action(http, ops.url, ops.secret, [{"action_id": "ops-approve",
                                                                  "value": buttons(message)["ops-approve"]}],
                                     user=BOB, team_id="T0OTHER", message={"type": "message", "ts": message.ts})
    assert result.status == 200
    await ops.idle()

    assert kube.writes == [] and "workspace" in ops.ephemerals_to(BOB)[0]


async def test_audit_filters_by_person(ops, kube, fake_slack):
    message = await ops.ask("scale checkout 8 -n prod")
    await ops.click(message, "ops-approve", ALICE)  # refused: her own request
    await ops.click(message, "ops-approve", BOB)
    await ops.idle()

    result = await send_slash_command(ops.http, ops.url, ops.secret, text=f"audit --user <@{BOB}|bob>",
                                      user_id=CAROL, response_url=fake_slack.response_url())
    assert result.status == 200
    await ops.idle()
    report = json.dumps(fake_slack.messages("C0OPS")[-1].blocks)
    assert "approved" in report and "executed" in report and "two-person" not in report


async def test_silencing_from_an_alert_thread_silences_that_alert_for_the_chosen_time(
    alert_thread, alertmanager, http, fake_slack, signing_secret
):
    from tests.integration.test_alert_threads import webhook_body

    ops, root, reply = alert_thread
    (select,) = [e for b in reply.blocks if b["type"] == "actions" for e in b["elements"]
                 if e["type"] == "static_select"]
    four_hours = next(o for o in select["options"] if o["text"]["text"] == "Silence 4 h")

    choice = {"type": "static_select", "action_id": select["action_id"], "selected_option": four_hours}
    await send_block_action(http, ops.url, signing_secret, [choice],
                            user=ALICE, channel=root.channel, message={"type": "message", "ts": reply.ts})
    await ops.idle()
    request = [m for m in fake_slack.messages("#alerts-critical") if m.thread_ts == root.ts][-1]
    assert "silence" in request.text.lower() and buttons(request)
    await send_block_action(http, ops.url, signing_secret, [{"action_id": "ops-approve",
                                                             "value": buttons(request)["ops-approve"]}],
                            user=ALICE, channel=root.channel, message={"type": "message", "ts": request.ts})
    await ops.idle()

    (silence,) = [s for s in await asyncio.to_thread(_silences, alertmanager.url) if s["status"]["state"] == "active"]
    assert {(m["name"], m["value"]) for m in silence["matchers"]} == set(webhook_body()["alerts"][0]["labels"].items())
    from datetime import datetime

    lasts = datetime.fromisoformat(silence["endsAt"].replace("Z", "+00:00")) - datetime.fromisoformat(
        silence["startsAt"].replace("Z", "+00:00"))
    assert abs(lasts.total_seconds() - 4 * 3600) < 5


async def test_an_offer_is_honoured_only_in_its_own_thread(alert_thread, http, fake_slack, signing_secret):
    ops, root, reply = alert_thread
    scale_up = offer(reply, "ops-offer-scale-up")
    before = len(fake_slack.messages("#alerts-critical"))

    await send_block_action(http, ops.url, signing_secret, [{"action_id": scale_up["action_id"],
                                                             "value": scale_up["value"]}],
                            user=CAROL, channel="C0OPS", message={"type": "message", "ts": "1732500000.000100"},
                            response_url=fake_slack.response_url())
    await ops.idle()

    assert len(fake_slack.messages("#alerts-critical")) == before
    assert "another channel" in ops.ephemerals_to(CAROL)[0]


async def test_an_offer_whose_replicas_cannot_be_read_is_answered_in_time(
        start_bot, bot_env, kube, policy_yaml, alertmanager, http, fake_slack, signing_secret, monkeypatch):
    from operations.model import OperationError
    from tests.integration.test_approval_failures import FAST, eventually

    async def down(self, namespace, deployment):
        raise OperationError("Kubernetes: cannot read Deployment prod/checkout (ClientConnectorError)",
                             temporary=True)

    monkeypatch.setattr("bot.actions.backends.Backends.current_replicas", down)
    ops, root, reply = await open_alert_thread(start_bot, bot_env, kube, policy_yaml, alertmanager, http,
                                               fake_slack, signing_secret,
                                               FAST.replace("{", "{give_up_after_minutes: 0.05, "))
    scale_up = offer(reply, "ops-offer-scale-up")
    await send_block_action(http, ops.url, signing_secret, [{"action_id": scale_up["action_id"],
                                                             "value": scale_up["value"]}],
                            user=CAROL, channel=root.channel, message={"type": "message", "ts": reply.ts},
                            response_url=fake_slack.response_url())
    await eventually(lambda: bool(ops.ephemerals_to(CAROL)))
    await ops.idle()

    assert "cannot read" in ops.ephemerals_to(CAROL)[0] and "tried for" in ops.ephemerals_to(CAROL)[0]
    assert not await ops.bot.runtime.store.read_log("work-failed")


async def test_a_groups_offers_change_one_deployment_only_and_its_silence_matches_what_its_alerts_share(
    start_bot, bot_env, kube, policy_yaml, alertmanager, http, fake_slack, signing_secret
):
    from tests.integration.test_alert_threads import TOKEN, webhook_body

    for name in ("checkout", "payments"):
        kube.seed_deployment(name, "prod", replicas=3)
    bot = await start_bot({**bot_env, "KUBECONFIG": kube.kubeconfig_path, "ALERTMANAGER_URL": alertmanager.url,
                           "ALERTMANAGER_WEBHOOK_TOKEN": TOKEN, "CHATOPS_CONFIG": policy_yaml(ALERT_POLICY)})
    ops = Ops(bot, http, fake_slack, signing_secret)
    body = webhook_body()  # one group (by alertname), two Deployments
    first = body["alerts"][0]
    body["alerts"] = [{**first, "fingerprint": f"{i:016x}", "labels": {**first["labels"], "deployment": name}}
                      for i, name in enumerate(("checkout", "payments"))]
    async with http.post(f"http://127.0.0.1:{bot.port}/alertmanager", json=body,
                         headers={"Authorization": f"Bearer {TOKEN}"}) as response:
        assert response.status == 200
    await asyncio.wait_for(bot.threads.drain(), 15)
    (root,) = [m for m in fake_slack.messages("#alerts-critical") if m.thread_ts is None]
    (reply,) = [m for m in fake_slack.messages("#alerts-critical") if m.thread_ts == root.ts]

    scale_up = offer(reply, "ops-offer-scale-up")
    await send_block_action(http, ops.url, signing_secret, [{"action_id": scale_up["action_id"],
                                                             "value": scale_up["value"]}],
                            user=CAROL, channel=root.channel, message={"type": "message", "ts": reply.ts},
                            response_url=fake_slack.response_url())
    await ops.idle()
    assert "2 Deployments (prod/checkout, prod/payments)" in ops.ephemerals_to(CAROL)[0]
    assert len([m for m in fake_slack.messages("#alerts-critical") if m.thread_ts == root.ts]) == 1
    assert kube.writes == [] and kube.dry_runs == []

    select = offer(reply, "ops-offer-silence")
    one_hour = next(o for o in select["options"] if o["text"]["text"] == "Silence 1 h")
    await send_block_action(http, ops.url, signing_secret,
                            [{"type": "static_select", "action_id": select["action_id"], "selected_option": one_hour}],
                            user=ALICE, channel=root.channel, message={"type": "message", "ts": reply.ts})
    await ops.idle()
    request = [m for m in fake_slack.messages("#alerts-critical") if m.thread_ts == root.ts][-1]
    await send_block_action(http, ops.url, signing_secret, [{"action_id": "ops-approve",
                                                             "value": buttons(request)["ops-approve"]}],
                            user=ALICE, channel=root.channel, message={"type": "message", "ts": request.ts})
    await ops.idle()
    (silence,) = [s for s in await asyncio.to_thread(_silences, alertmanager.url) if s["status"]["state"] == "active"]
    assert {(m["name"], m["value"]) for m in silence["matchers"]} == set(first["labels"].items())  # not deployment
