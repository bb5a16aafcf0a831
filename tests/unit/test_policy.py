"""chatops.yaml `policy:` (issue 9): loading, with one line for every mistake, and the decisions it
makes: who may request and approve which action where, by user ID or Slack user group, the
two-person rule, and the maximums."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.actions.policy import ACTIONS, Authorizer, Decision, Policy, Rule, load
from bot.all_sections import load_sections
from bot.errors import ConfigError, TemporaryError
from bot.settings import Settings

ALICE, BOB, CAROL, DAVE, ERIN = "U0ALICE001", "U0BOB00001", "U0CAROL001", "U0DAVE0001", "W0ERIN0001"
ONCALL_GROUP, SRE_GROUP = "S0ONCALL01", "S0SRE00001"

ISSUE_EXAMPLE = """
groups:
  oncall: [U0ALICE001, U0CAROL001, S0ONCALL01]
  leads:  [U0BOB00001]
approval_minutes: 10
two_person: true
actions:
  scale:   {request: [oncall, leads], approve: [leads, oncall], namespaces: [claude-deployment-prod], max_replicas: 20}
  restart: {request: [oncall], approve: [leads]}
  limits:  {request: [oncall], approve: [leads], max_memory: 8Gi, max_cpu: "4"}
  breaker: {request: [oncall], approve: [oncall, leads]}
  silence: {request: [oncall], approve: [oncall], two_person: false, max_duration: 24h}
"""


def example(**changes: Any) -> dict[str, Any]:
    raw = yaml.safe_load(ISSUE_EXAMPLE)
    raw.update(changes)
    return raw


def with_rule(action: str, **rule: Any) -> dict[str, Any]:
    raw = example()
    raw["actions"][action] = {**raw["actions"][action], **rule}
    return raw


def error_of(raw: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        load(raw, "chatops.yaml")
    message = str(caught.value)
    assert "\n" not in message
    return message


class Members:
    """A fake `members` callable: Slack user groups and the lookups made."""

    def __init__(self, groups: dict[str, set[str]] | None = None, failing: dict[str, Exception] | None = None):
        self.groups = groups if groups is not None else {ONCALL_GROUP: {DAVE}, SRE_GROUP: {ERIN}}
        self.failing = failing or {}
        self.asked: list[str] = []

    async def __call__(self, group_id: str) -> frozenset[str]:
        self.asked.append(group_id)
        if group_id in self.failing:
            raise self.failing[group_id]
        return frozenset(self.groups[group_id])


def authorizer(raw: Any = None, members: Members | None = None) -> Authorizer:
    return Authorizer(load(example() if raw is None else raw, "chatops.yaml"), members or Members())


# --------------------------------------------------------------------------- loading


def test_the_issues_example_loads_into_rules():
    policy = load(example(), "chatops.yaml")

    assert policy is not None and isinstance(policy, Policy)
    assert dict(policy.groups) == {"oncall": (ALICE, CAROL, ONCALL_GROUP), "leads": (BOB,)}
    assert set(policy.actions) == set(ACTIONS) - {"ack"}  # the issue's example predates acknowledgements
    assert policy.actions["scale"] == Rule(request=("oncall", "leads"), approve=("leads", "oncall"),
                                           namespaces=("claude-deployment-prod",), max_replicas=20)
    assert policy.actions["limits"].max_memory == "8Gi" and policy.actions["limits"].max_cpu == "4"
    assert policy.actions["silence"].two_person is False and policy.actions["silence"].max_duration == 86400.0
    assert policy.actions["restart"].namespaces is None and policy.actions["restart"].two_person is None
    assert (policy.approval_minutes, policy.two_person, policy.impersonate) == (10.0, True, False)


def test_no_policy_section_is_none_and_load_sections_reads_it():
    assert load(None, "chatops.yaml") is None
    assert load_sections(Settings(sections={})).policy is None
    assert load_sections(Settings(sections={"policy": example()})).policy == load(example(), "chatops.yaml")


def test_fractional_minutes_numeric_cpu_and_user_ids_of_both_kinds_are_accepted():
    raw = example(approval_minutes=0.5, impersonate=True, two_person=False)
    raw["groups"]["leads"] = [BOB, ERIN, SRE_GROUP]
    raw["actions"]["limits"]["max_cpu"] = 4
    raw["actions"]["limits"]["max_memory"] = "8192Mi"

    policy = load(raw, "chatops.yaml")

    assert policy is not None and policy.approval_minutes == 0.5 and policy.impersonate and not policy.two_person
    assert policy.groups["leads"] == (BOB, ERIN, SRE_GROUP)
    assert (policy.actions["limits"].max_cpu, policy.actions["limits"].max_memory) == ("4", "8192Mi")


def test_a_policy_may_leave_actions_out():
    policy = load({"groups": {"oncall": [ALICE]}, "actions": {"silence": {"request": ["oncall"],
                                                                          "approve": ["oncall"]}}}, "chatops.yaml")
    assert policy is not None and list(policy.actions) == ["silence"]


@pytest.mark.parametrize("raw, message", [
    (with_rule("scale", max_replica=3), "policy.actions.scale.max_replica: unknown key (did you mean max_replicas?)"),
    (example(two_persons=False), "policy.two_persons: unknown key (did you mean two_person?)"),
    (example(actions={"scael": {"request": ["oncall"], "approve": ["leads"]}}),
     "policy.actions.scael: unknown key (did you mean scale?)"),
    (example(actions={"deploy": {"request": ["oncall"], "approve": ["leads"]}}),
     "policy.actions.deploy: unknown key (known: scale, restart, limits, breaker, silence, ack)"),
    (example(actions={"unsilence": {"request": ["oncall"], "approve": ["leads"]}}),
     "policy.actions.unsilence: unsilence is decided by the rule of silence: set that one"),
    (with_rule("scale", approve=["leads", "leeds"]),
     "policy.actions.scale.approve[1]: unknown group 'leeds' (did you mean leads?)"),
    (with_rule("restart", request=["sre"]),
     "policy.actions.restart.request[0]: unknown group 'sre' (policy.groups defines oncall, leads)"),
    ({"groups": {}, "actions": {"restart": {"request": ["sre"], "approve": ["sre"]}}},
     "policy.actions.restart.request[0]: unknown group 'sre' (policy.groups defines none)"),
    (example(groups={"oncall": [ALICE, "alice"]}),
     "policy.groups.oncall[1]: must be a Slack user ID (U… or W…) or a Slack user-group ID (S…), not 'alice'"),
    (example(groups={"oncall": ["C0OPS00001"]}),
     "policy.groups.oncall[0]: must be a Slack user ID (U… or W…) or a Slack user-group ID (S…), not 'C0OPS00001'"),
    (example(groups={"oncall": "U0ALICE001"}), "policy.groups.oncall: must be a list, not 'U0ALICE001'"),
    (with_rule("restart", namespaces=["shop", "kube-system"]),
     "policy.actions.restart.namespaces[1]: kube-system is never a target of a change: remove it"),
    (with_rule("restart", namespaces=["Shop"]),
     "policy.actions.restart.namespaces[0]: `Shop` is not a valid namespace: lowercase letters, digits and '-', "
     "at most 63"),
    (with_rule("restart", namespaces=[]), "policy.actions.restart.namespaces: must be a non-empty list, not []"),
    (example(approval_minutes=0), "policy.approval_minutes: must be a number more than 0, not 0"),
    (example(approval_minutes=-1.5), "policy.approval_minutes: must be a number more than 0, not -1.5"),
    (example(approval_minutes="10m"), "policy.approval_minutes: must be a number more than 0, not '10m'"),
    (example(two_person="yes"), "policy.two_person: must be true or false, not 'yes'"),
    (example(impersonate=1), "policy.impersonate: must be true or false, not 1"),
    (with_rule("silence", two_person="no"), "policy.actions.silence.two_person: must be true or false, not 'no'"),
    (with_rule("limits", max_memory="8GB"),
     "policy.actions.limits.max_memory: must be a Kubernetes quantity more than 0, such as 8Gi, 4 or 500m, not '8GB'"),
    (with_rule("limits", max_memory="0"),
     "policy.actions.limits.max_memory: must be a Kubernetes quantity more than 0, such as 8Gi, 4 or 500m, not '0'"),
    (with_rule("limits", max_cpu="four"),
     "policy.actions.limits.max_cpu: must be a Kubernetes quantity more than 0, such as 8Gi, 4 or 500m, not 'four'"),
    (with_rule("limits", max_cpu=True),
     "policy.actions.limits.max_cpu: must be a Kubernetes quantity more than 0, such as 8Gi, 4 or 500m, not True"),
    (with_rule("silence", max_duration="a day"),
     "policy.actions.silence.max_duration: `a day` is not a duration for max_duration: use e.g. 30s, 10m, 1h, 2d"),
    (with_rule("silence", max_duration="0h"),
     "policy.actions.silence.max_duration: max_duration `0h` must be more than 0 and at most 30d"),
    (with_rule("silence", max_duration=3600),
     "policy.actions.silence.max_duration: must be a duration such as 30m, 4h or 1d, not 3600"),
    (with_rule("scale", max_replicas=0),
     "policy.actions.scale.max_replicas: must be a whole number of at least 1, not 0"),
    (with_rule("scale", max_replicas=2.5),
     "policy.actions.scale.max_replicas: must be a whole number of at least 1, not 2.5"),
    (example(actions={"scale": {"approve": ["leads"]}}), "policy.actions.scale.request: missing (required)"),
    (example(actions={"scale": {"request": ["leads"]}}), "policy.actions.scale.approve: missing (required)"),
    (with_rule("scale", request=[]), "policy.actions.scale.request: must be a non-empty list, not []"),
    ({"actions": {}}, "policy.groups: missing (required)"),
    ({}, "policy.groups: missing (required)"),
    (example(actions=["scale"]), "policy.actions: must be a mapping of action names to values, not ['scale']"),
])  # fmt: skip
def test_every_mistake_is_one_line_naming_the_key(raw, message):
    assert error_of(raw) == f"chatops.yaml: {message}"


def test_the_file_is_named_as_given():
    with pytest.raises(ConfigError, match=r"^conf/ops.yaml: policy.approval_minutes: must be"):
        load(example(approval_minutes=0), "conf/ops.yaml")


# --------------------------------------------------------------------------- requesting


async def test_a_user_in_a_request_group_by_id_may_request_without_asking_slack():
    members = Members()
    auth = authorizer(members=members)

    assert await auth.may_request(ALICE, "restart", "shop") == Decision(True)
    assert await auth.may_request(BOB, "scale", "claude-deployment-prod") == Decision(True)
    assert members.asked == []


async def test_a_user_in_a_slack_user_group_of_a_request_group_may_request():
    members = Members()

    assert await authorizer(members=members).may_request(DAVE, "breaker", "shop") == Decision(True)
    assert members.asked == [ONCALL_GROUP]


async def test_someone_in_no_request_group_is_refused_with_the_group_names_only():
    decision = await authorizer().may_request(ERIN, "scale", "claude-deployment-prod")
    assert decision == Decision(False, "you are not in oncall or leads, who may request scale")

    decision = await authorizer().may_request(BOB, "restart", "shop")
    assert decision == Decision(False, "you are not in oncall, who may request restart")


async def test_reasons_name_three_groups_and_never_their_members():
    raw = example(groups={"a": [ALICE], "b": [BOB], "c": [ONCALL_GROUP]})
    raw["actions"] = {"restart": {"request": ["a", "b", "c"], "approve": ["a"]}}

    decision = await authorizer(raw).may_request(CAROL, "restart", "shop")

    assert decision == Decision(False, "you are not in a, b or c, who may request restart")
    assert not any(member in decision.reason for member in (ALICE, BOB, ONCALL_GROUP, DAVE))


# --------------------------------------------------------------------------- namespaces


async def test_a_rule_with_namespaces_allows_only_those():
    auth = authorizer()

    assert await auth.may_request(ALICE, "scale", "claude-deployment-prod") == Decision(True)
    assert await auth.may_request(ALICE, "scale", "shop") == Decision(
        False, "the policy allows scale only in claude-deployment-prod, not in shop")
    assert await auth.may_approve(BOB, "scale", "shop", ALICE) == Decision(
        False, "the policy allows scale only in claude-deployment-prod, not in shop")


async def test_a_rule_without_namespaces_allows_any_but_kube_system_which_is_never_a_target():
    auth = authorizer()
    never = Decision(False, "kube-system is never a target: the bot changes nothing there")

    assert await auth.may_request(ALICE, "restart", "anything-else") == Decision(True)
    assert await auth.may_request(ALICE, "restart", "kube-system") == never
    assert await auth.may_request(ALICE, "scale", "kube-system") == never
    assert await auth.may_approve(BOB, "restart", "kube-system", ALICE) == never


async def test_an_action_on_no_namespace_is_decided_by_groups_alone():
    assert await authorizer().may_request(ALICE, "silence", None) == Decision(True)
    assert await authorizer().may_request(ALICE, "scale", None) == Decision(True)


# --------------------------------------------------------------------------- approving


async def test_approvers_come_from_the_approve_groups():
    auth = authorizer()

    assert await auth.may_approve(BOB, "restart", "shop", ALICE) == Decision(True)
    assert await auth.may_approve(CAROL, "restart", "shop", ALICE) == Decision(
        False, "you are not in leads, who may approve restart")
    assert await auth.may_approve(DAVE, "breaker", "shop", ALICE) == Decision(True)  # via S0ONCALL01
    assert auth.approvers("scale") == "leads, oncall" and auth.approvers("restart") == "leads"
    assert auth.approvers("unsilence") == "oncall" and auth.approvers("ack") == "nobody"


async def test_two_person_rule_refuses_the_requester_by_default():
    members = Members()
    auth = authorizer(members=members)

    decision = await auth.may_approve(ALICE, "scale", "claude-deployment-prod", ALICE)

    assert decision == Decision(False, "you requested this scale yourself: someone else in leads or oncall must "
                                       "approve it (two-person rule)")
    assert await auth.may_approve(CAROL, "scale", "claude-deployment-prod", ALICE) == Decision(True)
    assert members.asked == [] and auth.two_person("scale")


async def test_a_rule_may_turn_the_two_person_rule_off_and_unsilence_follows_silence():
    auth = authorizer()

    assert not auth.two_person("silence") and not auth.two_person("unsilence")
    assert await auth.may_approve(ALICE, "silence", None, ALICE) == Decision(True)
    assert await auth.may_approve(ALICE, "unsilence", None, ALICE) == Decision(True)
    assert await auth.may_approve(DAVE, "silence", None, DAVE) == Decision(True)  # via the user group


async def test_the_policy_default_applies_where_a_rule_says_nothing_and_a_rule_overrides_it():
    raw = example(two_person=False)
    raw["actions"]["restart"]["two_person"] = True
    auth = authorizer(raw)

    assert await auth.may_approve(ALICE, "breaker", "shop", ALICE) == Decision(True)
    assert not (await auth.may_approve(BOB, "restart", "shop", BOB)).allowed
    assert await auth.may_approve(BOB, "restart", "shop", ALICE) == Decision(True)


# --------------------------------------------------------------------------- no rule, no policy


async def test_an_action_without_a_rule_is_refused_for_everyone():
    raw = example()
    del raw["actions"]["restart"]
    auth = authorizer(raw)
    no_rule = Decision(False, "no rule in the policy allows restart: chatops.yaml has no policy.actions.restart")

    assert await auth.may_request(ALICE, "restart", "shop") == no_rule
    assert await auth.may_approve(BOB, "restart", "shop", ALICE) == no_rule
    assert (await auth.may_request(ALICE, "ack", None)).reason == (
        "no rule in the policy allows ack: chatops.yaml has no policy.actions.ack")
    assert auth.over_limit("restart", replicas=1000) is None


async def test_without_a_policy_every_action_is_refused_saying_how_to_turn_them_on():
    members = Members()
    auth = Authorizer(None, members)

    assert not auth.enabled and not auth.impersonate and auth.approval_seconds == 600
    reason = auth.disabled_reason()
    assert "policy:" in reason and "chatops.yaml" in reason and "\n" not in reason
    for action in ACTIONS:
        assert await auth.may_request(ALICE, action, "shop") == Decision(False, reason)
        assert await auth.may_approve(BOB, action, "shop", ALICE) == Decision(False, reason)
    assert auth.approvers("scale") == "nobody" and members.asked == []


def test_the_authorizer_exposes_the_policys_settings():
    auth = authorizer(example(approval_minutes=2.5, impersonate=True))

    assert auth.enabled and auth.impersonate and auth.approval_seconds == 150.0


# --------------------------------------------------------------------------- Slack user groups failing


async def test_a_user_group_slack_cannot_list_is_a_refusal_saying_so():
    members = Members(failing={ONCALL_GROUP: TemporaryError("Slack answered no_such_subteam")})

    decision = await authorizer(members=members).may_request(DAVE, "restart", "shop")

    assert decision == Decision(False, "could not check Slack user group S0ONCALL01: Slack answered no_such_subteam")


async def test_any_exception_from_members_becomes_a_one_line_refusal():
    members = Members(failing={ONCALL_GROUP: ConnectionRefusedError("[Errno 111] refused\nmore")})

    decision = await authorizer(members=members).may_request(DAVE, "restart", "shop")

    assert decision == Decision(
        False, "could not check Slack user group S0ONCALL01: ConnectionRefusedError: [Errno 111] refused")


async def test_a_failing_group_does_not_matter_when_the_user_is_found_otherwise():
    raw = example()
    raw["groups"]["oncall"] = [ALICE, ONCALL_GROUP, SRE_GROUP]
    members = Members(failing={ONCALL_GROUP: TemporaryError("Slack answered ratelimited")})
    auth = authorizer(raw, members)

    assert await auth.may_request(ALICE, "restart", "shop") == Decision(True)  # by ID: no lookup
    assert await auth.may_request(ERIN, "restart", "shop") == Decision(True)  # in the other group
    assert members.asked == [ONCALL_GROUP, SRE_GROUP]


async def test_a_user_group_named_by_two_groups_is_asked_once_per_decision():
    raw = example()
    raw["groups"]["leads"] = [BOB, ONCALL_GROUP]
    members = Members()

    assert not (await authorizer(raw, members).may_request("U0NOBODY01", "scale", "claude-deployment-prod")).allowed
    assert members.asked == [ONCALL_GROUP]


# --------------------------------------------------------------------------- maximums


def test_over_limit_replicas():
    auth = authorizer()

    assert auth.over_limit("scale", replicas=20) is None
    assert auth.over_limit("scale", replicas=21) == "21 replicas is more than the policy allows for scale (at most 20)"
    assert auth.over_limit("restart", replicas=1000) is None  # no maximum in that rule


@pytest.mark.parametrize("memory, cpu, line", [
    ("8Gi", "4", None),
    ("8192Mi", "4000m", None),
    ("6Gi", "500m", None),
    ("9Gi", None, "memory 9Gi is more than the policy allows for limits (at most 8Gi)"),
    ("8.5Gi", None, "memory 8.5Gi is more than the policy allows for limits (at most 8Gi)"),
    ("9G", None, "memory 9G is more than the policy allows for limits (at most 8Gi)"),
    (None, "4001m", "cpu 4001m is more than the policy allows for limits (at most 4)"),
    (None, "5", "cpu 5 is more than the policy allows for limits (at most 4)"),
    ("lots", None, "`lots` is not a memory quantity: use e.g. 6Gi, 2 or 500m"),
])  # fmt: skip
def test_over_limit_memory_and_cpu(memory, cpu, line):
    assert authorizer().over_limit("limits", memory=memory, cpu=cpu) == line


def test_over_limit_duration_and_unsilence_has_none():
    auth = authorizer()

    assert auth.over_limit("silence", seconds=86400) is None
    assert auth.over_limit("silence", seconds=3600.0) is None
    assert auth.over_limit("silence", seconds=90000) == "25h is longer than the policy allows for silence (at most 1d)"
    assert auth.over_limit("scale", seconds=10**9) is None
    assert Authorizer(None, Members()).over_limit("scale", replicas=10**6) is None


def test_the_readme_example_loads():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme.split("```yaml\npresets:", 1)[1].split("```", 1)[0]
    policy = load(yaml.safe_load("presets:" + block)["policy"], "README.md")
    assert policy is not None and set(policy.actions) == set(ACTIONS)


async def test_anyone_may_acknowledge_unless_the_policy_names_who_may():
    assert (await authorizer().may_ack("U0NOBODY01")).allowed
    assert (await Authorizer(None, Members()).may_ack("U0NOBODY01")).allowed  # no policy at all
    narrowed = authorizer(example(actions={"ack": {"request": ["leads", "oncall"]}}))  # no approve: none needed
    assert (await narrowed.may_ack("U0BOB00001")).allowed
    assert (await narrowed.may_ack(DAVE)).allowed  # through the oncall Slack user group
    refused = await narrowed.may_ack("U0NOBODY01")
    assert not refused.allowed and refused.reason == "you are not in leads or oncall, who may acknowledge alerts"
