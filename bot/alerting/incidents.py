"""The incident in the alert's thread: acknowledgement (and, built on it, escalation and the
post-mortem draft), so the thread is the incident's record.

Acknowledge: a button in the bot's own message (the alert post of a webhook thread; the
investigation reply under an Alertmanager post, which the bot cannot edit) or `@ops ack` in the
thread. Either is recorded as an `ack:…` job before Slack is answered; the job checks the policy
(`policy.actions.ack.request`, anyone when absent) and sets `acked_by` by compare-and-set, with
the job that did it (`acked_job`): the first click wins, a retry of that job carries on where it
stopped, every other click (a second person, a second replica) is told who acknowledged already.
The winner says so in the thread once, edits the alert post, and stops the acknowledgement timer.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot.actions.policy import ALLOWED, Decision
from bot.alerting.state import AlertThread, change_thread, load_thread
from bot.slack.poster import Poster
from bot.slack.render import Message
from bot.slack.tell import tell
from bot.state import keys
from bot.state.store import Job, NewJob, Store
from bot.state.worker import Worker
from diagnostics.durations import spoken_duration

if TYPE_CHECKING:
    from bot.alerting.threads import AlertThreads

log = logging.getLogger(__name__)

ACK = "ops-ack"
ROOTS_TTL = 30 * 86400.0

MayAck = Callable[[str], Awaitable[Decision]]


async def _anyone(user: str) -> Decision:
    return ALLOWED


def ack_button(thread_key: str) -> dict[str, Any]:
    return {"type": "button", "action_id": ACK, "value": thread_key, "style": "primary",
            "text": {"type": "plain_text", "text": "Acknowledge"}}


def ack_blocks(thread_key: str) -> list[dict[str, Any]]:
    return [{"type": "actions", "block_id": "ack", "elements": [ack_button(thread_key)]}]


def acked_line(thread: AlertThread) -> str:
    """":eyes: Acknowledged by <@U…> at 00:45 UTC (after 3 min)"; "" when not acknowledged."""
    if not thread.acked_by:
        return ""
    at = datetime.fromtimestamp(thread.acked_at, tz=datetime.fromisoformat(thread.starts_at).tzinfo)
    return (f":eyes: Acknowledged by <@{thread.acked_by}> at {at.strftime('%H:%M UTC')} "
            f"(after {spoken_duration(waited(thread))})")


def waited(thread: AlertThread) -> float:
    """Seconds from the alert's start to its acknowledgement."""
    return max(thread.acked_at - datetime.fromisoformat(thread.starts_at).timestamp(), 0.0)


class Incidents:
    def __init__(self, *, threads: AlertThreads, store: Store, poster: Poster, worker: Worker,
                 may_ack: MayAck | None = None) -> None:
        self.threads = threads
        self.store = store
        self.poster = poster
        self.worker = worker
        self.may_ack = may_ack or _anyone
        worker.handle(keys.KIND_ACK, self._ack_job)
        threads.incidents = self

    # ------------------------------------------------------------------ where threads are

    async def remember_root(self, channel: str, ts: str, thread_key: str) -> None:
        """The message (channel, ts) is the root of the thread `thread_key` (one post may root the
        threads of several alerts: Alertmanager's post of a group)."""
        key = keys.thread_root(channel, ts)
        for _ in range(20):
            current = await self.store.get(key)
            threads = list(current.value.get("threads") or []) if current is not None else []
            if thread_key in threads:
                return
            if await self.store.put_if(key, {"threads": [*threads, thread_key]},
                                       current.version if current else None, ttl=ROOTS_TTL):
                return
        raise RuntimeError(f"{key}: gave up after 20 conflicting writes")

    async def threads_at(self, channel: str, ts: str) -> list[str]:
        """The alert threads rooted at the message (channel, ts): a mention in a thread names its root."""
        current = await self.store.get(keys.thread_root(channel, ts))
        return [str(k) for k in (current.value.get("threads") or [])] if current is not None else []

    # ------------------------------------------------------------------ acknowledging

    async def accept_ack_click(self, body: dict[str, Any], action: dict[str, Any]) -> bool:
        """A click on Acknowledge: recorded as a job (Slack's retry of the click merges into it)."""
        user = body.get("user") if isinstance(body.get("user"), dict) else {}
        channel = body.get("channel") if isinstance(body.get("channel"), dict) else {}
        thread_key, user_id = str(action.get("value") or ""), str((user or {}).get("id") or "")
        if not thread_key.startswith("thread:") or not user_id:
            return False
        await self._submit_ack(thread_key, user_id, str(action.get("action_ts") or ""),
                               channel=str((channel or {}).get("id") or ""),
                               response_url=str(body.get("response_url") or ""))
        return True

    async def ack_in_thread(self, channel: str, thread_ts: str, user: str, event_ts: str) -> bool:
        """`@ops ack` in a thread: acknowledge every alert thread rooted there; False if none is."""
        found = await self.threads_at(channel, thread_ts)
        for thread_key in found:
            await self._submit_ack(thread_key, user, event_ts, channel=channel, thread_ts=thread_ts)
        return bool(found)

    async def mention_ack(self, channel: str, thread_ts: str, user: str, rest: str, origin: str) -> str:
        """`@ops ack` in a thread (a thread verb of bot.slack.answers): "" when taken."""
        if await self.ack_in_thread(channel, thread_ts, user, origin.rsplit(":", 1)[-1]):
            return ""
        return "This is not the thread of an alert I posted or answered, so there is nothing to acknowledge here."

    async def _submit_ack(self, thread_key: str, user: str, ts: str, *, channel: str, response_url: str = "",
                          thread_ts: str = "") -> None:
        await self.worker.submit([NewJob(
            id=keys.ack(thread_key, user, ts), kind=keys.KIND_ACK, lane=keys.LANE_INCIDENTS,
            payload={"thread": thread_key, "user": user, "channel": channel, "response_url": response_url,
                     "thread_ts": thread_ts})])

    async def _ack_job(self, job: Job) -> None:
        key, user, channel = str(job.payload["thread"]), str(job.payload["user"]), str(job.payload["channel"])

        async def say(text: str) -> None:
            await tell(self.poster, channel, user, text, str(job.payload.get("response_url") or ""),
                       str(job.payload.get("thread_ts") or ""))

        thread = await load_thread(self.store, key)
        if thread is None:
            await say("This alert's thread is no longer known (threads are kept 30 days).")
            return
        if channel and channel != thread.channel:
            await say("This button belongs to an alert in another channel.")
            return
        if thread.acked_job != job.id:
            refusal = self._why_not(thread) or (await self.may_ack(user)).reason
            if refusal:
                await say(refusal)
                return
            now = self.store.clock.now()
            starts_at = thread.starts_at

            def acknowledge(t: AlertThread | None) -> AlertThread | None:
                if t is None or t.starts_at != starts_at or t.acked_by or t.status != "firing":
                    return t
                return t.replace(acked_by=user, acked_at=now, acked_job=job.id, revision=t.revision + 1)

            thread = await change_thread(self.store, key, acknowledge) or thread
            if thread.acked_job != job.id:
                await say(self._why_not(thread) or "This alert was acknowledged meanwhile.")
                return
        await self._acknowledged(key, thread)

    def _why_not(self, thread: AlertThread) -> str:
        if thread.acked_by:
            return acked_line(thread).replace(":eyes: Acknowledged", "Already acknowledged") + "."
        if thread.status != "firing":
            return f"{thread.alertname} has resolved already; there is nothing to acknowledge."
        return ""

    async def _acknowledged(self, key: str, thread: AlertThread) -> None:
        """What follows an acknowledgement, each step safe to run again: the note in the thread
        (once), the alert post edited, the acknowledgement timer stopped."""
        text = f":eyes: Acknowledged by <@{thread.acked_by}> after {spoken_duration(waited(thread))}."
        await self.threads.post_in_thread(key, thread, "ack", Message(text=text, blocks=[]))
        if thread.source == "webhook" and thread.ts:
            await self.threads.show(key, thread)
        await self.store.cancel(keys.escalate(key, thread.starts_at, "ack"))
