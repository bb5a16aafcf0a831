"""Every alert gets the runbook's playbook in its thread, from firing to resolved.

Two ways in, one lifecycle:
- webhook: the bot posts the alert itself (to the channel for its severity) and threads
  the investigation under its own post; resolved edits that post;
- Alertmanager's own Slack post: matched to its alerts, the investigation goes in the
  post's thread; resolved is a thread reply.
Which threads exist is kept in the state store, so a retry, a repeat notification or a
restart never opens a second thread; a repeat within the cool-down is silent, after it
the thread gets "still firing for 47 min".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable, Literal, Mapping

from bot.alerting.model import Alert, Notification
from bot.alerting.ingest import AlertPost, match_post
from bot.commands.parser import CommandTable
from bot.commands.model import Context
from bot.errors import ConfigError
from bot.settings import Settings
from bot.errors import UsageError
from bot.alerting.config import AlertSettings
from bot.alerting.playbooks import MISSING_PREFIX, Playbooks
from bot.slack.poster import Poster
from bot.slack.render_alerts import alert_message, investigation_message
from diagnostics.durations import spoken_duration
from bot.commands.report import describe_exception
from bot.commands.execute import execute
from bot.state.store import Store
from diagnostics.http_api import BackendError
from diagnostics.result import Result

log = logging.getLogger(__name__)

Source = Literal["webhook", "post"]
THREAD_TTL = 30 * 86400.0  # state of a thread is kept a month, then forgotten
OPEN_POST_THREADS = "open-post-threads"  # fingerprints whose Alertmanager-post thread is firing


def _iso(when: datetime | None) -> str:
    return (when or datetime.now(timezone.utc)).isoformat()


class AlertThreads:
    def __init__(
        self,
        *,
        settings: Settings,
        config: AlertSettings,
        store: Store,
        poster: Poster,
        playbooks: Playbooks,
        table: CommandTable,
        context: Context,
        fetch_active: Callable[..., Awaitable[list[Alert]]] | None,
        links: Callable[[Alert], list[tuple[str, str]]] = lambda alert: [],
        track: Callable[[], contextlib.AbstractAsyncContextManager[None]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.config = config
        self.store = store
        self.poster = poster
        self.playbooks = playbooks
        self.table = table
        self.context = context
        self.fetch_active = fetch_active
        self.links = links
        self.track = track or (lambda: contextlib.nullcontext())  # type: ignore[return-value]
        self.clock = clock
        self._slots = asyncio.Semaphore(config.concurrency)
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ entry points

    def accept_notification(self, notification: Notification) -> int:
        """Webhook: take the group alert by alert, in the background; returns how many."""
        for alert in notification.alerts:
            self._spawn(self._webhook_alert(alert))
        return len(notification.alerts)

    def accept_post(self, post: AlertPost, channel: str, ts: str) -> None:
        """An Alertmanager post seen in a channel, handled in the background."""
        self._spawn(self._post(post, channel, ts))

    async def drain(self) -> None:
        """Wait for everything accepted so far (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _spawn(self, work: Awaitable[None]) -> None:
        async def run() -> None:
            async with self.track():
                try:
                    await work
                except BackendError as e:  # Alertmanager down: one line says so, no traceback
                    log.warning("alert not handled: %s", e)
                except Exception:  # noqa: BLE001 - one alert's failure must not stop the others
                    log.exception("alert handling failed")

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ webhook

    async def _webhook_alert(self, alert: Alert) -> None:
        key = f"thread:webhook:{alert.fingerprint}"
        if alert.status == "resolved":
            await self._resolve(key, alert)
            return
        state = await self.store.get(key)
        if _same_firing(state, alert):
            await self._repeat(key, state)  # type: ignore[arg-type]
            return
        # Exactly one opener per firing, across retries, replicas and restarts.
        claim = f"open:webhook:{alert.fingerprint}:{_iso(alert.starts_at)}"
        if not await self.store.claim(claim, THREAD_TTL):
            return
        channel = self.config.channel_for(alert.severity)
        message = alert_message(alert, self.links(alert))
        try:
            posted = await self.poster.post(channel, message.text, message.blocks)
            state = self._new_state(alert, "webhook", str(posted.get("channel") or channel), str(posted["ts"]))
            await self.store.put(key, state, ttl=THREAD_TTL)
        except BaseException:
            # Nothing was opened: let the next notification of this firing try again.
            await self.store.delete(claim)
            raise
        # Resolved while this post waited its turn (a storm): say so instead of investigating.
        early = await self.store.get(f"resolved:{key}:{state['starts_at']}")
        if early:
            await self._resolve(key, _with_end(alert, early.get("ends_at")))
            return
        await self._investigate(key, state, alert)

    # ------------------------------------------------------------------ Alertmanager's own posts

    async def _post(self, post: AlertPost, channel: str, ts: str) -> None:
        if post.status == "resolved":
            await self._resolve_post(post, channel)
            return
        if self.fetch_active is None:
            log.warning("an alert post in %s can't be matched: Alertmanager is not configured (set ALERTMANAGER_URL)",
                        channel)
            return
        alerts = match_post(post, await self.fetch_active())
        if not alerts:
            log.info("no active alert matches the post %r in %s; not replying", post.title, channel)
            return
        for alert in alerts:
            key = f"thread:post:{alert.fingerprint}"
            state = await self.store.get(key)
            if _same_firing(state, alert):
                await self._repeat(key, state)  # type: ignore[arg-type]
                continue
            claim = f"open:post:{alert.fingerprint}:{_iso(alert.starts_at)}"
            if not await self.store.claim(claim, THREAD_TTL):
                continue
            state = self._new_state(alert, "post", channel, ts)
            try:
                await self.store.put(key, state, ttl=THREAD_TTL)
            except BaseException:
                await self.store.delete(claim)
                raise
            await self.store.add(OPEN_POST_THREADS, alert.fingerprint)
            await self._investigate(key, state, alert)

    async def _resolve_post(self, post: AlertPost, channel: str) -> None:
        # The RESOLVED post's alerts are no longer active: match it against the open threads.
        candidates = []
        for fingerprint in await self.store.members(OPEN_POST_THREADS):
            state = await self.store.get(f"thread:post:{fingerprint}")
            if not state or state.get("status") != "firing":
                await self.store.discard(OPEN_POST_THREADS, fingerprint)  # expired or resolved
            elif state.get("channel") == channel:
                candidates.append(_stored_alert(state))
        active = {a.fingerprint for a in await self.fetch_active(fresh=True)} if self.fetch_active else set()
        for alert in match_post(post, candidates):
            if alert.fingerprint not in active:
                await self._resolve(f"thread:post:{alert.fingerprint}", alert)
                await self.store.discard(OPEN_POST_THREADS, alert.fingerprint)

    # ------------------------------------------------------------------ lifecycle

    def _new_state(self, alert: Alert, source: Source, channel: str, ts: str) -> dict[str, Any]:
        return {
            "fingerprint": alert.fingerprint,
            "alertname": alert.name,
            "labels": dict(alert.labels),
            "annotations": dict(alert.annotations),
            "generator_url": alert.generator_url,
            "starts_at": _iso(alert.starts_at),
            "source": source,
            "channel": channel,
            "ts": ts,
            "status": "firing",
            "last_note": self.clock(),
        }

    async def _repeat(self, key: str, state: dict[str, Any]) -> None:
        now = self.clock()
        if now - float(state.get("last_note", 0)) < self.config.cooldown:
            return
        # Two repeats at once (replicas, retries) must make one note: one claim per window.
        window = int(now // self.config.cooldown) if self.config.cooldown else now
        if not await self.store.claim(f"note:{key}:{state['starts_at']}:{window}", THREAD_TTL):
            return
        state["last_note"] = now
        await self.store.put(key, state, ttl=THREAD_TTL)
        firing_for = spoken_duration(now - datetime.fromisoformat(state["starts_at"]).timestamp())
        await self.poster.post(state["channel"], f":repeat: Still firing for {firing_for}.", thread_ts=state["ts"])

    async def _resolve(self, key: str, alert: Alert) -> None:
        state = await self.store.get(key)
        if not _same_firing(state, alert):
            # Not opened yet (its post is still queued in a storm): leave word for the opener.
            await self.store.put(f"resolved:{key}:{_iso(alert.starts_at)}",
                                 {"ends_at": _iso(alert.ends_at) if alert.ends_at else None}, ttl=THREAD_TTL)
            return
        assert state is not None
        if not await self.store.claim(f"resolve:{key}:{state['starts_at']}", THREAD_TTL):
            return
        ended = alert.ends_at.timestamp() if alert.ends_at else self.clock()
        lasted = ended - datetime.fromisoformat(state["starts_at"]).timestamp()
        state["status"] = "resolved"
        await self.store.put(key, state, ttl=THREAD_TTL)
        if state["source"] == "webhook":
            stored = _stored_alert(state)
            message = alert_message(stored, self.links(stored), resolved_after=lasted)
            await self.poster.update(state["channel"], state["ts"], message.text, message.blocks)
        await self.poster.post(state["channel"], f":white_check_mark: Resolved after {spoken_duration(lasted)}.",
                               thread_ts=state["ts"])

    async def _investigate(self, key: str, state: dict[str, Any], alert: Alert) -> None:
        async with self._slots:
            steps = self.playbooks.commands(alert)
            actions = list(self.playbooks.for_alert(alert).actions)
            results: list[list[Result] | None] = [None] * len(steps)
            first = investigation_message(alert, steps, results, actions, self.settings.command)
            reply = await self.poster.post(state["channel"], first.text, first.blocks, thread_ts=state["ts"])
            reply_ts = str(reply["ts"])
            editor = _Editor(lambda: self._edit(state["channel"], reply_ts, alert, steps, results, actions),
                             self.config.edit_interval)

            async def run(index: int, step: str) -> None:
                results[index] = await self._run_step(step)
                editor.poke()

            await asyncio.gather(*(run(i, s) for i, s in enumerate(steps)))
            await editor.finish()
            for result in (r for done in results if done for r in done):
                for file in result.files:
                    try:
                        await self.poster.upload(state["channel"], file, thread_ts=state["ts"])
                    except Exception as e:  # noqa: BLE001 - a chart that fails to upload is not fatal
                        log.warning("uploading %s failed: %s", file.filename, describe_exception(e))

    async def _edit(self, channel: str, ts: str, alert: Alert, steps: list[str],
                    results: list[list[Result] | None], actions: list[str]) -> None:
        message = investigation_message(alert, steps, results, actions, self.settings.command)
        await self.poster.update(channel, ts, message.text, message.blocks)

    async def _run_step(self, step: str) -> list[Result]:
        if step.startswith(MISSING_PREFIX):
            return [Result.error(step[len(MISSING_PREFIX):], "playbook step skipped: " + step[len(MISSING_PREFIX):])]
        try:
            invocation = self.table.parse(step, self.settings.default_namespace)
        except UsageError as e:
            return [Result.error(step, f"playbook step is not a valid command: {e.message}")]
        try:
            report = await execute(invocation, self.context)
        except (Exception, asyncio.CancelledError) as e:  # noqa: BLE001 - the other steps still post
            if isinstance(e, asyncio.CancelledError) and asyncio.current_task().cancelling():  # type: ignore[union-attr]
                raise  # we are being stopped, not a step that was cancelled under us
            log.exception("playbook step %r failed", step)
            return [Result.error(step, describe_exception(e))]
        return report.results


def _same_firing(state: Mapping[str, Any] | None, alert: Alert) -> bool:
    """Is `state` an open thread for this very firing (not an older one of the same alert)?"""
    return bool(state) and state.get("status") == "firing" and (  # type: ignore[union-attr]
        alert.starts_at is None or state.get("starts_at") == _iso(alert.starts_at))  # type: ignore[union-attr]


def _with_end(alert: Alert, ends_at: str | None) -> Alert:
    from dataclasses import replace

    return replace(alert, status="resolved", ends_at=datetime.fromisoformat(ends_at) if ends_at else None)


def _stored_alert(state: Mapping[str, Any]) -> Alert:
    return Alert(
        fingerprint=state["fingerprint"], status="firing", labels=state.get("labels", {}),
        annotations=state.get("annotations", {}), starts_at=datetime.fromisoformat(state["starts_at"]),
        generator_url=state.get("generator_url", ""),
    )


class _Editor:
    """Edits a reply as results arrive: at most one edit per `interval`, the last one always."""

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

    async def finish(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._edit()
