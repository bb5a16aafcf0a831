"""Approvals in tests: the people, a policy naming them, and `Ops`, which sends commands and clicks
as Slack would and reads what the bot made of them. Fixtures: tests/plugins/approvals.py."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tests.slack_requests import send_block_action, send_slash_command

ALICE, BOB, CAROL, MALLORY = "U0ALICE001", "U0BOB00001", "U0CAROL001", "U0MALLORY1"
POLICY = f"""
policy:
  groups:
    oncall: [{ALICE}, {CAROL}]
    leads: [{BOB}]
  approval_minutes: 10
  actions:
    scale: {{request: [oncall, leads], approve: [leads, oncall], namespaces: [prod], max_replicas: 20}}
    restart: {{request: [oncall], approve: [leads]}}
    limits: {{request: [oncall], approve: [leads], max_memory: 8Gi, max_cpu: "4"}}
    breaker: {{request: [oncall], approve: [oncall, leads]}}
    silence: {{request: [oncall], approve: [oncall], two_person: false, max_duration: 24h}}
"""


class Ops:
    """Send commands and clicks as Slack would, and read what the bot made of them."""

    def __init__(self, bot, http, fake_slack, signing_secret) -> None:
        self.bot, self.http, self.slack, self.secret = bot, http, fake_slack, signing_secret

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.bot.port}/slack/events"

    async def ask(self, text: str, user: str = ALICE) -> Any:
        """`/ops <text>` by `user`; returns the approval message once it is posted."""
        before = len(self.slack.messages("C0OPS"))
        result = await send_slash_command(self.http, self.url, self.secret, text=text, user_id=user,
                                          user_name=user.lower(), response_url=self.slack.response_url())
        assert result.status == 200, result.text
        await self.slack.wait_for(lambda call: call.method == "chat.postMessage" and len(
            self.slack.messages("C0OPS")) > before, timeout=10)
        return self.slack.messages("C0OPS")[-1]

    async def refused(self, text: str, user: str = ALICE) -> str:
        """`/ops <text>` that must be refused: the line only `user` reads."""
        before = len(self.slack.ephemerals)
        result = await send_slash_command(self.http, self.url, self.secret, text=text, user_id=user,
                                          user_name=user.lower(), response_url=self.slack.response_url())
        assert result.status == 200, result.text
        await self.slack.wait_for(lambda call: call.method == "chat.postEphemeral" and len(
            self.slack.ephemerals) > before, timeout=10)
        (line,) = [m for m in self.slack.ephemerals[before:]]
        assert line.recipient == user
        return line.text

    async def click(self, message, action_id: str, user: str, value: str | None = None) -> int:
        button = next(e for b in message.blocks if b["type"] == "actions" for e in b["elements"]
                      if e["action_id"] == action_id) if value is None else {"action_id": action_id, "value": value}
        result = await send_block_action(self.http, self.url, self.secret,
                                         [{"action_id": action_id, "value": button["value"]}], user=user,
                                         user_name=user.lower(), message={"type": "message", "ts": message.ts},
                                         response_url=self.slack.response_url())
        return result.status

    async def idle(self) -> None:
        """Every click and command recorded so far is done (timers due later aside)."""
        from bot.state import keys

        await asyncio.wait_for(self.bot.worker.idle([keys.LANE_ACTIONS, keys.LANE_COMMANDS]), 15)

    def current(self, message):
        (now,) = [m for m in self.slack.messages("C0OPS") if m.ts == message.ts]
        return now

    def text(self, message) -> str:
        return json.dumps(self.current(message).blocks, ensure_ascii=False)

    def ephemerals_to(self, user: str) -> list[str]:
        return [m.text for m in self.slack.ephemerals if m.recipient == user]


def buttons(message) -> dict[str, str]:
    return {e["action_id"]: e["value"] for b in message.blocks if b["type"] == "actions" for e in b["elements"]}


def replicas(kube, namespace: str = "prod", name: str = "checkout") -> int:
    return int(kube.kmock.objects["apps/v1/deployments", namespace, name]["spec"]["replicas"])


async def audit_events(bot) -> list[str]:
    """The audit trail's events, oldest first, as /ops audit reads them (an entry appended again
    by a retried step counts once)."""
    from bot.actions.audit import Audit

    return [e.event for e in reversed(await Audit(bot.runtime.store).read())]


def scale_behind_the_bot(kube, replicas: int, namespace: str = "prod", name: str = "checkout") -> None:
    """Someone else changes the Deployment's replicas (kubectl, an autoscaler) after the preview."""
    deployment = kube.kmock.objects["apps/v1/deployments", namespace, name]
    kube.kmock.objects["apps/v1/deployments", namespace, name] = {
        **deployment, "spec": {**deployment["spec"], "replicas": replicas}}
