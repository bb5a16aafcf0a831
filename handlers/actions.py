"""Button clicks on approval messages (block_actions): record the click, then acknowledge.

Slack wants a click acknowledged within 3 seconds; deciding it (the policy, Slack user groups,
the store) and executing the change take longer, so the click is recorded as a job first
(bot.actions.approvals) and the worker does the rest. A click that is not ours, or carries no
request id, is acknowledged and dropped. Slack's retry of the same click has the same
`action_ts`, so it merges into the job already recorded.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Coroutine

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck

from bot.actions.approvals import Approvals
from bot.actions.render import APPROVE, CANCEL, REVERT
from bot.alerting.incidents import ACK, POSTMORTEM, Incidents
from bot.alerting.offers import OFFER_PREFIX
from bot.runtime.runtime import Runtime

log = logging.getLogger(__name__)


def register(app: AsyncApp, runtime: Runtime, approvals: Approvals, incidents: Incidents) -> None:
    @app.action(re.compile(f"^({APPROVE}|{CANCEL}|{REVERT})$"))
    async def on_click(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]) -> None:
        await _record(runtime, ack, action, approvals.accept_click(body, action))

    @app.action(ACK)
    async def on_ack(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]) -> None:
        await _record(runtime, ack, action, incidents.accept_ack_click(body, action))

    @app.action(POSTMORTEM)
    async def on_postmortem(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]) -> None:
        await _record(runtime, ack, action, incidents.accept_postmortem_click(body, action))

    @app.action(re.compile(f"^{OFFER_PREFIX}"))
    async def on_offer(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]) -> None:
        await _record(runtime, ack, action, approvals.accept_offer(body, action))


async def _record(runtime: Runtime, ack: AsyncAck, action: dict[str, Any],
                  recording: Coroutine[Any, Any, bool]) -> None:
    if runtime.draining:
        # Not acknowledged: Slack tells the clicker it failed, and they click again shortly.
        recording.close()  # never awaited
        runtime.metrics.requests.labels(kind="click", outcome="rejected").inc()
        return
    try:
        recorded = await recording
    except Exception as e:  # noqa: BLE001 - nothing recorded: no ack, so the clicker sees it failed
        log.error("could not record a click on %s: %s", action.get("action_id"), e)
        runtime.metrics.requests.labels(kind="click", outcome="error").inc()
        return
    await ack()
    runtime.metrics.requests.labels(kind="click", outcome="accepted" if recorded else "ignored").inc()
