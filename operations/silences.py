"""Alertmanager silences (API v2): create one (Silence), expire one (Unsilence).

Alertmanager has no dry run: a silence's preview is the alerts it would silence now
(`GET /api/v2/alerts?filter=…`). Creating a silence is not idempotent (each POST makes a new
one), so its comment carries a marker naming the request, and `apply` first looks for an active
or pending silence with that marker: a retry after a crash or a lost answer finds it instead of
making a second.

Every call is under `timeout`; errors are one line naming Alertmanager and `location` (the URL as
it may be shown: `url` itself may carry basic-auth credentials and never appears in a message).
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from typing import Any

import aiohttp

from diagnostics.durations import spoken_duration
from diagnostics.http_api import BackendError, Params, one_line, parse_time, request, snippet
from operations.model import Change, OperationError, Outcome, Preview, Silence, Spec, Unsilence

BACKEND = "Alertmanager"
MAX_DETAILS = 20  # alerts listed in a preview; the rest are counted
WIDE = 10  # a silence covering more alerts than this gets a warning
LABELS_SHOWN = 4
MAX_SECONDS = 366 * 86400  # longer is a mistake (and past a point, not a representable time)
# Alertmanager's label names (prometheus/common model.LabelNameRE): ASCII only.
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*", re.ASCII)
SILENCE_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.ASCII | re.IGNORECASE)
_PLAIN_VALUE = re.compile(r"[\w.:/@-]+")
SHOWN_ID_CHARS = 60


# ------------------------------------------------------------------------------------ public


async def preview(http: aiohttp.ClientSession, url: str, spec: Silence | Unsilence, *, location: str,
                  timeout: float) -> Preview:
    """What `apply` would do; reads only. OperationError for an invalid spec (before any request)."""
    if isinstance(spec, Silence):
        return await _preview_silence(_Api(http, url, location, timeout), spec)
    return await _preview_unsilence(_Api(http, url, location, timeout), spec)


async def apply(http: aiohttp.ClientSession, url: str, spec: Silence | Unsilence, preview: Preview, *,
                location: str, timeout: float, now: datetime) -> Outcome:
    """Create or expire the silence; applying again finds what the first time did (already=True)."""
    if isinstance(spec, Silence):
        return await _apply_silence(_Api(http, url, location, timeout), spec, now)
    return await _apply_unsilence(_Api(http, url, location, timeout), spec)


def revert(spec: Silence | Unsilence, preview: Preview, outcome: Outcome) -> Spec | None:
    """A silence is undone by expiring it; an expired silence cannot be brought back."""
    if isinstance(spec, Silence) and outcome.reference:
        return Unsilence(outcome.reference)
    return None


def matcher_filter(name: str, value: str) -> str:
    """`name="value"` in Alertmanager's matcher syntax, the value quoted and escaped so that `"`,
    `,`, `}`, `\\` or a newline in it stays part of the value."""
    return f"{name}={_quoted(value)}"


def marker(spec: Silence) -> str:
    """What `apply` appends to the comment, and looks for before it creates anything."""
    return f"[chatops request {spec.request}]"


# ------------------------------------------------------------------------------------ silence


async def _preview_silence(api: _Api, spec: Silence) -> Preview:
    _validate(spec)
    params: list[tuple[str, str]] = [("filter", matcher_filter(n, v)) for n, v in spec.matchers]
    params += [("active", "true"), ("silenced", "true"), ("inhibited", "true"), ("unprocessed", "true")]
    alerts = await api.json("GET", "/api/v2/alerts", params=params)
    if not isinstance(alerts, list):
        raise OperationError(f"{BACKEND}: unexpected answer from {api.location}: {snippet(json.dumps(alerts))}")
    alerts.sort(key=lambda a: (str(a.get("startsAt", "")), str(a.get("labels", {}).get("alertname", ""))))
    details = [_alert_line(a) for a in alerts[:MAX_DETAILS]]
    if len(alerts) > MAX_DETAILS:
        details.append(f"and {len(alerts) - MAX_DETAILS} more")
    warnings = []
    if not alerts:
        warnings.append("matches no firing alert now")
    elif len(alerts) > WIDE:
        warnings.append(f"would silence {len(alerts)} alerts (more than {WIDE}): check the matchers")
    described = _matchers_text(spec.matchers)
    return Preview(target=f"{BACKEND} silence {described}",
                   changes=(Change("silence", None, f"{described} for {spoken_duration(spec.seconds)}"),),
                   warnings=tuple(warnings), details=tuple(details))


async def _apply_silence(api: _Api, spec: Silence, now: datetime) -> Outcome:
    _validate(spec)
    existing = await _marked_silence(api, marker(spec))
    if existing is not None:
        ident = str(existing.get("id"))
        return Outcome((_created(ident, parse_time(existing.get("endsAt"))),), reference=ident, already=True)
    start = now if now.tzinfo else now.replace(tzinfo=timezone.utc)
    end = start + timedelta(seconds=spec.seconds)
    body = {"matchers": [{"name": n, "value": v, "isRegex": False, "isEqual": True} for n, v in spec.matchers],
            "startsAt": _rfc3339(start), "endsAt": _rfc3339(end), "createdBy": spec.created_by,
            "comment": f"{spec.comment} {marker(spec)}".strip()}
    answer = await api.json("POST", "/api/v2/silences", body=body)
    created = answer.get("silenceID") if isinstance(answer, dict) else None
    if not isinstance(created, str) or not created:
        raise OperationError(f"{BACKEND}: no silenceID in the answer from {api.location}: "
                             f"{snippet(json.dumps(answer))}")
    return Outcome((_created(created, end),), reference=created)


async def _marked_silence(api: _Api, mark: str) -> dict[str, Any] | None:
    silences = await api.json("GET", "/api/v2/silences")
    for silence in silences if isinstance(silences, list) else []:
        state = silence.get("status", {}).get("state")
        if state in ("active", "pending") and mark in str(silence.get("comment", "")):
            return dict(silence)
    return None


def _validate(spec: Silence) -> None:
    if not spec.matchers:
        raise OperationError("a silence needs at least one matcher (name=value)")
    for name, _ in spec.matchers:
        if not _LABEL_NAME.fullmatch(name):
            raise OperationError(f"{_shown(name)} is not a label name (letters, digits and _, not first a digit)")
    if all(value == "" for _, value in spec.matchers):
        raise OperationError("every matcher matches the empty string: at least one needs a value "
                             "(Alertmanager refuses a silence that would match every alert)")
    if not 0 < spec.seconds <= MAX_SECONDS:  # also refuses NaN
        raise OperationError(f"a silence lasts more than 0 s and at most {spoken_duration(MAX_SECONDS)}, "
                             f"not {spec.seconds:g} s")
    if not spec.request.strip():
        raise OperationError("a silence needs the request's id (its marker is how a retry finds it)")


def _alert_line(alert: dict[str, Any]) -> str:
    """"HighErrorRate service=checkout, severity=critical · since 2024-05-01 12:03 UTC (inhibited)"."""
    labels = alert.get("labels", {})
    others = [f"{k}={v}" for k, v in sorted(labels.items()) if k != "alertname"]
    shown = ", ".join(others[:LABELS_SHOWN]) + (", …" if len(others) > LABELS_SHOWN else "")
    line = one_line(f"{labels.get('alertname', '?')} {shown}")
    started = parse_time(alert.get("startsAt"))
    if started is not None:
        line += f" · since {_clock(started)}"
    status = alert.get("status", {})
    if status.get("silencedBy"):
        line += " (already silenced)"
    elif status.get("inhibitedBy"):
        line += " (inhibited)"
    return line


def _created(ident: str, ends: datetime | None) -> Change:
    return Change("silence", None, f"{ident} until {_clock(ends)}" if ends else ident)


# ---------------------------------------------------------------------------------- unsilence


async def _preview_unsilence(api: _Api, spec: Unsilence) -> Preview:
    ident, silence = await _read_silence(api, spec)
    ends = _clock(parse_time(silence.get("endsAt")))
    state = silence.get("status", {}).get("state", "?")
    if state == "expired":
        raise OperationError(f"{BACKEND}: silence {ident} already expired at {ends}")
    before = f"{state} until {ends}"
    if state == "pending":
        before = f"pending from {_clock(parse_time(silence.get('startsAt')))} until {ends}"
    details = (_matchers_text([(m.get("name", "?"), m.get("value", ""), _operator(m))
                               for m in silence.get("matchers", [])]),
               f"created by {silence.get('createdBy') or '?'}",
               f"comment: {one_line(str(silence.get('comment') or ''))}")
    return Preview(target=f"{BACKEND} silence {ident}", changes=(Change(f"silence {ident}", before, "expired"),),
                   details=details, observed={"endsAt": silence.get("endsAt"), "state": state})


async def _apply_unsilence(api: _Api, spec: Unsilence) -> Outcome:
    ident, silence = await _read_silence(api, spec)
    state = silence.get("status", {}).get("state", "?")
    ends = _clock(parse_time(silence.get("endsAt")))
    if state == "expired":
        return Outcome((Change(f"silence {ident}", None, f"expired at {ends}"),), reference=ident, already=True)
    await api.json("DELETE", f"/api/v2/silence/{ident}")
    return Outcome((Change(f"silence {ident}", f"{state} until {ends}", "expired"),), reference=ident)


async def _read_silence(api: _Api, spec: Unsilence) -> tuple[str, dict[str, Any]]:
    """The silence's canonical id and its document; the id is checked before it goes in a path."""
    if not SILENCE_ID.fullmatch(spec.silence_id):
        raise OperationError(f"not a silence ID (a UUID such as 3fa85f64-5717-4562-b3fc-2c963f66afa6): "
                             f"{_shown(spec.silence_id)}")
    ident = spec.silence_id.lower()
    status, raw = await api.call("GET", f"/api/v2/silence/{ident}")
    if status == 404:
        raise OperationError(f"{BACKEND}: no silence {ident} at {api.location}")
    silence = api.decode(status, raw)
    if not isinstance(silence, dict):
        raise OperationError(f"{BACKEND}: unexpected answer from {api.location}: {snippet(raw)}")
    return ident, silence


# -------------------------------------------------------------------------------------- HTTP


class _Api:
    """One Alertmanager: its URL (maybe with credentials), where it is for messages, the timeout."""

    def __init__(self, http: aiohttp.ClientSession, url: str, location: str, timeout: float) -> None:
        self.http, self.base, self.location, self.timeout = http, url.rstrip("/"), location, timeout

    async def call(self, method: str, path: str, *, params: Params | None = None,
                   body: Any = None) -> tuple[int, bytes]:
        try:
            return await request(self.http, self.base + path, backend=BACKEND, location=self.location,
                                 timeout=self.timeout, params=params, method=method, body=body)
        except BackendError as e:  # no answer: a timeout, a refused connection
            raise OperationError(str(e), temporary=True) from None

    async def json(self, method: str, path: str, *, params: Params | None = None, body: Any = None) -> Any:
        status, raw = await self.call(method, path, params=params, body=body)
        return self.decode(status, raw)

    def decode(self, status: int, raw: bytes) -> Any:
        """The answer's JSON (None if empty); OperationError for any status but 2xx."""
        if not 200 <= status < 300:
            temporary = status >= 500 or status in (408, 429)
            raise OperationError(f"{BACKEND}: HTTP {status} at {self.location}: {_message(raw)}",
                                 temporary=temporary)
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise OperationError(f"{BACKEND}: answer from {self.location} is not JSON: {snippet(raw)}") from None


def _message(raw: bytes) -> str:
    """Alertmanager's explanation: a JSON string ("silence invalid: …"), go-openapi's
    {"code", "message"}, or the body as it is; one line, cut."""
    try:
        value = json.loads(raw)
    except ValueError:
        return snippet(raw)
    if isinstance(value, dict) and isinstance(value.get("message"), str):
        value = value["message"]
    return snippet(value if isinstance(value, str) else raw)


# ------------------------------------------------------------------------------------ wording


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _operator(matcher: dict[str, Any]) -> str:
    equal = matcher.get("isEqual", True)
    if matcher.get("isRegex"):
        return "=~" if equal else "!~"
    return "=" if equal else "!="


def _matchers_text(matchers: Any) -> str:
    """"alertname=HighErrorRate, service=checkout"; a value that is not plain is quoted."""
    parts = []
    for name, value, *op in matchers:
        shown = value if _PLAIN_VALUE.fullmatch(value) else _quoted(value)
        parts.append(f"{name}{op[0] if op else '='}{shown}")
    return one_line(", ".join(parts))


def _shown(text: str) -> str:
    """Something a person typed, for an error message: quoted, one line, cut."""
    text = one_line(text)
    return repr(text if len(text) <= SHOWN_ID_CHARS else text[: SHOWN_ID_CHARS - 1] + "…")


def _clock(when: datetime | None) -> str:
    return f"{when.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC" if when else "?"


def _rfc3339(when: datetime) -> str:
    return when.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


