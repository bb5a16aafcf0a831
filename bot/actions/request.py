"""An approval request: the typed, versioned document of one change someone asked for.

Stored at `action:{id}` (bot.state.keys.action_request). Every transition is a compare-and-set
(`change_request`): two clicks on two replicas at once read the same version, one write wins,
the other reads again and finds the request no longer pending. So a change executes once.

    previewing -> pending -> approved -> executing -> done | failed | changed
         |           +-> cancelled | expired
         +-> refused (the preview failed: nothing to approve)

Fields
    id            the opaque id the buttons carry ("r" + 16 hex digits); nothing else a click sends is used
    action        the policy rule's name: scale, restart, limits, breaker, silence (unsilence uses silence)
    spec          the change (operations.model spec as JSON), fixed when the request is made
    namespace     the Kubernetes namespace the change is in ("" for a silence): what the policy checks
    requester     Slack user ID of who asked; requester_name their name when Slack sent one
    channel       the channel ID the request was made in; thread_ts the thread it belongs to ("" if none)
    status        see above
    preview       operations.model.Preview as JSON (the dry run's before -> after), once previewed
    error         why it was refused, failed or changed: one line
    created_at    clock seconds; expires_at: when approval is no longer possible
    approver      who approved (or cancelled), approver_name the name Slack sent; approved_at
    by_job        the job that made the latest transition: a job retried after its transition
                  went through recognises its own work and carries on
    decided_by    the click (its job) that approved or cancelled it: Slack delivering the same
                  click again, to this replica or another, finds it decided by itself
    started_at    when the change was first applied; finished_at; elapsed: seconds the apply took
    outcome       operations.model.Outcome as JSON, once done
    message       the approval message's PostRecord (bot.slack.once): posted once, then edited in place
    permalink     the approval message's permalink, for the audit trail
    revert_of     the request this one reverts ("" if none); reverted_by: the revert of this one, once done
    again_of      the request (changed underneath) this one asks again for; superseded_by: the request
                  that asked again for this one, once done (its "Request again" is then gone)
    attempts      how many times the change was sent to the backend: a later attempt that finds the
                  value already set found its own earlier write (whose answer was lost)
    team          the Slack team (workspace) the request was made in: a click from another team's
                  member (a shared channel) is refused
"""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass, field
from typing import Any, Callable

from bot.state import keys
from bot.state.store import Store
from operations.model import Outcome, Preview, Spec, spec_from_json, spec_to_json

# A request is kept a week after it is made: long enough for Revert and `/ops audit` context
# (the audit trail itself never expires).
REQUEST_TTL = 7 * 86400.0
MAX_CAS_ATTEMPTS = 50

PENDING, APPROVED, EXECUTING = "pending", "approved", "executing"
DONE, FAILED, CHANGED = "done", "failed", "changed"
PREVIEWING, REFUSED, CANCELLED, EXPIRED = "previewing", "refused", "cancelled", "expired"
FINAL = frozenset({DONE, FAILED, CHANGED, REFUSED, CANCELLED, EXPIRED})


def new_id() -> str:
    return "r" + secrets.token_hex(8)


@dataclass(frozen=True)
class ActionRequest:
    id: str
    action: str
    spec: dict[str, Any]
    namespace: str
    requester: str
    channel: str
    created_at: float
    requester_name: str = ""
    thread_ts: str = ""
    status: str = PREVIEWING
    preview: dict[str, Any] | None = None
    error: str = ""
    expires_at: float = 0.0
    approver: str = ""
    approver_name: str = ""
    approved_at: float = 0.0
    by_job: str = ""
    decided_by: str = ""
    started_at: float = 0.0
    finished_at: float = 0.0
    elapsed: float = 0.0
    outcome: dict[str, Any] | None = None
    message: dict[str, Any] | None = None
    permalink: str = ""
    revert_of: str = ""
    reverted_by: str = ""
    again_of: str = ""
    superseded_by: str = ""
    attempts: int = 0
    team: str = ""
    version: int = field(default=0, compare=False)

    @property
    def key(self) -> str:
        return keys.action_request(self.id)

    @property
    def the_spec(self) -> Spec:
        return spec_from_json(self.spec)

    @property
    def the_preview(self) -> Preview | None:
        return Preview.from_json(self.preview) if self.preview is not None else None

    @property
    def the_outcome(self) -> Outcome | None:
        return Outcome.from_json(self.outcome) if self.outcome is not None else None

    @classmethod
    def new(cls, id: str, spec: Spec, *, namespace: str, requester: str, requester_name: str, channel: str,
            thread_ts: str, now: float, revert_of: str = "", again_of: str = "", team: str = "") -> ActionRequest:
        policy_action = "silence" if spec.action == "unsilence" else spec.action
        return cls(id=id, action=policy_action, spec=spec_to_json(spec), namespace=namespace, requester=requester,
                   requester_name=requester_name, channel=channel, thread_ts=thread_ts, created_at=now,
                   revert_of=revert_of, again_of=again_of, team=team)

    def to_json(self) -> dict[str, Any]:
        value = dataclasses.asdict(self)
        value.pop("version")
        return value

    @classmethod
    def from_json(cls, value: dict[str, Any], version: int) -> ActionRequest:
        known = {f.name for f in dataclasses.fields(cls)} - {"version"}
        return cls(**{k: v for k, v in value.items() if k in known}, version=version)


async def load_request(store: Store, request_id: str) -> ActionRequest | None:
    current = await store.get(keys.action_request(request_id))
    return ActionRequest.from_json(current.value, current.version) if current is not None else None


async def create_request(store: Store, request: ActionRequest) -> ActionRequest:
    """Store a new request; if one with this id exists (a retried job), that one is returned."""
    version = await store.put_if(request.key, request.to_json(), None, ttl=REQUEST_TTL)
    if version is not None:
        return dataclasses.replace(request, version=version)
    existing = await load_request(store, request.id)
    assert existing is not None, f"{request.key} exists but cannot be read"
    return existing


RequestChange = Callable[[ActionRequest], ActionRequest | None]


async def change_request(store: Store, request_id: str, change: RequestChange) -> tuple[ActionRequest | None, bool]:
    """Apply `change` to the stored request by compare-and-set, reading again after a conflict.

    `change` returns the new request, or None to leave it as it is (e.g. no longer pending).
    Returns (the request as stored afterwards, whether `change` was written). None: no such request.
    """
    for _ in range(MAX_CAS_ATTEMPTS):
        current = await load_request(store, request_id)
        if current is None:
            return None, False
        new = change(current)
        if new is None:
            return current, False
        version = await store.put_if(current.key, new.to_json(), current.version, ttl=REQUEST_TTL)
        if version is not None:
            return dataclasses.replace(new, version=version), True
    raise RuntimeError(f"{keys.action_request(request_id)}: gave up after {MAX_CAS_ATTEMPTS} conflicting writes")
