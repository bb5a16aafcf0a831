"""The /ops slash command: acknowledge at once, run the check, post the result.

Mistakes (unknown command, bad arguments) are answered only to the person who typed
them, in the acknowledgement itself, and run nothing. Results post in the channel so
the people on call see the same facts.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import UsageError
from bot.slack.mrkdwn import code, escape, safe, safe_file
from bot.slack.render import Message, help_message, report_message, usage_message
from bot.commands.report import Report, describe_exception
from bot.commands.execute import execute
from bot.runtime.runtime import Runtime

log = logging.getLogger(__name__)

_SLACK_ID = re.compile(r"^[A-Z0-9]{2,30}$")
# When the bot can't post in the channel itself (not invited, a DM), the response_url can.
_POST_VIA_RESPONSE_URL = {"not_in_channel", "channel_not_found", "is_archived"}


def register(app: AsyncApp, runtime: Runtime) -> None:
    command_name = runtime.settings.command

    @app.command(command_name)
    async def ops_command(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond) -> None:
        started = time.monotonic()
        outcome = "error"
        try:
            outcome = await _handle(runtime, ack, body, client, respond)
        finally:
            runtime.metrics.requests.labels(kind="command", outcome=outcome).inc()
            runtime.metrics.handler_seconds.labels(kind="command").observe(time.monotonic() - started)


async def _handle(
    runtime: Runtime, ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond
) -> str:
    prefix = runtime.settings.command
    text = str(body.get("text", ""))
    try:
        invocation = runtime.table.parse(text, runtime.settings.default_namespace)
    except UsageError as error:
        message = usage_message(error, prefix)
        await ack(response_type="ephemeral", text=message.text)
        return "usage"
    if invocation.command.name == "help":
        message = help_message(runtime.table, prefix, runtime.clients.unconfigured())
        await ack(response_type="ephemeral", text=message.text, blocks=message.blocks)
        return "ok"
    if runtime.draining:
        await ack(response_type="ephemeral", text=":hourglass: The bot is restarting; try again in a minute.")
        return "rejected"

    running = code(prefix + " " + invocation.text)
    await ack(response_type="ephemeral", text=f":hourglass_flowing_sand: Running {running}…")
    async with runtime.work():
        try:
            report = await execute(invocation, runtime.context)
            footer = f"{code(prefix + ' ' + invocation.text)} · requested by {_mention(body)} · {report.elapsed:.1f} s"
            channel = str(body.get("channel_id", ""))
            posted = await _post(client, respond, channel, report_message(report, footer))
            await _upload_files(client, respond, channel if posted else "", report)
            return "ok"
        except Exception as e:  # noqa: BLE001 - a person gets one clear line, the log gets the rest
            log.exception("/ops %s failed", invocation.command.name)
            await respond(
                response_type="ephemeral",
                text=f":x: {code(prefix + ' ' + invocation.text)} failed: {safe(describe_exception(e))}",
            )
            return "error"


async def _post(client: AsyncWebClient, respond: AsyncRespond, channel: str, message: Message) -> bool:
    """Post in the channel; True if the bot could, False if it answered through response_url."""
    try:
        await client.chat_postMessage(channel=channel, text=message.text, blocks=message.blocks)
        return True
    except SlackApiError as e:
        error = e.response.get("error", "")
        if error not in _POST_VIA_RESPONSE_URL:
            raise
        log.info("chat.postMessage to %s failed with %s; answering through response_url", channel, error)
        await respond(response_type="in_channel", text=message.text, blocks=message.blocks)
        return False


async def _upload_files(client: AsyncWebClient, respond: AsyncRespond, channel: str, report: Report) -> None:
    """Charts and long logs go up as files beside the message (files upload v2)."""
    files = [f for result in report.results for f in result.files]
    if files and not channel:
        await respond(response_type="ephemeral",
                      text=f":paperclip: {len(files)} file(s) not shared: invite the bot to this channel to get them.")
        return
    for file in map(safe_file, files):
        try:
            await client.files_upload_v2(channel=channel, file=file.content,
                                         filename=file.filename, title=file.title or file.filename)
        except SlackApiError as e:
            log.warning("uploading %s failed: %s", file.filename, e.response.get("error"))
            await respond(response_type="ephemeral",
                          text=f":paperclip: could not upload {safe(file.filename)}: {safe(e.response.get('error'))}")


def _mention(body: dict[str, Any]) -> str:
    user_id = str(body.get("user_id", ""))
    return f"<@{user_id}>" if _SLACK_ID.match(user_id) else escape(body.get("user_name", "someone"))
