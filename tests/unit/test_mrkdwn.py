import pytest

from bot.slack.mrkdwn import code, escape, redact, safe_file, truncate
from bot.slack.render import SECTION_LIMIT, context, section
from diagnostics.result import FileAttachment


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


# --- control and bidirectional characters, backtick fences ---------------------------------------

HOSTILE = "\x1b[31mERROR\x1b[0m \u202egnp.exe\u202c \u2066x\u2069 a\u200bb \x07bell\x00 \x9b1m \x1b]0;title\x07done"


def test_safe_removes_ansi_codes_bidi_and_zero_width_controls_and_keeps_newlines_and_tabs():
    from bot.slack.mrkdwn import plain, safe

    out = safe(HOSTILE + "\nnext\tcol\r")
    assert out == "ERROR gnp.exe x ab bell  done\nnext\tcol"
    for char in ("\x1b", "\u202e", "\u202c", "\u2066", "\u2069", "\u200b", "\x07", "\x00", "\x9b", "\r"):
        assert char not in out
    assert plain("\u200e\u200f\u202a\u202b\u202d\u2067\u2068\ufeff\u061c\x7f") == ""


def test_backticks_in_outside_text_cannot_open_a_code_block():
    from bot.slack.mrkdwn import code, code_body, safe

    assert "```" not in safe("detail ```` then") and safe("a `b` c") == "a `b` c"
    assert "``" not in safe("x``") + "`"  # nor when a span's closing backtick follows
    assert code("a``\nb`") == "`a'' b'`"
    assert code_body(["```\x1b[1mbold", "x`"]) == "'''bold\nx'"


def test_only_http_urls_become_links():
    from bot.slack.mrkdwn import link

    assert link("https://prom/graph?g0.expr=a|b", "Prometheus") == "<https://prom/graph?g0.expr=a%7Cb|Prometheus>"
    for url in ("javascript:alert(1)", "JavaScript:alert(1)", " javascript:alert(1)", "data:text/html,<b>x</b>",
                "\u202ejavascript:x", "file:///etc/passwd", "//evil"):
        out = link(url, "Prometheus <!here>")
        assert "<" not in out and ">" not in out and out.startswith("Prometheus &lt;!here&gt;: ")


def test_file_titles_and_names_cannot_mention_or_link_and_twice_is_as_once():
    from bot.slack.mrkdwn import safe_file
    from diagnostics.result import FileAttachment

    chart = FileAttachment("<!everyone>.png", b"\x89PNG", title='label_replace(up, "x", "<!everyone>", "", "")\u202e',
                           mimetype="image/png")
    once = safe_file(chart)
    assert "<" not in once.title + once.filename and ">" not in once.title + once.filename
    assert "‹!everyone›" in once.title and "\u202e" not in once.title
    assert safe_file(once) == once and len(safe_file(FileAttachment("f", b"", title="t" * 5000)).title) <= 250


@pytest.mark.parametrize("token", [
    "<https://grafana.example/d/abc?var=x&amp;from=now-1h|Open the dashboard>",
    "<@U0ALICE001>",
    "<!here>",
    "<!subteam^S0ONCALL01|@oncall>",
    "<#C0OPS00001>",
])
def test_truncate_never_leaves_a_slack_token_open(token):
    text = "x" * 20 + " " + token + " after"
    for limit in range(22, 23 + len(token)):  # every cut through the token, and just past it
        cut = truncate(text, limit)
        assert cut.endswith("…") and len(cut) <= limit
        assert cut.count("<") == cut.count(">")  # whole or gone
        assert cut in (text[:21] + "…", text[:21] + token + "…")


def test_a_cut_after_a_whole_token_keeps_it():
    assert truncate("see <@U0ALICE001> now please", 20) == "see <@U0ALICE001> n…"


def test_render_context_and_section_never_split_a_link():
    link = "<https://grafana.example/d/abc|Dashboard>"
    text = "a" * (SECTION_LIMIT - 10) + link + " and more"
    for block in (context(text), section(text)):
        shown = block.to_dict()
        body = shown["elements"][0]["text"] if "elements" in shown else shown["text"]["text"]
        assert body.endswith("a…") and "<https" not in body and len(body) <= SECTION_LIMIT


@pytest.mark.parametrize("secret_line", [
    "Authorization: Bearer\nabcdef0123456789secret\n",
    "Authorization: Bearer \n\n  abcdef0123456789secret\n",
    "dsn host=db password =\nabcdef0123456789secret\n",
    "password=\nabcdef0123456789secret\n",
], ids=["bearer", "bearer-blank-line", "password-spaced", "password"])
def test_a_large_file_is_made_safe_in_pieces_that_never_split_a_secret(secret_line):
    # Pieces keep each regex pass short (a 5 MB log took 0.15 s per pattern, holding the GIL);
    # the secret's line break falls right where a piece would end.
    from bot.slack.mrkdwn import PIECE_CHARS, _pieces, plain

    line = "2025-03-14T11:58:00.000Z GET /cart 200\n"
    before = PIECE_CHARS - len(secret_line.split("\n")[0])  # the secret's first line break: at PIECE_CHARS
    lines = (before - 1) // len(line)
    text = line * lines + "." * (before - lines * len(line) - 1) + "\n" + secret_line + line * 2000
    assert text[PIECE_CHARS] == "\n"
    file = FileAttachment(filename="log.txt", content=text.encode(), title="t", mimetype="text/plain")

    content = safe_file(file).content.decode()

    assert "abcdef0123456789secret" not in content
    assert content == redact(plain(text))
    assert len(list(_pieces(text))) > 1  # in pieces all the same
