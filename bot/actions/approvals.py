"""Approval requests: made from /ops, a thread's offer or a Revert; previewed; posted for approval.

Every step is durable work (bot.state.worker jobs in the `actions` lane), recorded before Slack
is acknowledged, so a restart or a second replica carries it on:

    request:{origin}   build the spec, check the requester against the policy, preview it with a
                       server-side dry run, store the request (pending), start the expiry timer,
                       post the approval message once, audit it with its permalink
    click / execute / expire / render
                       bot.actions.decisions and bot.actions.desk

A refusal (not allowed, over a maximum, the preview failing) is told only to the requester,
changes nothing, and is audited. Everything a change does is read from the store: a button's
value is the request id and nothing else.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from slack_sdk.errors import SlackApiError

from bot.actions.audit import Audit
from bot.actions.backends import Backends
from bot.actions.commands import Requester, spec_for
from bot.actions.decisions import Decisions, request_id_for
from bot.actions.desk import Desk
from bot.actions.policy import Authorizer
from bot.actions.render import APPROVE, CANCEL, REVERT
from bot.actions.request import (
    PENDING,
    PREVIEWING,
    REFUSED,
    REQUEST_TTL,
    ActionRequest,
    change_request,
    create_request,
    load_request,
)
from bot.commands.model import Invocation
from bot.commands.parser import CommandTable
from bot.errors import TemporaryError, UsageError
from bot.slack.mrkdwn import safe
from bot.slack.once import StoreLedger, post_once
from bot.slack.poster import Poster, slack_error
from bot.state import keys
from bot.state.clock import Clock
from bot.state.store import Job, Store
from bot.state.worker import Worker
from diagnostics.durations import spoken_duration
from operations.model import OperationError, Spec

log = logging.getLogger(__name__)

BUTTONS = {APPROVE: "approve", CANCEL: "cancel", REVERT: "revert"}
EXECUTE_WITHIN_SECONDS = 300.0
PREVIEW_WITHIN_SECONDS = 120.0
# Where the bot can't post, nobody else could see the request: it is not made.
_CANNOT_POST = ("not_in_channel", "channel_not_found", "is_archived")


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
        user = _object(body.get("user"))
        if not user.get("id"):
            return None
        container = _object(body.get("container"))
        channel = _object(body.get("channel")).get("id") or container.get("channel_id") or ""
        return cls(user_id=str(user["id"]), user_name=str(user.get("username") or user.get("name") or ""),
                   channel=str(channel), thread_ts=str(container.get("thread_ts") or ""),
                   response_url=str(body.get("response_url", "")),
                   team=str(user.get("team_id") or _object(body.get("team")).get("id") or ""))


def _object(value: Any) -> dict[str, Any]:
    """A payload's field that should be an object; {} when it is anything else (malformed: ignored)."""
    return value if isinstance(value, dict) else {}


# An offer in an alert's thread (offer, thread key, silence seconds, requester, request id, the
# channel clicked in) -> (the change, the channel, the thread's ts): bot.alerting.offers.
OfferSpec = Callable[[str, str, float, Requester, str, str], Awaitable[tuple[Spec, str, str]]]
ReadOffer = Callable[[dict[str, Any]], "tuple[str, str, float] | None"]


class Approvals:
    def __init__(self, *, store: Store, worker: Worker, poster: Poster, table: CommandTable, authorizer: Authorizer,
                 backends: Backends, default_namespace: str, breaker: tuple[str, str],
                 offers: tuple[ReadOffer, OfferSpec] | None = None, give_up_seconds: float = 4 * 3600.0,
                 observe: Callable[[str, str], None] | None = None) -> None:
        """`give_up_seconds`: the worker's give-up; a request's own deadlines stay well inside it.
        `observe(action, event)`: told of every audited event (for /metrics)."""
        within = give_up_seconds / 2
        self.desk = Desk(store=store, worker=worker, poster=poster, authorizer=authorizer, backends=backends,
                         audit=Audit(store, observe),
                         execute_within=min(max(authorizer.approval_seconds, EXECUTE_WITHIN_SECONDS), within),
                         preview_within=min(PREVIEW_WITHIN_SECONDS, within))
        self.decisions = Decisions(self.desk)
        self.table, self.default_namespace, self.breaker, self.offers = table, default_namespace, breaker, offers
        worker.handle(keys.KIND_ACTION_REQUEST, self._make_request)

    @property
    def clock(self) -> Clock:
        return self.desk.clock

    # ------------------------------------------------------------------ accepting (handlers call these)

    def check(self, invocation: Invocation) -> None:
        """UsageError for a mutating command whose arguments can't make a request (checked in the ack)."""
        spec_for(invocation.command.name, invocation.args, Requester("U0", ""), "r0", 0.0, self.breaker)

    async def accept_command(self, body: dict[str, Any]) -> None:
        origin_id = str(body.get("trigger_id") or "") or f"{body.get('channel_id')}:{body.get('user_id')}:" \
                                                           f"{self.clock.now()}"
        origin = Origin(user_id=str(body.get("user_id", "")), user_name=str(body.get("user_name", "")),
                        channel=str(body.get("channel_id", "")), response_url=str(body.get("response_url", "")),
                        team=str(body.get("team_id", "")))
        await self.desk.submit(keys.make_request("command:" + origin_id), keys.KIND_ACTION_REQUEST,
                               {"text": str(body.get("text", "")), **dataclasses.asdict(origin)})

    async def accept_click(self, body: dict[str, Any], action: dict[str, Any]) -> bool:
        """Record a button click as a job; False when it names nobody (nothing recorded). A value
        that is no request id is recorded too: the clicker is told, and it is audited."""
        button = BUTTONS.get(str(action.get("action_id", "")))
        clicker = Origin.of_click(body)
        if button is None or clicker is None:
            return False
        request_id = str(action.get("value", ""))
        if not request_id.isalnum() or len(request_id) > 40:
            request_id = ""
        payload = {"request": request_id, "button": button, **dataclasses.asdict(clicker)}
        action_ts = str(action.get("action_ts", "")) or str(self.clock.now())
        await self.desk.submit(keys.click(request_id or "invalid", clicker.user_id, action_ts),
                               keys.KIND_ACTION_CLICK, payload)
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
        await self.desk.submit(keys.make_request(f"offer:{clicker.user_id}:{action_ts}"), keys.KIND_ACTION_REQUEST,
                               payload)
        return True

    # ------------------------------------------------------------------ making a request

    async def _make_request(self, job: Job) -> None:
        payload = dict(job.payload)
        origin = Origin(**{f.name: payload.get(f.name, "") for f in dataclasses.fields(Origin)})
        request_id = request_id_for(job.id)
        request = await load_request(self.desk.store, request_id)
        if request is None:
            request = await self._new_request(request_id, payload, origin, job)
            if request is None:
                return
        if request.status == PREVIEWING:
            request = await self._preview(request, job)
        # This job made the request (its id says so): audited once, retries included, and before
        # the message can be clicked, so the trail reads in the order things happened.
        if request.status != REFUSED:
            await self.desk.audit.record("requested", request, origin.user_id, user_name=origin.user_name)
        if request.status == PENDING:
            # Recorded again on a retry (the same job: nothing doubles), so a crash right after the
            # preview was stored can't leave a request without its expiry timer.
            await self.desk.submit(keys.expire(request.id), keys.KIND_ACTION_EXPIRE, {"request": request.id},
                                   due=request.expires_at)
        if request.preview is not None and request.status != REFUSED and not (request.message or {}).get("ts"):
            # Posted once, whatever happened since: an approval, a cancel or the expiry may have come
            # while an earlier attempt's answer was lost; the message then shows the request as it is now.
            request = await self._post(request, job)
            if request.status not in (PENDING, REFUSED):
                await self.desk.show(request.id)
        if request.status == REFUSED and request.by_job == job.id:
            await self._refused(request, origin)

    async def _refused(self, request: ActionRequest, origin: Origin) -> None:
        """Told to the requester (again after a retry: a telling that failed is not lost), audited once."""
        await self.desk.audit.record("refused", request, origin.user_id, reason=request.error,
                                     user_name=origin.user_name)
        await self.desk.tell(origin.channel, origin.user_id, f":no_entry: Nothing requested: {safe(request.error)}",
                             origin.response_url, origin.thread_ts)

    async def _new_request(self, request_id: str, payload: dict[str, Any], origin: Origin,
                           job: Job) -> ActionRequest | None:
        now = self.clock.now()
        try:
            spec, relation, origin = await self._spec(request_id, payload, origin, now)
        except OperationError as e:
            trying = now - job.created
            if e.temporary and trying < self.desk.preview_within:
                raise TemporaryError(e.message) from None
            error = e.message if not e.temporary else f"{e.message} (tried for {spoken_duration(trying)})"
            await self.desk.tell(origin.channel, origin.user_id, f":x: Nothing requested: {safe(error)}",
                                 origin.response_url, origin.thread_ts)
            return None
        except UsageError as e:
            await self.desk.tell(origin.channel, origin.user_id, f":x: {safe(e.message)}", origin.response_url,
                                 origin.thread_ts)
            return None
        request = ActionRequest.new(request_id, spec, namespace=str(getattr(spec, "namespace", "") or ""),
                                    requester=origin.user_id, requester_name=origin.user_name,
                                    channel=origin.channel, thread_ts=origin.thread_ts, now=now, team=origin.team,
                                    **relation)
        refusal = await self._request_refusal(request, spec)
        if refusal:
            request = dataclasses.replace(request, status=REFUSED, error=refusal)
        return await create_request(self.desk.store, dataclasses.replace(request, by_job=job.id))

    async def _spec(self, request_id: str, payload: dict[str, Any], origin: Origin,
                    now: float) -> tuple[Spec, dict[str, str], Origin]:
        """The change asked for, how it relates to an earlier request ({"revert_of": id} or
        {"again_of": id}), and where its message goes."""
        requester = Requester(origin.user_id, origin.user_name)
        if payload.get("revert_of"):
            original = str(payload["revert_of"])
            again = bool(payload.get("again"))
            spec = await self._revert_spec(original, again, now)
            return spec, {"again_of" if again else "revert_of": original}, origin
        if payload.get("offer"):
            if self.offers is None:
                raise UsageError("mitigations from alert threads are off")
            spec, channel, thread_ts = await self.offers[1](
                str(payload["offer"]), str(payload["thread"]), float(payload.get("seconds") or 0), requester,
                request_id, origin.channel)
            return spec, {}, dataclasses.replace(origin, channel=channel or origin.channel,
                                                 thread_ts=thread_ts or origin.thread_ts)
        invocation = self.table.parse(str(payload["text"]), self.default_namespace)
        return spec_for(invocation.command.name, invocation.args, requester, request_id, now, self.breaker), {}, \
            origin

    async def _revert_spec(self, original_id: str, again: bool, now: float) -> Spec:
        original = await load_request(self.desk.store, original_id)
        if original is None or original.preview is None:
            raise UsageError(f"request {original_id} is no longer known; make a new request")
        if again:
            return original.the_spec
        outcome, preview = original.the_outcome, original.the_preview
        assert outcome is not None and preview is not None
        spec = self.desk.backends.revert(original.the_spec, preview, outcome)
        if spec is None:
            raise UsageError(f"there is nothing to revert: {original.action} changed nothing that can be put back")
        return spec

    async def _request_refusal(self, request: ActionRequest, spec: Spec) -> str:
        authorizer = self.desk.authorizer
        if not authorizer.enabled:
            return authorizer.disabled_reason()
        decision = await authorizer.may_request(request.requester, request.action, request.namespace or None)
        if not decision.allowed:
            return decision.reason
        return authorizer.over_limit(request.action, **_limits(spec)) or ""

    async def _preview(self, request: ActionRequest, job: Job) -> ActionRequest:
        try:
            preview = await self.desk.backends.preview(request.the_spec, impersonate=request.requester)
        except OperationError as e:
            trying = self.clock.now() - request.created_at
            if e.temporary and trying < self.desk.preview_within:
                raise TemporaryError(e.message) from None
            error = e.message if not e.temporary else f"{e.message} (tried for {spoken_duration(trying)})"
            stored, _ = await self.desk.transition(request.id, PREVIEWING, job, status=REFUSED, error=error)
            assert stored is not None
            return stored
        stored, _ = await self.desk.transition(request.id, PREVIEWING, job, status=PENDING,
                                               preview=preview.to_json(),
                                               expires_at=self.clock.now() + self.desk.authorizer.approval_seconds)
        assert stored is not None
        return stored

    async def _post(self, request: ActionRequest, job: Job) -> ActionRequest:
        message = self.desk.message(request)
        ledger = StoreLedger(self.desk.store, request.key, ("message",), REQUEST_TTL)
        try:
            posted = await post_once(self.desk.poster, ledger, request.channel, message.text, message.blocks,
                                     clock=self.clock, thread_ts=request.thread_ts or None)
        except SlackApiError as e:
            error = slack_error(e)
            if error not in _CANNOT_POST:
                raise
            stored, _ = await self.desk.transition(
                request.id, PENDING, job, status=REFUSED,
                error=f"invite the bot to this channel ({error}): approval requests are posted where everyone can "
                      "see them")
            await self.desk.store.cancel(keys.expire(request.id))
            assert stored is not None
            return stored
        if not request.permalink:
            return await self._learn_permalink(request.id, posted.channel, posted.ts)
        return request

    async def _learn_permalink(self, request_id: str, channel: str, ts: str) -> ActionRequest:
        """The approval message's permalink, for the audit trail ("-" if Slack won't say)."""
        permalink = await self.desk.permalink(channel, ts) or "-"

        def put(current: ActionRequest) -> ActionRequest | None:
            return dataclasses.replace(current, permalink=permalink) if not current.permalink else None

        stored, _ = await change_request(self.desk.store, request_id, put)
        assert stored is not None
        return stored


def _limits(spec: Spec) -> dict[str, Any]:
    """What the policy's maxima are checked against."""
    return {k: v for k, v in {
        "replicas": getattr(spec, "replicas", None), "memory": getattr(spec, "memory", None),
        "cpu": getattr(spec, "cpu", None), "seconds": getattr(spec, "seconds", None)}.items() if v is not None}
