"""Kubernetes: the `events` diagnostic — `kubectl events`, folded for reading in a channel.

Events repeat: the kubelet records BackOff every few seconds for a crashlooping pod. Events
with the same type, reason, object and message fold into one row with their counts summed
("BackOff ×37"). Warnings come first, newest first, at most MAX_EVENT_ROWS rows; the rest
are counted in a note. `fold_events` and `summarise_events` are pure; `recent_events` makes
the API call.

Which events: all of the namespace, filtered here (not by a field selector, which some
servers and emulators ignore). `involved=("Deployment", "checkout")` keeps the events of
the deployment and of its ReplicaSets and pods, recognised by their generated names
(`checkout-<hash>`, `checkout-<hash>-<id>`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone

from kubernetes.aio import client
from kubernetes.aio.client import ApiClient, CoreV1Event

from diagnostics.cache import QueryCache, cached
from diagnostics.kubernetes._text import one_line, truncate
from diagnostics.kubernetes.client import call_api, read_list
from diagnostics.kubernetes.deploy import namespace_missing
from diagnostics.kubernetes.pod_health import humanise_age
from diagnostics.result import Result, Row, Status

MAX_EVENT_ROWS = 30
EVENT_COLUMNS = ("Object", "Reason", "Last seen")
_OLDEST = datetime.min.replace(tzinfo=timezone.utc)


# ---------------------------------------------------------------------------------------
# Folding and filtering: pure
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FoldedEvent:
    type: str  # "Warning" or "Normal"
    reason: str
    kind: str
    name: str
    message: str
    count: int
    last_seen: datetime | None

    @property
    def warning(self) -> bool:
        return self.type == "Warning"

    def row(self, now: datetime) -> Row:
        reason = f"{self.reason} ×{self.count}" if self.count > 1 else self.reason
        seen = f"{humanise_age(self.last_seen, now)} ago" if self.last_seen is not None else "?"
        return Row(cells=(f"{self.kind.lower()}/{self.name}", reason, seen),
                   status=Status.WARNING if self.warning else Status.OK, detail=self.message)


def involves(involved: tuple[str, str], kind: str, name: str) -> bool:
    """Is an event about (kind, name) one of `involved`'s? A deployment's events include its
    ReplicaSets' (`<name>-<hash>`) and its pods' (`<name>-<hash>-<id>`)."""
    want_kind, want_name = involved
    if kind.lower() == want_kind.lower() and name == want_name:
        return True
    if want_kind.lower() != "deployment":
        return False
    generated = {"replicaset": r"[a-z0-9]{6,10}", "pod": r"[a-z0-9]{6,10}-[a-z0-9]{1,10}"}.get(kind.lower())
    return generated is not None and re.fullmatch(re.escape(want_name) + "-" + generated, name) is not None


def fold_events(events: Iterable[CoreV1Event], involved: tuple[str, str] | None = None) -> list[FoldedEvent]:
    """Events with the same type, reason, object and message as one, counts summed;
    warnings first, then newest first."""
    folded: dict[tuple[str, str, str, str, str], FoldedEvent] = {}
    for e in events:
        obj = e.involved_object
        kind, name = obj.kind or "?", obj.name or "?"
        if involved is not None and not involves(involved, kind, name):
            continue
        key = (e.type or "Normal", e.reason or "", kind, name, truncate(one_line(e.message or "")))
        count, seen = _count(e), _last_seen(e)
        if key in folded:
            earlier = folded[key]
            count += earlier.count
            seen = max((t for t in (seen, earlier.last_seen) if t is not None), default=None)
        folded[key] = FoldedEvent(*key, count=count, last_seen=seen)
    return sorted(folded.values(),
                  key=lambda f: (not f.warning, -(f.last_seen or _OLDEST).timestamp(), f.name))


def summarise_events(
    folded: list[FoldedEvent], *, now: datetime, title: str, scope: str, max_rows: int = MAX_EVENT_ROWS
) -> Result:
    """`scope` names what was asked about, for the empty answer ("namespace `prod`")."""
    if not folded:
        return Result(status=Status.OK, title=title,
                      summary=f"No events for {scope} (Kubernetes keeps events for about an hour)")
    warnings = [f for f in folded if f.warning]
    normal = len(folded) - len(warnings)
    by_reason: Counter[str] = Counter()
    for f in warnings:
        by_reason[f.reason] += f.count
    parts = [f"{reason} ×{n}" if n > 1 else reason for reason, n in by_reason.most_common(3)]
    if len(by_reason) > 3:
        parts.append(f"{len(by_reason) - 3} more")
    summary = f"Warnings: {', '.join(parts)}" if warnings else "No warnings"
    summary += f" · {normal} normal event{'s' if normal != 1 else ''}" if normal else ""
    shown, left = folded[:max_rows], folded[max_rows:]
    note = ""
    if left:
        left_warnings = sum(1 for f in left if f.warning)
        note = f"… and {len(left)} older events not shown"
        note += f" ({left_warnings} warnings)" if left_warnings else ""
    return Result(
        status=Status.WARNING if warnings else Status.OK,
        title=title,
        summary=summary,
        columns=EVENT_COLUMNS,
        rows=[f.row(now) for f in shown],
        folded_rows_note=note,
    )


def _count(e: CoreV1Event) -> int:
    series = e.series.count if e.series is not None and e.series.count else 0
    return max(e.count or 0, series, 1)


def _last_seen(e: CoreV1Event) -> datetime | None:
    series = e.series.last_observed_time if e.series is not None else None
    created = e.metadata.creation_timestamp if e.metadata is not None else None
    return e.last_timestamp or series or e.event_time or e.first_timestamp or created


# ---------------------------------------------------------------------------------------
# The `events` diagnostic: API calls
# ---------------------------------------------------------------------------------------


async def recent_events(
    api: ApiClient,
    namespace: str,
    *,
    involved: tuple[str, str] | None = None,
    timeout: float = 8.0,
    now: datetime | None = None,
    cache: QueryCache | None = None,
    max_rows: int = MAX_EVENT_ROWS,
) -> Result:
    """The namespace's recent events (or `involved`'s: (kind, name)), folded, warnings first."""
    subject = f"{involved[0].lower()}/{involved[1]}" if involved else ""
    title = f"Events · {subject} ({namespace})" if involved else f"Events · {namespace}"
    core = client.CoreV1Api(api)

    async def fetch() -> Result | list[FoldedEvent]:
        listed = await cached(
            cache, ("k8s.events", api.configuration.host, namespace),
            lambda: read_list(api, core.list_namespaced_event_without_preload_content(
                namespace, _request_timeout=timeout), "CoreV1EventList"),
        )
        if not listed.items and await namespace_missing(api, namespace, timeout=timeout, cache=cache):
            return Result(status=Status.UNKNOWN, title=title, summary=f"Namespace `{namespace}` not found")
        return fold_events(listed.items, involved)

    fetched = await call_api(api, title, fetch, timeout=timeout)
    if isinstance(fetched, Result):
        return fetched
    scope = f"{subject} in namespace `{namespace}`" if involved else f"namespace `{namespace}`"
    return summarise_events(fetched, now=now or datetime.now(timezone.utc), title=title, scope=scope,
                            max_rows=max_rows)
