"""operations/silences.py against a real Alertmanager 0.25: a preview lists what a silence would
cover and creates nothing; apply creates exactly one silence, even when retried; unsilence
expires it. Errors: a loopback fake answers what a real server only does when it is failing_server."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from diagnostics.http_api import parse_time
from operations import silences
from operations.model import Change, OperationError, Outcome, Preview, Silence, Unsilence
from tests.servers.alertmanager import AlertmanagerServer

pytestmark = pytest.mark.integration

TIMEOUT = 5
EMPTY = Preview(target="", changes=())
UNKNOWN_ID = "11111111-2222-3333-4444-555555555555"


def silence(*matchers: tuple[str, str], seconds: float = 3600, request: str = "r-1") -> Silence:
    return Silence(matchers=matchers or (("alertname", "HighErrorRate"), ("service", "checkout")), seconds=seconds,
                   created_by="U0ALICE001", comment="rollback in progress", request=request)


def alert(name: str, **labels: str) -> dict[str, Any]:
    return {"labels": {"alertname": name, **labels}}


def clock(when: datetime) -> str:
    return f"{when.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC"


async def until(condition: Callable[[], Any], what: str, seconds: float = 10) -> Any:
    """Poll `condition` until it is truthy (Alertmanager applies silences to alerts as it lists them)."""
    deadline = time.monotonic() + seconds
    while not (value := condition()):
        assert time.monotonic() < deadline, f"still not {what} after {seconds} s"
        await asyncio.sleep(0.1)
    return value


async def firing(am: AlertmanagerServer, alerts: list[dict[str, Any]]) -> None:
    am.post_alerts(alerts)
    await until(lambda: len(am.alerts()) >= len(alerts), f"{len(alerts)} alerts listed")


async def preview(am: AlertmanagerServer, http: Any, spec: Silence | Unsilence) -> Preview:
    return await silences.preview(http, am.url, spec, location=am.url, timeout=TIMEOUT)


async def apply(am: AlertmanagerServer, http: Any, spec: Silence | Unsilence, now: datetime | None = None) -> Outcome:
    return await silences.apply(http, am.url, spec, EMPTY, location=am.url, timeout=TIMEOUT,
                                now=now or datetime.now(timezone.utc))


def silenced_values(am: AlertmanagerServer) -> set[str]:
    return {a["labels"].get("v", "") for a in am.alerts() if a["status"]["silencedBy"]}


# ---------------------------------------------------------------------------------- preview


async def test_a_preview_lists_the_alerts_it_would_silence_and_creates_nothing(alertmanager, http):
    await firing(alertmanager, [alert("HighErrorRate", service="checkout", severity="critical"),
                                alert("HighErrorRate", service="cart"), alert("HighLatency", service="checkout")])
    result = await preview(alertmanager, http, silence())
    assert result.target == "Alertmanager silence alertname=HighErrorRate, service=checkout"
    assert result.changes == (Change("silence", None, "alertname=HighErrorRate, service=checkout for 1 h"),)
    assert len(result.details) == 1
    assert result.details[0].startswith("HighErrorRate service=checkout, severity=critical · since ")
    assert result.warnings == ()
    assert alertmanager.silences() == []


async def test_a_preview_that_matches_nothing_warns(alertmanager, http):
    await firing(alertmanager, [alert("HighLatency", service="checkout")])
    result = await preview(alertmanager, http, silence())
    assert (result.details, result.warnings) == ((), ("matches no firing alert now",))


async def test_a_wide_preview_lists_twenty_counts_the_rest_and_warns(alertmanager, http):
    await firing(alertmanager, [alert("NodeDown", instance=f"node-{i:02}") for i in range(25)])
    result = await preview(alertmanager, http, silence(("alertname", "NodeDown")))
    assert len(result.details) == 21
    assert result.details[-1] == "and 5 more"
    assert result.warnings == ("would silence 25 alerts (more than 10): check the matchers",)


async def test_filter_values_with_quotes_commas_and_braces_match_exactly_their_alert(alertmanager, http):
    values = ['say "hi"', "a,b", "x}", '{"}', "back\\slash", "semi;colon&x=y+z", "a"]
    await firing(alertmanager, [alert("Odd", v=v) for v in values])
    for value in values:
        result = await preview(alertmanager, http, silence(("alertname", "Odd"), ("v", value)))
        assert len(result.details) == 1, (value, result.details)
        assert result.details[0].startswith(f"Odd v={value} · since "), (value, result.details)
    assert silences.matcher_filter("v", 'say "hi"') == 'v="say \\"hi\\""'
    # The silence Alertmanager stores matches that one alert too.
    outcome = await apply(alertmanager, http, silence(("alertname", "Odd"), ("v", 'say "hi"')))
    assert await until(lambda: silenced_values(alertmanager), "silenced") == {'say "hi"'}
    assert alertmanager.silences()[0]["matchers"][1]["value"] == 'say "hi"'
    again = await preview(alertmanager, http, silence(("alertname", "Odd"), ("v", 'say "hi"')))
    assert again.details[0].endswith("(already silenced)")
    assert outcome.reference


# ------------------------------------------------------------------------------------ apply


async def test_apply_creates_one_silence_with_the_matchers_author_comment_and_end(alertmanager, http):
    now = datetime.now(timezone.utc)
    outcome = await apply(alertmanager, http, silence(), now)
    [created] = alertmanager.silences()
    assert created["id"] == outcome.reference
    assert created["status"]["state"] == "active"
    assert created["matchers"] == [{"name": "alertname", "value": "HighErrorRate", "isRegex": False, "isEqual": True},
                                   {"name": "service", "value": "checkout", "isRegex": False, "isEqual": True}]
    assert created["createdBy"] == "U0ALICE001"
    assert created["comment"] == "rollback in progress [chatops request r-1]"
    ends = parse_time(created["endsAt"])
    assert ends is not None and abs(ends - (now + timedelta(hours=1))) < timedelta(milliseconds=2)
    assert outcome == Outcome((Change("silence", None, f"{outcome.reference} until {clock(ends)}"),),
                              reference=outcome.reference, already=False)


async def test_applying_again_finds_the_silence_and_creates_no_second(alertmanager, http):
    first = await apply(alertmanager, http, silence())
    retry = await apply(alertmanager, http, silence())
    assert (retry.reference, retry.already, first.already) == (first.reference, True, False)
    assert [s["id"] for s in alertmanager.silences()] == [first.reference]
    other = await apply(alertmanager, http, silence(request="r-2"))  # another request: its own silence
    assert other.reference != first.reference and len(alertmanager.silences()) == 2
    bare = dataclasses.replace(silence(request="r-3"), comment="")
    assert (await apply(alertmanager, http, bare)).reference == (await apply(alertmanager, http, bare)).reference
    assert [s["comment"] for s in alertmanager.silences()].count("[chatops request r-3]") == 1


# -------------------------------------------------------------------------------- unsilence


async def test_unsilence_previews_then_expires_the_silence_once(alertmanager, http):
    created = await apply(alertmanager, http, silence())
    ident = created.reference
    spec = Unsilence(ident.upper())  # an ID as typed: canonical in what comes back
    shown = await preview(alertmanager, http, spec)
    ends = alertmanager.silences()[0]["endsAt"]
    ends = clock(datetime.fromisoformat(ends.replace("Z", "+00:00")))
    assert shown.changes == (Change(f"silence {ident}", f"active until {ends}", "expired"),)
    assert shown.details == ("alertname=HighErrorRate, service=checkout", "created by U0ALICE001",
                             "comment: rollback in progress [chatops request r-1]")
    assert shown.observed["state"] == "active"
    assert alertmanager.silences()[0]["status"]["state"] == "active"  # the preview changed nothing

    outcome = await apply(alertmanager, http, spec)
    assert (outcome.reference, outcome.already) == (ident, False)
    assert alertmanager.silences()[0]["status"]["state"] == "expired"
    again = await apply(alertmanager, http, spec)
    assert (again.reference, again.already) == (ident, True)
    with pytest.raises(OperationError, match=rf"^Alertmanager: silence {ident} already expired at ") as refused:
        await preview(alertmanager, http, spec)
    assert not refused.value.temporary


async def test_unsilence_of_an_unknown_id_is_refused_for_good(alertmanager, http):
    for call in (preview, apply):
        with pytest.raises(OperationError) as refused:
            await call(alertmanager, http, Unsilence(UNKNOWN_ID))
        assert (refused.value.message, refused.value.temporary) == \
            (f"Alertmanager: no silence {UNKNOWN_ID} at {alertmanager.url}", False)


@pytest.mark.parametrize("ident", ["../status", "notauuid", f"{UNKNOWN_ID}/../../status", f"{UNKNOWN_ID}?x=1", ""])
async def test_an_id_that_is_not_a_uuid_never_reaches_a_url(http, unused_tcp_port, ident):
    closed = f"http://127.0.0.1:{unused_tcp_port}"  # a request would fail as "cannot connect"
    calls = [silences.preview(http, closed, Unsilence(ident), location=closed, timeout=TIMEOUT),
             silences.apply(http, closed, Unsilence(ident), EMPTY, location=closed, timeout=TIMEOUT,
                            now=datetime.now(timezone.utc))]
    for call in calls:
        with pytest.raises(OperationError, match="^not a silence ID") as refused:
            await call
        assert not refused.value.temporary


# ------------------------------------------------------------------------------- validation


@pytest.mark.parametrize(("spec", "message"), [
    (Silence((), 3600, "U1", "c", "r-1"), "a silence needs at least one matcher"),
    (silence(("alert-name", "x")), "'alert-name' is not a label name"),
    (silence(("1st", "x")), "'1st' is not a label name"),
    (silence(("alertname", ""), ("service", "")), "every matcher matches the empty string"),
    (silence(seconds=0), "a silence lasts more than 0 s"),
    (silence(seconds=-60), "a silence lasts more than 0 s"),
    (silence(seconds=float("nan")), "a silence lasts more than 0 s"),
    (silence(seconds=400 * 86400), "a silence lasts more than 0 s and at most 366 d"),
    (silence(request=" "), "a silence needs the request's id"),
])
async def test_an_invalid_silence_is_refused_before_any_request(http, unused_tcp_port, spec, message):
    closed = f"http://127.0.0.1:{unused_tcp_port}"
    with pytest.raises(OperationError, match=f"^{message}") as refused:
        await silences.preview(http, closed, spec, location=closed, timeout=TIMEOUT)
    assert not refused.value.temporary
    with pytest.raises(OperationError, match=f"^{message}"):
        await silences.apply(http, closed, spec, EMPTY, location=closed, timeout=TIMEOUT,
                             now=datetime.now(timezone.utc))


# ----------------------------------------------------------------------------------- errors


async def test_an_unreachable_alertmanager_is_temporary_and_its_password_never_shown(http, unused_tcp_port):
    url = f"http://bob:s3cret@127.0.0.1:{unused_tcp_port}"
    location = f"http://bob:***@127.0.0.1:{unused_tcp_port}"
    calls = [silences.preview(http, url, spec, location=location, timeout=TIMEOUT)
             for spec in (silence(), Unsilence(UNKNOWN_ID))]
    calls += [silences.apply(http, url, spec, EMPTY, location=location, timeout=TIMEOUT,
                             now=datetime.now(timezone.utc)) for spec in (silence(), Unsilence(UNKNOWN_ID))]
    for call in calls:
        with pytest.raises(OperationError) as failed:
            await call
        assert (failed.value.message, failed.value.temporary) == \
            (f"Alertmanager: cannot connect to {location}: connection refused", True)


@pytest.mark.parametrize(("status", "body", "message", "temporary"), [
    (503, "overloaded, try later", "HTTP 503 at {url}: overloaded, try later", True),
    (400, '"silence invalid: start time must be before end time"',
     "HTTP 400 at {url}: silence invalid: start time must be before end time", False),
    (422, '{"code":602,"message":"comment in body is required"}', "HTTP 422 at {url}: comment in body is required",
     False),
    (400, '"' + "x" * 500 + '\\nsecond line"', "HTTP 400 at {url}: " + "x" * 199 + "…", False),
])
async def test_an_answer_other_than_2xx_is_one_line_temporary_only_for_5xx(http, failing_server, status, body, message,
                                                                           temporary):
    server, behaviour = failing_server
    behaviour.update(status=status, body=body)
    with pytest.raises(OperationError) as failed:
        await silences.apply(http, server.url, silence(), EMPTY, location=server.url, timeout=TIMEOUT,
                             now=datetime.now(timezone.utc))
    assert (failed.value.message, failed.value.temporary) == \
        ("Alertmanager: " + message.format(url=server.url), temporary)


async def test_an_alertmanager_that_hangs_times_out_as_temporary(http, failing_server):
    server, behaviour = failing_server
    behaviour["delay"] = 2.5
    started = time.monotonic()
    with pytest.raises(OperationError) as failed:
        await silences.preview(http, server.url, silence(), location=server.url, timeout=1)
    assert time.monotonic() - started < 1.8
    assert (failed.value.message, failed.value.temporary) == \
        (f"Alertmanager: timed out after 1 s at {server.url}", True)


# ----------------------------------------------------------------------------------- revert


def test_a_silence_is_reverted_by_expiring_it_and_an_unsilence_by_nothing():
    made = Outcome((Change("silence", None, "abc until …"),), reference=UNKNOWN_ID)
    assert silences.revert(silence(), EMPTY, made) == Unsilence(UNKNOWN_ID)
    assert silences.revert(Unsilence(UNKNOWN_ID), EMPTY, Outcome(())) is None
