"""A webhook thread is one Alertmanager group: which notifications continue it, and what they change."""

from __future__ import annotations

from datetime import datetime, timezone

from bot.alerting.model import Alert, Notification
from bot.alerting.render import alert_message
from bot.alerting.state import AlertThread, Notice, group_notices, worst_severity

T0 = datetime(2026, 11, 25, 0, 0, tzinfo=timezone.utc)
LATER = datetime(2026, 11, 25, 2, 0, tzinfo=timezone.utc)
NOW = "2026-11-25T00:30:00+00:00"


def alert(fp: str, status: str = "firing", starts: datetime = T0, **labels: str) -> Alert:
    return Alert(fingerprint=fp, status=status, labels={"alertname": "HighErrorRate", "severity": "critical",
                                                         "service": "checkout", "instance": f"pod-{fp}", **labels},
                 annotations={"summary": "5xx on checkout", "description": f"ratio on {fp}"}, starts_at=starts,
                 ends_at=T0 if status == "resolved" else None)


def notice(*alerts: Alert, whole: bool = True) -> Notice:
    return Notice(id="g1", alerts=alerts, group_key="{}:{alertname=\"HighErrorRate\"}", whole=whole)


def opened(*alerts: Alert) -> AlertThread:
    return AlertThread.open_notice(notice(*alerts), "webhook", "#alerts-critical", "", 0.0)


def statuses(thread: AlertThread) -> dict[str, str]:
    return {a.fingerprint: a.status for a in thread.members()}


def test_a_group_notification_is_one_notice_named_by_its_group_key_and_without_one_an_alert_each():
    alerts = (alert("a"), alert("b"))
    grouped = Notification("firing", "webhook", '{}:{alertname="X"}', {}, "", alerts)
    (one,) = group_notices(grouped)
    assert one.alerts == alerts and one.whole and len(one.id) == 20
    assert group_notices(Notification("firing", "webhook", '{}:{alertname="Y"}', {}, "", alerts))[0].id != one.id
    (partial,) = group_notices(Notification("firing", "webhook", "k", {}, "", alerts, truncated=3))
    assert not partial.whole
    assert [n.id for n in group_notices(Notification("firing", "webhook", "", {}, "", alerts))] == ["a", "b"]


def test_the_thread_shows_what_its_alerts_have_in_common():
    thread = opened(alert("a"), alert("b"))
    assert thread.alertname == "HighErrorRate" and thread.starts_at == T0.isoformat()
    assert thread.labels == {"alertname": "HighErrorRate", "severity": "critical", "service": "checkout"}
    assert thread.annotations == {"summary": "5xx on checkout"}  # the descriptions differ


def test_an_alert_joining_continues_the_thread_and_is_added():
    thread = opened(alert("a"))
    joined = notice(alert("a"), alert("b"))
    assert thread.continues(joined)
    after = thread.merged(joined, NOW)
    assert statuses(after) == {"a": "firing", "b": "firing"} and after.revision == thread.revision + 1


def test_a_repeat_changes_nothing():
    thread = opened(alert("a"), alert("b"))
    assert thread.merged(notice(alert("a"), alert("b")), NOW) is thread


def test_an_alert_absent_from_a_whole_notification_stopped_firing_but_not_from_a_partial_one():
    thread = opened(alert("a"), alert("b"))
    assert statuses(thread.merged(notice(alert("a"), whole=False), NOW)) == {"a": "firing", "b": "firing"}
    after = thread.merged(notice(alert("a")), NOW)
    assert statuses(after) == {"a": "firing", "b": "resolved"} and after.status == "firing"
    assert after.alerts["b"]["ends_at"] == NOW


def test_the_thread_resolves_when_none_of_its_alerts_fires():
    thread = opened(alert("a"), alert("b"))
    after = thread.merged(notice(alert("a", "resolved"), alert("b", "resolved")), NOW)
    assert after.status == "resolved" and after.ends_at == T0.isoformat()


def test_new_alerts_only_after_the_old_stopped_open_a_new_thread_and_so_does_a_new_firing():
    thread = opened(alert("a"))
    assert not thread.continues(notice(alert("b")))  # a is absent: it ended; b is a new firing of the group
    assert not thread.continues(notice(alert("a", starts=LATER)))
    assert thread.continues(notice(alert("b"), whole=False))  # maybe a is only left out


def test_a_resolved_thread_takes_late_news_of_its_own_alerts_and_nothing_new():
    thread = opened(alert("a")).merged(notice(alert("a", "resolved")), NOW)
    assert thread.status == "resolved"
    assert thread.continues(notice(alert("a")))  # a late repeat of the firing: not a new thread
    assert thread.merged(notice(alert("a")), NOW) is thread
    assert not thread.continues(notice(alert("a"), alert("b")))


def test_a_thread_stored_before_groups_is_its_one_alert():
    old = {"fingerprint": "a", "source": "webhook", "alertname": "HighErrorRate",
           "labels": {"alertname": "HighErrorRate"}, "annotations": {}, "generator_url": "",
           "starts_at": T0.isoformat(), "channel": "C1", "ts": "1.0", "investigation": "done"}
    thread = AlertThread.from_doc(old)
    assert [a.fingerprint for a in thread.members()] == ["a"] and thread.planned == ("a",)
    assert thread.continues(Notice.of_alert(alert("a")))


def test_the_most_severe_severity_picks_the_channel():
    assert worst_severity([alert("a", severity="warning"), alert("b", severity="critical")]) == "critical"
    assert worst_severity([alert("a", severity="page")]) == "page"


def test_a_groups_post_lists_a_handful_of_its_alerts_by_what_tells_them_apart_and_counts_the_rest():
    members = [alert(f"{i:02d}", pod=f"<!channel>-{i}") for i in range(8)] + [alert("zz", "resolved")]
    thread = opened(*members)
    message = alert_message(thread.alert(), [], members=thread.members())
    text = str(message.blocks)
    assert "— 9 alerts" in text and "*8 firing*" in text and "*1 resolved*" in text
    assert "… and 3 more firing" in text and text.count(":red_circle:") == 5
    assert "<!channel>" not in text and "&lt;!channel&gt;-0" in text  # label values escaped
    assert "instance=`pod-00`" in text and "service=" not in text  # shared labels are not repeated


def test_alerts_alertmanager_left_out_are_counted_unless_known_here():
    thread = opened(alert("a"), alert("b"), alert("c"))
    partial = Notice(id="g1", alerts=(alert("a"),), whole=False, left_out=5)  # b, c and 3 more
    after = thread.merged(partial, NOW)
    assert after.left_out == 3 and statuses(after) == {"a": "firing", "b": "firing", "c": "firing"}
    assert "— 6 alerts" in str(alert_message(after.alert(), [], members=after.members(),
                                             left_out=after.left_out).blocks)


def test_a_one_alert_thread_fired_again_with_a_new_starts_at_is_a_new_thread():
    thread = AlertThread.open_notice(Notice.of_alert(alert("a")), "post", "C1", "1.0", 0.0)
    assert thread.continues(Notice.of_alert(alert("a")))
    assert not thread.continues(Notice.of_alert(alert("a", starts=LATER)))
    assert not AlertThread.from_doc(thread.to_doc()).continues(Notice.from_payload({"alert": {
        "fingerprint": "a", "status": "firing", "labels": {}, "starts_at": LATER.isoformat()}}))


def test_a_round_not_posted_yet_when_the_group_resolves_is_not_started_but_one_posted_finishes():
    from bot.slack.once import PostRecord

    done_first = opened(alert("a")).replace(investigation="done", posts={"reply": PostRecord.new(0.0)})
    second = done_first.replace(round=2, investigation="pending")
    assert second.merged(notice(alert("a", "resolved")), NOW).investigation == "skipped"
    posted = second.replace(posts={**second.posts, "reply:2": PostRecord.new(0.0)})
    assert posted.merged(notice(alert("a", "resolved")), NOW).investigation == "pending"
