"""The approval message in each state, the mutating commands' arguments, and the offers' arithmetic."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timezone

import pytest

from bot.actions.commands import COMMANDS, Requester, spec_for
from bot.actions.render import approval_message
from bot.actions.request import CANCELLED, DONE, EXPIRED, PENDING, ActionRequest
from bot.alerting.offers import offer_blocks, read_click, scaled_up
from bot.all_sections import Sections
from bot.commands.table import build_table
from bot.errors import UsageError
from operations.model import Change, Outcome, Preview, Scale, Silence

TABLE = build_table(Sections())


def request(status: str = PENDING, **changes) -> ActionRequest:
    base = ActionRequest.new("r0123456789abcdef", Scale("prod", "checkout", 8), namespace="prod",
                             requester="U0ALICE001", requester_name="alice", channel="C0OPS", thread_ts="", now=1e9)
    preview = Preview(target="Deployment prod/checkout", changes=(Change("replicas", "3", "8"),),
                      warnings=("HorizontalPodAutoscaler checkout <manages> this Deployment",))
    return dataclasses.replace(base, **{"status": status, "preview": preview.to_json(), "expires_at": 1e9 + 600,
                                        **changes})


def elements(message) -> list[dict]:
    return [e for b in message.blocks if b["type"] == "actions" for e in b["elements"]]


def test_a_pending_request_shows_before_and_after_who_may_approve_and_its_buttons_carry_only_its_id():
    message = approval_message(request(), "leads, oncall", two_person=True)
    text = json.dumps(message.blocks, ensure_ascii=False)

    assert "replicas 3 → 8" in text and "Deployment prod/checkout" in text
    assert "may approve: leads, oncall (not the requester)" in text and "<@U0ALICE001>" in text
    assert "&lt;manages&gt;" in text and "<manages>" not in text  # backend text escaped
    assert [(e["action_id"], e["value"]) for e in elements(message)] == [
        ("ops-approve", "r0123456789abcdef"), ("ops-cancel", "r0123456789abcdef")]
    assert elements(message)[0]["style"] == "primary" and "confirm" in elements(message)[0]


def test_each_edit_gets_a_new_block_id():
    first = approval_message(request(version=1), "leads", True)
    second = approval_message(request(version=2), "leads", True)
    assert [b.get("block_id") for b in first.blocks if b["type"] == "actions"] != \
        [b.get("block_id") for b in second.blocks if b["type"] == "actions"]


def test_a_done_request_says_who_approved_how_long_it_took_and_offers_revert():
    outcome = Outcome(changes=(Change("replicas", "3", "8"),))
    message = approval_message(request(DONE, approver="U0BOB00001", elapsed=0.42, outcome=outcome.to_json()),
                               "leads", True)
    text = json.dumps(message.blocks, ensure_ascii=False)

    assert "approved by <@U0BOB00001> · applied in 0.4 s · replicas 3 → 8" in text
    assert [e["action_id"] for e in elements(message)] == ["ops-revert"]


@pytest.mark.parametrize(("status", "words"), [(CANCELLED, "cancelled by"), (EXPIRED, "expired at")])
def test_an_ended_request_has_no_buttons_and_says_nothing_changed(status, words):
    message = approval_message(request(status, approver="U0BOB00001"), "leads", True)
    text = json.dumps(message.blocks, ensure_ascii=False)
    assert words in text and "nothing changed" in text and not elements(message)


def test_a_long_warning_is_cut_to_slacks_section_limit():
    long = request(preview=Preview("Deployment prod/checkout", (Change("replicas", "3", "8"),),
                                   warnings=("x" * 5000,)).to_json())
    message = approval_message(long, "leads", True)
    assert all(len(b["text"]["text"]) <= 3000 for b in message.blocks if b["type"] == "section")


@pytest.mark.parametrize(("text", "error"), [
    ("scale checkout -1 -n prod", "between 0 and 1000"),
    ("scale checkout 1000000 -n prod", "between 0 and 1000"),
    ("limits checkout --memory 0 -n prod", "more than 0"),
    ("limits checkout --memory lots -n prod", "lots"),
    ("limits checkout -n prod", "--memory and/or --cpu"),
    ("silence HighErrorRate --for 0s", "more than 0"),
    ("silence HighErrorRate service=~check --for 1h", "not a label matcher"),
    ("unsilence ../status", "not a silence ID"),
    ("breaker maybe", "on` or `off"),
])
def test_bad_arguments_are_refused_before_anything_is_requested(text, error):
    with pytest.raises(UsageError) as raised:
        invocation = TABLE.parse(text, "prod")
        spec_for(invocation.command.name, invocation.args, Requester("U0ALICE001", "alice"), "r1", 0.0,
                 ("claude-deployment-config", "circuit-breaker-enabled"))
    assert error in raised.value.message


def test_a_silence_names_the_requester_and_every_matcher():
    invocation = TABLE.parse('silence HighErrorRate service=checkout --for 4h --comment "deploy fix"', "prod")
    spec = spec_for(invocation.command.name, invocation.args, Requester("U0ALICE001", "alice"), "r1", 0.0,
                    ("cm", "key"))
    assert spec == Silence(matchers=(("alertname", "HighErrorRate"), ("service", "checkout")), seconds=14400.0,
                           created_by="alice", comment="deploy fix", request="r1")


def test_every_mutating_command_is_marked_so():
    assert all(command.mutating for command in COMMANDS)


@pytest.mark.parametrize(("current", "maximum", "wanted"), [(3, None, 5), (1, None, 2), (0, None, 1), (3, 4, 4),
                                                            (8, 8, 8), (10, 8, 10)])
def test_scale_up_adds_half_at_least_one_within_the_maximum(current, maximum, wanted):
    assert scaled_up(current, maximum) == wanted


def test_an_offer_click_is_read_from_its_action_id_and_value_only():
    (block,) = offer_blocks("thread:webhook:abc", ["scale-up", "unknown-action"])
    scale, silence = block["elements"]
    assert read_click({**scale, "action_ts": "1"}) == ("scale-up", "thread:webhook:abc", 0.0)
    option = silence["options"][1]
    assert read_click({"action_id": silence["action_id"], "selected_option": option}) == (
        "silence", "thread:webhook:abc", 14400.0)
    assert read_click({"action_id": "ops-offer-silence", "selected_option": {"value": "thread:x|99y"}}) is None
    assert read_click({"action_id": "ops-offer-drop-database", "value": "thread:x"}) is None


def test_the_confirm_dialog_says_not_set_rather_than_none():
    silence = Silence(matchers=(("alertname", "X"),), seconds=3600, created_by="alice", comment="c", request="r1")
    base = ActionRequest.new("r1", silence, namespace="", requester="U0ALICE001", requester_name="alice",
                             channel="C0OPS", thread_ts="", now=0.0)
    preview = Preview(target="silence", changes=(Change("silence", None, "alertname=X for 1 h"),))
    message = approval_message(dataclasses.replace(base, status=PENDING, preview=preview.to_json(), expires_at=600.0),
                               "oncall", False)
    (confirm,) = [e["confirm"] for e in elements(message) if "confirm" in e]
    assert confirm["text"]["text"] == "silence (not set) → alertname=X for 1 h"


async def test_an_offer_for_an_alert_whose_labels_name_no_valid_deployment_is_refused(tmp_path):
    from bot.actions.config import ActionsConfig
    from bot.alerting.model import Alert
    from bot.alerting.offers import Offers
    from bot.alerting.playbooks import Playbooks
    from bot.alerting.state import AlertThread, Notice, change_thread
    from bot.state.store import open_store

    alert = Alert(fingerprint="fp", status="firing", starts_at=datetime(2026, 11, 30, 3, 0, tzinfo=timezone.utc),
                  labels={"alertname": "APIServerDown", "deployment": "--previous", "namespace": "prod"})
    asked: list[tuple[str, str]] = []

    async def replicas(namespace: str, deployment: str) -> int:
        asked.append((namespace, deployment))
        return 3

    store = open_store(f"sqlite:///{tmp_path}/state.db")
    try:
        opened = AlertThread.open_notice(Notice.of_alert(alert), "webhook", "C0ALERTS01", "1.000100", 0.0)
        await change_thread(store, "thread:webhook:fp", lambda _: opened)
        offers = Offers(store, Playbooks(), ActionsConfig(), replicas, lambda: 20)
        with pytest.raises(UsageError) as refused:
            await offers.spec("scale-up", "thread:webhook:fp", 0.0, Requester("U0ALICE001", "alice"), "r1",
                              "C0ALERTS01")
    finally:
        await store.close()
    assert "the alert's deployment is not usable" in refused.value.message and asked == []
