"""What every step of an approval shares: the store, the policy, the backends, the audit trail and
Slack, and the three rules that make each step safe to run again after a crash or a retry.

1. A transition is a compare-and-set that also records which job made it (`ActionRequest.by_job`).
   A job retried after it won its transition (it crashed, or what came after failed) finds its own
   mark and carries on with what follows instead of reporting "someone else did it".
2. Audit entries carry a key (`request:event`, or the click's job for a refused click); the trail
   is read with duplicates dropped, so a step that appends again after a crash appears once.
3. The approval message is edited by one job per request (`render:{id}`): it reads the request as
   stored when it runs, and a change made while it runs makes it run once more. An edit can never
   be overtaken by an older one, and a failed edit is retried on its own.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

from bot.actions.audit import Audit
from bot.actions.backends import Backends
from bot.actions.policy import Authorizer
from bot.actions.render import approval_message
from bot.actions.request import ActionRequest, change_request, load_request
from bot.slack.poster import Poster
from bot.slack.render import Message
from bot.slack.tell import permalink, respond, tell
from bot.state import keys
from bot.state.clock import Clock
from bot.state.store import Job, NewJob, Store
from bot.state.worker import Worker

log = logging.getLogger(__name__)



@dataclass
class Desk:
    store: Store
    worker: Worker
    poster: Poster
    authorizer: Authorizer
    backends: Backends
    audit: Audit
    # An approval is for now: a change whose backend stays unreachable this long after the
    # approval is given up (the message says so) rather than applied by surprise hours later.
    execute_within: float
    # A request that could not be previewed for this long is refused (the requester is told).
    preview_within: float

    def __post_init__(self) -> None:
        self.worker.handle(keys.KIND_ACTION_RENDER, self._render)

    @property
    def clock(self) -> Clock:
        return self.store.clock

    async def submit(self, job_id: str, kind: str, payload: dict[str, Any], due: float | None = None) -> None:
        lane = keys.LANE_ACTIONS if due is None else keys.LANE_TIMERS
        await self.worker.submit([NewJob(id=job_id, kind=kind, lane=lane, payload=payload, due=due)])

    async def transition(self, request_id: str, only_in: str | tuple[str, ...], job: Job,
                         **changes: Any) -> tuple[ActionRequest | None, bool]:
        """Apply `changes` while the request's status is `only_in`, marking it as `job`'s doing.
        Returns (the request as stored, whether this job made the change: now or before a retry)."""
        allowed = (only_in,) if isinstance(only_in, str) else only_in

        def change(current: ActionRequest) -> ActionRequest | None:
            if current.status not in allowed:
                return None
            return dataclasses.replace(current, **changes, by_job=job.id)

        stored, won = await change_request(self.store, request_id, change)
        mine = stored is not None and (won or (stored.by_job == job.id and stored.status == changes.get(
            "status", stored.status)))
        return stored, mine

    # ------------------------------------------------------------------ the approval message

    async def with_permalink(self, request: ActionRequest) -> ActionRequest:
        """The request with its message's permalink for the audit trail: as stored, or asked of
        Slack when the request job has not stored it yet (a click can come first)."""
        record = request.message or {}
        if request.permalink or not record.get("ts"):
            return request
        permalink = await self.permalink(str(record.get("channel") or request.channel), str(record["ts"]))
        return dataclasses.replace(request, permalink=permalink)

    async def permalink(self, channel: str, ts: str) -> str:
        """A message's permalink, "" when Slack won't say (logged)."""
        return await permalink(self.poster, channel, ts)

    def message(self, request: ActionRequest) -> Message:
        return approval_message(request, self.authorizer.approvers(request.action),
                                self.authorizer.two_person(request.action))

    async def show(self, request_id: str) -> None:
        """Have the approval message show the request as stored (by its render job)."""
        await self.submit(keys.render(request_id), keys.KIND_ACTION_RENDER, {"request": request_id})

    async def _render(self, job: Job) -> None:
        request = await load_request(self.store, str(job.payload["request"]))
        record = (request.message or {}) if request is not None else {}
        if request is None or not record.get("ts"):
            return  # not posted (yet): the post shows the state it finds
        message = self.message(request)
        await self.poster.update(str(record.get("channel") or request.channel), str(record["ts"]), message.text,
                                 message.blocks)

    # ------------------------------------------------------------------ lines only one person sees

    async def tell(self, channel: str, user: str, text: str, response_url: str = "", thread_ts: str = "") -> None:
        """A line only `user` sees: chat.postEphemeral (in the thread, if any), else the response_url."""
        await tell(self.poster, channel, user, text, response_url, thread_ts)

    async def respond(self, response_url: str, text: str) -> None:
        await respond(response_url, text)
