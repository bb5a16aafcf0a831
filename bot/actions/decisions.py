"""What happens to a request after it is posted: clicks, execution, expiry. Each a job.

    click:{request}:{user}:{action_ts}   Approve / Cancel / Revert, checked on the server every time
    execute:{request}                    apply the approved change once, record how it ended
    expire:{request}                     the durable timer at the expiry

Every transition is a compare-and-set marked with the job that made it (bot.actions.desk), so
two clicks on two replicas at once approve once, and a job retried after a crash finishes what
it started (the audit entry, the edit, the next job) without doing it twice.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from typing import Any

from bot.actions.desk import Desk
from bot.actions.render import user
from bot.actions.request import (
    APPROVED,
    CANCELLED,
    CHANGED,
    DONE,
    EXECUTING,
    EXPIRED,
    FAILED,
    PENDING,
    ActionRequest,
    change_request,
    load_request,
)
from bot.errors import PermanentError, TemporaryError
from bot.slack.mrkdwn import safe
from bot.state import keys
from bot.state.store import Job
from diagnostics.durations import spoken_duration
from operations.model import ChangedSincePreview, OperationError


def request_id_for(job_id: str) -> str:
    """A request's id, derived from the job that makes it: a retried job finds its request."""
    return "r" + hashlib.sha256(job_id.encode()).hexdigest()[:16]


class Decisions:
    def __init__(self, desk: Desk) -> None:
        self.desk = desk
        desk.worker.handle(keys.KIND_ACTION_CLICK, self._click)
        desk.worker.handle(keys.KIND_ACTION_EXECUTE, self._execute)
        desk.worker.handle(keys.KIND_ACTION_EXPIRE, self._expire)

    # ------------------------------------------------------------------ clicks

    async def _click(self, job: Job) -> None:
        click = dict(job.payload)
        request = await load_request(self.desk.store, str(click["request"])) if click["request"] else None
        if request is None:
            reason = "this request is no longer known (requests are kept 7 days)" if click["request"] else \
                "this button is not one of the bot's requests"
            await self.desk.audit.refused_unknown(str(click["request"]), str(click["user_id"]),
                                                  str(click["user_name"]), reason, key=job.id)
            await self.desk.tell(str(click["channel"]), str(click["user_id"]),
                                 f":grey_question: {reason.capitalize()}; nothing changed.", str(click["response_url"]))
            return
        if request.team and click.get("team") and click["team"] != request.team:
            await self._refuse(job, request, click, "only people of the workspace the request was made in may act "
                                                    "on it")
            return
        handler = {"approve": self._approve, "cancel": self._cancel, "revert": self._revert}[str(click["button"])]
        await handler(job, request, click)

    async def _approve(self, job: Job, request: ActionRequest, click: dict[str, Any]) -> None:
        clicker = str(click["user_id"])
        if request.decided_by == job.id and request.by_job != job.id:
            return  # this click approved it, and the execution has taken over
        expired_by_me = request.status == EXPIRED and request.by_job == job.id  # before a retry of this click
        if (request.status == PENDING and self.desk.clock.now() >= request.expires_at) or expired_by_me:
            request = await self._expire_now(request, job)
        if request.status != PENDING and request.by_job != job.id:
            await self._refuse(job, request, click, *_not_pending(request))
            return
        if request.status == PENDING:
            decision = await self.desk.authorizer.may_approve(clicker, request.action, request.namespace or None,
                                                              request.requester)
            if not decision.allowed:
                await self._refuse(job, request, click, decision.reason)
                return
        stored, mine = await self.desk.transition(request.id, PENDING, job, status=APPROVED, approver=clicker,
                                                  approver_name=str(click["user_name"]), decided_by=job.id,
                                                  approved_at=self.desk.clock.now())
        assert stored is not None
        if not mine:
            if stored.decided_by != job.id:  # else this click decided it, and the execution took over
                await self._refuse(job, stored, click, *_not_pending(stored))
            return
        await self.desk.audit.record("approved", await self.desk.with_permalink(stored), clicker,
                                     user_name=str(click["user_name"]))
        await self.desk.store.cancel(keys.expire(stored.id))
        await self.desk.submit(keys.execute(stored.id), keys.KIND_ACTION_EXECUTE, {"request": stored.id})
        await self.desk.show(stored.id)

    async def _cancel(self, job: Job, request: ActionRequest, click: dict[str, Any]) -> None:
        clicker = str(click["user_id"])
        if request.decided_by == job.id and request.by_job != job.id:
            return  # this click cancelled it
        if request.status != PENDING and request.by_job != job.id:
            await self._refuse(job, request, click, *_not_pending(request))
            return
        if request.status == PENDING and clicker != request.requester:
            decision = await self.desk.authorizer.may_approve(clicker, request.action, request.namespace or None, "")
            if not decision.allowed:
                await self._refuse(job, request, click, "only the requester or someone who may approve can "
                                   "cancel: " + decision.reason)
                return
        stored, mine = await self.desk.transition(request.id, PENDING, job, status=CANCELLED, approver=clicker,
                                                  approver_name=str(click["user_name"]), decided_by=job.id)
        assert stored is not None
        if not mine:
            if stored.decided_by != job.id:
                await self._refuse(job, stored, click, *_not_pending(stored))
            return
        await self.desk.store.cancel(keys.expire(stored.id))
        await self.desk.audit.record("cancelled", await self.desk.with_permalink(stored), clicker,
                                     user_name=str(click["user_name"]))
        await self.desk.show(stored.id)

    async def _revert(self, job: Job, request: ActionRequest, click: dict[str, Any]) -> None:
        """Revert (a done request) or Request again (one that changed underneath): a new request,
        made by the clicker, through the same path (the policy is checked there: a refusal is told
        to the clicker and changes nothing here)."""
        reason = _cannot_follow(request)
        if reason:
            await self._refuse(job, request, click, reason)
            return
        payload = {"revert_of": request.id, "again": request.status == CHANGED, "user_id": str(click["user_id"]),
                   "user_name": str(click["user_name"]), "channel": request.channel, "thread_ts": request.thread_ts,
                   "response_url": str(click["response_url"]), "team": str(click.get("team", ""))}
        await self.desk.submit(keys.make_request("click:" + job.id), keys.KIND_ACTION_REQUEST, payload)

    async def _refuse(self, job: Job, request: ActionRequest, click: dict[str, Any], reason: str,
                      who: str = "") -> None:
        """Told to the clicker only (`reason` plain text; `who`: a user it names); audited once per click."""
        named = f" by {who}" if who else ""
        await self.desk.audit.record("refused", await self.desk.with_permalink(request), str(click["user_id"]),
                                     reason=f"{click['button']}: {reason}{named}", user_name=str(click["user_name"]),
                                     key=job.id)
        mention = f" by {user(who)}" if who else ""
        await self.desk.tell(str(click["channel"]) or request.channel, str(click["user_id"]),
                             f":no_entry: {safe(reason)}{mention}. Nothing changed.", str(click["response_url"]),
                             request.thread_ts)

    # ------------------------------------------------------------------ execution

    async def _execute(self, job: Job) -> None:
        request = await load_request(self.desk.store, str(job.payload["request"]))
        if request is None:
            raise PermanentError(f"request {job.payload['request']} vanished before it was executed")
        if request.status == APPROVED:
            request, _ = await self.desk.transition(request.id, APPROVED, job, status=EXECUTING,
                                                    started_at=self.desk.clock.now())
            assert request is not None
        if request.status == EXECUTING:
            request = await self._apply(await self._attempt(request, job), job)
        if request.by_job == job.id and request.status in (DONE, FAILED, CHANGED):
            await self._finished(request)

    async def _attempt(self, request: ActionRequest, job: Job) -> ActionRequest:
        """Count this attempt before the change is sent (see ActionRequest.attempts)."""
        stored, _ = await change_request(self.desk.store, request.id, lambda r: dataclasses.replace(
            r, attempts=r.attempts + 1, by_job=job.id) if r.status == EXECUTING else None)
        assert stored is not None
        return stored

    async def _apply(self, request: ActionRequest, job: Job) -> ActionRequest:
        preview = request.the_preview
        assert preview is not None
        started = time.monotonic()
        try:
            outcome = await self.desk.backends.apply(request.the_spec, preview, request.id,
                                                     impersonate=request.approver)
        except ChangedSincePreview as e:
            stored, _ = await self.desk.transition(request.id, EXECUTING, job, status=CHANGED, error=e.message)
        except OperationError as e:
            trying = self.desk.clock.now() - request.approved_at
            if e.temporary and trying < self.desk.execute_within:
                raise TemporaryError(e.message) from None
            error = e.message if not e.temporary else (
                f"{e.message}; gave up after {spoken_duration(trying)}: check the object before asking again")
            stored, _ = await self.desk.transition(request.id, EXECUTING, job, status=FAILED, error=error)
        else:
            if outcome.already and request.attempts > 1:
                outcome = dataclasses.replace(outcome, already=False)  # our own earlier write, its answer lost
            stored, _ = await self.desk.transition(request.id, EXECUTING, job, status=DONE, outcome=outcome.to_json(),
                                                   elapsed=time.monotonic() - started,
                                                   finished_at=self.desk.clock.now())
        assert stored is not None
        return stored

    async def _finished(self, request: ActionRequest) -> None:
        event = {DONE: "executed", FAILED: "failed", CHANGED: "changed"}[request.status]
        outcome = request.the_outcome
        changes = [dataclasses.asdict(c) for c in outcome.changes] if outcome is not None else None
        await self.desk.audit.record(event, await self.desk.with_permalink(request), request.approver,
                                     reason=request.error, changes=changes, user_name=request.approver_name)
        if request.status == DONE and (request.revert_of or request.again_of):
            await self._followed(request)
        await self.desk.show(request.id)

    async def _followed(self, request: ActionRequest) -> None:
        """The original request's message stops offering Revert (or Request again) once a revert
        of it (or a new request for it) is done."""
        def mark(current: ActionRequest) -> ActionRequest | None:
            if request.revert_of:
                return dataclasses.replace(current, reverted_by=request.id) if not current.reverted_by else None
            return dataclasses.replace(current, superseded_by=request.id) if not current.superseded_by else None

        original = request.revert_of or request.again_of
        await change_request(self.desk.store, original, mark)
        await self.desk.show(original)

    # ------------------------------------------------------------------ expiry

    async def _expire(self, job: Job) -> None:
        request = await load_request(self.desk.store, str(job.payload["request"]))
        if request is None or (request.status != PENDING and request.by_job != job.id):
            return
        remaining = request.expires_at - self.desk.clock.now()
        if request.status == PENDING and remaining > 0:
            raise TemporaryError("not expired yet", delay=remaining)
        await self._expire_now(request, job)

    async def _expire_now(self, request: ActionRequest, job: Job) -> ActionRequest:
        if request.status == PENDING and self.desk.clock.now() < request.expires_at:
            return request
        stored, mine = await self.desk.transition(request.id, PENDING, job, status=EXPIRED)
        assert stored is not None
        if mine:
            await self.desk.audit.record("expired", await self.desk.with_permalink(stored), "bot")
            await self.desk.show(stored.id)
        return stored


def _not_pending(request: ActionRequest) -> tuple[str, str]:
    """Why a request takes no approval or cancel now, and who it names (a user ID, or "")."""
    status = request.status
    if status in (APPROVED, EXECUTING, DONE, FAILED, CHANGED):
        return "already approved", request.approver
    if status == CANCELLED:
        return "this request was cancelled", request.approver
    if status == EXPIRED:
        return "this request expired; make a new one", ""
    return "this request is not waiting for an approval", ""


def _cannot_follow(request: ActionRequest) -> str:
    """Why Revert / Request again can't be asked of this request now ("" when it can)."""
    outcome = request.the_outcome
    if request.status == DONE and request.reverted_by:
        return f"this change was already reverted (request {request.reverted_by})"
    if request.status == DONE and (outcome is None or outcome.already):
        return "this request wrote nothing (the value was already so): there is nothing of its to revert"
    if request.status == CHANGED and request.superseded_by:
        return f"this change was already asked for again and applied (request {request.superseded_by})"
    if request.status not in (DONE, CHANGED):
        return "only a done request can be reverted, and only one that changed underneath asked again"
    return ""
