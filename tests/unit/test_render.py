import json

from bot.commands.report import Report
from bot.slack.render import MAX_BLOCKS, SECTION_LIMIT, report_message, report_text
from diagnostics.result import Link, Result, Row, Status


def _pods_result(rows: list[Row], **kwargs) -> Result:
    return Result(
        status=Status.CRITICAL,
        title="Pods · checkout (prod)",
        summary="1/3 ready",
        fields={"Desired": "3", "Ready": "1"},
        columns=("Pod", "Phase", "Ready", "Restarts"),
        rows=rows,
        **kwargs,
    )


def test_backend_text_reaches_slack_escaped():
    row = Row(("evil-<!channel>", "Running", "0/1", "3"), Status.CRITICAL, "waiting: <https://x|y>")
    message = report_message(Report("t", [_pods_result([row], lines=["log <!here> & more"])]))
    dumped = json.dumps(message.blocks, ensure_ascii=False) + message.text
    assert "<!channel>" not in dumped and "<https://x|y>" not in dumped and "<!here>" not in dumped
    assert "&lt;!channel&gt;" in dumped and "&lt;https://x|y&gt;" in dumped


def test_unhealthy_row_shows_its_reason_beside_the_pod():
    row = Row(("checkout-1", "Running", "0/1", "7"), Status.CRITICAL, "CrashLoopBackOff — last exit 1 (Error)")
    blocks = report_message(Report("t", [_pods_result([row])])).blocks
    text = json.dumps(blocks, ensure_ascii=False)
    assert "*checkout-1* — CrashLoopBackOff — last exit 1 (Error)" in text
    assert "Restarts 7" in text


def test_more_than_50_blocks_are_cut_with_a_visible_note():
    results = [Result(Status.OK, f"check {i}", "fine", links=[Link("l", "https://x")]) for i in range(40)]
    blocks = report_message(Report("t", results)).blocks
    assert len(blocks) == MAX_BLOCKS
    assert "more blocks cut" in json.dumps(blocks[-1], ensure_ascii=False)


def test_long_rows_are_split_into_sections_within_slacks_limit():
    rows = [Row((f"pod-{i:03d}", "Running", "1/1", "0"), Status.OK) for i in range(200)]
    blocks = report_message(Report("t", [_pods_result(rows)])).blocks
    sections = [b for b in blocks if b["type"] == "section" and "text" in b]
    assert len(sections) > 2
    assert all(len(b["text"]["text"]) <= SECTION_LIMIT for b in sections)
    assert "pod-199" in json.dumps(blocks, ensure_ascii=False)


def test_long_log_is_cut_with_a_note():
    result = Result(Status.WARNING, "logs", "x", lines=[f"line {i} " + "x" * 200 for i in range(100)])
    blocks = report_message(Report("t", [result])).blocks
    text = json.dumps(blocks, ensure_ascii=False)
    assert "more lines not shown inline" in text
    assert all(len(b.get("text", {}).get("text", "")) <= SECTION_LIMIT for b in blocks)


def test_terminal_text_has_the_same_facts_as_a_table():
    row = Row(("checkout-1", "Running", "0/1", "7"), Status.CRITICAL, "OOMKilled — exit 137")
    text = report_text(Report("t", [_pods_result([row])]))
    assert "CRITICAL" in text and "Pods · checkout (prod)" in text
    assert "Desired: 3" in text
    assert "POD" in text and "RESTARTS" in text
    assert "✗ checkout-1" in text and "OOMKilled — exit 137" in text


def test_credentials_in_backend_errors_never_reach_slack():
    result = Result.error("db", "PostgreSQL: cannot connect to postgresql://app:hunter2@db:5432/app with xoxb-1-2-3")
    dumped = json.dumps(report_message(Report("t", [result])).blocks)
    assert "hunter2" not in dumped and "xoxb-1-2-3" not in dumped


def test_alert_links_carry_no_credentials_and_cannot_break_the_link():
    from bot.alerting.model import Alert
    from bot.alerting.render import alert_message

    alert = Alert(fingerprint="ab", status="firing", labels={"alertname": "X", "severity": "critical"})
    message = alert_message(alert, [("Grafana", "https://admin:S3cret@grafana.internal/d/x"),
                                    ("Graph", "http://p/graph?g0.expr=a|b>c")])
    dumped = json.dumps(message.blocks)
    assert "S3cret" not in dumped
    assert "g0.expr=a%7Cb%3Ec|Graph" in dumped
