"""Every alert gets the runbook's playbook in its thread, from firing to resolved. Nothing is lost.

Two ways in, one lifecycle:
- webhook: one thread per Alertmanager group (its groupKey), as Alertmanager groups them: the bot
  posts the group once (to the channel for its severity), listing its alerts, and edits that post
  as alerts join and resolve; the investigation runs each distinct step of its alerts once, in the
  post's thread. A storm of 300 alerts in 3 groups is 3 posts, not 300;
- Alertmanager's own Slack post: matched to its alerts (Alertmanager's API), one thread per post
  (the alerts it names; a repeat post of the same firing goes to the thread it already has); the
  investigation goes in the post's thread; resolved (its [RESOLVED] post, or Alertmanager's API
  at a deadline) is a thread reply.

Durable: what arrives is recorded as a job before it is acknowledged (bot.state.worker), and
the work runs under a lease, retried while Slack or Alertmanager fails, resumed after a restart:
- `post:{channel}:{ts}` matches an Alertmanager post to its alerts (Alertmanager down: retried);
- `thread:{source}:{id}` brings one thread (a group, or an alert) up to date with its newest
  notification: open it (post it once), show alerts that joined or resolved, start the
  investigation, note "still firing" after the cool-down, resolve. One job per thread, so one
  thread's work never runs twice at once; a notification arriving meanwhile is merged into the
  job, which then runs once more;
- `investigate:…` runs a round of the playbook in the thread, editing its reply as results
  arrive: the first round the steps of the alerts at the opening, later ones (a reply each) the
  new steps of alerts that joined.
Progress lives in the thread's document (bot.alerting.state), changed by compare-and-set, and
every message is posted once (bot.slack.once): a retry after a lost answer finds it first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from datetime import datetime, timezone
from typing import Any

from bot.alerting.config import AlertSettings
from bot.alerting.incidents import Incidents, ack_blocks, acked_line, postmortem_blocks
from bot.alerting.ingest import AlertPost, match_post, post_from_doc, post_to_doc
from bot.alerting.model import Alert, Notification
from bot.alerting.playbooks import Playbooks, PlaybookSteps
from bot.alerting.render import alert_message, investigation_message
from bot.alerting.state import (
    THREAD_TTL,
    AlertThread,
    Notice,
    change_thread,
    group_notices,
    iso,
    load_thread,
    post_thread_id,
    worst_severity,
)
from bot.alerting.steps import Step
from bot.commands.execute import execute
from bot.commands.model import Context
from bot.commands.parser import CommandTable
from bot.commands.report import describe_exception, log_failure
from bot.errors import TemporaryError
from bot.settings import Settings
from bot.slack.once import Posted, PostRecord, StoreLedger, post_once
from bot.slack.poster import Poster
from bot.slack.render import Message
from bot.state import keys
from bot.state.keys import ThreadSource
from bot.state.store import Job, NewJob, Store
from bot.state.worker import Worker
from diagnostics.durations import spoken_duration
from diagnostics.result import Result

log = logging.getLogger(__name__)

POST_SEEN_TTL = 3600.0  # Slack re-delivers an event for a few minutes; an hour is plenty
ROUND_STEPS = 8  # distinct steps one round of a thread's investigation runs; the rest are listed
STEP_BATCH = 25  # alerts whose steps are filled between two turns of the event loop
ActiveAlerts = Callable[..., Awaitable[list[Alert]]]


class AlertThreads:
    def __init__(
        self,
        *,
        settings: Settings,
        config: AlertSettings,
        store: Store,
        poster: Poster,
        worker: Worker,
        playbooks: Playbooks,
        table: CommandTable,
        context: Context,
        fetch_active: ActiveAlerts | None,
        links: Callable[[Alert], list[tuple[str, str]]] = lambda alert: [],
        offers: Callable[[str, Sequence[str]], list[dict[str, Any]]] | None = None,
    ) -> None:
        """`offers(thread key, playbook actions)`: the mitigation buttons under an investigation
        (bot.alerting.offers.offer_blocks), or None when no policy allows mitigations."""
        self.settings = settings
        self.config = config
        self.store = store
        self.poster = poster
        self.worker = worker
        self.playbooks = playbooks
        self.table = table
        self.steps = PlaybookSteps(playbooks, table, settings.default_namespace)
        self.context = context
        self.fetch_active = fetch_active
        self.links = links
        self.offers = offers
        self.incidents: Incidents | None = None  # set by Incidents (acknowledgement, escalation)
        worker.handle(keys.KIND_THREAD, self._thread_job)
        worker.handle(keys.KIND_POST, self._post_job)
        worker.handle(keys.KIND_INVESTIGATE, self._investigate_job)
        worker.handle(keys.KIND_RENDER_THREAD, self._render_job)

    @property
    def clock(self) -> Any:
        return self.store.clock

    # ------------------------------------------------------------------ accepting (recorded, then acknowledged)

    async def accept_notification(self, notification: Notification) -> int:
        """Webhook: record the group's thread job (one transaction); returns how many alerts."""
        await self.worker.submit([_thread_job("webhook", notice) for notice in group_notices(notification)])
        return len(notification.alerts)

    async def accept_post(self, post: AlertPost, channel: str, ts: str) -> bool:
        """An Alertmanager post seen in a channel: record the job that matches it. False when this
        post was taken already (Slack delivering the same event again)."""
        if await self.store.get(keys.post_seen(channel, ts)) is not None:
            return False
        job = NewJob(id=keys.alert_post(channel, ts), kind=keys.KIND_POST, lane=keys.LANE_ALERTS,
                     payload={"post": post_to_doc(post), "channel": channel, "ts": ts})
        (new,) = await self.worker.submit([job])
        return new

    async def drain(self) -> None:
        """Wait until every alert accepted so far has been handled (tests, benchmarks)."""
        await self.worker.idle([keys.LANE_ALERTS, keys.LANE_INVESTIGATIONS])

    # ------------------------------------------------------------------ Alertmanager's own posts

    async def _post_job(self, job: Job) -> None:
        post = post_from_doc(job.payload["post"])
        channel, ts = str(job.payload["channel"]), str(job.payload["ts"])
        if post.status == "resolved":
            jobs = await self._resolved_post(post, channel)
        elif self.fetch_active is None:
            log.warning("an alert post in %s can't be matched: Alertmanager is not configured (set "
                        "ALERTMANAGER_URL)", channel)
            jobs = []
        else:
            alerts = match_post(post, await self.fetch_active())  # Alertmanager down: retried
            if not alerts:
                log.info("no active alert matches the post %r in %s; not replying", post.title, channel)
            jobs = await self._firing_post(alerts, channel, ts)
        await self.worker.submit(jobs)
        await self.store.put(keys.post_seen(channel, ts), {}, ttl=POST_SEEN_TTL)

    async def _firing_post(self, alerts: list[Alert], channel: str, ts: str) -> list[NewJob]:
        """One thread for the post's alerts, under the post. Alerts already in an open thread as
        this very firing (Alertmanager posting its group again, repeat_interval) go to that thread
        instead (its "still firing" note); an alert firing anew leaves its older thread (resolved
        there)."""
        known: dict[str, AlertThread] = {}
        for thread in await self._open_post_threads():
            for member in thread.firing():
                known[member.fingerprint] = thread
        told: dict[str, tuple[AlertThread, list[Alert]]] = {}  # older threads: repeats, and ends of refired
        new = []
        for alert in alerts:
            holder = known.get(alert.fingerprint)
            if holder is None:
                new.append(alert)
                continue
            held = next(m for m in holder.firing() if m.fingerprint == alert.fingerprint)
            if held.starts_at == alert.starts_at:
                told.setdefault(holder.key, (holder, []))[1].append(alert)  # the same firing, posted again
                continue
            ended = alert.starts_at or datetime.fromtimestamp(self.clock.now(), timezone.utc)
            told.setdefault(holder.key, (holder, []))[1].append(_resolved(held, ended))
            new.append(alert)
        jobs = [_thread_job("post", Notice(id=t.fingerprint, alerts=tuple(a))) for t, a in told.values()]
        if new:
            notice = Notice(id=post_thread_id(channel, ts), alerts=tuple(new))
            jobs.append(_thread_job("post", notice, channel=channel, ts=ts))
        return jobs

    async def _open_post_threads(self, channel: str | None = None) -> list[AlertThread]:
        """The firing threads under Alertmanager's posts (in `channel`, if given)."""
        out = []
        for thread_id in await self.store.members(keys.OPEN_POST_THREADS):
            thread = await load_thread(self.store, keys.thread("post", thread_id))
            if thread is None or thread.status != "firing":
                await self.store.discard(keys.OPEN_POST_THREADS, thread_id)  # expired or resolved
            elif channel is None or thread.channel == channel:
                out.append(thread)
        return out

    async def _resolved_post(self, post: AlertPost, channel: str) -> list[NewJob]:
        # The RESOLVED post's alerts are no longer active: match it against the open threads' alerts.
        threads = await self._open_post_threads(channel)
        members = {(a.fingerprint, thread.key): (thread, a) for thread in threads for a in thread.firing()}
        matched = match_post(post, [a for _, a in members.values()])
        if not matched:
            return []
        active = {a.fingerprint for a in await self.fetch_active(fresh=True)} if self.fetch_active else set()
        now = datetime.fromtimestamp(self.clock.now(), timezone.utc)
        ended: dict[str, tuple[AlertThread, list[Alert]]] = {}
        for (fingerprint, key), (thread, alert) in members.items():
            if fingerprint not in active and any(m.fingerprint == fingerprint for m in matched):
                ended.setdefault(key, (thread, []))[1].append(_resolved(alert, now))
        return [_thread_job("post", Notice(id=t.fingerprint, alerts=tuple(a))) for t, a in ended.values()]

    async def still_active(self, thread: AlertThread) -> bool:
        """Is an Alertmanager post's alert still active, by Alertmanager's API (asked fresh)? Its
        receiver may send no resolution (send_resolved off): when it is gone from the API, the
        thread is resolved now (a thread job) and False is the answer. True when Alertmanager
        can't be asked: a deadline then escalates rather than wait on a monitoring outage."""
        if self.fetch_active is None:
            return True
        try:
            active = {a.fingerprint for a in await self.fetch_active(fresh=True)}
        except Exception as e:  # noqa: BLE001 - unknown is treated as still firing
            log_failure(log, e, "could not ask Alertmanager whether %s still fires", thread.alertname)
            return True
        gone = [m for m in thread.firing() if m.fingerprint not in active]
        if gone:
            now = datetime.fromtimestamp(self.clock.now(), timezone.utc)
            await self.worker.submit([_thread_job("post", Notice(
                id=thread.fingerprint, alerts=tuple(_resolved(m, now) for m in gone)))])
        return len(gone) < len(thread.firing())

    # ------------------------------------------------------------------ one thread, up to date

    async def _thread_job(self, job: Job) -> None:
        source: ThreadSource = job.payload["source"]
        notice = Notice.from_payload(job.payload)
        key = keys.thread(source, notice.id)
        before = await load_thread(self.store, key)
        opening = before is None or not before.continues(notice)
        if opening and not notice.firing and source == "post":
            return  # no thread of ours to resolve
        thread = await self._take(key, notice, job, before)
        if thread.status == "firing" and self.incidents is not None:
            # The SLA's timers and the related-alerts count first: paging must not wait on Slack.
            thread = await self.incidents.firing(key, thread)
        if source == "webhook" and not thread.ts:
            thread = await self._post_alert(key, thread)
        elif source == "webhook" and thread.shown < thread.revision and thread.status == "firing":
            await self.show(key)  # alerts joined or resolved: the post lists them
        if thread.status == "firing" and not await self._resolving(job):
            await self._investigate(key, thread)
        if thread.status == "resolved":
            if not thread.resolved_noted:
                await self._resolve(key, thread)
            if source == "post":
                await self.store.discard(keys.OPEN_POST_THREADS, thread.fingerprint)
        elif not opening and notice.firing:
            await self._still_firing(key, thread)

    async def _take(self, key: str, notice: Notice, job: Job, before: AlertThread | None) -> AlertThread:
        """The thread of this notification's firing: opened (after ending an older firing's thread
        that was never resolved), or the one there is with the notification's news."""
        if before is None or not before.continues(notice):
            if before is not None and not before.resolved_noted:
                await self._close_previous(key, before, notice)
            channel = str(job.payload.get("channel") or self.config.channel_for(worst_severity(notice.alerts)))
            return await self._open(key, notice, job.payload["source"], channel, str(job.payload.get("ts") or ""))
        now = self._now()
        return await self._change(key, before, lambda t: t.merged(notice, now))

    def _now(self) -> str:
        return iso(datetime.fromtimestamp(self.clock.now(), timezone.utc))

    async def _resolving(self, job: Job) -> bool:
        """Has a resolution of this firing arrived while this job ran (merged into it, to run next)?
        Then the investigation is not started: the next run resolves the thread instead."""
        latest = await self.store.job(job.id)
        if latest is None or latest.payload == job.payload:
            return False
        newer, current = Notice.from_payload(latest.payload), Notice.from_payload(job.payload)
        ours = {(a.fingerprint, iso(a.starts_at)) for a in current.alerts}
        return not newer.firing and any((a.fingerprint, iso(a.starts_at)) in ours for a in newer.alerts)

    async def _change(self, key: str, alert: Alert | AlertThread,
                      change: Callable[[AlertThread], AlertThread]) -> AlertThread:
        """Change this firing's thread by compare-and-set; a thread of another firing is left alone."""
        starts_at = alert.starts_at if isinstance(alert, AlertThread) else iso(alert.starts_at)

        def apply(thread: AlertThread | None) -> AlertThread | None:
            if thread is None or (starts_at and thread.starts_at != starts_at):
                return thread
            return change(thread)

        thread = await change_thread(self.store, key, apply)
        if thread is None or (starts_at and thread.starts_at != starts_at):
            raise RuntimeError(f"{key}: the thread of the firing at {starts_at} is gone")
        return thread

    async def _open(self, key: str, notice: Notice, source: ThreadSource, channel: str, ts: str) -> AlertThread:
        now = self.clock.now()

        def open_(thread: AlertThread | None) -> AlertThread:
            if thread is not None and thread.continues(notice):
                return thread  # opened meanwhile (another replica, after a lost lease)
            return AlertThread.open_notice(notice, source, channel, ts, now)

        thread = await change_thread(self.store, key, open_)
        assert thread is not None
        if source == "post" and thread.status == "firing":
            await self.store.add(keys.OPEN_POST_THREADS, thread.fingerprint)
        if source == "post" and self.incidents is not None:
            await self.incidents.remember_root(channel, ts, key)
        return thread

    async def _close_previous(self, key: str, previous: AlertThread, notice: Notice) -> None:
        """The alert (the group) fires again while the thread of its previous firing was never
        resolved: its resolution was not sent (send_resolved off), or is still being worked on and
        was merged away by this newer notification. Alertmanager starts a new firing only after the
        previous one ended, so that thread ends now, before the new one opens."""
        starts = [a.starts_at for a in notice.alerts if a.status == "firing" and a.starts_at is not None]
        again = min(starts) if starts else datetime.fromtimestamp(self.clock.now(), timezone.utc)
        old = await self._change(key, previous, lambda t: t.ended(t.ends_at or iso(again)))
        if old.source == "webhook" and not old.ts:
            old = await self._post_alert(key, old)
        if old.ts:
            note = (f":white_check_mark: Resolved before it fired again at {again.strftime('%H:%M UTC')} "
                    f"(within {spoken_duration(self._lasted(old))}); a new thread follows.")
            await self._resolve(key, old, note)
        if old.source == "post":
            await self.store.discard(keys.OPEN_POST_THREADS, old.fingerprint)

    def _root_message(self, thread: AlertThread) -> Message:
        """The bot's own post of a webhook thread: its alert, or its group listing the alerts."""
        members = thread.members()
        view = members[0] if len(members) == 1 else thread.alert()
        lasted = self._lasted(thread) if thread.status == "resolved" else None
        acked, buttons = acked_line(thread), []
        if self.incidents is not None and thread.status == "firing" and not acked:
            buttons = ack_blocks(thread)
        return alert_message(view, self.links(view), resolved_after=lasted,
                             members=members if len(members) > 1 or thread.left_out else (),
                             left_out=thread.left_out, acked=acked, buttons=buttons)

    async def _post_alert(self, key: str, thread: AlertThread) -> AlertThread:
        """The bot's own post of a webhook thread, once; as resolved if it already is."""
        posted = await self._post_once(key, thread, "root", self._root_message(thread))
        if self.incidents is not None:
            await self.incidents.remember_root(posted.channel, posted.ts, key)
        revision = thread.revision
        return await self._change(key, thread, lambda t: t.replace(
            ts=posted.ts, channel=posted.channel, shown=max(t.shown, revision)))

    async def show(self, key: str) -> None:
        """Have the bot's post show the thread as stored: by one job per thread, which reads the
        thread when it runs (an edit never lands after a newer one; a failed one is retried)."""
        await self.worker.submit([NewJob(id=keys.render_thread(key), kind=keys.KIND_RENDER_THREAD,
                                         lane=keys.LANE_ALERTS, payload={"thread": key})])

    async def _render_job(self, job: Job) -> None:
        key = str(job.payload["thread"])
        thread = await load_thread(self.store, key)
        if thread is None or thread.source != "webhook" or not thread.ts:
            return  # not posted (yet): the post shows the thread as it is then
        message = self._root_message(thread)
        await self.poster.update(thread.channel, thread.ts, message.text, message.blocks)
        revision = thread.revision
        await change_thread(self.store, key, lambda t: t.replace(shown=max(t.shown, revision)) if t else t)

    async def _still_firing(self, key: str, thread: AlertThread) -> None:
        """A repeat notification: silent within the cool-down, then one note per cool-down window."""
        unfinished = [(n, r) for n, r in thread.posts.items() if n.startswith("note:") and not r.ts]
        if unfinished:  # decided before a crash or a Slack failure: finish that one
            (name, record), fresh = unfinished[0], False
        else:
            now = self.clock.now()
            cooldown = self.config.cooldown
            name = f"note:{int(now // cooldown) if cooldown else now:.0f}"
            record, fresh = PostRecord.new(now), True

            def decide(t: AlertThread) -> AlertThread:
                # Re-applied to the newest thread on a conflict: a resolution stored meanwhile wins.
                if t.status != "firing" or now - t.last_note < cooldown or name in t.posts:
                    return t
                older = {k: v for k, v in t.posts.items() if not k.startswith("note:")}
                return t.replace(last_note=now, posts={**older, name: record})

            thread = await self._change(key, thread, decide)
            if thread.posts.get(name) != record:
                return  # not due, resolved meanwhile, or noted by someone else
        firing_for = spoken_duration(record.at - datetime.fromisoformat(thread.starts_at).timestamp())
        text = f":repeat: Still firing for {firing_for}."
        await self._post_once(key, thread, name, Message(text=text, blocks=[]), thread_ts=thread.ts, fresh=fresh)

    async def _resolve(self, key: str, thread: AlertThread, note: str = "") -> None:
        """Edit the bot's own post to RESOLVED (always: an edit is idempotent, and a post found
        after a lost answer may read either way), then end the thread with a note, once."""
        if self.incidents is not None:
            await self.incidents.resolved(key, thread)  # timers stopped; PagerDuty told: before any Slack call
        lasted = self._lasted(thread)
        if thread.source == "webhook" and note:
            # An older firing's post, ended as a newer one opens at the same key: edited here, as the
            # render job would read the newer firing.
            message = self._root_message(thread)
            await self.poster.update(thread.channel, thread.ts, message.text, message.blocks)
        elif thread.source == "webhook":
            await self.show(key)
        text = note or f":white_check_mark: Resolved after {spoken_duration(lasted)}."
        blocks = postmortem_blocks(text, thread) if self.incidents is not None else []
        await self._post_once(key, thread, "resolved", Message(text=text, blocks=blocks), thread_ts=thread.ts)
        await self._change(key, thread, lambda t: t.replace(resolved_noted=True))

    def _lasted(self, thread: AlertThread) -> float:
        started = datetime.fromisoformat(thread.starts_at).timestamp()
        ended = datetime.fromisoformat(thread.ends_at).timestamp() if thread.ends_at else self.clock.now()
        return ended - started

    async def post_in_thread(self, key: str, thread: AlertThread, name: str, message: Message) -> Posted:
        """A reply in the thread, posted once under `name` (its record kept in the thread's posts).
        A thread whose root is not posted yet (the bot's alert post waits for Slack: an escalation
        can come first) has no place for it: TemporaryError, and the job tries again later."""
        if not thread.ts:
            thread = await load_thread(self.store, key) or thread
        if not thread.ts:
            raise TemporaryError("the alert's post is not made yet; the reply in its thread waits for it")
        return await self._post_once(key, thread, name, message, thread_ts=thread.ts)

    async def _post_once(self, key: str, thread: AlertThread, name: str, message: Message,
                         thread_ts: str | None = None, fresh: bool = False) -> Posted:
        ledger = StoreLedger(self.store, key, ("posts", name), THREAD_TTL)
        return await post_once(self.poster, ledger, thread.channel, message.text, message.blocks or None,
                               clock=self.clock, thread_ts=thread_ts, fresh=fresh)

    # ------------------------------------------------------------------ the investigation

    async def _investigate(self, key: str, thread: AlertThread) -> None:
        """Start the investigation's round that is due: the one planned, or a new one for the
        distinct steps of alerts that joined since (none when their steps were all taken)."""
        if thread.investigation != "pending":
            thread = await self._plan_round(key, thread)
            if thread.investigation != "pending":
                return
        await self.worker.submit([NewJob(
            id=keys.investigation(key, thread.starts_at, thread.round), kind=keys.KIND_INVESTIGATE,
            lane=keys.LANE_INVESTIGATIONS,
            payload={"thread": key, "starts_at": thread.starts_at, "round": thread.round})])

    async def _plan_round(self, key: str, thread: AlertThread) -> AlertThread:
        planned = set(thread.planned)
        joined = [a for a in thread.firing() if a.fingerprint not in planned]
        if thread.investigation == "skipped" or not joined:
            return thread
        seen = set(thread.steps_seen)
        new = [step.text for step in await self._distinct_steps(joined) if step.text not in seen]
        fingerprints = tuple(a.fingerprint for a in joined)

        def plan(t: AlertThread) -> AlertThread:
            if t.status != "firing" or t.investigation != "done" or set(fingerprints) <= set(t.planned):
                return t  # resolved, planned or started meanwhile
            t = t.replace(planned=t.planned + tuple(f for f in fingerprints if f not in t.planned))
            if not new:
                return t  # nothing the earlier rounds did not take
            return t.replace(round=t.round + 1, investigation="pending", steps_seen=t.steps_seen + tuple(new),
                             round_steps=tuple(new[:ROUND_STEPS]), round_skipped=tuple(new[ROUND_STEPS:]))

        return await self._change(key, thread, plan)

    async def _investigate_job(self, job: Job) -> None:
        key = str(job.payload["thread"])
        thread = await load_thread(self.store, key)
        number = int(job.payload.get("round") or 1)
        if (thread is None or thread.starts_at != job.payload["starts_at"] or thread.investigation != "pending"
                or thread.round != number):
            return
        if number == 1 and not thread.planned:
            thread = await self._plan_first_round(key, thread)
        alert = thread.alert()
        steps = await self._round_steps(thread)
        actions = list(self.playbooks.for_alert(alert).actions)
        name = thread.reply_name
        if thread.reply_final is None:
            thread = await self._run_playbook(key, thread, name, steps, actions)
        assert thread.reply_final is not None
        reply = thread.posts[name]
        # The finished reply; a failure here is retried from the stored message, not re-run.
        await self.poster.update(reply.channel or thread.channel, reply.ts, str(thread.reply_final["text"]),
                                 list(thread.reply_final["blocks"]))
        thread = await self._change(key, thread, lambda t: t.replace(investigation="done", reply_final=None)
                                    if t.round == number and t.investigation == "pending" else t)
        if thread.status == "firing":
            await self._investigate(key, thread)  # alerts that joined while this round ran

    async def _plan_first_round(self, key: str, thread: AlertThread) -> AlertThread:
        """The opening round: the distinct steps of the alerts firing when it starts."""
        firing = thread.firing() or thread.members()
        texts = [step.text for step in await self._distinct_steps(firing)]
        fingerprints = tuple(a.fingerprint for a in firing)
        return await self._change(key, thread, lambda t: t if t.planned else t.replace(
            planned=fingerprints, steps_seen=tuple(texts), round_steps=tuple(texts[:ROUND_STEPS]),
            round_skipped=tuple(texts[ROUND_STEPS:])))

    async def _distinct_steps(self, alerts: Sequence[Alert], wanted: Collection[str] = ()) -> list[Step]:
        """The alerts' steps, each distinct one once, in order (only `wanted` ones, if given: then it
        stops once it has them). Filling steps takes ~0.3 ms an alert: the loop gets a turn between
        every STEP_BATCH alerts, so a 300-alert group never holds it 50 ms."""
        found: dict[str, Step] = {}
        for index, alert in enumerate(alerts):
            if wanted and not set(wanted) - found.keys():
                break
            if index and index % STEP_BATCH == 0:
                await asyncio.sleep(0)
            for step in self.steps.for_alert(alert):
                if not wanted or step.text in wanted:
                    found.setdefault(step.text, step)
        return list(found.values())

    async def _round_steps(self, thread: AlertThread) -> list[Step]:
        """This round's steps, filled from the alerts they came from (an alert's steps depend on the
        alert alone, so the first alert giving a step's text gives that step)."""
        found = {step.text: step for step in await self._distinct_steps(thread.members(), thread.round_steps)}
        return [found[text] for text in thread.round_steps if text in found]

    async def _run_playbook(self, key: str, thread: AlertThread, name: str, playbook: list[Step],
                            actions: list[str]) -> AlertThread:
        alert = thread.alert()
        steps = [step.text for step in playbook]
        results: list[list[Result] | None] = [None] * len(steps)
        offers = self.offers(key, actions) if self.offers is not None and thread.round == 1 else []
        if self.incidents is not None and thread.source == "post" and thread.round == 1 and not thread.acked_by:
            offers = ack_blocks(thread) + offers  # Alertmanager's post can't carry the bot's button
        count, skipped, joined = len(thread.members()), thread.round_skipped, thread.round > 1

        def message() -> Message:
            return investigation_message(alert, steps, results, actions, self.settings.command, offers,
                                         skipped=skipped, alerts=count, joined=joined)

        reply = await self._post_once(key, thread, name, message(), thread_ts=thread.ts)

        async def edit() -> None:
            current = message()
            await self.poster.update(reply.channel, reply.ts, current.text, current.blocks)

        editor = _Editor(edit, self.config.edit_interval)

        async def run(index: int, step: Step) -> None:
            results[index] = await self._run_step(step)
            editor.poke()

        try:
            await asyncio.gather(*(run(i, s) for i, s in enumerate(playbook)))
        finally:
            await editor.stop()
        final = message()
        found = tuple(f"{r.title}: {r.summary}" for done in results if done for r in done if not r.status.is_healthy)
        thread = await self._change(key, thread, lambda t: t.replace(
            reply_final={"text": final.text, "blocks": final.blocks},
            findings=t.findings + tuple(f for f in found if f not in t.findings)))
        for result in (r for done in results if done for r in done):
            for file in result.files:
                try:
                    await self.poster.upload(thread.channel, file, thread_ts=thread.ts)
                except Exception as e:  # noqa: BLE001 - a chart that fails to upload is not fatal
                    log.warning("uploading %s failed: %s", file.filename, describe_exception(e))
        return thread

    async def _run_step(self, step: Step) -> list[Result]:
        if step.invocation is None:  # a label it lacks, a value that doesn't fit: the other steps still run
            return [Result.error(step.text, "playbook step skipped: " + step.problem)]
        try:
            report = await execute(step.invocation, self.context)
        except Exception as e:  # noqa: BLE001 - the other steps still post
            log_failure(log, e, "playbook step %r failed", step.text)
            return [Result.error(step.text, describe_exception(e))]
        return report.results


def _thread_job(source: ThreadSource, notice: Notice, *, channel: str = "", ts: str = "") -> NewJob:
    payload: dict[str, Any] = {"source": source, "notice": notice.to_doc()}
    if channel:
        payload.update(channel=channel, ts=ts)
    return NewJob(id=keys.thread(source, notice.id), kind=keys.KIND_THREAD, lane=keys.LANE_ALERTS,
                  payload=payload)


def _resolved(alert: Alert, when: datetime) -> Alert:
    from dataclasses import replace

    return replace(alert, status="resolved", ends_at=when)


class _Editor:
    """Edits a reply as results arrive: at most one edit per `interval`. Best effort: the finished
    reply is edited by the caller, durably, after `stop()`."""

    def __init__(self, edit: Callable[[], Awaitable[None]], interval: float) -> None:
        self._edit = edit
        self._interval = interval
        self._pending = False
        self._task: asyncio.Task[None] | None = None

    def poke(self) -> None:
        self._pending = True
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while self._pending:
            self._pending = False
            try:
                await self._edit()
            except Exception as e:  # noqa: BLE001 - the next edit carries the same results
                log.warning("editing an investigation reply failed: %s", describe_exception(e))
            await asyncio.sleep(self._interval)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
