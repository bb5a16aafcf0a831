"""A slash command's answer: recorded when it is acknowledged, run, posted once at the channel's pace.

The /ops handler parses the command and records a `command:{request}` job before it answers Slack
(within Slack's 3 seconds). A worker then runs the check and posts the report in the channel,
through the same per-channel pacing as alert posts, exactly once (bot.slack.once), retrying while
Slack fails; a restart in between resumes it. Where the bot can't post (not invited, a DM), the
answer goes through the command's response_url instead. Mentions of the bot get their hint the
same way.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.commands.execute import execute
from bot.commands.model import Context, Invocation
from bot.commands.parser import CommandTable
from bot.commands.report import Report, describe_exception, log_failure
from bot.errors import UsageError
from bot.slack.mrkdwn import code, escape, safe
from bot.slack.once import Posted, StoreLedger, post_once
from bot.slack.poster import Poster, slack_error
from bot.slack.render import Message, report_message, usage_message
from bot.state import keys
from bot.state.store import Job, NewJob, Store
from bot.state.worker import Worker

log = logging.getLogger(__name__)

ANSWER_TTL = 86400.0  # what was posted for a request is remembered a day
_SLACK_ID = re.compile(r"^[A-Z0-9]{2,30}$")
# When the bot can't post in the channel itself (not invited, a DM), the response_url can.
_POST_VIA_RESPONSE_URL = {"not_in_channel", "channel_not_found", "is_archived"}
RESPONSE_URL_TIMEOUT = 10
MAX_MENTION = 4000  # characters of a mention's text read (as /ops text)
# The mentions a message to the bot starts with (`<@U0BOT> ack`); later ones are the text's own.
_LEADING_MENTIONS = re.compile(r"^\s*(?:<@[A-Z0-9]+(?:\|[^>]*)?>[\s,:]*)+")
ThreadVerb = Callable[[str, str, str, str, str], Awaitable[str]]


@dataclass(frozen=True)
class Request:
    """What the job needs of a slash command's payload."""

    id: str
    text: str
    channel: str
    user_id: str
    user_name: str
    response_url: str
    received: float  # epoch seconds, for the latency metric
    thread_ts: str = ""  # a command given as a mention in a thread is answered in that thread

    @classmethod
    def from_body(cls, body: dict[str, Any], received: float) -> Request:
        request = str(body.get("trigger_id") or "") or f"{body.get('channel_id')}:{body.get('user_id')}:{received}"
        return cls(id=request, text=str(body.get("text", "")), channel=str(body.get("channel_id", "")),
                   user_id=str(body.get("user_id", "")), user_name=str(body.get("user_name", "")),
                   response_url=str(body.get("response_url", "")), received=received)


class CommandAnswers:
    def __init__(self, *, prefix: str, default_namespace: str, table: CommandTable, context: Context,
                 store: Store, poster: Poster, worker: Worker, observe: Any = None) -> None:
        """`observe(seconds, outcome)`: told how long each answer took from the request, and how
        it ended (ok, error)."""
        self.prefix = prefix
        self.default_namespace = default_namespace
        self.table = table
        self.context = context
        self.store = store
        self.poster = poster
        self.worker = worker
        self.observe = observe
        worker.handle(keys.KIND_COMMAND, self._answer)
        worker.handle(keys.KIND_MENTION, self._mention)
        # `@ops <verb> …` in a thread: (channel, thread_ts, user, the rest, origin) -> a reply or "".
        self.thread_verbs: dict[str, ThreadVerb] = {}

    async def accept(self, body: dict[str, Any]) -> Request:
        """Record the command's job (the caller acknowledges after this returns)."""
        request = Request.from_body(body, self.store.clock.now())
        await self.worker.submit([NewJob(id=keys.command(request.id), kind=keys.KIND_COMMAND,
                                         lane=keys.LANE_COMMANDS, payload=request.__dict__)])
        return request

    async def accept_mention(self, event: dict[str, Any], event_id: str) -> None:
        channel, ts = str(event.get("channel", "")), str(event.get("ts") or "")
        await self.worker.submit([NewJob(
            id=keys.mention(event_id or f"{channel}:{ts}"), kind=keys.KIND_MENTION, lane=keys.LANE_COMMANDS,
            payload={"channel": channel, "ts": ts, "thread_ts": str(event.get("thread_ts") or ""),
                     "text": str(event.get("text") or "")[:MAX_MENTION], "user": str(event.get("user") or ""),
                     "received": self.store.clock.now()})])

    # ------------------------------------------------------------------ the jobs

    async def _answer(self, job: Job) -> None:
        request = Request(**job.payload)
        key = keys.command(request.id)
        try:
            invocation = self.table.parse(request.text, self.default_namespace)
        except UsageError as e:  # the handler answered this in the ack; a changed table since?
            log.warning("recorded command %r no longer parses: %s", request.text, e.message)
            return
        record = await StoreLedger(self.store, key, ("answer",), ANSWER_TTL).record()
        if record is not None and record.ts:
            return  # posted before a restart; its files went with it or are lost (never twice)
        try:
            report = await execute(invocation, self.context)
        except Exception as e:  # noqa: BLE001 - a bug in a check: one clear line to the person, the log gets the rest
            log_failure(log, e, "%s %s failed", self.prefix, invocation.command.name)
            text = f":x: {self._echo(invocation)} failed: {safe(describe_exception(e))}"
            await self._respond(request, {"response_type": "ephemeral", "text": text})
            self._observe(request, "error")
            return
        footer = f"{self._echo(invocation)} · requested by {_mention(request)} · {report.elapsed:.1f} s"
        message = report_message(report, footer)
        try:
            posted = await self._post(key, request, message)
        except Exception as e:
            await self._tell_delayed(request, invocation, e)
            raise  # the job is retried until the answer is posted
        await self._upload_files(request, posted, report)
        self._observe(request, "ok")

    async def _post(self, key: str, request: Request, message: Message) -> Posted | None:
        """Post in the channel once; None when the bot answered through response_url instead."""
        ledger = StoreLedger(self.store, key, ("answer",), ANSWER_TTL)
        try:
            return await post_once(self.poster, ledger, request.channel, message.text, message.blocks,
                                   clock=self.store.clock, thread_ts=request.thread_ts or None)
        except SlackApiError as e:
            error = e.response.data.get("error", "") if isinstance(e.response.data, dict) else ""
            if error not in _POST_VIA_RESPONSE_URL:
                raise  # Slack failing: the job is retried
            log.info("chat.postMessage to %s failed with %s; answering through response_url", request.channel, error)
            await self._respond(request, {"response_type": "in_channel", "text": message.text,
                                          "blocks": message.blocks})
            return None

    async def _tell_delayed(self, request: Request, invocation: Invocation, error: Exception) -> None:
        """Slack failed the post: the person who asked is told so, once (not once per retry)."""
        why = slack_failure(error)
        if not why or not await self.store.claim(keys.command_delayed(request.id), ANSWER_TTL):
            return
        text = f":hourglass: {self._echo(invocation)}: {safe(why)} (retrying)"
        try:
            await self._respond(request, {"response_type": "ephemeral", "text": text})
        except Exception as e:  # noqa: BLE001 - Slack is failing: the answer itself still matters more
            log.warning("could not tell who asked %r that its answer is delayed: %s", request.text,
                        describe_exception(e))

    async def _upload_files(self, request: Request, posted: Posted | None, report: Report) -> None:
        """Charts and long logs go up as files beside the message (files upload v2)."""
        files = [f for result in report.results for f in result.files]
        if files and posted is None:
            await self._respond(request, {"response_type": "ephemeral", "text": f":paperclip: {len(files)} file(s) "
                                          "not shared: invite the bot to this channel to get them."})
            return
        for file in files:  # made safe by the poster
            try:
                await self.poster.upload(request.channel, file, thread_ts=request.thread_ts or None)
            except SlackApiError as e:
                log.warning("uploading %s failed: %s", file.filename, slack_error(e))
                await self._respond(request, {"response_type": "ephemeral", "text": f":paperclip: could not upload "
                                              f"{safe(file.filename)}: {safe(slack_error(e))}"})

    async def _respond(self, request: Request, body: dict[str, Any]) -> None:
        if not request.response_url and request.thread_ts:  # a mention's: said in its thread
            await self.poster.post(request.channel, str(body.get("text") or ""), thread_ts=request.thread_ts)
            return
        if not request.response_url:
            log.warning("no response_url to answer %s %r through", self.prefix, request.text)
            return
        answer = await AsyncWebhookClient(request.response_url, timeout=RESPONSE_URL_TIMEOUT).send_dict(body)
        if answer.status_code >= 500:
            raise RuntimeError(f"response_url answered HTTP {answer.status_code}")  # retried
        if answer.status_code >= 400:
            log.warning("response_url refused the answer (HTTP %d: %s)", answer.status_code, answer.body)

    async def _mention(self, job: Job) -> None:
        """`@ops …`: a thread verb (ack, escalate, postmortem: bot.alerting.incidents), or any /ops
        command, answered in the thread it was typed in (Slack sends slash commands without it)."""
        p = job.payload
        channel, ts, thread_ts, user = str(p["channel"]), str(p.get("ts") or ""), str(p.get("thread_ts") or ""), \
            str(p.get("user") or "")
        words = _LEADING_MENTIONS.sub("", str(p.get("text") or "")).split()
        verb = words[0].lower().rstrip(".,:;!?") if words else ""
        reply_to = thread_ts or ts

        async def reply(text: str) -> None:
            ledger = StoreLedger(self.store, job.id, ("answer",), ANSWER_TTL)
            await post_once(self.poster, ledger, channel, text, None, clock=self.store.clock,
                            thread_ts=reply_to or None)

        if verb in self.thread_verbs:
            if not thread_ts:
                await reply(f"`@{escape(self.prefix.lstrip('/'))} {escape(verb)}` works in an alert's thread: "
                            "mention me there.")
                return
            answer = await self.thread_verbs[verb](channel, thread_ts, user, " ".join(words[1:]), job.id)
            if answer:
                await reply(answer)
            return
        if not words or verb == "help":
            await reply(f"Type `{escape(self.prefix)} help` to see the checks I can run; in an alert's thread, "
                        f"mention me with one: `@{escape(self.prefix.lstrip('/'))} pods checkout -n prod`.")
            return
        text = " ".join(words)
        try:
            invocation = self.table.parse(text, self.default_namespace)
        except UsageError as error:
            await reply(usage_message(error, self.prefix).text)
            return
        if invocation.command.mutating:
            await reply(f"Changes are asked for with {code(self.prefix + ' ' + invocation.text)} or the buttons "
                        "in an alert's thread, where they are approved.")
            return
        request = Request(id=f"mention:{job.id}", text=text, channel=channel, user_id=user, user_name="",
                          response_url="", received=float(p.get("received") or self.store.clock.now()),
                          thread_ts=reply_to)
        await self.worker.submit([NewJob(id=keys.command(request.id), kind=keys.KIND_COMMAND,
                                         lane=keys.LANE_COMMANDS, payload=request.__dict__)])

    def _echo(self, invocation: Invocation) -> str:
        return code(self.prefix + " " + invocation.text)

    def _observe(self, request: Request, outcome: str) -> None:
        if self.observe is not None:
            self.observe(max(self.store.clock.now() - request.received, 0.0), outcome)


def slack_failure(error: BaseException) -> str:
    """What the person reads when Slack, not the check, failed: "Slack answered HTTP 500; the
    result was not posted". "" when `error` is not Slack failing (nor a look for an earlier post)."""
    if isinstance(error, SlackApiError):
        return f"{describe_exception(error)}; the result was not posted"
    if isinstance(error, TimeoutError):
        return "Slack timed out; the result may not have been posted"
    if isinstance(error, (aiohttp.ClientError, ConnectionError)):
        return f"cannot reach Slack ({describe_exception(error)}); the result was not posted"
    return ""


def _mention(request: Request) -> str:
    return f"<@{request.user_id}>" if _SLACK_ID.match(request.user_id) else escape(request.user_name or "someone")
