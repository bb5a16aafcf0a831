"""Make text from users and backends safe for Slack, and short enough for it.

Slack's mrkdwn gives `<...>` meaning: `<!channel>` pings a whole channel and
`<https://evil|Runbook>` forges a link. Escaping exactly `&`, `<` and `>` is what Slack
documents. Control characters (ANSI colour codes, BEL, C1) and the Unicode bidirectional and
zero-width controls (U+202E reverses what people read) are removed first (`plain`), and a
run of backticks that would open a code block is swapped for quotes; everything else is left
alone so log lines stay readable.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from urllib.parse import urlsplit

from diagnostics.result import FileAttachment

_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})

# ANSI escape sequences (CSI `ESC [ … m`, OSC `ESC ] … BEL`, two-character ones), then single
# characters: C0 controls but tab and newline, DEL, C1 controls, and the bidirectional and
# zero-width formatting characters (U+200B-U+200F, U+202A-U+202E, U+2066-U+2069, U+061C,
# U+2028/U+2029, U+FEFF).
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]?|\x9b[0-?]*[ -/]*[@-~]")
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]")
_FENCE = re.compile("`{2,}")


def plain(text: object) -> str:
    """Text from outside without control characters: ANSI sequences and bidirectional or
    zero-width controls removed; tabs and newlines kept."""
    return _CONTROLS.sub("", _ANSI.sub("", str(text)))


def escape(text: object) -> str:
    """Escape text that came from a user or a backend before it reaches Slack."""
    return plain(text).translate(_ESCAPES)


def code(text: object) -> str:
    """Inline code span, on one line. Backticks inside would end the span early (or, doubled,
    open a code block), so they are swapped."""
    return "`" + " ".join(escape(text).replace("`", "'").splitlines()) + "`"


def code_body(lines: "list[str]") -> str:
    """The inside of a code block of outside text (log lines): safe, and no backtick can close
    the block early."""
    return "\n".join(safe(line).replace("`", "'") for line in lines)


# The start of a Slack token the cut left open: `<https://x|lab`, `<@U12`, `<!here`, `<#C1`, `<`.
_OPEN_TOKEN = re.compile(r"<[^<>\s|]*(?:\|[^<>]*)?$")


def truncate(text: str, limit: int, marker: str = "…") -> str:
    """Cut to at most `limit` characters, marking the cut.

    Never cuts a token (`<url|label>`, `<@U…>`, `<!here>`) or an escape sequence (`&amp;`) in
    half, which Slack would show as garbage or as a broken link: the partial one is dropped.
    """
    if len(text) <= limit:
        return text
    cut = text[: max(limit - len(marker), 0)]
    if token := _OPEN_TOKEN.search(cut):
        cut = cut[: token.start()]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + marker


# Values that must never reach Slack or the logs, whatever their source: Slack tokens,
# bearer tokens, passwords in URLs, AWS keys.
_SECRET_PATTERNS = [
    re.compile(r"xox[abposr]-[A-Za-z0-9-]+"),
    re.compile(r"xapp-[A-Za-z0-9-]+"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"),
    # A URL's password runs to the last @ of its authority: an unencoded @ in it hides all of it.
    re.compile(r"(?i)(://[^:/@\s]+:)[^/?#\s]+(@)"),
    # libpq's password parameters, in a URL's query (`?password=`) or a `key=value` string.
    re.compile(r"(?i)\b((?:ssl)?password\s*=\s*)(?:'(?:[^'\\]|\\.)*'|[^&\s'\"]+)"),
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
]


def redact(text: str, secrets: "list[str] | tuple[str, ...]" = ()) -> str:
    """Replace known secrets and anything shaped like a credential with a marker."""
    for secret in secrets:
        if secret and len(secret) >= 6:
            text = text.replace(secret, "[redacted]")
    for pattern in _SECRET_PATTERNS:
        if pattern.groups == 2:
            text = pattern.sub(r"\1[redacted]\2", text)
        elif pattern.groups == 1:
            text = pattern.sub(r"\1[redacted]", text)
        else:
            text = pattern.sub("[redacted]", text)
    return text


def safe(text: object) -> str:
    """Backend or user text on its way to Slack, the one way there: control characters removed,
    credential-shaped strings hidden, escaped, and no run of backticks that opens a code block."""
    return _FENCE.sub(lambda run: "'" * len(run.group()), escape(redact(plain(text))))


# A file's title and name are shown as they are: `<` and `>` become look-alikes that cannot
# make a mention or a link, whether or not Slack reads them as mrkdwn (and twice is as once).
_TITLE = str.maketrans({"<": "‹", ">": "›", "\n": " ", "\t": " "})
TITLE_LIMIT = 250


def safe_file(file: FileAttachment) -> FileAttachment:
    """A file on its way to Slack: title and name neutralised; a text file's content without
    credential-shaped strings (logs carry them) or control characters."""
    title = truncate(redact(plain(file.title)).translate(_TITLE), TITLE_LIMIT)
    filename = truncate(plain(file.filename).translate(_TITLE), TITLE_LIMIT)
    if not file.mimetype.startswith("text/"):
        return replace(file, title=title, filename=filename)
    text = file.content.decode("utf-8", errors="replace")
    content = "".join(redact(plain(piece)) for piece in _pieces(text))
    return replace(file, title=title, filename=filename, content=content.encode("utf-8"))


# A large text is made safe a piece of whole lines at a time: one regex pass over megabytes holds
# the GIL for up to 0.15 s, and so stalls the event loop even from another thread.
PIECE_CHARS = 64 * 1024
# A line ending (whitespace aside) like this may go on with its secret on the next line
# (`Bearer` / `password =` and the value after a line break): no piece ends after it.
_GOES_ON = re.compile(r"(?i)(?:bearer|password|=)\s*$")
_TAIL_CHARS = 4096  # how far back from a line's end _GOES_ON looks


def _pieces(text: str) -> Iterator[str]:
    start = 0
    while start < len(text):
        cut = text.find("\n", start + PIECE_CHARS)
        while cut != -1 and _GOES_ON.search(text, max(start, cut - _TAIL_CHARS), cut + 1):
            cut = text.find("\n", cut + 1)
        end = len(text) if cut == -1 else cut + 1
        yield text[start:end]
        start = end


def link_url(url: str) -> str:
    """A URL for `<url|label>`: no credentials, and nothing that would end the link early."""
    return plain(redact(url)).replace("|", "%7C").replace("<", "%3C").replace(">", "%3E").replace(" ", "%20")


def link(url: str, label: str) -> str:
    """`<url|label>` for an http(s) URL; any other (`javascript:`, `data:`) is shown as plain
    escaped text, never as a link."""
    if urlsplit(plain(url).strip()).scheme.lower() not in ("http", "https"):
        return f"{safe(label)}: {safe(url)}"
    return f"<{link_url(url.strip())}|{safe(label)}>"
