"""The incident in the alert's thread: acknowledgement, escalation on the runbook's SLAs and the
post-mortem draft, so the thread is the incident's record.

Acknowledge: a button in the bot's own message (the alert post of a webhook thread; the
investigation reply under an Alertmanager post, which the bot cannot edit) or `@ops ack` in the
thread. Either is recorded as an `ack:…` job before Slack is answered; the job checks the policy
(`policy.actions.ack.request`, anyone when absent) and sets `acked_by` by compare-and-set, with
the job that did it (`acked_job`): the first click wins, a retry of that job carries on where it
stopped, every other click (a second person, a second replica) is told who acknowledged already.
The winner says so in the thread once, edits the alert post, and stops the acknowledgement timer.

Escalate: a firing thread with an SLA (`escalation:`; critical and warning) records two durable
timers, due at startsAt + ack_minutes and + resolve_minutes (`escalate:…:ack|resolve`, lane
timers: a restart keeps them; a deadline passed while the bot was down is due at once; a lease
gives each to one replica). A timer whose thread was acknowledged (ack) or resolved does nothing.
Otherwise the escalation is appended to the thread by compare-and-set (once per kind: a second
run finds it, and an acknowledgement or resolution stored meanwhile refuses it), then, each step
safe to repeat: PagerDuty brought up to date (one sync job per firing, `page:…:sync:…`, which reads
the thread when it runs and sends trigger, acknowledge, resolve in that order, each once; never a
trigger after an acknowledgement or resolution; retried on 429/5xx, a 400 said once in the
thread), a note in the thread, the managers' channel told (posted once; a channel the bot cannot
post in is said in the thread). PagerDuty goes first: Slack failing never holds a page up. The
dedup_key is the thread's firing (group or alert, and its startsAt), so two deadlines page once.
Also: `@ops escalate <reason>` in a thread (an incident of its own), `/ops escalate <reason>`
anywhere (a manual incident), and N distinct critical alerts within M minutes, escalated once as
one incident that later ones join (`related:{bucket}`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError

from bot.actions.policy import ALLOWED, Decision
from bot.alerting.state import THREAD_TTL, AlertThread, change_thread, load_thread
from bot.errors import PermanentError
from bot.incidents.config import EscalationConfig
from bot.incidents.pagerduty import PagerDuty, PagerDutyEvent, dedup_key
from bot.slack.mrkdwn import code, link, safe, truncate
from bot.slack.once import StoreLedger, post_once
from bot.slack.poster import Poster, slack_error
from bot.slack.render import Message
from bot.slack.tell import permalink, tell
from bot.state import keys
from bot.state.store import JSON, Job, NewJob, Store, Versioned, change_document
from bot.state.worker import Worker
from diagnostics.durations import spoken_duration
from diagnostics.result import FileAttachment

if TYPE_CHECKING:
    from bot.alerting.threads import AlertThreads

log = logging.getLogger(__name__)

ACK = "ops-ack"
POSTMORTEM = "ops-postmortem"
ROOTS_TTL = 30 * 86400.0
# A deadline that had passed this long before the bot first saw the alert is not escalated (the
# bot was not watching: newly deployed, or its store wiped); one that passes while the bot is down
# after it saw the alert is escalated as soon as it is back.
UNWATCHED_SECONDS = 3600.0
CHECK_SECONDS = 300.0  # how often an Alertmanager post's firing alerts are looked up in its API
OVERDUE_SECONDS = 30.0  # a deadline handled later than this counts as overdue (/metrics)
RELATED_LISTED = 10  # threads of a related-alerts incident listed (and noted); the rest counted
WHY = {"ack": "not acknowledged within {}", "resolve": "not resolved within {}"}
FIRED_AGAIN = ("This is an earlier firing of this alert: it has fired again since, in a new thread; "
               "act there.")
NOT_CONFIGURED = "PagerDuty is not configured (PAGERDUTY_ROUTING_KEY), so nobody was paged"
MAX_REASON = 500
# Slack's answers for a channel the bot cannot post in: said once, not retried for hours.
CANNOT_POST = {"not_in_channel", "channel_not_found", "is_archived", "restricted_action"}

MayAck = Callable[[str], Awaitable[Decision]]


async def _anyone(user: str) -> Decision:
    return ALLOWED


def button_value(thread: AlertThread) -> str:
    """A thread's button names its firing (the key and startsAt): a button of an older firing of the
    same group or alert never acts on a newer one."""
    return f"{thread.key}|{thread.starts_at}"


def read_value(value: object) -> tuple[str, str]:
    """(thread key, starts_at) from a button's value; ("", "") when it is not one of ours."""
    key, _, starts_at = str(value or "").partition("|")
    return (key, starts_at) if key.startswith("thread:") else ("", "")


def ack_button(value: str) -> dict[str, Any]:
    return {"type": "button", "action_id": ACK, "value": value, "style": "primary",
            "text": {"type": "plain_text", "text": "Acknowledge"}}


def ack_blocks(thread: AlertThread) -> list[dict[str, Any]]:
    return [{"type": "actions", "block_id": "ack", "elements": [ack_button(button_value(thread))]}]


def postmortem_blocks(text: str, thread: AlertThread) -> list[dict[str, Any]]:
    """The resolution note with its Draft post-mortem button."""
    return [{"type": "section", "text": {"type": "mrkdwn", "text": truncate(text, 3000)}},
            {"type": "actions", "block_id": "postmortem", "elements": [
                {"type": "button", "action_id": POSTMORTEM, "value": button_value(thread),
                 "text": {"type": "plain_text", "text": "Draft post-mortem"}}]}]


def acked_line(thread: AlertThread) -> str:
    """":eyes: Acknowledged by <@U…> at 00:45 UTC (after 3 min)"; "" when not acknowledged."""
    if not thread.acked_by:
        return ""
    at = datetime.fromtimestamp(thread.acked_at, tz=timezone.utc)
    return (f":eyes: Acknowledged by <@{thread.acked_by}> at {at.strftime('%H:%M UTC')} "
            f"(after {spoken_duration(waited(thread))})")


def waited(thread: AlertThread) -> float:
    """Seconds from the alert's start to its acknowledgement."""
    return max(thread.acked_at - datetime.fromisoformat(thread.starts_at).timestamp(), 0.0)


def same_firing(thread: AlertThread, payload: Mapping[str, Any]) -> bool:
    """Is the thread as stored the firing the click or mention was about (its startsAt, or the
    thread's root it was typed under)? A group or alert that fired again has a new thread."""
    starts_at, root = str(payload.get("starts_at") or ""), str(payload.get("thread_ts") or "")
    return (not starts_at or starts_at == thread.starts_at) and (not root or not thread.ts or root == thread.ts)


def alert_dedup_key(thread: AlertThread) -> str:
    """PagerDuty's dedup_key for a thread's firing: its group or alert, and when it started."""
    return dedup_key("alert", f"{thread.key}:{thread.starts_at}")


class Incidents:
    def __init__(self, *, threads: AlertThreads, store: Store, poster: Poster, worker: Worker,
                 may_ack: MayAck | None = None, escalation: EscalationConfig | None = None,
                 pager: PagerDuty | None = None, observe: Callable[[str], None] | None = None,
                 overdue: Callable[[], None] | None = None) -> None:
        """`observe(kind)`: told of each escalation; `overdue()`: of each deadline handled late."""
        self.threads = threads
        self.store = store
        self.poster = poster
        self.worker = worker
        self.may_ack = may_ack or _anyone
        self.escalation = escalation or EscalationConfig()
        self.pager = pager
        self.observe = observe or (lambda kind: None)
        self.overdue = overdue or (lambda: None)
        worker.handle(keys.KIND_ACK, self._ack_job)
        worker.handle(keys.KIND_ESCALATE, self._escalate_job)
        worker.handle(keys.KIND_PAGE, self._page_job)
        worker.handle(keys.KIND_PAGE_SYNC, self._sync_job)
        worker.handle(keys.KIND_RELATED, self._related_job)
        worker.handle(keys.KIND_MANUAL, self._manual_job)
        worker.handle(keys.KIND_POSTMORTEM, self._postmortem_job)
        threads.incidents = self

    @property
    def clock(self) -> Any:
        return self.store.clock

    # ------------------------------------------------------------------ where threads are

    async def remember_root(self, channel: str, ts: str, thread_key: str) -> None:
        """The message (channel, ts) is the root of the thread `thread_key` (one post may root the
        threads of several alerts: Alertmanager's post of a group)."""
        def add(doc: JSON | None) -> JSON | None:
            threads = list((doc or {}).get("threads") or [])
            return doc if thread_key in threads else {"threads": [*threads, thread_key]}

        await change_document(self.store, keys.thread_root(channel, ts), add, ttl=ROOTS_TTL)

    async def threads_at(self, channel: str, ts: str) -> list[str]:
        """The alert threads rooted at the message (channel, ts): a mention in a thread names its root."""
        current = await self.store.get(keys.thread_root(channel, ts))
        return [str(k) for k in (current.value.get("threads") or [])] if current is not None else []

    # ------------------------------------------------------------------ acknowledging

    async def accept_ack_click(self, body: dict[str, Any], action: dict[str, Any]) -> bool:
        """A click on Acknowledge: recorded as a job (Slack's retry of the click merges into it)."""
        user = body.get("user") if isinstance(body.get("user"), dict) else {}
        channel = body.get("channel") if isinstance(body.get("channel"), dict) else {}
        (thread_key, starts_at), user_id = read_value(action.get("value")), str((user or {}).get("id") or "")
        if not thread_key or not user_id:
            return False
        await self._submit_ack(thread_key, user_id, str(action.get("action_ts") or ""),
                               channel=str((channel or {}).get("id") or ""),
                               response_url=str(body.get("response_url") or ""), starts_at=starts_at)
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
                          thread_ts: str = "", starts_at: str = "") -> None:
        await self.worker.submit([NewJob(
            id=keys.ack(thread_key, user, ts), kind=keys.KIND_ACK, lane=keys.LANE_INCIDENTS,
            payload={"thread": thread_key, "user": user, "channel": channel, "response_url": response_url,
                     "thread_ts": thread_ts, "starts_at": starts_at})])

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
        if not same_firing(thread, job.payload):
            await say(FIRED_AGAIN)
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
            return f"{safe(thread.alertname)} has resolved already; there is nothing to acknowledge."
        return ""

    async def _acknowledged(self, key: str, thread: AlertThread) -> None:
        """What follows an acknowledgement, each step safe to run again: the note in the thread
        (once), the alert post edited, the acknowledgement timer stopped."""
        text = f":eyes: Acknowledged by <@{thread.acked_by}> after {spoken_duration(waited(thread))}."
        await self.threads.post_in_thread(key, thread, "ack", Message(text=text, blocks=[]))
        if thread.source == "webhook" and thread.ts:
            await self.threads.show(key)
        await self.store.cancel(keys.escalate(key, thread.starts_at, "ack"))
        await self.sync_pager(key, thread)  # after a page: acknowledge it

    # ------------------------------------------------------------------ the thread's life

    async def firing(self, key: str, thread: AlertThread) -> AlertThread:
        """A firing thread: its SLA's deadlines recorded as timers (once), and, when critical, the
        related-alerts count. Called by the thread job; safe to call again."""
        severity = thread.severity
        if (thread.timers_set and thread.timers_for == severity) or thread.status != "firing":
            return thread
        # New, or its severity changed (a critical alert joined a warning group): the deadlines of
        # the severity it has now (a timer recorded again keeps the earlier due time).
        sla = self.escalation.sla(severity)
        if sla is not None:
            start, now = datetime.fromisoformat(thread.starts_at).timestamp(), self.clock.now()
            deadlines = {kind: start + seconds for kind, seconds in (("ack", sla[0]), ("resolve", sla[1]))}
            unwatched = [kind for kind, due in deadlines.items() if due < now - UNWATCHED_SECONDS]
            if unwatched:
                # First seen long after: nobody can say now what happened then (the bot was not
                # running, or its store was wiped); paging for it would wake people for the past.
                log.info("%s: fired at %s, first seen %s later; its %s deadline(s) passed before: not escalated",
                         key, thread.starts_at, spoken_duration(now - start), " and ".join(unwatched))
            await self.worker.submit([
                NewJob(id=keys.escalate(key, thread.starts_at, kind), kind=keys.KIND_ESCALATE, lane=keys.LANE_TIMERS,
                       payload={"thread": key, "starts_at": thread.starts_at, "kind": kind, "due": due}, due=due)
                for kind, due in deadlines.items() if kind not in unwatched])
        if severity.lower() == "critical" and thread.timers_for.lower() != "critical":
            await self._count_related(key, thread)
        if thread.source == "post" and self.threads.fetch_active is not None and not thread.timers_set:
            await self._check_later(key, thread)
        starts_at = thread.starts_at
        return await change_thread(self.store, key, lambda t: t.replace(timers_set=True, timers_for=severity)
                                   if t is not None and t.starts_at == starts_at else t) or thread

    async def resolved(self, key: str, thread: AlertThread) -> None:
        """A thread resolved: its timers stop, and PagerDuty hears of it if it was paged."""
        for kind in ("ack", "resolve"):
            await self.store.cancel(keys.escalate(key, thread.starts_at, kind))
        if thread.source == "post":
            now = self._check_number(thread)
            for number in range(now - 1, now + 3):  # the one pending is among these
                await self.store.cancel(keys.escalate(key, thread.starts_at, f"check:{number}"))
        await self.sync_pager(key, thread)  # after a page: resolve it
        for entry in thread.escalations:
            if entry.get("kind") == "related":
                await self._related_resolved(str(entry["id"]), str(entry["dedup_key"]))

    async def _related_resolved(self, doc: str, dedup: str) -> None:
        """A related incident whose threads have all resolved is resolved in PagerDuty (once)."""
        current = await self.store.get(doc)
        if current is None or current.value.get("resolved") or self.pager is None:
            return
        for thread_key in current.value.get("threads") or []:
            other = await load_thread(self.store, str(thread_key))
            if other is not None and other.status == "firing":
                return  # one still fires: the incident stays open
        await self._page(PagerDutyEvent.resolve(dedup), doc)
        await self.store.put_if(doc, {**current.value, "resolved": True}, current.version, ttl=THREAD_TTL)

    def _check_number(self, thread: AlertThread) -> int:
        """Checks of a post's alert against Alertmanager's API fall every CHECK_SECONDS from its start."""
        start = datetime.fromisoformat(thread.starts_at).timestamp()
        return int((self.clock.now() - start) // CHECK_SECONDS) + 1

    async def _check_later(self, key: str, thread: AlertThread) -> None:
        """The next look at Alertmanager's API for an Alertmanager post's alerts: a receiver without
        resolved notifications never posts [RESOLVED], so the bot asks (every CHECK_SECONDS)."""
        number = self._check_number(thread)
        due = datetime.fromisoformat(thread.starts_at).timestamp() + number * CHECK_SECONDS
        kind = f"check:{number}"
        await self.worker.submit([NewJob(
            id=keys.escalate(key, thread.starts_at, kind), kind=keys.KIND_ESCALATE, lane=keys.LANE_TIMERS,
            payload={"thread": key, "starts_at": thread.starts_at, "kind": kind, "due": due}, due=due)])

    # ------------------------------------------------------------------ escalating

    async def _escalate_job(self, job: Job) -> None:
        """A deadline (kind ack or resolve) come due, or `@ops escalate` in the thread (manual)."""
        p = job.payload
        key, kind = str(p["thread"]), str(p["kind"])
        thread = await load_thread(self.store, key)
        if thread is None or (p.get("starts_at") and thread.starts_at != p["starts_at"]):
            return  # forgotten, or a later firing's thread: this deadline was the older one's
        if kind == "manual":
            user, channel = str(p.get("by") or ""), str(p.get("channel") or thread.channel)
            refusal = FIRED_AGAIN if not same_firing(thread, p) else (
                "" if thread.status == "firing" else f"{safe(thread.alertname)} has resolved already: to open an "
                "incident anyway, use `/ops escalate <reason>`.")
            if refusal:
                await tell(self.poster, channel, user, refusal, thread_ts=str(p.get("thread_ts") or ""))
                return
            await self._escalate(key, thread, f"manual:{job.id}", "manual", str(p.get("reason") or ""), by=user)
            return
        if kind.startswith("check:"):
            if thread.status == "firing" and await self.threads.still_active(thread):
                await self._check_later(key, thread)
            return
        if thread.status != "firing" or (kind == "ack" and thread.acked_by):
            return
        if thread.source == "post" and not await self.threads.still_active(thread):
            return  # its receiver sends no resolution: Alertmanager's API says it ended (resolved now)
        if self.clock.now() - float(p.get("due") or 0) > OVERDUE_SECONDS and job.attempts <= 1:
            self.overdue()
        sla = self.escalation.sla(thread.severity) or (0.0, 0.0)
        within = spoken_duration(sla[0] if kind == "ack" else sla[1])
        await self._escalate(key, thread, kind, kind, f"{thread.severity} alert " + WHY[kind].format(within))

    async def _escalate(self, key: str, thread: AlertThread, entry_id: str, kind: str, reason: str,
                        by: str = "") -> None:
        now = self.clock.now()
        # A manual escalation is an incident of its own (it pages even when the alert's incident was
        # acknowledged); the deadlines share the alert's: escalating twice pages once.
        dedup = dedup_key("manual", f"{key}:{entry_id}") if kind == "manual" else alert_dedup_key(thread)
        entry = {"id": entry_id, "kind": kind, "at": now, "reason": reason, "by": by, "dedup_key": dedup,
                 "pagerduty": "paging" if self.pager is not None else "not configured"}
        if kind == "resolve" and thread.acked_by and self.pager is not None:
            entry["pagerduty"] = "not paged again: acknowledged"  # the on-call has it; the managers are told
        starts_at = thread.starts_at

        def add(t: AlertThread | None) -> AlertThread | None:
            if t is None or t.starts_at != starts_at or any(e.get("id") == entry_id for e in t.escalations):
                return t
            if t.status != "firing" or (kind == "ack" and t.acked_by):
                return t  # acknowledged or resolved while this was being decided: it wins
            return t.replace(escalations=(*t.escalations, entry))

        thread = await change_thread(self.store, key, add) or thread
        stored = next((e for e in thread.escalations if e.get("id") == entry_id), None)
        if stored is None:
            return
        if stored.get("at") == now:
            self.observe(kind)  # this run added it (a retry finds it added)
        await self.sync_pager(key, thread)  # PagerDuty first: nothing below (Slack) may hold the page up
        managers = self.escalation.managers_channel
        if self.pager is None:
            paged = NOT_CONFIGURED
        elif stored.get("pagerduty") == "paging":
            paged = "Paging the on-call through PagerDuty"
        else:
            paged = f"PagerDuty is not paged again (<@{thread.acked_by}> acknowledged it)"
        by_whom = f" by <@{by}>" if by else ""
        note = f":rotating_light: Escalated{by_whom}: {safe(reason)}. {paged}; telling {safe(managers)}."
        await self.threads.post_in_thread(key, thread, f"escalation:{entry_id}", Message(text=note, blocks=[]))
        link_to = await self._permalink(thread.channel, thread.ts)
        await self._tell_managers(key, thread, f"escalation:{entry_id}:managers",
                                  _managers_message(thread, stored, link_to, self.pager is not None))

    async def _permalink(self, channel: str, ts: str) -> str:
        """The message's permalink, or "" (Slack failing is no reason to hold an escalation)."""
        if not ts:
            return ""
        try:
            return await permalink(self.poster, channel, ts)
        except Exception as e:  # noqa: BLE001 - a link is a nicety
            log.info("no permalink for %s in %s: %s", ts, channel, e)
            return ""

    async def _tell_managers(self, key: str, thread: AlertThread, name: str, text: str) -> None:
        """The managers' channel told, once; a channel the bot can't post in is said in the thread
        (once) and logged, not retried for hours."""
        refused = await self._post_to_managers(key, name, text)
        if refused:
            note = (f":warning: Could not tell {safe(self.escalation.managers_channel)}: Slack answered "
                    f"`{safe(refused)}` (invite the bot there, or set `escalation.managers_channel`).")
            await self.threads.post_in_thread(key, thread, f"{name}:failed", Message(text=note, blocks=[]))

    async def _post_to_managers(self, doc: str, name: str, text: str) -> str:
        """Post once in the managers' channel (the record in `doc`'s posts); Slack's answer when the
        bot cannot post there (logged, not retried for hours: the caller says so), else ""."""
        managers = self.escalation.managers_channel
        try:
            await post_once(self.poster, StoreLedger(self.store, doc, ("posts", name), THREAD_TTL), managers,
                            truncate(text, 3000), None, clock=self.clock)
        except SlackApiError as e:
            if slack_error(e) not in CANNOT_POST:
                raise
            log.warning("could not tell %s: %s (invite the bot, or set escalation.managers_channel)", managers,
                        slack_error(e))
            return slack_error(e)
        return ""

    async def sync_pager(self, key: str, thread: AlertThread) -> None:
        """Bring PagerDuty up to date with the thread: one job per firing, so its events go out one
        at a time, in order (trigger, acknowledge, resolve), each read from the thread when it runs."""
        if self.pager is None or not any(e.get("pagerduty") == "paging" or e.get("sent")
                                         for e in thread.escalations):
            return
        await self.worker.submit([NewJob(
            id=keys.page(key.removeprefix("thread:"), "sync", thread.starts_at), kind=keys.KIND_PAGE_SYNC,
            lane=keys.LANE_INCIDENTS, payload={"thread": key, "starts_at": thread.starts_at})])

    async def _sync_job(self, job: Job) -> None:
        p = job.payload
        key = str(p["thread"])
        thread = await load_thread(self.store, key)
        if self.pager is None or thread is None or thread.starts_at != p["starts_at"]:
            return
        # Not configured, or not paged (acknowledged before its deadline's turn): left out. The
        # deadlines of one firing share its incident (one dedup_key): its events are sent once.
        paging = [e for e in thread.escalations if e.get("pagerduty") == "paging" or e.get("sent")]
        for dedup in dict.fromkeys(str(e["dedup_key"]) for e in paging):
            await self._bring_up_to_date(key, thread, [e for e in paging if e["dedup_key"] == dedup])
            thread = await load_thread(self.store, key) or thread

    async def _bring_up_to_date(self, key: str, thread: AlertThread, entries: list[Mapping[str, Any]]) -> None:
        """The events one incident (the escalations sharing a dedup_key) still needs, in order;
        each recorded on them once sent."""
        assert self.pager is not None
        entry, ids = entries[0], {str(e["id"]) for e in entries}
        sent = tuple(dict.fromkeys(action for e in entries for action in e.get("sent") or ()))
        wanted: list[str] = []
        if "trigger" not in sent:
            if thread.status == "firing" and (not thread.acked_by or entry.get("kind") == "manual"):
                wanted.append("trigger")
            else:  # acknowledged or resolved before the page went out: nobody needs waking
                await self._mark(key, ids, pagerduty="not sent: acknowledged or resolved first")
                return
        opened = "trigger" in sent or wanted
        if opened and thread.acked_by and "acknowledge" not in sent and thread.status == "firing":
            wanted.append("acknowledge")
        if opened and thread.status == "resolved" and "resolve" not in sent:
            wanted.append("resolve")
        for action in wanted:
            if action == "trigger":
                link_to = await self._permalink(thread.channel, thread.ts)
                reason = str(entry.get("reason") or "")
                event = PagerDutyEvent.trigger(
                    str(entry["dedup_key"]), f"{thread.alertname}: {reason}", _source(thread), thread.severity,
                    links=[(link_to, "Slack thread")] if link_to else (),
                    custom_details={"labels": dict(thread.labels), "alerts": len(thread.members()), "reason": reason})
            else:
                event = (PagerDutyEvent.acknowledge if action == "acknowledge" else PagerDutyEvent.resolve)(
                    str(entry["dedup_key"]))
            try:
                await self.pager.send(event)  # 429, 5xx, timeouts: TemporaryError, the job is retried
            except PermanentError as e:
                log.warning("%s", e)
                text = f":warning: PagerDuty refused the {action}: {safe(str(e))}"
                await self.threads.post_in_thread(key, thread, f"pagerduty-refused:{entry['id']}:{action}",
                                                  Message(text=text, blocks=[]))
                await self._mark(key, ids, sent=(*sent, action),
                                 **({"pagerduty": f"refused: {e}"} if action == "trigger" else {}))
                return
            sent = (*sent, action)
            outcome = {"trigger": "triggered", "acknowledge": "triggered, acknowledged",
                       "resolve": "triggered, resolved"}[action]
            await self._mark(key, ids, sent=sent, pagerduty=outcome)

    async def _mark(self, key: str, ids: set[str], **changes: Any) -> None:
        def mark(t: AlertThread | None) -> AlertThread | None:
            if t is None:
                return t
            changed = tuple({**e, **changes} if e.get("id") in ids else e for e in t.escalations)
            return t.replace(escalations=changed) if changed != t.escalations else t

        await change_thread(self.store, key, mark)

    async def _page(self, event: PagerDutyEvent, entry: str, *, channel: str = "", thread_ts: str = "") -> None:
        """One PagerDuty event of an incident outside alert threads (manual, related), as its own job."""
        payload: dict[str, Any] = {"action": event.action, "dedup_key": event.dedup_key, "summary": event.summary,
                                   "source": event.source, "severity": event.severity,
                                   "links": [list(pair) for pair in event.links],
                                   "details": dict(event.custom_details), "entry": entry,
                                   "channel": channel, "thread_ts": thread_ts}
        await self.worker.submit([NewJob(id=keys.page(event.dedup_key, event.action, entry), kind=keys.KIND_PAGE,
                                         lane=keys.LANE_INCIDENTS, payload=payload)])

    async def _page_job(self, job: Job) -> None:
        p = job.payload
        if self.pager is None:
            return
        if p["action"] == "resolve":
            event = PagerDutyEvent.resolve(str(p["dedup_key"]))
        else:
            event = PagerDutyEvent.trigger(str(p["dedup_key"]), str(p["summary"]), str(p["source"]),
                                           str(p["severity"]), links=[(str(h), str(t)) for h, t in p["links"]],
                                           custom_details=p.get("details") or {})
        try:
            await self.pager.send(event)  # 429, 5xx, timeouts: TemporaryError, the job is retried
        except PermanentError as e:
            log.warning("%s", e)
            if p.get("channel"):
                name = f"pagerduty-refused:{p['entry']}"
                ledger = StoreLedger(self.store, keys.incident(str(p["entry"])), ("posts", name), THREAD_TTL)
                await post_once(self.poster, ledger, str(p["channel"]),
                                f":warning: PagerDuty refused the page: {safe(str(e))}", None, clock=self.clock,
                                thread_ts=str(p.get("thread_ts") or "") or None)

    # ------------------------------------------------------------------ escalating by hand

    async def mention_escalate(self, channel: str, thread_ts: str, user: str, rest: str, origin: str) -> str:
        """`@ops escalate <reason>` in an alert's thread (a thread verb): escalate it now."""
        if not rest.strip():
            return "Say why: `escalate <reason>`, e.g. `escalate customers report failed checkouts`."
        if len(rest) > MAX_REASON:
            return f"The reason is {len(rest)} characters; at most {MAX_REASON}."
        found = await self.threads_at(channel, thread_ts)
        await self.worker.submit([NewJob(
            id=keys.escalate_now(k, origin), kind=keys.KIND_ESCALATE, lane=keys.LANE_INCIDENTS,
            payload={"thread": k, "starts_at": "", "kind": "manual", "reason": rest, "by": user,
                     "channel": channel, "thread_ts": thread_ts}) for k in found])
        if found:
            return ""
        return ("This is not the thread of an alert I posted or answered; to open an incident from anywhere, "
                "use `/ops escalate <reason>`.")

    async def accept_manual(self, origin: str, reason: str, user: str, channel: str, response_url: str) -> None:
        """`/ops escalate <reason>`: a manual incident, recorded before it is acknowledged."""
        await self.worker.submit([NewJob(
            id=keys.incident(origin), kind=keys.KIND_MANUAL, lane=keys.LANE_INCIDENTS,
            payload={"origin": origin, "reason": reason, "user": user, "channel": channel,
                     "response_url": response_url})])

    async def _manual_job(self, job: Job) -> None:
        """`/ops escalate`: paged first (once: the incident's document says so), then said where it
        was asked (or only to the person, where the bot cannot post) and in the managers' channel."""
        p = job.payload
        origin, reason, user, channel = str(p["origin"]), str(p["reason"]), str(p["user"]), str(p["channel"])
        doc = keys.incident(origin)
        managers = self.escalation.managers_channel
        paged = self.pager is not None
        current = await self.store.get(doc)
        if paged and not (current is not None and current.value.get("paged")):
            await self._page(PagerDutyEvent.trigger(
                dedup_key("manual", origin), f"Manual incident: {reason}", "chatops (/ops escalate)", "critical",
                custom_details={"opened_by": user, "channel": channel}), job.id, channel=channel)
            value = {**(current.value if current is not None else {}), "paged": True}
            await self.store.put_if(doc, value, current.version if current is not None else None, ttl=THREAD_TTL)
            if job.attempts <= 1:
                self.observe("manual")
        text = (f":rotating_light: <@{user}> opened an incident: {safe(reason)}. "
                + ("Paging the on-call through PagerDuty" if paged else NOT_CONFIGURED)
                + f"; telling {safe(managers)}.")
        link_to = ""
        try:
            posted = await post_once(self.poster, StoreLedger(self.store, doc, ("posts", "here"), THREAD_TTL),
                                     channel, text, None, clock=self.clock)
            link_to = await self._permalink(posted.channel, posted.ts)
        except SlackApiError as e:
            if slack_error(e) not in CANNOT_POST:
                raise
            await tell(self.poster, channel, user, text, str(p.get("response_url") or ""))  # a DM, say
        managers_text = (f":rotating_light: *Incident opened by <@{user}>*: {safe(reason)}"
                         + (f" · {link(link_to, 'in Slack')}" if link_to else ""))
        refused = await self._post_to_managers(doc, "managers", managers_text)
        if refused:
            await tell(self.poster, channel, user, f":warning: Could not tell {safe(managers)}: Slack answered "
                       f"`{safe(refused)}` (invite the bot there).", str(p.get("response_url") or ""))

    # ------------------------------------------------------------------ the post-mortem draft

    async def accept_postmortem_click(self, body: dict[str, Any], action: dict[str, Any]) -> bool:
        user = body.get("user") if isinstance(body.get("user"), dict) else {}
        (thread_key, starts_at), user_id = read_value(action.get("value")), str((user or {}).get("id") or "")
        if not thread_key or not user_id:
            return False
        channel = body.get("channel") if isinstance(body.get("channel"), dict) else {}
        await self._submit_postmortem(thread_key, str(action.get("action_ts") or user_id), user_id,
                                      str((channel or {}).get("id") or ""), str(body.get("response_url") or ""),
                                      starts_at=starts_at)
        return True

    async def mention_postmortem(self, channel: str, thread_ts: str, user: str, rest: str, origin: str) -> str:
        """`@ops postmortem` in an alert's thread (a thread verb): draft it there."""
        found = await self.threads_at(channel, thread_ts)
        for thread_key in found:
            await self._submit_postmortem(thread_key, origin, user, channel, "", thread_ts=thread_ts)
        return "" if found else "This is not the thread of an alert I posted or answered: no post-mortem to draft."

    async def _submit_postmortem(self, thread_key: str, origin: str, user: str, channel: str,
                                 response_url: str, *, starts_at: str = "", thread_ts: str = "") -> None:
        await self.worker.submit([NewJob(
            id=keys.postmortem(thread_key, origin), kind=keys.KIND_POSTMORTEM, lane=keys.LANE_INCIDENTS,
            payload={"thread": thread_key, "user": user, "channel": channel, "response_url": response_url,
                     "starts_at": starts_at, "thread_ts": thread_ts})])

    async def _postmortem_job(self, job: Job) -> None:
        """Drafted from the store (the thread document) and the audit trail, never from Slack's
        history; uploaded as a Markdown file in the thread, then announced once."""
        from bot.actions.audit import Audit
        from bot.alerting.postmortem import Sla, draft

        p = job.payload
        key, user = str(p["thread"]), str(p["user"])
        thread = await load_thread(self.store, key)
        if thread is None or not same_firing(thread, p):
            await tell(self.poster, str(p["channel"]), user, FIRED_AGAIN if thread else "This alert's thread is "
                       "no longer known (threads are kept 30 days).", str(p.get("response_url") or ""),
                       str(p.get("thread_ts") or ""))
            return
        sla = self.escalation.sla(thread.severity)
        link_to = await permalink(self.poster, thread.channel, thread.ts) if thread.ts else ""
        trail = await Audit(self.store).read(since=datetime.fromisoformat(thread.starts_at).timestamp() - 3600)
        written = draft(thread, trail, Sla(*sla) if sla else None, self.clock.now(), link_to)
        name = f"postmortem:{job.id}"
        if name not in thread.posts:  # uploaded before a retry: not twice (the note below is the mark)
            await self.poster.upload(thread.channel, FileAttachment(
                written.filename, written.markdown.encode(), written.title, "text/markdown"), thread_ts=thread.ts)
        text = f":memo: <@{user}> asked for a post-mortem draft: {safe(written.summary)}"
        await self.threads.post_in_thread(key, thread, name, Message(text=truncate(text, 3000), blocks=[]))

    # ------------------------------------------------------------------ related alerts

    async def _count_related(self, key: str, thread: AlertThread) -> None:
        """Counted when a critical thread fires: N distinct ones within M minutes escalate as one."""
        related = self.escalation.related
        now = self.clock.now()
        since = now - related.within_seconds
        if datetime.fromisoformat(thread.starts_at).timestamp() < since:
            return  # it fired before the window: an old alert seen late is not part of a burst now
        await self.store.append(keys.CRITICAL_FIRED_LOG, {"thread": key, "name": thread.alertname})
        recent = await self.store.read_log(keys.CRITICAL_FIRED_LOG, since=since, limit=1000)
        threads = list(dict.fromkeys(str(dict(e.entry).get("thread")) for e in recent))
        if len(threads) >= related.count:
            # The incident still open (its last alert within the window) takes this one in; else a new one.
            open_ = await self.store.get(keys.related_open())
            if open_ is not None and now - float(open_.value.get("last") or 0) < related.within_seconds:
                bucket = int(open_.value["bucket"])
            else:
                bucket = int(now // related.within_seconds)
            await self.store.put(keys.related_open(), {"bucket": bucket, "last": now}, ttl=THREAD_TTL)
            await self.worker.submit([NewJob(id=keys.related(bucket), kind=keys.KIND_RELATED,
                                             lane=keys.LANE_INCIDENTS,
                                             payload={"bucket": bucket, "threads": threads})])

    async def _join_related(self, doc: str, threads: list[str]) -> Versioned:
        """The related incident's document, created or with the threads that joined it added."""
        now, created = self.clock.now(), [False]

        def join(value: JSON | None) -> JSON | None:
            known = list((value or {}).get("threads") or [])
            joined = [t for t in threads if t not in known]
            if value is not None and not joined:
                return value
            created[0] = value is None
            return {**(value or {"at": now}), "threads": known + joined}

        await change_document(self.store, doc, join, ttl=THREAD_TTL)
        if created[0]:
            self.observe("related")
        current = await self.store.get(doc)
        assert current is not None
        return current

    async def _related_job(self, job: Job) -> None:
        """Related critical alerts, escalated once per window as one incident listing them."""
        bucket = int(job.payload["bucket"])
        doc = keys.related(bucket)
        current = await self._join_related(doc, [str(t) for t in job.payload["threads"]])
        listed = []
        every = list(current.value["threads"])
        if every[:RELATED_LISTED] == []:
            return
        for thread_key in every[:RELATED_LISTED]:
            found = await load_thread(self.store, str(thread_key))
            if found is not None:
                listed.append(found)
        within = spoken_duration(self.escalation.related.within_seconds)
        reason = f"{len(every)} critical alerts within {within}"
        names = truncate(", ".join(dict.fromkeys(t.alertname for t in listed)), 300)
        links = []
        for t in listed:
            link_to = await permalink(self.poster, t.channel, t.ts) if t.ts else ""
            links.append(f"• {safe(t.alertname)}" + (f" · {link(link_to, 'thread')}" if link_to else ""))
        if self.pager is not None and not current.value.get("paged"):
            await self._page(PagerDutyEvent.trigger(
                dedup_key("related", str(bucket)), f"Related critical alerts: {names}"[:1000],
                "chatops (related alerts)", "critical", custom_details={"alerts": [t.alertname for t in listed]}),
                doc)
            await self.store.put_if(doc, {**current.value, "paged": True}, current.version, ttl=THREAD_TTL)
        managers = self.escalation.managers_channel
        more = f"\n… and {len(every) - len(listed)} more" if len(every) > len(listed) else ""
        text = truncate(f":rotating_light: *{reason}*, escalated as one incident:\n" + "\n".join(links) + more,
                        3000)
        await self._post_to_managers(doc, "managers", text)
        entry = {"id": doc, "kind": "related", "at": self.clock.now(), "reason": reason, "by": "",
                 "dedup_key": dedup_key("related", str(bucket)),
                 "pagerduty": "paged as one related incident" if self.pager is not None else "not configured"}

        def add(x: AlertThread | None) -> AlertThread | None:
            if x is None or any(y.get("id") == doc for y in x.escalations):
                return x
            return x.replace(escalations=(*x.escalations, entry))

        for t in listed:
            t = await change_thread(self.store, t.key, add) or t
            note = (f":rotating_light: Escalated with related alerts ({safe(reason)}: {safe(names)}); "
                    f"told {safe(managers)}.")
            await self.threads.post_in_thread(t.key, t, f"escalation:{doc}", Message(text=note, blocks=[]))


def _source(thread: AlertThread) -> str:
    labels = thread.labels
    where = labels.get("service") or labels.get("deployment") or labels.get("instance") or labels.get("namespace")
    return f"{where or thread.alertname} (chatops)"


def _managers_message(thread: AlertThread, entry: Mapping[str, Any], link_to: str, paged: bool) -> str:
    started = datetime.fromisoformat(thread.starts_at)
    for_how_long = spoken_duration(float(entry["at"]) - started.timestamp())
    text = (f":rotating_light: *{safe(thread.severity.upper() or 'ALERT')} · {safe(thread.alertname)}* "
            f"— {safe(str(entry['reason']))} (firing for {for_how_long}, since "
            f"{started.astimezone(timezone.utc).strftime('%H:%M UTC')})"
            + (f" · {link(link_to, 'the thread')}" if link_to else "")
            + ("" if paged else " · PagerDuty is not configured") + f" · {code(thread.fingerprint)}")
    return truncate(text, 3000)
