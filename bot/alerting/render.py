"""Alert messages and investigation replies, as Block Kit. Text from alerts is escaped."""

from __future__ import annotations

from typing import Any, Sequence

from slack_sdk.models.blocks import Block, DividerBlock, MarkdownTextObject, SectionBlock

from bot.alerting.model import Alert
from bot.alerting.state import worst_severity
from bot.slack.mrkdwn import code, link, safe, truncate
from bot.slack.render import FIELD_LIMIT, MAX_TEXT, Message, context, fit_blocks, result_blocks, section
from diagnostics.durations import spoken_duration
from diagnostics.result import Result

SEVERITY_EMOJI = {"critical": ":rotating_light:", "warning": ":warning:", "info": ":information_source:"}
# Labels that say where an alert is; shown as fields, the rest are in the Prometheus link.
KEY_LABELS = ("namespace", "service", "deployment", "app", "job", "instance", "pod", "node", "mountpoint")
LISTED = 5  # alerts of a group listed by name in its post, per status; the rest are counted
LABELS_PER_LINE = 3  # a listed alert's labels that tell it from the group's others


def alert_message(alert: Alert, links: Sequence[tuple[str, str]], *, resolved_after: float | None = None,
                  members: Sequence[Alert] = (), left_out: int = 0, acked: str = "",
                  buttons: Sequence[dict[str, Any]] = ()) -> Message:
    """The bot's own post of an alert (or a group of alerts: `alert` is what they have in common,
    `members` lists them; `left_out` more that Alertmanager did not send) it got by webhook; edited
    in place as alerts join and resolve. `acked`: who acknowledged it (a line); `buttons`: blocks
    under it (Acknowledge)."""
    severity = alert.severity or worst_severity(members) or "unknown"
    count = f" — {len(members) + left_out} alerts" if members else ""
    if resolved_after is None:
        head = f"{SEVERITY_EMOJI.get(severity, ':bell:')} *{safe(severity.upper())} · {safe(alert.name)}*{count}"
    else:
        head = (f":white_check_mark: *RESOLVED after {spoken_duration(resolved_after)} · "
                f"{safe(alert.name)}*{count}")
    summary = alert.summary or alert.name
    text = f"{head}\n{safe(summary)}"
    if alert.description:
        text += f"\n{safe(alert.description)}"
    blocks: list[Block] = [section(text)]
    if members:
        listing = _listing(alert, members)
        if left_out:
            listing += (f"\n:heavy_plus_sign: {left_out} more that Alertmanager left out of its notification "
                        "(the receiver's `max_alerts`)")
        blocks.append(section(listing))
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
    if not members:
        about.append(f"fingerprint {code(alert.fingerprint)}")
    blocks.append(context(" · ".join(about)))
    if acked:
        blocks.append(context(acked))
    state = "RESOLVED" if resolved_after is not None else severity.upper()
    fallback = f"[{state}] {alert.name}: {summary}{f' ({len(members)} alerts)' if members else ''}"
    return Message(text=truncate(safe(fallback), MAX_TEXT), blocks=fit_blocks(blocks, len(buttons)) + list(buttons))


def _listing(common: Alert, members: Sequence[Alert]) -> str:
    """A group's alerts, firing then resolved: the first few by what tells them apart, the rest counted."""
    lines = []
    for status, mark in (("firing", ":red_circle:"), ("resolved", ":white_check_mark:")):
        alerts = [a for a in members if a.status == status]
        if not alerts:
            continue
        lines.append(f"*{len(alerts)} {status}*")
        for alert in alerts[:LISTED]:
            lines.append(f"{mark} {_telling(common, alert)}")
        if len(alerts) > LISTED:
            lines.append(f"… and {len(alerts) - LISTED} more {status}")
    return "\n".join(lines)


def _telling(common: Alert, alert: Alert) -> str:
    """What tells one alert of a group from the others: its own labels (key labels first)."""
    own = [k for k in alert.labels if common.labels.get(k) != alert.labels[k]]
    own.sort(key=lambda k: (k not in KEY_LABELS, KEY_LABELS.index(k) if k in KEY_LABELS else 0, k))
    shown = [f"{safe(k)}={code(truncate(alert.labels[k], 80))}" for k in own[:LABELS_PER_LINE]]
    if len(own) > LABELS_PER_LINE:
        shown.append(f"+{len(own) - LABELS_PER_LINE} labels")
    since = alert.starts_at.strftime("%H:%M UTC") if alert.starts_at is not None else ""
    return " ".join(shown or [safe(alert.name)]) + (f" · since {since}" if since else "")


def investigation_message(alert: Alert, steps: Sequence[str], results: Sequence[list[Result] | None],
                          actions: Sequence[str], prefix: str = "/ops",
                          offers: Sequence[dict[str, Any]] = (), skipped: Sequence[str] = (),
                          alerts: int = 1, joined: bool = False) -> Message:
    """The thread reply: results so far, steps still running, the runbook's mitigations. For a
    group (`alerts` > 1) the steps are its alerts' distinct steps, those beyond a round's cap
    `skipped` (listed, not run); `joined`: a later round, for alerts that joined the group."""
    running = [step for step, done in zip(steps, results, strict=False) if done is None]
    about = f" — {alerts} alerts" if alerts > 1 else ""
    about += " · alerts that joined" if joined else ""
    if running:
        head = (f":mag: *Investigating {safe(alert.name)}*{about} — "
                f"{len(steps) - len(running)}/{len(steps)} checks done")
    else:
        head = f":mag: *Investigation · {safe(alert.name)}*{about} — {len(steps)} checks"
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
    if skipped:
        listed = ", ".join(code(f"{prefix} {step}") for step in skipped[:LISTED * 2])
        more = f" and {len(skipped) - LISTED * 2} more" if len(skipped) > LISTED * 2 else ""
        blocks.append(context(f":heavy_minus_sign: {len(skipped)} more distinct steps, not run: {listed}{more}"))
    if actions:
        names = ", ".join(safe(a) for a in actions)
        blocks.append(context(f":wrench: Runbook mitigations: {names}"))
    worst = [r for done in results if done for r in done]
    summary = "; ".join(f"{r.title}: {r.summary}" for r in worst if not r.status.is_healthy)[:500]
    text = f"Investigation of {alert.name}" + (f" — {summary}" if summary else "")
    # The mitigations' buttons (bot.alerting.offers) stay whatever the report's length.
    return Message(text=truncate(safe(text), MAX_TEXT), blocks=fit_blocks(blocks, len(offers)) + list(offers))
