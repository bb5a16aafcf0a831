"""chatops.yaml `policy:`, and the decisions it makes: may this user request, or approve, this action here.

    policy:
      groups:                     # names for sets of Slack user IDs (U…, W…) and Slack user-group IDs (S…)
        oncall: [U0ALICE001, S0ONCALL01]
        leads:  [U0BOB00001]
      approval_minutes: 10        # how long a request can be approved (fractional allowed)
      two_person: true            # default for every action: the approver is not the requester
      impersonate: false          # writes carry Impersonate-User: slack:<approver's user ID>
      actions:                    # scale, restart, limits, breaker, silence (unsilence: silence's rule)
        scale:   {request: [oncall], approve: [leads], namespaces: [claude-deployment-prod], max_replicas: 20}
        limits:  {request: [oncall], approve: [leads], max_memory: 8Gi, max_cpu: "4"}
        silence: {request: [oncall], approve: [oncall], two_person: false, max_duration: 24h}

No `policy:` section: every mutating command is refused (Authorizer.disabled_reason says how to
turn them on). An action without a rule is refused for everyone. A rule without `namespaces`
allows every namespace but kube-system, which is never a target: listing it stops the bot at
start, as do unknown keys, unknown actions and group names no group defines.

The Authorizer asks Slack who is in a user group through an injected `members(S…)` callable
(bot.slack.usergroups.UserGroups in the running bot); a lookup that fails becomes a refusal
that says so, never an exception. Reasons name groups, never their members.
"""

from __future__ import annotations

import difflib
import logging
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any, Awaitable, Callable, Iterable, Mapping

from bot.commands.args import duration, k8s_namespace
from bot.commands.report import describe_exception
from bot.errors import ChatOpsError, ConfigError
from bot.sections import (
    DEFAULT_FILE,
    Where,
    argument,
    entry,
    key,
    list_of,
    mapping_of,
    optional,
    positive,
    read,
    text,
    unknown_key,
    whole,
)
from diagnostics.durations import compact_duration

log = logging.getLogger(__name__)

# The policy's rule names, one per mitigation, and `ack` (who may acknowledge alerts: only `request`).
ACTIONS = ("scale", "restart", "limits", "breaker", "silence", "ack")
ACK = "ack"
# Actions decided by another action's rule.
SHARED_RULES: Mapping[str, str] = MappingProxyType({"unsilence": "silence"})
NEVER_TARGET = "kube-system"
DEFAULT_APPROVAL_MINUTES = 10.0

_USER = re.compile(r"^[UW][A-Z0-9]{2,}$")  # a Slack user ID (W…: Enterprise Grid)
_USER_GROUP = re.compile(r"^S[A-Z0-9]{2,}$")  # a Slack user-group ID

Members = Callable[[str], Awaitable[frozenset[str]]]


# --------------------------------------------------------------------------- chatops.yaml


def _member(value: Any, where: Where) -> str:
    if not isinstance(value, str) or not (_USER.match(value) or _USER_GROUP.match(value)):
        raise where.wrong("must be a Slack user ID (U… or W…) or a Slack user-group ID (S…)", value)
    return value


def _flag(value: Any, where: Where) -> bool:
    if not isinstance(value, bool):
        raise where.wrong("must be true or false", value)
    return value


def _namespace(value: Any, where: Where) -> str:
    name = argument(k8s_namespace)(value, where)
    if name == NEVER_TARGET:
        raise where.error(f"{NEVER_TARGET} is never a target of a change: remove it")
    return name


# TODO(merge): use operations.quantity
_QUANTITY = re.compile(r"^([+-]?(?:\d+(?:\.\d*)?|\.\d+))(?:[eE]([+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]))?$")
_SCALE = {**{s: Decimal(10) ** e for s, e in zip("numkMGTPE", (-9, -6, -3, 3, 6, 9, 12, 15, 18), strict=True)},
          **{s + "i": Decimal(2) ** (10 * i) for i, s in enumerate("KMGTPE", 1)}}


def _quantity(word: str) -> Decimal | None:
    """A Kubernetes quantity ("6Gi", "500m", "4", "1e3") as a number; None if it is not one."""
    found = _QUANTITY.match(word.strip())
    if found is None:
        return None
    number, exponent, suffix = found.groups()
    try:
        return Decimal(number).scaleb(int(exponent or 0)) * _SCALE.get(suffix or "", Decimal(1))
    except InvalidOperation:
        return None


def _most_quantity(value: Any, where: Where) -> str:
    word = str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value
    amount = _quantity(word) if isinstance(word, str) else None
    if amount is None or amount <= 0:
        raise where.wrong("must be a Kubernetes quantity more than 0, such as 8Gi, 4 or 500m", value)
    return str(word).strip()


def _most_duration(value: Any, where: Where) -> float:
    if not isinstance(value, str):
        raise where.wrong("must be a duration such as 30m, 4h or 1d", value)
    return float(argument(duration)(value, where))


_GROUP_NAMES = list_of(text, nonempty=True)


@dataclass(frozen=True)
class Rule:
    """One action's rule (`policy.actions.<action>`): who may request it, who may approve it, where, how much."""

    request: tuple[str, ...] = key(_GROUP_NAMES)  # group names
    approve: tuple[str, ...] = key(_GROUP_NAMES, ())  # required but for ack (checked in load)
    # None: every namespace but kube-system
    namespaces: tuple[str, ...] | None = key(optional(list_of(_namespace, nonempty=True)), None)
    two_person: bool | None = key(optional(_flag), None)  # None: the policy's default
    max_replicas: int | None = key(optional(whole(at_least=1)), None)
    max_memory: str | None = key(optional(_most_quantity), None)  # a Kubernetes quantity
    max_cpu: str | None = key(optional(_most_quantity), None)
    max_duration: float | None = key(optional(_most_duration), None)  # seconds ("24h" in the YAML)


def _action(name: str, where: Where) -> None:
    if name in SHARED_RULES:
        raise where.key(name).error(f"{name} is decided by the rule of {SHARED_RULES[name]}: set that one")
    if name not in ACTIONS:
        raise unknown_key(where, name, ACTIONS)


@dataclass(frozen=True)
class Policy:
    """The `policy:` section; its fields are the keys."""

    groups: Mapping[str, tuple[str, ...]] = key(mapping_of(list_of(_member), what="group names"))
    actions: Mapping[str, Rule] = key(mapping_of(entry(Rule), name=_action, what="action names"))
    approval_minutes: float = key(positive, DEFAULT_APPROVAL_MINUTES)
    two_person: bool = key(_flag, True)
    impersonate: bool = key(_flag, False)


def load(raw: object, file: str = DEFAULT_FILE) -> Policy | None:
    """chatops.yaml `policy:`; None when there is none (every mutating command refused). Raises ConfigError."""
    if raw is None:
        return None
    where = Where(file, "policy")
    policy = read(Policy, raw, where)
    for action, rule in policy.actions.items():
        if action != ACK and not rule.approve:
            raise where.key("actions").key(action).key("approve").error("missing (required)")
        for side in ("request", "approve"):
            for index, name in enumerate(getattr(rule, side)):
                if name not in policy.groups:
                    raise _unknown_group(where.key("actions").key(action).key(side).item(index), name, policy.groups)
    return policy


def _unknown_group(where: Where, name: str, groups: Iterable[str]) -> ConfigError:
    known = list(groups)
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}?" if close else f"policy.groups defines {', '.join(known) or 'none'}"
    return where.error(f"unknown group {name!r} ({hint})")


# --------------------------------------------------------------------------- decisions


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""  # one line a person reads: why not


ALLOWED = Decision(True)


class Authorizer:
    """The policy's decisions for one bot. `members(S…)` gives the user IDs in a Slack user group
    (raising when Slack can't tell: the decision is then a refusal saying so)."""

    def __init__(self, policy: Policy | None, members: Members) -> None:
        self.policy = policy
        self._members = members
        self.enabled = policy is not None
        self.approval_seconds = (policy.approval_minutes if policy else DEFAULT_APPROVAL_MINUTES) * 60
        self.impersonate = policy.impersonate if policy else False

    def disabled_reason(self) -> str:
        return ("changes are turned off: chatops.yaml has no `policy:` section; add one that names who may "
                "request and who may approve each action (see README, Policy)")

    def rule(self, action: str) -> Rule | None:
        """The rule that decides `action` (unsilence: silence's), None if there is none."""
        if self.policy is None:
            return None
        return self.policy.actions.get(SHARED_RULES.get(action, action))

    def two_person(self, action: str) -> bool:
        """Must the approver be someone else than the requester?"""
        rule = self.rule(action)
        if rule is not None and rule.two_person is not None:
            return rule.two_person
        return self.policy.two_person if self.policy is not None else True

    async def may_request(self, user: str, action: str, namespace: str | None) -> Decision:
        """`namespace` None: an action on no namespace (a silence)."""
        rule = self._rule_for(action, namespace)
        if isinstance(rule, Decision):
            return rule
        return await self._in_groups(user, rule.request, f"request {action}")

    async def may_approve(self, user: str, action: str, namespace: str | None, requester: str) -> Decision:
        rule = self._rule_for(action, namespace)
        if isinstance(rule, Decision):
            return rule
        if user == requester and self.two_person(action):
            return Decision(False, f"you requested this {action} yourself: someone else in {_either(rule.approve)} "
                                   "must approve it (two-person rule)")
        return await self._in_groups(user, rule.approve, f"approve {action}")

    async def may_ack(self, user: str) -> Decision:
        """Anyone may acknowledge an alert, unless `policy.actions.ack.request` names who may."""
        rule = self.rule(ACK)
        if rule is None:
            return ALLOWED
        return await self._in_groups(user, rule.request, "acknowledge alerts")

    def over_limit(self, action: str, *, replicas: int | None = None, memory: str | None = None,
                   cpu: str | None = None, seconds: float | None = None) -> str | None:
        """One line when a value is over the rule's maximum (or no quantity at all), else None."""
        rule = self.rule(action)
        if rule is None:
            return None
        allows = f"than the policy allows for {action}"
        if replicas is not None and rule.max_replicas is not None and replicas > rule.max_replicas:
            return f"{replicas} replicas is more {allows} (at most {rule.max_replicas})"
        for what, asked, most in (("memory", memory, rule.max_memory), ("cpu", cpu, rule.max_cpu)):
            line = _over_quantity(what, asked, most, allows)
            if line is not None:
                return line
        if seconds is not None and rule.max_duration is not None and seconds > rule.max_duration:
            return (f"{compact_duration(round(seconds))} is longer {allows} "
                    f"(at most {compact_duration(round(rule.max_duration))})")
        return None

    def approvers(self, action: str) -> str:
        """Who may approve `action`, for the approval message: "leads, oncall" (or "nobody")."""
        rule = self.rule(action)
        return ", ".join(rule.approve) if rule is not None else "nobody"

    def _rule_for(self, action: str, namespace: str | None) -> Rule | Decision:
        """The rule for `action` on `namespace`, or the refusal when there is none or it excludes it."""
        if self.policy is None:
            return Decision(False, self.disabled_reason())
        rule = self.rule(action)
        if rule is None:
            name = SHARED_RULES.get(action, action)
            return Decision(False, f"no rule in the policy allows {action}: chatops.yaml has no policy.actions.{name}")
        if namespace == NEVER_TARGET:
            return Decision(False, f"{NEVER_TARGET} is never a target: the bot changes nothing there")
        if namespace is not None and rule.namespaces is not None and namespace not in rule.namespaces:
            return Decision(False, f"the policy allows {action} only in {_either(rule.namespaces)}, not in {namespace}")
        return rule

    async def _in_groups(self, user: str, names: tuple[str, ...], what: str) -> Decision:
        """Is `user` in one of the groups `names`, by user ID or through a Slack user group?"""
        assert self.policy is not None
        ids = [member for name in names for member in self.policy.groups.get(name, ())]
        if user in ids:
            return ALLOWED
        failure = ""
        for group in dict.fromkeys(m for m in ids if _USER_GROUP.match(m)):
            try:
                if user in await self._members(group):
                    return ALLOWED
            except Exception as e:  # noqa: BLE001 - any failure to look it up is a refusal that says so
                log.warning("could not check Slack user group %s: %s", group, _describe(e))
                failure = failure or f"could not check Slack user group {group}: {_describe(e)}"
        return Decision(False, failure or f"you are not in {_either(names)}, who may {what}")


def _over_quantity(what: str, asked: str | None, most: str | None, allows: str) -> str | None:
    if asked is None or most is None:
        return None
    amount, limit = _quantity(asked), _quantity(most)
    if amount is None:
        return f"`{asked}` is not a {what} quantity: use e.g. 6Gi, 2 or 500m"
    if limit is not None and amount > limit:
        return f"{what} {asked} is more {allows} (at most {most})"
    return None


def _either(names: Iterable[str]) -> str:
    """"a", "a or b", "a, b or c"."""
    names = list(names)
    if len(names) < 2:
        return names[0] if names else "nobody"
    return f"{', '.join(names[:-1])} or {names[-1]}"


def _describe(e: Exception) -> str:
    return str(e) if isinstance(e, ChatOpsError) else describe_exception(e)


__all__ = ["ACTIONS", "ALLOWED", "NEVER_TARGET", "SHARED_RULES", "Authorizer", "Decision", "Members", "Policy",
           "Rule", "load"]
