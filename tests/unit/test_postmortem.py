"""The post-mortem draft: built from the thread document and the audit trail, safe as a Markdown file."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from bot.actions.audit import AuditEntry
from bot.alerting.model import Alert
from bot.alerting.postmortem import MAX_FINDINGS, PostMortem, Sla, draft
from bot.alerting.state import AlertThread, Notice
from bot.slack.once import PostRecord

T0 = datetime(2026, 11, 25, 23, 42, 0, tzinfo=timezone.utc)
START = T0.timestamp()
MIN = 60.0
TS = "1764114120.000100"
CRITICAL = Sla(ack_seconds=5 * MIN, resolve_seconds=60 * MIN)


def alert(fp: str, **labels: str) -> Alert:
    return Alert(fingerprint=fp, status="firing",
                 labels={"alertname": "HighErrorRate", "severity": "critical", "service": "checkout",
                         "namespace": "prod", "instance": f"pod-{fp}", **labels},
                 annotations={"summary": "5xx above 5% on checkout"}, starts_at=T0)


def group(*fps: str, **labels: str) -> AlertThread:
    notice = Notice(id="g1", alerts=tuple(alert(fp, **labels) for fp in fps), group_key="{}:{}", whole=True)
    thread = AlertThread.open_notice(notice, "webhook", "C0ALERTS", TS, START)
    return thread.replace(posts={"root": PostRecord("m1", START + 2, ts=TS, channel="C0ALERTS"),
                                 "reply": PostRecord("m2", START + 40, ts="1764114160.000200", channel="C0ALERTS")})


def at(minutes: float) -> float:
    return START + minutes * MIN


def iso(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


def entry(event: str, minutes: float, user: str = "U0BOB", name: str = "bob", thread: str = f"C0ALERTS:{TS}",
          **more: Any) -> AuditEntry:
    values: dict[str, Any] = {"changes": [], "reason": "", "permalink": "", "action": "scale"} | more
    return AuditEntry(at=at(minutes), event=event, user=user, request="r1", target="Deployment prod/checkout",
                      requester="U0BOB", user_name=name, requester_name="bob", thread=thread, **values)


MITIGATION = [
    entry("requested", 10, permalink="https://example.slack.com/archives/C0ALERTS/p1"),
    entry("previewed", 10.1, changes=[{"field": "replicas", "before": "3", "after": "8"}]),
    entry("approved", 12, user="U0CAROL", name="carol"),
    entry("executed", 12.2, user="U0CAROL", name="carol",
          changes=[{"field": "replicas", "before": "3", "after": "8"}]),
]

ESCALATION = {"kind": "ack", "at": at(5), "reason": "critical alert not acknowledged within 5 min", "by": "",
              "dedup_key": "chatops-g1", "pagerduty": "triggered (202 Accepted)"}


def lifecycle() -> AlertThread:
    """Fired, investigated, escalated at 5 min, acknowledged at 7, scaled up at 10-12, resolved at 65."""
    thread = group("a", "b", "c").replace(acked_by="U0ALICE", acked_at=at(7), escalations=(ESCALATION,),
                                          findings=("Error rate: 7.2% of requests fail",
                                                    "Pods: checkout-7d9 restarted 4 times"))
    return thread.ended(iso(65))


def section(doc: PostMortem, heading: str) -> list[str]:
    lines = doc.markdown.splitlines()
    start = lines.index(f"## {heading}") + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("## ")), len(lines))
    return [line for line in lines[start:end] if line]


def timeline(doc: PostMortem) -> list[str]:
    return section(doc, "Timeline")[2:]  # below the header row and its separator


def test_title_filename_and_summary_name_the_alert_and_when_it_fired():
    doc = draft(lifecycle(), MITIGATION, CRITICAL, now=at(70))
    assert doc.title == "Post-mortem draft: HighErrorRate (checkout) 2026-11-25"
    assert doc.filename == "postmortem-higherrorrate-20261125-2342.md"
    assert doc.markdown.startswith("# Post-mortem draft: HighErrorRate (checkout) 2026-11-25\n")
    assert "\n" not in doc.summary
    assert doc.summary == ("HighErrorRate (checkout): fired 2026-11-25 23:42 UTC, acknowledged after 7 min, "
                           "escalated 1×, 3 mitigation steps, resolved after 1 h 5 min, "
                           "acknowledge SLA missed by 2 min, resolve SLA missed by 5 min.")


def test_the_filename_keeps_safe_characters_only():
    thread = group("a", alertname="../Disk Full; rm -rf /*")
    doc = draft(thread, [], CRITICAL, now=at(1))
    assert doc.filename == "postmortem-disk-full-rm-rf-20261125-2342.md"


def test_the_summary_table_shows_the_common_labels_and_the_group():
    doc = draft(lifecycle(), [], CRITICAL, now=at(70), permalink="https://example.slack.com/archives/C0ALERTS/p9")
    table = doc.markdown.split("## Timeline")[0]
    assert "| **Alert** | HighErrorRate |" in table
    assert "| **Severity** | critical |" in table
    assert "| **Labels** | namespace=prod, service=checkout |" in table
    assert "| **Alerts in the group** | 3: instance=pod-a (resolved), instance=pod-b (resolved), " \
           "instance=pod-c (resolved) |" in table
    assert "| **Fired** | 2026-11-25 23:42:00 UTC |" in table
    assert "| **Resolved** | 2026-11-26 00:47:00 UTC |" in table
    assert "| **Duration** | 1 h 5 min |" in table
    assert "| **Acknowledged** | by <@U0ALICE> after 7 min |" in table
    assert "[the alert's thread](https://example.slack.com/archives/C0ALERTS/p9)" in table


def test_a_large_group_lists_the_first_few_and_counts_the_rest():
    doc = draft(group(*"abcdefgh"), [], CRITICAL, now=at(1))
    row = next(line for line in doc.markdown.splitlines() if "Alerts in the group" in line)
    assert row.startswith("| **Alerts in the group** | 8: instance=pod-a, ")
    assert "instance=pod-e, and 3 more |" in row and "pod-f" not in row


def test_the_timeline_goes_from_firing_through_ack_escalation_and_mitigation_to_resolution():
    trail = list(reversed(MITIGATION))  # the audit trail reads newest first
    rows = timeline(draft(lifecycle(), trail, CRITICAL, now=at(70)))
    assert rows == [
        "| 2026-11-25 23:42:00 | **Fired** (3 alerts) |",
        "| 2026-11-25 23:42:40 | First reply: the bot's investigation (after 40 s) |",
        "| 2026-11-25 23:47:00 | **Escalated** (ack): not acknowledged within the SLA; "
        "why: critical alert not acknowledged within 5 min; PagerDuty: triggered (202 Accepted) |",
        "| 2026-11-25 23:49:00 | **Acknowledged** by <@U0ALICE> after 7 min |",
        "| 2026-11-25 23:52:00 | Mitigation **requested**: scale of Deployment prod/checkout by bob (<@U0BOB>) "
        "([approval](https://example.slack.com/archives/C0ALERTS/p1)) |",
        "| 2026-11-25 23:54:00 | Mitigation **approved**: scale of Deployment prod/checkout by carol (<@U0CAROL>) |",
        "| 2026-11-25 23:54:12 | Mitigation **executed**: scale of Deployment prod/checkout, replicas 3 → 8 |",
        "| 2026-11-26 00:47:00 | **Resolved** after 1 h 5 min |",
    ]


def test_failures_refusals_and_manual_escalations_say_why():
    thread = group("a").replace(escalations=(
        {"kind": "manual", "at": at(3), "reason": "customers report failed payments", "by": "U0DAN",
         "dedup_key": "m1", "pagerduty": "not paged: PAGERDUTY_ROUTING_KEY is not set"},))
    trail = [entry("refused", 4, reason="bob may not scale in prod"),
             entry("failed", 6, user="U0CAROL", name="carol", reason="deployments.apps \"checkout\" not found"),
             entry("changed", 8, user="U0CAROL", name="carol", reason="replicas is 5 now; the preview read 3")]
    text = "\n".join(timeline(draft(thread, trail, CRITICAL, now=at(9))))
    assert ("**Escalated** (manual): escalated by hand, by <@U0DAN>; why: customers report failed payments; "
            "PagerDuty: not paged: PAGERDUTY\\_ROUTING\\_KEY is not set") in text
    assert "Mitigation **refused** for bob (<@U0BOB>): scale of Deployment prod/checkout: bob may not scale in prod" \
           in text
    assert "Mitigation **failed**: scale of Deployment prod/checkout: deployments.apps \"checkout\" not found" in text
    assert "**not executed (changed since the preview)**" in text


def test_entries_of_other_threads_are_ignored():
    other = [entry("requested", 10, thread="C0ALERTS:1764000000.000001", action="rollback"),
             entry("requested", 11, thread="", action="rollback"),
             entry("requested", 12, thread=f"C0OTHER:{TS}", action="rollback")]
    doc = draft(lifecycle(), [*other, *MITIGATION], CRITICAL, now=at(70))
    assert "rollback" not in doc.markdown
    assert sum("Mitigation" in row for row in timeline(doc)) == 3


def test_the_audit_trail_names_the_channel_by_the_id_slack_answered():
    thread = group("a").replace(channel="#alerts-critical")  # the root post's record has the ID
    doc = draft(thread, MITIGATION, CRITICAL, now=at(20))
    assert sum("Mitigation" in row for row in timeline(doc)) == 3


def test_slas_met():
    thread = group("a").replace(acked_by="U0ALICE", acked_at=at(3)).ended(iso(40))
    assert section(draft(thread, [], CRITICAL, now=at(50)), "SLAs")[2:] == [
        "| Acknowledge within 5 min | met: acknowledged after 3 min |",
        "| Resolve within 1 h | met: resolved after 40 min |",
    ]


def test_slas_missed_say_by_how_much():
    thread = group("a").replace(acked_by="U0ALICE", acked_at=at(12)).ended(iso(95))
    assert section(draft(thread, [], CRITICAL, now=at(100)), "SLAs")[2:] == [
        "| Acknowledge within 5 min | missed by 7 min: acknowledged after 12 min |",
        "| Resolve within 1 h | missed by 35 min: resolved after 1 h 35 min |",
    ]


def test_sla_not_acknowledged():
    late = group("a").ended(iso(20))
    early = group("a").ended(iso(2))
    assert section(draft(late, [], CRITICAL, now=at(30)), "SLAs")[2] == \
        "| Acknowledge within 5 min | not acknowledged (missed by 15 min) |"
    assert section(draft(early, [], CRITICAL, now=at(30)), "SLAs")[2] == \
        "| Acknowledge within 5 min | not acknowledged |"
    assert "| **Acknowledged** | no |" in draft(late, [], CRITICAL, now=at(30)).markdown


def test_info_has_no_sla():
    thread = group("a", severity="info").ended(iso(20))
    doc = draft(thread, [], None, now=at(30))
    assert section(doc, "SLAs") == ["No SLA: the runbook sets no response time for severity info."]
    assert doc.summary.endswith("resolved after 20 min, no SLA.")


def test_a_still_firing_thread_says_so():
    doc = draft(group("a"), [], CRITICAL, now=at(90))
    assert "| **Resolved** | no: still firing at 2026-11-26 01:12:00 UTC |" in doc.markdown
    assert "| **Duration** | 1 h 30 min so far |" in doc.markdown
    assert timeline(doc)[-1] == \
        "| 2026-11-26 01:12:00 | **Still firing** when this draft was made (1 h 30 min so far) |"
    assert section(doc, "SLAs")[3] == "| Resolve within 1 h | missed by 30 min: still firing |"
    assert "still firing after 1 h 30 min" in doc.summary
    assert section(draft(group("a"), [], CRITICAL, now=at(20)), "SLAs")[3] == \
        "| Resolve within 1 h | still firing: 40 min left |"


def test_outside_text_cannot_break_the_tables_or_leak_secrets():
    thread = group("a", "b", team="pay|ments\nteam <b>*x*</b>\x1b[31m").replace(findings=(
        "Database: cannot connect to postgresql://u:secret@h/db",
        "- [x](javascript:alert(1)) | `code` \u202e",
    ))
    trail = [entry("failed", 5, reason="token xoxb-123-456-abcdef rejected\nsecond line|cell")]
    doc = draft(thread, trail, CRITICAL, now=at(10))
    assert "secret" not in doc.markdown and "xoxb-123" not in doc.markdown
    assert "postgresql://u:\\[redacted\\]@h/db" in doc.markdown
    assert "team=pay\\|ments team \\<b\\>\\*x\\*\\</b\\> |" in doc.markdown
    assert "\x1b" not in doc.markdown and "\u202e" not in doc.markdown
    assert "- \\- \\[x\\](javascript:alert(1)) \\| \\`code\\`" in doc.markdown
    assert "token \\[redacted\\] rejected second line\\|cell" in doc.markdown
    for line in doc.markdown.splitlines():
        if line.startswith("|"):  # every table row keeps its cells: no unescaped pipe inside one
            assert len(line.replace("\\|", "").split("|")) in (3, 4), line


def test_findings_are_capped_and_the_rest_counted():
    thread = group("a").replace(findings=tuple(f"Check {i}: not OK" for i in range(MAX_FINDINGS + 4)))
    found = section(draft(thread, [], CRITICAL, now=at(1)), "Key findings")
    assert found[0] == "- Check 0: not OK" and len(found) == MAX_FINDINGS + 1
    assert found[-1] == "- … and 4 more (see the investigation in the thread)"


def test_sections_to_fill_and_where_the_draft_comes_from():
    doc = draft(lifecycle(), [], CRITICAL, now=at(70))
    assert section(doc, "Root cause")[0] == "_To be written._"
    assert section(doc, "Impact")
    assert section(doc, "Action items")[:3] == ["- [ ] "] * 3
    assert "not from the Slack history" in doc.markdown.splitlines()[-1]
