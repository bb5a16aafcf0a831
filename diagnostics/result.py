"""What a diagnostic returns: plain data, no Slack types.

One renderer (bot/slack/render.py) turns a Result into Block Kit or terminal text, so a new
diagnostic needs no rendering code. Text in a Result is raw: it came from a backend or
a user and is escaped by the renderer, never here.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Status(enum.Enum):
    OK = "ok"
    WARNING = "warning"
    CRITICAL = "critical"
    UNKNOWN = "unknown"  # the check ran but could not tell (e.g. no data)
    ERROR = "error"  # the check itself failed: backend down, timed out, refused

    @property
    def rank(self) -> int:
        """Severity order, for sorting and for folding several results into one."""
        return _RANK[self]

    @property
    def is_healthy(self) -> bool:
        return self is Status.OK

    @classmethod
    def worst(cls, statuses: "list[Status]") -> "Status":
        return max(statuses, key=lambda s: s.rank, default=cls.OK)


_RANK = {Status.OK: 0, Status.UNKNOWN: 1, Status.WARNING: 2, Status.ERROR: 3, Status.CRITICAL: 4}


@dataclass(frozen=True)
class Link:
    label: str
    url: str


@dataclass(frozen=True)
class FileAttachment:
    """A file to upload beside the message: a chart, a long log."""

    filename: str
    content: bytes
    title: str = ""
    mimetype: str = "application/octet-stream"


@dataclass(frozen=True)
class Row:
    """One line of a table: cells in the order of Result.columns, and its own status."""

    cells: tuple[str, ...]
    status: Status = Status.OK
    # Why this row is not healthy, in the words a person would look for
    # ("CrashLoopBackOff: last exit 137 OOMKilled"). Empty for healthy rows.
    detail: str = ""


@dataclass
class Result:
    status: Status
    title: str
    summary: str
    fields: dict[str, str] = field(default_factory=dict)
    columns: tuple[str, ...] = ()
    rows: list[Row] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)
    files: list[FileAttachment] = field(default_factory=list)
    # Rows left out by the diagnostic itself (e.g. healthy pods folded when there are many).
    folded_rows_note: str = ""

    @classmethod
    def error(cls, title: str, message: str) -> "Result":
        """The check could not run. `message` says what failed and where."""
        return cls(status=Status.ERROR, title=title, summary=message)

    @classmethod
    def not_configured(cls, title: str, backend: str, variable: str) -> "Result":
        return cls(
            status=Status.UNKNOWN,
            title=title,
            summary=f"{backend} is not configured (set {variable})",
        )
