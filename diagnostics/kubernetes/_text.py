"""Text helpers shared by the Kubernetes diagnostics: API messages kept to one short line."""

from __future__ import annotations

# Long API messages (image pull errors quote whole registry responses) are cut to stay one line.
MAX_MESSAGE_CHARS = 240


def one_line(text: str) -> str:
    return " ".join(text.split())


def truncate(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
