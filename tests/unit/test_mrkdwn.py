from bot.slack.mrkdwn import code, escape, redact, truncate


def test_escape_neutralises_mentions_and_forged_links():
    assert escape("<!channel> <https://evil|Runbook> a&b") == "&lt;!channel&gt; &lt;https://evil|Runbook&gt; a&amp;b"


def test_code_span_cannot_be_closed_by_a_backtick():
    assert code("a`b<") == "`a'b&lt;`"


def test_truncate_marks_the_cut_and_keeps_short_text():
    assert truncate("abcdef", 10) == "abcdef"
    assert truncate("abcdefghij", 5) == "abcd…"


def test_truncate_never_splits_an_escape_sequence():
    text = escape("aaaa<bbbb")  # "aaaa&lt;bbbb"
    cut = truncate(text, 7)
    assert "&l" not in cut.replace("&lt;", "")
    assert cut.endswith("…")


def test_redact_hides_tokens_passwords_and_known_secrets():
    text = "xoxb-123-456-abc Bearer abc.def postgresql://u:pw@db/app mysecretvalue AKIAABCDEFGHIJKLMNOP"
    out = redact(text, ("mysecretvalue",))
    for secret in ("xoxb-123", "abc.def", ":pw@", "mysecretvalue", "AKIAABCDEFGHIJKLMNOP"):
        assert secret not in out
    assert "postgresql://u:[redacted]@db/app" in out


def test_text_files_lose_their_credentials_and_images_are_untouched():
    from bot.slack.mrkdwn import safe_file
    from diagnostics.result import FileAttachment

    log = FileAttachment("logs.txt", b"connecting to postgresql://app:s3cret@db/app\nok", mimetype="text/plain")
    assert b"s3cret" not in safe_file(log).content and b"ok" in safe_file(log).content
    png = FileAttachment("chart.png", b"\x89PNG postgresql://app:s3cret@db", mimetype="image/png")
    assert safe_file(png) == png  # content untouched
