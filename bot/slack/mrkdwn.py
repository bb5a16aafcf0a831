"""Make text from users and backends safe for Slack, and short enough for it.

Slack's mrkdwn gives `<...>` meaning: `<!channel>` pings a whole channel and
`<https://evil|Runbook>` forges a link. Escaping exactly `&`, `<` and `>` is what Slack
documents; everything else is left alone so log lines stay readable.
"""

from __future__ import annotations

import re
from dataclasses import replace

from diagnostics.result import FileAttachment

_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


def escape(text: object) -> str:
    """Escape text that came from a user or a backend before it reaches Slack."""
    return str(text).translate(_ESCAPES)


def code(text: object) -> str:
    """Inline code span. Backticks inside would end the span early, so they are swapped."""
    return "`" + escape(text).replace("`", "'") + "`"


def truncate(text: str, limit: int, marker: str = "…") -> str:
    """Cut to at most `limit` characters, marking the cut.

    Never cuts an escape sequence (`&amp;`) in half, which Slack would show as garbage.
    """
    if len(text) <= limit:
        return text
    cut = text[: max(limit - len(marker), 0)]
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
    re.compile(r"(?i)(://[^:/@\s]+:)[^@\s]+(@)"),
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
    """Backend or user text on its way to Slack: credential-shaped strings hidden, then escaped."""
    return escape(redact(str(text)))


def safe_file(file: FileAttachment) -> FileAttachment:
    """A text file on its way to Slack, with credential-shaped strings hidden (logs carry them)."""
    if not file.mimetype.startswith("text/"):
        return file
    text = file.content.decode("utf-8", errors="replace")
    return replace(file, content=redact(text).encode("utf-8"))


def link_url(url: str) -> str:
    """A URL for `<url|label>`: no credentials, and nothing that would end the link early."""
    return redact(url).replace("|", "%7C").replace("<", "%3C").replace(">", "%3E")
