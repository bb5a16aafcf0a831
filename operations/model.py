"""What a change to a backend is, what its preview showed and what applying it did: plain data.

The ring beside diagnostics: diagnostics only read, operations change things (Kubernetes
writes, Alertmanager silences). Neither knows of Slack or of bot/. Every operation is

    spec (frozen, JSON-able: what was asked) -> preview(spec) -> Preview -> apply(spec, preview) -> Outcome

* `preview` reads the object and computes the change with a server-side dry run of the exact
  write (`dryRun=All`, the same path and body as `apply`). It never changes anything.
* `apply` re-reads the previewed fields first: if any differs from what the preview read
  (`Preview.observed`) and is not already the desired value, it raises ChangedSincePreview and
  writes nothing; otherwise the write itself is conditional on those values (a JSON Patch `test`
  op: the API server answers 422 if someone wrote in between, also ChangedSincePreview). It is
  idempotent: a field that already holds the desired value is not written again (a crash between
  "applied" and "recorded" is resolved by applying again).
* `revert(spec, preview, outcome)` is the spec that puts back what the preview read, or None
  when there is nothing to put back (a restart).

Specs are stored (bot/actions keeps them in the request document) and rebuilt with
`spec_from_json`; nothing in a spec comes from a button's payload.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

JSON = Any


class OperationError(Exception):
    """The backend refused the change or could not be reached; one line naming the backend,
    never a credential. `temporary` says whether trying again later may succeed (a timeout, a
    5xx, a refused connection) or not (403, 404, 422 validation, a paused Deployment)."""

    def __init__(self, message: str, *, temporary: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.temporary = temporary


class ChangedSincePreview(OperationError):
    """A previewed field holds neither what the preview read nor the desired value: nothing was
    written. The message says which field and both values: "replicas is 5 now; the preview read 3"."""


@dataclass(frozen=True)
class Change:
    """One field, before -> after, as plain values a person reads: ("replicas", "3", "8"),
    ("memory limit of checkout", "4Gi", "6Gi"), ("circuit-breaker-enabled", "false", "true").
    None: not set (before) / removed (after)."""

    field: str
    before: str | None
    after: str | None

    def text(self) -> str:
        """ "replicas 3 → 8", "memory limit of api (not set) → 6Gi": plain text, not escaped."""
        before = self.before if self.before is not None else "(not set)"
        after = self.after if self.after is not None else "(removed)"
        return f"{self.field} {before} → {after}"


@dataclass(frozen=True)
class Preview:
    """What the write would do, computed by the backend itself.

    target    what is changed, named: "Deployment claude-deployment-prod/checkout"
    changes   before -> after of every field the write changes, from the dry run's answer
    warnings  what a person should know before approving: "HorizontalPodAutoscaler checkout
              manages this Deployment (min 2, max 10) and will override a manual scale"
    details   more lines to show: for a silence, the alerts it would silence now
    observed  JSON-able values apply compares before it writes (the previewed fields as read)
    """

    target: str
    changes: tuple[Change, ...]
    warnings: tuple[str, ...] = ()
    details: tuple[str, ...] = ()
    observed: Mapping[str, JSON] = field(default_factory=dict)

    def to_json(self) -> JSON:
        return {"target": self.target, "changes": [asdict(c) for c in self.changes],
                "warnings": list(self.warnings), "details": list(self.details), "observed": dict(self.observed)}

    @classmethod
    def from_json(cls, value: JSON) -> Preview:
        return cls(target=value["target"], changes=tuple(Change(**c) for c in value["changes"]),
                   warnings=tuple(value.get("warnings", ())), details=tuple(value.get("details", ())),
                   observed=dict(value.get("observed", {})))


@dataclass(frozen=True)
class Outcome:
    """What applying did: the fields as written (after = what the backend answered), and a
    reference to what was created (a silence's ID), if anything. `already` is True when every
    field already held the desired value and nothing was written."""

    changes: tuple[Change, ...]
    reference: str = ""
    already: bool = False

    def to_json(self) -> JSON:
        return {"changes": [asdict(c) for c in self.changes], "reference": self.reference, "already": self.already}

    @classmethod
    def from_json(cls, value: JSON) -> Outcome:
        return cls(changes=tuple(Change(**c) for c in value["changes"]), reference=value.get("reference", ""),
                   already=bool(value.get("already", False)))


# ------------------------------------------------------------------------------------- specs
# One frozen dataclass per action; `action` names it (policy rules and audit use the name).


@dataclass(frozen=True)
class Scale:
    """The Deployment's scale subresource to `replicas`."""

    namespace: str
    deployment: str
    replicas: int
    action: str = "scale"


@dataclass(frozen=True)
class Restart:
    """A rollout restart as kubectl does it: the pod template's annotation
    kubectl.kubernetes.io/restartedAt = `at` (RFC 3339, fixed when the request is made, so that
    applying twice is one restart). Refused for a paused Deployment."""

    namespace: str
    deployment: str
    at: str
    action: str = "restart"


@dataclass(frozen=True)
class Limits:
    """A container's resource limits. `container` None: the pod template has exactly one
    container (else OperationError naming them). memory/cpu None: left as it is (at least one is
    given); for a revert, `remove` names the limits to delete ("memory", "cpu") because they were
    not set before."""

    namespace: str
    deployment: str
    container: str | None
    memory: str | None = None
    cpu: str | None = None
    remove: tuple[str, ...] = ()
    action: str = "limits"


@dataclass(frozen=True)
class Breaker:
    """ConfigMap `configmap`, key `key` = "true" (enabled) or "false"."""

    namespace: str
    enabled: bool
    configmap: str = "claude-deployment-config"
    key: str = "circuit-breaker-enabled"
    action: str = "breaker"


@dataclass(frozen=True)
class Silence:
    """An Alertmanager silence: every matcher is an equality (name=value); it lasts `seconds`
    from when it is applied; createdBy is `created_by` (the requester); `comment` gets the
    request's id appended (`request`), which is how a retry finds the silence it already made."""

    matchers: tuple[tuple[str, str], ...]
    seconds: float
    created_by: str
    comment: str
    request: str
    action: str = "silence"


@dataclass(frozen=True)
class Unsilence:
    """Expire the silence `silence_id`."""

    silence_id: str
    action: str = "unsilence"


Spec = Scale | Restart | Limits | Breaker | Silence | Unsilence
SPECS: dict[str, type] = {cls.action: cls for cls in (Scale, Restart, Limits, Breaker, Silence, Unsilence)}


def spec_to_json(spec: Spec) -> JSON:
    return asdict(spec)


def spec_from_json(value: JSON) -> Spec:
    kind = SPECS[value["action"]]
    fields = dict(value)
    for name in ("matchers",):
        if name in fields:
            fields[name] = tuple(tuple(m) for m in fields[name])
    if "remove" in fields:
        fields["remove"] = tuple(fields["remove"])
    return kind(**fields)
