"""Approval requests: made from /ops (or a Revert), previewed, approved with a button, executed once.

Every step is durable work (bot.state.worker jobs in the `actions` lane), recorded before Slack
is acknowledged, so a restart or a second replica carries it on:

    request:{origin}   build the spec, check the requester against the policy, preview it with a
                       server-side dry run, store the request (pending), post the approval message
                       once, start the expiry timer
    click:{…}          a button: Approve / Cancel / Revert, checked on the server every time (the
                       clicker, the state, the expiry) and moved on by compare-and-set, so double
                       clicks and clicks on two replicas at once approve once
    execute:{id}       apply the approved change (idempotent: a crash in the middle applies again
                       and finds it done), record the outcome, edit the message
    expire:{id}        a durable timer at the expiry: a request still pending is expired and its
                       message says so

A refusal (not allowed, not pending, expired) is told only to the clicker (chat.postEphemeral),
changes nothing, and is audited. Everything the change does is read from the store: a button's
value is the request id and nothing else.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from slack_sdk.errors import SlackApiError
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.actions.audit import Audit
from bot.actions.backends import Backends
from bot.actions.commands import Requester, spec_for
from bot.actions.policy import Authorizer
from bot.actions.render import APPROVE, CANCEL, REVERT, approval_message, user
from bot.actions.request import (
    APPROVED,
    CANCELLED,
    CHANGED,
    DONE,
    EXECUTING,
    EXPIRED,
    FAILED,
    PENDING,
    PREVIEWING,
    REFUSED,
    REQUEST_TTL,
    ActionRequest,
    RequestChange,
    change_request,
    create_request,
    load_request,
)
from bot.commands.parser import CommandTable
from bot.errors import PermanentError, TemporaryError, UsageError
from bot.slack.mrkdwn import safe
from bot.slack.once import StoreLedger, post_once
from bot.slack.poster import Poster
from bot.slack.render import Message
from bot.state import keys
from bot.state.clock import Clock
from bot.state.store import Job, NewJob, Store
from bot.state.worker import Worker
from diagnostics.durations import spoken_duration
from operations.model import ChangedSincePreview, OperationError, Spec

log = logging.getLogger(__name__)

RESPONSE_URL_TIMEOUT = 10
EXECUTE_WITHIN_SECONDS = 300.0
BUTTONS = {APPROVE: "approve", CANCEL: "cancel", REVERT: "revert"}


@dataclass(frozen=True)
class Origin:
    """Who asked, and where the approval message goes."""

    user_id: str
    user_name: str
    channel: str
    thread_ts: str = ""
    response_url: str = ""
    team: str = ""  # the Slack team (workspace) of the person; in a shared channel, maybe another

    @classmethod
    def of_click(cls, body: dict[str, Any]) -> Origin | None:
        """The person who clicked and where; None when the payload names nobody."""
        user = body.get("user") or {}
        if not isinstance(user, dict) or not user.get("id"):
            return None
        container = body.get("container") or {}
        channel = (body.get("channel") or {}).get("id") or container.get("channel_id") or ""
        return cls(user_id=str(user["id"]), user_name=str(user.get("username") or user.get("name") or ""),
                   channel=str(channel), thread_ts=str(container.get("thread_ts") or ""),
                   response_url=str(body.get("response_url", "")),
                   team=str(user.get("team_id") or (body.get("team") or {}).get("id") or ""))


# An offer in an alert's thread -> (the change, the channel, the thread's ts): bot.alerting.offers.
OfferSpec = Callable[[str, str, float, Requester, str], Awaitable[tuple[Spec, str, str]]]
ReadOffer = Callable[[dict[str, Any]], "tuple[str, str, float] | None"]


class Approvals:
    def __init__(self, *, store: Store, worker: Worker, poster: Poster, table: CommandTable, authorizer: Authorizer,
                 backends: Backends, prefix: str, default_namespace: str, breaker: tuple[str, str],
                 offers: tuple[ReadOffer, OfferSpec] | None = None) -> None:
        self.store, self.worker, self.poster, self.table = store, worker, poster, table
        self.authorizer, self.backends, self.audit = authorizer, backends, Audit(store)
        self.prefix, self.default_namespace, self.breaker = prefix, default_namespace, breaker
        self.offers = offers
        # An approved change whose backend stays unreachable is given up after this long rather
        # than applied by surprise hours later: an approval is for now.
        self.execute_within = max(authorizer.approval_seconds, EXECUTE_WITHIN_SECONDS)
        worker.handle(keys.KIND_ACTION_REQUEST, self._make_request)
        worker.handle(keys.KIND_ACTION_CLICK, self._click)
        worker.handle(keys.KIND_ACTION_EXECUTE, self._execute)
        worker.handle(keys.KIND_ACTION_EXPIRE, self._expire)

    @property
    def clock(self) -> Clock:
        return self.store.clock

    # ------------------------------------------------------------------ accepting (handlers call these)

    def check(self, text: str) -> None:
        """UsageError for a mutating command whose arguments can't make a request (checked in the ack)."""
        invocation = self.table.parse(text, self.default_namespace)
        spec_for(invocation.command.name, invocation.args, Requester("U0", ""), "r0", 0.0, self.breaker)

    async def accept_command(self, body: dict[str, Any]) -> None:
        origin_id = str(body.get("trigger_id") or "") or f"{body.get('channel_id')}:{body.get('user_id')}:" \
                                                           f"{self.clock.now()}"
        payload = {"text": str(body.get("text", "")),
                   **dataclasses.asdict(Origin(user_id=str(body.get("user_id", "")),
                                               user_name=str(body.get("user_name", "")),
                                               channel=str(body.get("channel_id", "")),
                                               response_url=str(body.get("response_url", "")),
                                               team=str(body.get("team_id", ""))))}
        await self._submit(keys.make_request("command:" + origin_id), keys.KIND_ACTION_REQUEST, payload)

    async def accept_click(self, body: dict[str, Any], action: dict[str, Any]) -> bool:
        """Record a button click as a job; False when it is not one of ours (nothing recorded)."""
        button = BUTTONS.get(str(action.get("action_id", "")))
        request_id = str(action.get("value", ""))
        clicker = Origin.of_click(body)
        if button is None or not request_id.isalnum() or len(request_id) > 40 or clicker is None:
            return False
        payload = {"request": request_id, "button": button, **dataclasses.asdict(clicker)}
        action_ts = str(action.get("action_ts", "")) or str(self.clock.now())
        await self._submit(keys.click(request_id, clicker.user_id, action_ts), keys.KIND_ACTION_CLICK, payload)
        return True

    async def accept_offer(self, body: dict[str, Any], action: dict[str, Any]) -> bool:
        """Record a click on a mitigation offered in an alert's thread; False if it is not one."""
        offer = self.offers[0](action) if self.offers is not None else None
        clicker = Origin.of_click(body)
        if offer is None or clicker is None:
            return False
        name, thread_key, seconds = offer
        payload = {"offer": name, "thread": thread_key, "seconds": seconds, **dataclasses.asdict(clicker)}
        action_ts = str(action.get("action_ts", "")) or str(self.clock.now())
        await self._submit(keys.make_request(f"offer:{clicker.user_id}:{action_ts}"), keys.KIND_ACTION_REQUEST,
                           payload)
        return True

    async def _submit(self, job_id: str, kind: str, payload: dict[str, Any], due: float | None = None) -> None:
        lane = keys.LANE_ACTIONS if due is None else keys.LANE_TIMERS
        await self.worker.submit([NewJob(id=job_id, kind=kind, lane=lane, payload=payload, due=due)])

    # ------------------------------------------------------------------ making a request

    async def _make_request(self, job: Job) -> None:
        payload = dict(job.payload)
        origin = Origin(**{f.name: payload.get(f.name, "") for f in dataclasses.fields(Origin)})
        request_id = "r" + hashlib.sha256(job.id.encode()).hexdigest()[:16]
        request = await load_request(self.store, request_id)
        if request is None:
            request = await self._new_request(request_id, payload, origin)
            if request is None:
                return
        if request.status == PREVIEWING:
            request = await self._preview(request, origin)
        if request.status == PENDING:
            await self._post(request, origin)

    async def _new_request(self, request_id: str, payload: dict[str, Any], origin: Origin) -> ActionRequest | None:
        now = self.clock.now()
        try:
            spec, revert_of, origin = await self._spec(request_id, payload, origin, now)
        except OperationError as e:
            if e.temporary:
                raise TemporaryError(e.message) from None
            await self._tell(origin.channel, origin.user_id, f":x: Nothing requested: {safe(e.message)}",
                             origin.response_url)
            return None
        except UsageError as e:
            await self._tell(origin.channel, origin.user_id, f":x: {safe(e.message)}", origin.response_url)
            return None
        namespace = str(getattr(spec, "namespace", "") or "")
        request = ActionRequest.new(request_id, spec, namespace=namespace, requester=origin.user_id,
                                    requester_name=origin.user_name, channel=origin.channel,
                                    thread_ts=origin.thread_ts, now=now, revert_of=revert_of, team=origin.team)
        refusal = await self._request_refusal(request, spec)
        if refusal:
            request = dataclasses.replace(request, status=REFUSED, error=refusal)
        request = await create_request(self.store, request)
        if request.status == REFUSED:
            await self.audit.record("refused", request, origin.user_id, reason=request.error)
            await self._tell(origin.channel, origin.user_id, f":no_entry: {safe(request.error)}", origin.response_url)
        return request

    async def _spec(self, request_id: str, payload: dict[str, Any], origin: Origin,
                    now: float) -> tuple[Spec, str, Origin]:
        """The change asked for, the request it reverts (if any), and where its message goes."""
        requester = Requester(origin.user_id, origin.user_name)
        if payload.get("revert_of"):
            spec = await self._revert_spec(str(payload["revert_of"]), bool(payload.get("again")))
            return spec, str(payload["revert_of"]), origin
        if payload.get("offer"):
            if self.offers is None:
                raise UsageError("mitigations from alert threads are off")
            spec, channel, thread_ts = await self.offers[1](
                str(payload["offer"]), str(payload["thread"]), float(payload.get("seconds") or 0), requester,
                request_id)
            return spec, "", dataclasses.replace(origin, channel=channel or origin.channel,
                                                 thread_ts=thread_ts or origin.thread_ts)
        invocation = self.table.parse(str(payload["text"]), self.default_namespace)
        return spec_for(invocation.command.name, invocation.args, requester, request_id, now, self.breaker), "", \
            origin

    async def _revert_spec(self, original_id: str, again: bool) -> Spec:
        original = await load_request(self.store, original_id)
        if original is None or original.preview is None:
            raise UsageError(f"request {original_id} is no longer known; make a new request")
        if again:
            return original.the_spec
        outcome, preview = original.the_outcome, original.the_preview
        assert outcome is not None and preview is not None
        spec = self.backends.revert(original.the_spec, preview, outcome)
        if spec is None:
            raise UsageError(f"{original.action} cannot be reverted")
        return spec

    async def _request_refusal(self, request: ActionRequest, spec: Spec) -> str:
        if not self.authorizer.enabled:
            return self.authorizer.disabled_reason()
        decision = await self.authorizer.may_request(request.requester, request.action, request.namespace or None)
        if not decision.allowed:
            return decision.reason
        return self.authorizer.over_limit(request.action, **_limits(spec)) or ""

    async def _preview(self, request: ActionRequest, origin: Origin) -> ActionRequest:
        try:
            preview = await self.backends.preview(request.the_spec, impersonate=request.requester)
        except OperationError as e:
            if e.temporary:
                raise TemporaryError(e.message) from None
            refused, _ = await change_request(self.store, request.id,
                                              _when(PREVIEWING, status=REFUSED, error=e.message))
            assert refused is not None
            request = refused
            await self.audit.record("preview-failed", request, origin.user_id, reason=e.message)
            await self._tell(origin.channel, origin.user_id,
                             f":x: Nothing requested: {safe(e.message)}", origin.response_url)
            return request
        now = self.clock.now()
        expires = now + self.authorizer.approval_seconds
        stored, _ = await change_request(self.store, request.id, _when(
            PREVIEWING, status=PENDING, preview=preview.to_json(), expires_at=expires))
        assert stored is not None
        if stored.status == PENDING:
            await self._submit(keys.expire(stored.id), keys.KIND_ACTION_EXPIRE, {"request": stored.id},
                               due=stored.expires_at)
            await self.audit.record("requested", stored, origin.user_id)
        return stored

    async def _post(self, request: ActionRequest, origin: Origin) -> None:
        message = self._message(request)
        ledger = StoreLedger(self.store, request.key, ("message",), REQUEST_TTL)
        try:
            posted = await post_once(self.poster, ledger, request.channel, message.text, message.blocks,
                                     clock=self.clock, thread_ts=request.thread_ts or None)
        except SlackApiError as e:
            error = str(e.response.get("error", ""))
            if error not in ("not_in_channel", "channel_not_found", "is_archived"):
                raise
            await change_request(self.store, request.id, _when(PENDING, status=REFUSED,
                                                               error="the bot cannot post in this channel"))
            await self.worker.store.cancel(keys.expire(request.id))
            await self._respond(origin.response_url, f":x: Nothing requested: invite the bot to this channel "
                                f"({safe(error)}); approval requests are posted where everyone can see them.")
            return
        if not request.permalink:
            await self._learn_permalink(request.id, posted.channel, posted.ts)

    async def _learn_permalink(self, request_id: str, channel: str, ts: str) -> None:
        try:
            answer = await self.poster.reader.chat_getPermalink(channel=channel, message_ts=ts)
        except SlackApiError as e:
            log.info("no permalink for %s: %s", request_id, e.response.get("error"))
            return
        permalink = str(answer.get("permalink") or "")

        def put(current: ActionRequest) -> ActionRequest | None:
            return dataclasses.replace(current, permalink=permalink) if not current.permalink else None

        await change_request(self.store, request_id, put)

    # ------------------------------------------------------------------ clicks

    async def _click(self, job: Job) -> None:
        click = dict(job.payload)
        request = await load_request(self.store, str(click["request"]))
        if request is None:
            await self._tell(click["channel"], click["user_id"], ":grey_question: This request is no longer known "
                             "(requests are kept 7 days); nothing changed.", click["response_url"])
            return
        if request.team and click.get("team") and click["team"] != request.team:
            await self._refuse(request, click, "only people of the workspace the request was made in may act on it")
            return
        handler = {"approve": self._approve, "cancel": self._cancel, "revert": self._revert}[str(click["button"])]
        await handler(job, request, click)

    async def _approve(self, job: Job, request: ActionRequest, click: dict[str, Any]) -> None:
        user = str(click["user_id"])
        if request.click == job.id:  # this click won before a restart: carry on
            await self._approved(request)
            return
        if request.status == PENDING and self.clock.now() >= request.expires_at:
            request = await self._expire_now(request)
        if request.status != PENDING:
            await self._refuse(request, click, _not_pending(request))
            return
        decision = await self.authorizer.may_approve(user, request.action, request.namespace or None,
                                                     request.requester)
        if not decision.allowed:
            await self._refuse(request, click, safe(decision.reason))
            return
        now = self.clock.now()

        def approve(current: ActionRequest) -> ActionRequest | None:
            if current.status != PENDING or now >= current.expires_at:
                return None
            return dataclasses.replace(current, status=APPROVED, approver=user, approved_at=now, click=job.id)

        stored, won = await change_request(self.store, request.id, approve)
        assert stored is not None
        if not won:
            await self._refuse(stored, click, _not_pending(stored))
            return
        await self.audit.record("approved", stored, user)
        await self._approved(stored)

    async def _approved(self, request: ActionRequest) -> None:
        await self.store.cancel(keys.expire(request.id))
        await self._submit(keys.execute(request.id), keys.KIND_ACTION_EXECUTE, {"request": request.id})
        await self._edit(request)

    async def _cancel(self, job: Job, request: ActionRequest, click: dict[str, Any]) -> None:
        user = str(click["user_id"])
        if request.status != PENDING:
            await self._refuse(request, click, _not_pending(request))
            return
        if user != request.requester:
            decision = await self.authorizer.may_approve(user, request.action, request.namespace or None, "")
            if not decision.allowed:
                await self._refuse(request, click, "only the requester or someone who may approve can cancel: "
                                   + safe(decision.reason))
                return
        stored, won = await change_request(self.store, request.id, _when(PENDING, status=CANCELLED, approver=user))
        assert stored is not None
        if not won:
            await self._refuse(stored, click, _not_pending(stored))
            return
        await self.store.cancel(keys.expire(request.id))
        await self.audit.record("cancelled", stored, user)
        await self._edit(stored)

    async def _revert(self, job: Job, request: ActionRequest, click: dict[str, Any]) -> None:
        """Revert (a done request) or Request again (one that changed underneath): a new request
        through the same approval path, made by the clicker."""
        again = request.status == CHANGED
        if request.status not in (DONE, CHANGED) or (request.status == DONE and request.reverted_by):
            await self._refuse(request, click, _not_pending(request) if request.status != DONE
                               else f"a revert was already requested ({request.reverted_by})")
            return
        origin_id = keys.make_request("click:" + job.id)
        new_id = "r" + hashlib.sha256(origin_id.encode()).hexdigest()[:16]
        if not again:
            def mark(current: ActionRequest) -> ActionRequest | None:
                if current.reverted_by and current.reverted_by != new_id:
                    return None
                return dataclasses.replace(current, reverted_by=new_id)

            stored, won = await change_request(self.store, request.id, mark)
            assert stored is not None
            if stored.reverted_by != new_id:
                await self._refuse(stored, click, f"a revert was already requested ({stored.reverted_by})")
                return
            await self.audit.record("revert-requested", stored, str(click["user_id"]))
            await self._edit(stored)
        payload = {"revert_of": request.id, "again": again,
                   **dataclasses.asdict(Origin(user_id=str(click["user_id"]), user_name=str(click["user_name"]),
                                               channel=request.channel, thread_ts=request.thread_ts,
                                               response_url=str(click["response_url"]),
                                               team=str(click.get("team", ""))))}
        await self._submit(origin_id, keys.KIND_ACTION_REQUEST, payload)

    async def _refuse(self, request: ActionRequest, click: dict[str, Any], reason: str) -> None:
        """`reason` is mrkdwn, already escaped."""
        await self.audit.record("refused", request, str(click["user_id"]), reason=f"{click['button']}: {reason}")
        await self._tell(str(click["channel"]) or request.channel, str(click["user_id"]),
                         f":no_entry: {reason}. Nothing changed.", str(click["response_url"]))

    # ------------------------------------------------------------------ execution and expiry

    async def _execute(self, job: Job) -> None:
        request = await load_request(self.store, str(job.payload["request"]))
        if request is None:
            raise PermanentError(f"request {job.payload['request']} vanished before it was executed")
        if request.status == APPROVED:
            request, _ = await change_request(self.store, request.id, _when(
                APPROVED, status=EXECUTING, started_at=self.clock.now()))
            assert request is not None
        if request.status == EXECUTING:
            request = await self._apply(request)
        await self._edit(request)

    async def _apply(self, request: ActionRequest) -> ActionRequest:
        preview = request.the_preview
        assert preview is not None
        started = time.monotonic()
        try:
            outcome = await self.backends.apply(request.the_spec, preview, request.id, impersonate=request.approver)
        except ChangedSincePreview as e:
            return await self._finish(request, "changed", _when(EXECUTING, status=CHANGED, error=e.message))
        except OperationError as e:
            trying = self.clock.now() - request.approved_at
            if e.temporary and trying < self.execute_within:
                raise TemporaryError(e.message) from None
            error = e.message if not e.temporary else (
                f"{e.message}; gave up after trying for {spoken_duration(trying)}: check the object before "
                "asking again")
            return await self._finish(request, "failed", _when(EXECUTING, status=FAILED, error=error))
        elapsed = time.monotonic() - started
        return await self._finish(request, "executed", _when(
            EXECUTING, status=DONE, outcome=outcome.to_json(), elapsed=elapsed, finished_at=self.clock.now()),
            changes=[dataclasses.asdict(c) for c in outcome.changes])

    async def _finish(self, request: ActionRequest, event: str, change: RequestChange,
                      changes: list[dict[str, Any]] | None = None) -> ActionRequest:
        stored, won = await change_request(self.store, request.id, change)
        assert stored is not None
        if won:
            await self.audit.record(event, stored, stored.approver, reason=stored.error, changes=changes)
        return stored

    async def _expire(self, job: Job) -> None:
        request = await load_request(self.store, str(job.payload["request"]))
        if request is None or request.status != PENDING:
            return
        remaining = request.expires_at - self.clock.now()
        if remaining > 0:
            raise TemporaryError("not expired yet", delay=remaining)
        await self._expire_now(request)

    async def _expire_now(self, request: ActionRequest) -> ActionRequest:
        now = self.clock.now()

        def expire(current: ActionRequest) -> ActionRequest | None:
            return dataclasses.replace(current, status=EXPIRED) if current.status == PENDING and \
                now >= current.expires_at else None

        stored, won = await change_request(self.store, request.id, expire)
        assert stored is not None
        if won:
            await self.audit.record("expired", stored, "bot")
            await self._edit(stored)
        return stored

    # ------------------------------------------------------------------ Slack

    def _message(self, request: ActionRequest) -> Message:
        return approval_message(request, self.authorizer.approvers(request.action),
                                self.authorizer.two_person(request.action))

    async def _edit(self, request: ActionRequest) -> None:
        record = request.message or {}
        if not record.get("ts"):
            return  # not posted (yet): the post shows the state it finds
        message = self._message(request)
        await self.poster.update(str(record.get("channel") or request.channel), str(record["ts"]), message.text,
                                 message.blocks)

    async def _tell(self, channel: str, user: str, text: str, response_url: str = "") -> None:
        """A line only `user` sees: chat.postEphemeral, else the response_url."""
        try:
            await self.poster.reader.chat_postEphemeral(channel=channel, user=user, text=text)
            return
        except SlackApiError as e:
            log.info("ephemeral to %s in %s failed (%s); trying response_url", user, channel,
                     e.response.get("error"))
        await self._respond(response_url, text)

    async def _respond(self, response_url: str, text: str) -> None:
        if not response_url:
            return
        answer = await AsyncWebhookClient(response_url, timeout=RESPONSE_URL_TIMEOUT).send_dict(
            {"response_type": "ephemeral", "replace_original": False, "text": text})
        if answer.status_code >= 500:
            raise TemporaryError(f"response_url answered HTTP {answer.status_code}")


def _when(only_in: str, **changes: Any) -> RequestChange:
    """A change that applies only while the request is in the status `only_in`."""
    def change(current: ActionRequest) -> ActionRequest | None:
        return dataclasses.replace(current, **changes) if current.status == only_in else None

    return change


def _not_pending(request: ActionRequest) -> str:
    status = request.status
    if status in (APPROVED, EXECUTING, DONE, FAILED, CHANGED):
        return f"already approved by {user(request.approver)}" if request.approver else "already approved"
    if status == CANCELLED:
        return "this request was cancelled"
    if status == EXPIRED:
        return "this request expired; make a new one"
    return "this request is not waiting for an approval"


def _limits(spec: Spec) -> dict[str, Any]:
    """What the policy's maxima are checked against."""
    return {k: v for k, v in {
        "replicas": getattr(spec, "replicas", None), "memory": getattr(spec, "memory", None),
        "cpu": getattr(spec, "cpu", None), "seconds": getattr(spec, "seconds", None)}.items() if v is not None}

