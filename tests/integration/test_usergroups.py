"""Slack user groups for the policy, over HTTP against the fake Slack: members cached for the ttl
(on a FakeClock), one call for callers asking at once, the last known members when Slack fails,
and a refusal that says why when nothing is known."""

from __future__ import annotations

import asyncio
import logging

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.actions.policy import Authorizer, Decision, load
from bot.errors import TemporaryError
from bot.slack.usergroups import UserGroups
from bot.state.clock import FakeClock

pytestmark = pytest.mark.integration

ONCALL = "S0ONCALL01"
LIST = "usergroups.users.list"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def groups(fake_slack, clock) -> UserGroups:
    return UserGroups(AsyncWebClient(base_url=fake_slack.api_url, token=fake_slack.bot_token), clock, ttl=60)


async def test_members_are_cached_for_the_ttl_then_asked_again(fake_slack, clock, groups):
    fake_slack.set_usergroup(ONCALL, ["U0ALICE001", "U0DAVE0001"])

    first = await groups.members(ONCALL)
    fake_slack.set_usergroup(ONCALL, ["U0ERIN0001"])
    clock.advance(59)
    cached = await groups.members(ONCALL)
    assert len(fake_slack.calls_to(LIST)) == 1
    clock.advance(2)
    fresh = await groups.members(ONCALL)

    assert first == cached == frozenset({"U0ALICE001", "U0DAVE0001"})
    assert fresh == frozenset({"U0ERIN0001"})
    assert [c.params["usergroup"] for c in fake_slack.calls_to(LIST)] == [ONCALL, ONCALL]


async def test_each_group_is_cached_on_its_own(fake_slack, groups):
    fake_slack.set_usergroup(ONCALL, ["U0ALICE001"])
    fake_slack.set_usergroup("S0SRE00001", ["U0BOB00001"])

    assert await groups.members(ONCALL) == {"U0ALICE001"}
    assert await groups.members("S0SRE00001") == {"U0BOB00001"}
    assert await groups.members(ONCALL) == {"U0ALICE001"}
    assert [c.params["usergroup"] for c in fake_slack.calls_to(LIST)] == [ONCALL, "S0SRE00001"]


async def test_callers_asking_at_once_share_one_call_and_one_giving_up_does_not_cancel_it(fake_slack, groups):
    fake_slack.set_usergroup(ONCALL, ["U0ALICE001"])
    fake_slack.outage("hang", LIST)
    callers = [asyncio.create_task(groups.members(ONCALL)) for _ in range(4)]
    await fake_slack.wait_for(LIST, ok=False)  # held by the fake
    callers[0].cancel()
    fake_slack.recover()

    answers = await asyncio.gather(*callers[1:])

    assert answers == [frozenset({"U0ALICE001"})] * 3 and callers[0].cancelled()
    assert len(fake_slack.calls_to(LIST)) == 1


async def test_a_failure_uses_the_last_known_members_with_a_warning(fake_slack, clock, groups, caplog):
    fake_slack.set_usergroup(ONCALL, ["U0ALICE001"])
    await groups.members(ONCALL)
    clock.advance(120)
    fake_slack.fail(LIST, "internal_error")

    with caplog.at_level(logging.WARNING, logger="bot.slack.usergroups"):
        members = await groups.members(ONCALL)

    assert members == {"U0ALICE001"}
    assert [c.ok for c in fake_slack.calls_to(LIST)] == [True, False]
    [record] = caplog.records
    assert "S0ONCALL01" in record.getMessage() and "internal_error" in record.getMessage()
    assert "120 s ago" in record.getMessage()
    # Slack is asked again on the next call, and what it says then is kept.
    fake_slack.set_usergroup(ONCALL, ["U0BOB00001"])
    assert await groups.members(ONCALL) == {"U0BOB00001"}


async def test_a_failure_with_nothing_known_raises_one_line_and_is_not_cached(fake_slack, groups):
    with pytest.raises(TemporaryError) as unknown:
        await groups.members("S0NOSUCH01")
    fake_slack.fail(LIST, "missing_scope")
    with pytest.raises(TemporaryError) as no_scope:
        await groups.members(ONCALL)
    fake_slack.set_usergroup(ONCALL, ["U0ALICE001"])

    assert str(unknown.value) == "Slack answered no_such_subteam"
    assert str(no_scope.value).startswith("Slack answered missing_scope (the Slack app needs the usergroups:read")
    assert await groups.members(ONCALL) == {"U0ALICE001"}  # the failure was not remembered


async def test_the_authorizer_asks_slack_and_refuses_saying_why_when_it_cannot(fake_slack, groups):
    policy = load({"groups": {"oncall": ["U0ALICE001", ONCALL, "S0GONE0001"]},
                   "actions": {"restart": {"request": ["oncall"], "approve": ["oncall"]}}}, "chatops.yaml")
    fake_slack.set_usergroup(ONCALL, ["U0DAVE0001"])
    auth = Authorizer(policy, groups.members)

    assert await auth.may_request("U0DAVE0001", "restart", "shop") == Decision(True)
    refused = await auth.may_request("U0ERIN0001", "restart", "shop")

    assert refused == Decision(False, "could not check Slack user group S0GONE0001: Slack answered no_such_subteam")
    assert [c.params["usergroup"] for c in fake_slack.calls_to(LIST)] == [ONCALL, "S0GONE0001"]
