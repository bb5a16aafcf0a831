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


def test_log_lines_are_kept_whole_and_the_ones_left_out_are_counted():
    lines = ["a" * 5000, *(f"line {i} " + "y" * 1400 for i in range(10))]
    blocks = report_message(Report("t", [Result(Status.WARNING, "logs", "x", lines=lines)])).blocks
    codes = [b["text"]["text"] for b in blocks if b["type"] == "section" and "```" in b["text"]["text"]]
    assert len(codes) == 3 and all(len(code) <= SECTION_LIMIT for code in codes)
    assert codes[0].endswith("…```")  # the long line cut, visibly
    assert "line 3 " in codes[-1] and "line 4 " not in json.dumps(blocks)
    assert "6 more lines not shown inline" in json.dumps(blocks)


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


def test_control_characters_and_backticks_from_a_pod_and_its_logs_are_neutralised():
    row = Row(("web-1\u202e", "Running", "0/1", "3"), Status.CRITICAL, "\x1b[31mOOMKilled\x1b[0m ```exit 137")
    result = _pods_result([row], lines=["\x1b[1;31mERROR\x1b[0m \u202edeliver\u202c \x07 ``` `x`"])
    message = report_message(Report("t", [result]))
    dumped = json.dumps(message.blocks, ensure_ascii=False) + message.text
    for char in ("\x1b", "\u202e", "\u202c", "\x07"):
        assert char not in dumped
    assert "*web-1* — OOMKilled '''exit 137" in dumped
    texts = [b["text"]["text"] for b in message.blocks if b["type"] == "section" and "text" in b]
    code_blocks = [t for t in texts if t.startswith("```")]
    assert code_blocks == ["```ERROR deliver  ''' 'x'```"]
    assert sum(t.count("```") for t in texts) == 2  # the one block opens and closes, nothing else does


def _alert(name: str, **labels: str):
    from bot.alerting.model import Alert

    return Alert(fingerprint="ab", status="firing", labels={"alertname": name, "severity": "critical", **labels},
                 annotations={"summary": "s " * 3000, "description": "d" * 5000})


def test_a_4000_character_alertname_and_long_labels_fit_every_slack_limit():
    from bot.alerting.render import alert_message, investigation_message
    from tests.fakes.slack import block_problems

    alert = _alert("A" * 4000, namespace="n" * 4000, pod="p" * 3000)
    links = [("Prometheus", "https://prom/graph?g0.expr=" + "x" * 4000), ("Runbook", "https://r/" + "y" * 4000)]
    results = [[Result(Status.CRITICAL, "T" * 4000, "S" * 4000, fields={"k" * 3000: "v" * 3000},
                       rows=[Row(("r" * 4000,), Status.CRITICAL, "d" * 4000)], lines=["l" * 4000],
                       links=[Link("L" * 4000, "https://x/" + "z" * 4000)], folded_rows_note="f" * 4000)], None]
    messages = [
        alert_message(alert, links),
        alert_message(alert, links, resolved_after=60),
        investigation_message(alert, ["db " + "s" * 4000, "rds " + "t" * 4000], results, ["a" * 4000]),
        investigation_message(alert, ["db", "rds"], [results[0], results[0]], ["scale-up"], prefix="/" + "o" * 4000),
    ]
    for message in messages:
        assert block_problems(message.blocks) == [], message.blocks
        assert len(message.text) <= 4000
        assert "…" in json.dumps(message.blocks, ensure_ascii=False)  # the cut is visible


def test_a_generator_url_that_is_not_http_is_plain_text_not_a_link():
    from bot.alerting.render import alert_message

    message = alert_message(_alert("X"), [("Prometheus", "javascript:alert(1)"), ("Runbook", "data:text/html,x"),
                                          ("Grafana", "https://grafana/d/x")])
    (context,) = [b for b in message.blocks if b["type"] == "context"]
    text = context["elements"][0]["text"]
    assert "Prometheus: javascript:alert(1)" in text and "Runbook: data:text/html,x" in text
    assert "<javascript" not in text and "<data" not in text and "<https://grafana/d/x|Grafana>" in text
