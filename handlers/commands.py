"""The /ops slash command: parse, record the work, acknowledge within Slack's 3 seconds.

Mistakes (unknown command, bad arguments) are answered only to the person who typed them, in
the acknowledgement itself, and run nothing. Anything else is recorded as a job first
(bot.slack.answers runs it and posts the result in the channel, so the people on call see the
same facts); only then is it acknowledged, so an accepted command is answered even if the bot
restarts in between.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck

from bot.actions.approvals import Approvals
from bot.alerting import escalate_command
from bot.alerting.incidents import Incidents
from bot.errors import UsageError
from bot.runtime.runtime import Runtime
from bot.slack.answers import CommandAnswers
from bot.slack.mrkdwn import code
from bot.slack.render import help_message, usage_message

log = logging.getLogger(__name__)

# The longest /ops text parsed; longer is answered "too long" unparsed. No command needs a tenth of it.
MAX_TEXT = 4000


def register(app: AsyncApp, runtime: Runtime, answers: CommandAnswers, approvals: Approvals,
             incidents: Incidents) -> None:
    command_name = runtime.settings.command

    @app.command(command_name)
    async def ops_command(ack: AsyncAck, body: dict[str, Any]) -> None:
        started = time.monotonic()
        outcome = "error"
        try:
            outcome = await _handle(runtime, answers, approvals, incidents, ack, body)
        finally:
            runtime.metrics.requests.labels(kind="command", outcome=outcome).inc()
            runtime.metrics.handler_seconds.labels(kind="command").observe(time.monotonic() - started)


async def _handle(runtime: Runtime, answers: CommandAnswers, approvals: Approvals, incidents: Incidents,
                  ack: AsyncAck, body: dict[str, Any]) -> str:
    prefix = runtime.settings.command
    text = str(body.get("text", ""))
    if len(text) > MAX_TEXT:
        # Not parsed at all: a huge word would hold the event loop.
        log.info("answered a %s of %d characters with \"too long\"", prefix, len(text))
        error = UsageError(f"That is too long ({len(text):,} characters; at most {MAX_TEXT:,}).", "help")
        await ack(response_type="ephemeral", text=usage_message(error, prefix).text)
        return "usage"
    try:
        invocation = runtime.table.parse(text, runtime.settings.default_namespace)
        if invocation.command.mutating:
            approvals.check(invocation)
    except UsageError as error:
        message = usage_message(error, prefix)
        await ack(response_type="ephemeral", text=message.text)
        return "usage"
    if invocation.command.name == "help":
        message = help_message(runtime.table, prefix, runtime.clients.unconfigured())
        await ack(response_type="ephemeral", text=message.text, blocks=message.blocks)
        return "ok"
    running = code(prefix + " " + invocation.text)
    if runtime.draining:
        await ack(response_type="ephemeral", text=":hourglass: The bot is restarting; try again in a minute.")
        return "rejected"
    try:
        if invocation.command.mutating:
            await approvals.accept_command(body)
        elif invocation.command.name == escalate_command.NAME:
            await incidents.accept_manual(str(body.get("trigger_id") or f"{body.get('channel_id')}:{time.time()}"),
                                          str(invocation.args["reason"]), str(body.get("user_id", "")),
                                          str(body.get("channel_id", "")), str(body.get("response_url", "")))
        else:
            await answers.accept(body)
    except Exception as e:  # noqa: BLE001 - nothing was recorded: say so, run nothing
        log.error("could not record %s: %s", running, e)
        await ack(response_type="ephemeral",
                  text=f":x: Could not take {running} right now (the bot's state store is unavailable); "
                       "try again in a minute.")
        return "error"
    doing = "Previewing" if invocation.command.mutating else "Escalating" \
        if invocation.command.name == escalate_command.NAME else "Running"
    await ack(response_type="ephemeral", text=f":hourglass_flowing_sand: {doing} {running}…")
    return "accepted"
