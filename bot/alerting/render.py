"""Alert messages and investigation replies, as Block Kit. Text from alerts is escaped."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Sequence

from slack_sdk.models.blocks import Block, DividerBlock, MarkdownTextObject, SectionBlock

from bot.alerting.model import Alert
from bot.slack.mrkdwn import code, link, safe, truncate
from bot.slack.render import FIELD_LIMIT, MAX_TEXT, Message, context, fit_blocks, result_blocks, section
from diagnostics.durations import spoken_duration
from diagnostics.result import Result

SEVERITY_EMOJI = {"critical": ":rotating_light:", "warning": ":warning:", "info": ":information_source:"}
# Labels that say where an alert is; shown as fields, the rest are in the Prometheus link.
KEY_LABELS = ("namespace", "service", "deployment", "app", "job", "instance", "pod", "node", "mountpoint")


def alert_message(alert: Alert, links: Sequence[tuple[str, str]], *, resolved_after: float | None = None,
                  now: datetime | None = None) -> Message:
    """The bot's own post of an alert it got by webhook; edited in place when it resolves."""
    severity = alert.severity or "unknown"
    if resolved_after is None:
        head = f"{SEVERITY_EMOJI.get(severity, ':bell:')} *{safe(severity.upper())} · {safe(alert.name)}*"
    else:
        head = f":white_check_mark: *RESOLVED after {spoken_duration(resolved_after)} · {safe(alert.name)}*"
    summary = alert.summary or alert.name
    text = f"{head}\n{safe(summary)}"
    if alert.description:
        text += f"\n{safe(alert.description)}"
    blocks: list[Block] = [section(text)]
    fields = [
        MarkdownTextObject(text=truncate(f"*{safe(k)}*\n{safe(alert.labels[k])}", FIELD_LIMIT))
        for k in KEY_LABELS if alert.labels.get(k)
    ][:10]
    if fields:
        blocks.append(SectionBlock(fields=fields))
    about = []
    if alert.starts_at is not None:
        about.append(f"firing since {alert.starts_at.strftime('%Y-%m-%d %H:%M UTC')}")
    about.extend(link(url, label) for label, url in links if url)
    about.append(f"fingerprint {code(alert.fingerprint)}")
    blocks.append(context(" · ".join(about)))
    state = "RESOLVED" if resolved_after is not None else severity.upper()
    fallback = f"[{state}] {alert.name}: {summary}"
    return Message(text=truncate(safe(fallback), MAX_TEXT), blocks=fit_blocks(blocks))


def investigation_message(alert: Alert, steps: Sequence[str], results: Sequence[list[Result] | None],
                          actions: Sequence[str], prefix: str = "/ops",
                          offers: Sequence[dict[str, Any]] = ()) -> Message:
    """The thread reply: results so far, steps still running, the runbook's mitigations."""
    running = [step for step, done in zip(steps, results, strict=False) if done is None]
    if running:
        head = f":mag: *Investigating {safe(alert.name)}* — {len(steps) - len(running)}/{len(steps)} checks done"
    else:
        head = f":mag: *Investigation · {safe(alert.name)}* — {len(steps)} checks"
    blocks: list[Block] = [section(head)]
    for step, done in zip(steps, results, strict=False):
        if done is None:
            continue
        blocks.append(DividerBlock())
        blocks.append(context(code(f"{prefix} {step}")))
        for result in done:
            blocks.extend(result_blocks(result))
    if running:
        waiting = ", ".join(code(step.split()[0] if step.split() else step) for step in running)
        blocks.append(context(f":hourglass_flowing_sand: running: {waiting}"))
    if actions:
        names = ", ".join(safe(a) for a in actions)
        blocks.append(context(f":wrench: Runbook mitigations: {names}"))
    worst = [r for done in results if done for r in done]
    summary = "; ".join(f"{r.title}: {r.summary}" for r in worst if not r.status.is_healthy)[:500]
    text = f"Investigation of {alert.name}" + (f" — {summary}" if summary else "")
    # The mitigations' buttons (bot.alerting.offers) stay whatever the report's length.
    return Message(text=truncate(safe(text), MAX_TEXT), blocks=fit_blocks(blocks, len(offers)) + list(offers))
