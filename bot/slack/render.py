"""Report -> Block Kit, and Report -> terminal text. The only place that knows either format.

Every string from a Result is raw backend or user text and is escaped here, once. Output
is kept within Slack's limits (50 blocks, 3000 characters a section, 2000 a field, 150 a
header) and anything cut is said in the message itself, not only in a log.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Sequence

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    DividerBlock,
    MarkdownTextObject,
    SectionBlock,
)

from bot.commands.report import Report
from bot.slack.mrkdwn import code_body, link, safe, truncate
from diagnostics.result import Result, Row, Status

if TYPE_CHECKING:
    from bot.commands.model import Command
    from bot.errors import UsageError


MAX_BLOCKS = 50
SECTION_LIMIT = 3000
FIELD_LIMIT = 2000
MAX_FIELDS = 10
MAX_TEXT = 3900  # the notification text; Slack advises under 4000
MAX_CODE_LINES = 40  # inline log lines; more goes to a file (later issues) or is cut with a note
MAX_CODE_SECTIONS = 3  # code blocks of inline log lines, each within SECTION_LIMIT

EMOJI = {
    Status.OK: ":large_green_circle:",
    Status.WARNING: ":large_yellow_circle:",
    Status.CRITICAL: ":red_circle:",
    Status.UNKNOWN: ":white_circle:",
    Status.ERROR: ":warning:",
}
MARK = {Status.OK: "✓", Status.WARNING: "!", Status.CRITICAL: "✗", Status.UNKNOWN: "?", Status.ERROR: "E"}


@dataclass(frozen=True)
class Message:
    text: str  # notification / fallback text
    blocks: list[dict]


def report_message(report: Report, footer: str = "") -> Message:
    """The Slack message for a report. `footer` is already-safe mrkdwn (built by the caller)."""
    blocks: list[Block] = []
    for index, result in enumerate(report.results):
        if index:
            blocks.append(DividerBlock())
        blocks.extend(result_blocks(result))
    if footer:
        blocks.append(context(footer))
    return Message(text=fallback_text(report), blocks=fit_blocks(blocks))


def fallback_text(report: Report) -> str:
    parts = [f"{EMOJI[r.status]} {safe(r.title)}: {safe(r.summary)}" for r in report.results]
    return truncate("\n".join(parts) or safe(report.title), MAX_TEXT)


def result_blocks(result: Result) -> list[Block]:
    head = f"{EMOJI[result.status]} *{safe(result.title)}*\n{safe(result.summary)}"
    blocks: list[Block] = [section(head)]
    if result.fields:
        items = list(result.fields.items())
        fields = [
            MarkdownTextObject(text=truncate(f"*{safe(k)}*\n{safe(v)}", FIELD_LIMIT))
            for k, v in items[:MAX_FIELDS]
        ]
        blocks.append(SectionBlock(fields=fields))
        if len(items) > MAX_FIELDS:
            blocks.append(_note(f"{len(items) - MAX_FIELDS} more fields not shown (Slack shows 10)"))
    if result.rows:
        blocks.extend(_sections(_row_line(result.columns, row) for row in result.rows))
    if result.folded_rows_note:
        blocks.append(_note(safe(result.folded_rows_note)))
    if result.lines:
        blocks.extend(_code_blocks(result.lines))
    if result.links:
        links = " · ".join(link(each.url, each.label) for each in result.links)
        blocks.append(context(links))
    return blocks


def _row_line(columns: Sequence[str], row: Row) -> str:
    name, *rest = row.cells or ("",)
    line = f"{EMOJI[row.status]} *{safe(name)}*"
    if row.detail:
        line += f" — {safe(row.detail)}"
    pairs = [
        f"{safe(col)} {safe(value)}" if col else safe(value)
        for col, value in zip(columns[1:], rest, strict=False)  # a row may have more or fewer cells
        if value != ""
    ]
    if pairs:
        line += "\n        " + " · ".join(pairs)
    return line


def _sections(lines: Iterable[str]) -> list[Block]:
    """Pack lines into as few sections as fit Slack's 3000-character limit."""
    blocks: list[Block] = []
    current = ""
    for line in lines:
        line = truncate(line, SECTION_LIMIT)
        if current and len(current) + 1 + len(line) > SECTION_LIMIT:
            blocks.append(SectionBlock(text=MarkdownTextObject(text=current)))
            current = ""
        current = f"{current}\n{line}" if current else line
    if current:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=current)))
    return blocks


def _code_blocks(lines: list[str]) -> list[Block]:
    """Log lines as code blocks of whole lines, each within Slack's section limit (a line longer
    than that is cut with "…"); the lines left out are counted in a note."""
    budget = SECTION_LIMIT - 6  # the fences
    bodies: list[str] = []
    shown = 0
    for line in lines[:MAX_CODE_LINES]:
        text = truncate(code_body([line]), budget)
        if bodies and len(bodies[-1]) + 1 + len(text) <= budget:
            bodies[-1] += "\n" + text
        elif len(bodies) < MAX_CODE_SECTIONS:
            bodies.append(text)
        else:
            break
        shown += 1
    blocks = [section(f"```{body}```") for body in bodies]
    if len(lines) > shown:
        blocks.append(_note(f"{len(lines) - shown} more lines not shown inline"))
    return blocks


def _note(text: str) -> Block:
    return context(f":scissors: {text}")


def context(text: str) -> Block:
    """A context block of one mrkdwn text, cut to Slack's limit."""
    return ContextBlock(elements=[MarkdownTextObject(text=truncate(text, SECTION_LIMIT))])


def section(text: str) -> Block:
    """A section of one mrkdwn text, cut to Slack's limit."""
    return SectionBlock(text=MarkdownTextObject(text=truncate(text, SECTION_LIMIT)))


def fit_blocks(blocks: list[Block], reserve: int = 0) -> list[dict]:
    """At most 50 blocks (less `reserve`, kept for blocks the caller adds after); when cut, the
    last one says how many were left out."""
    if len(blocks) > MAX_BLOCKS - reserve:
        kept = blocks[: MAX_BLOCKS - reserve - 1]
        cut = len(blocks) - len(kept)
        kept.append(_note(f"{cut} more blocks cut (Slack allows {MAX_BLOCKS} per message); "
                          "run the same command in the terminal for the full output"))
        blocks = kept
    return [b.to_dict() for b in blocks]


# ----------------------------------------------------------------------------- terminal


def report_text(report: Report) -> str:
    return "\n\n".join(result_text(r) for r in report.results) + "\n"


def result_text(result: Result) -> str:
    out = [f"{result.status.value.upper():<8} {result.title}", f"         {result.summary}"]
    if result.fields:
        out.append("         " + "  ".join(f"{k}: {v}" for k, v in result.fields.items()))
    if result.rows:
        out.append("")
        out.extend(_table(result.columns, result.rows))
    if result.folded_rows_note:
        out.append(f"  {result.folded_rows_note}")
    if result.lines:
        out.append("")
        out.extend(f"  {line}" for line in result.lines)
    for each in result.links:
        out.append(f"  {each.label}: {each.url}")
    return "\n".join(out)


def _table(columns: Sequence[str], rows: list[Row]) -> list[str]:
    width = max([len(columns)] + [len(r.cells) for r in rows])
    header_cells = list(columns) + [""] * (width - len(columns))
    grid = [header_cells] + [list(r.cells) + [""] * (width - len(r.cells)) for r in rows]
    widths = [max(len(str(row[i])) for row in grid) for i in range(width)]

    def fmt(cells: list[str]) -> str:
        return "  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    lines = ["    " + fmt([c.upper() for c in header_cells])]
    for row, cells in zip(rows, grid[1:], strict=True):
        lines.append(f"  {MARK[row.status]} " + fmt(cells))
        if row.detail:
            lines.append(f"      ↳ {row.detail}")
    return lines


# ----------------------------------------------------------------------------- help and usage


def help_lines(commands: Iterable["Command"], prefix: str, unconfigured: dict[str, str]) -> list[tuple[str, str]]:
    """(usage, description) per command; `unconfigured` maps backend -> what to set."""
    lines = []
    for command in commands:
        note = ""
        if command.backend in unconfigured:
            note = f" (not configured: set {unconfigured[command.backend]})"
        lines.append((f"{prefix} {command.usage}".strip(), command.summary + note))
    return lines


def help_message(commands: Iterable["Command"], prefix: str, unconfigured: dict[str, str]) -> Message:
    rows = [f"`{safe(usage)}`\n        {safe(text)}" for usage, text in help_lines(commands, prefix, unconfigured)]
    blocks: list[Block] = [section(f"*{safe(prefix)} commands*")]
    blocks.extend(_sections(rows))
    blocks.append(ContextBlock(elements=[MarkdownTextObject(
        text="Options follow kubectl: `-n prod`, `--namespace=prod`. Results post in the channel; "
             "mistakes are answered only to you.")]))
    blocks.append(ContextBlock(elements=[MarkdownTextObject(
        text=f"In an alert's thread, mention me: `@{safe(prefix.lstrip('/'))} ack` acknowledges it, "
             "`escalate <reason>` pages the on-call now, `postmortem` drafts its post-mortem, and any "
             "command above is answered in the thread.")]))
    return Message(text=f"{safe(prefix)} commands", blocks=fit_blocks(blocks))


def help_text(commands: Iterable["Command"], prefix: str, unconfigured: dict[str, str]) -> str:
    lines = help_lines(commands, prefix, unconfigured)
    width = max((len(u) for u, _ in lines), default=0)
    return "\n".join(f"{u.ljust(width)}  {t}" for u, t in lines) + "\n"


def usage_message(error: "UsageError", prefix: str) -> Message:
    text = f":warning: {safe(error.message)}"
    if error.usage:
        text += f"\nUsage: `{safe(prefix)} {safe(error.usage)}`"
    return Message(text=truncate(text, MAX_TEXT), blocks=[])
