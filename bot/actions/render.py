"""The approval message, in every state it goes through. The only place that knows its blocks.

One message per request, posted visibly where the request was made and edited in place as the
request moves on (approved and applied, failed, changed underneath, cancelled, expired). Its
buttons carry the request's opaque id as their `value` and nothing else; the `block_id` changes
with every edit (as Slack advises), so a click on a stale copy of the message is recognisable.
Every string that came from a person or a backend is escaped and cut to Slack's limits here.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from bot.actions import request as state
from bot.actions.request import ActionRequest
from bot.slack.mrkdwn import safe, truncate
from bot.slack.render import Message, context, section
from diagnostics.durations import spoken_duration
from operations.model import Change, Preview

APPROVE, CANCEL, REVERT = "ops-approve", "ops-cancel", "ops-revert"
MAX_DETAILS = 20
MAX_TEXT = 3000

TITLES = {
    "scale": "Scale", "restart": "Rollout restart", "limits": "Change resource limits",
    "breaker": "Circuit breaker", "silence": "Silence", "unsilence": "Expire silence",
}


def user(user_id: str) -> str:
    return f"<@{user_id}>" if user_id and user_id.isalnum() else safe(user_id or "someone")


def clock_time(at: float) -> str:
    return datetime.fromtimestamp(at, timezone.utc).strftime("%H:%M UTC")


def change_line(change: Change) -> str:
    return safe(change.text())


def changes_text(changes: tuple[Change, ...] | list[Change]) -> str:
    return ", ".join(change_line(c) for c in changes) or "no change"


def _title(request: ActionRequest, preview: Preview | None) -> str:
    name = TITLES.get(str(request.spec.get("action")), request.action)
    target = preview.target if preview is not None else ""
    return f"{name} {safe(target)}".strip()


def _section(text: str) -> dict[str, Any]:
    return section(text).to_dict()


def _context(text: str) -> dict[str, Any]:
    return context(text).to_dict()


def _preview_blocks(preview: Preview) -> list[dict[str, Any]]:
    lines = [f"• {change_line(c)}" for c in preview.changes] or ["• no change"]
    blocks = [_section("\n".join(lines))]
    if preview.warnings:
        blocks.append(_section("\n".join(f":warning: {safe(w)}" for w in preview.warnings)))
    if preview.details:
        shown = [f"• {safe(d)}" for d in preview.details[:MAX_DETAILS]]
        if len(preview.details) > MAX_DETAILS:
            shown.append(f"…and {len(preview.details) - MAX_DETAILS} more")
        blocks.append(_section("\n".join(shown)))
    return blocks


def _button(action_id: str, text: str, request: ActionRequest, style: str | None = None,
            confirm: dict[str, Any] | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {"type": "button", "action_id": action_id, "value": request.id,
                              "text": {"type": "plain_text", "text": text}}
    if style:
        button["style"] = style
    if confirm:
        button["confirm"] = confirm
    return button


def _confirm(request: ActionRequest, preview: Preview) -> dict[str, Any]:
    summary = truncate(", ".join(c.text() for c in preview.changes) or preview.target, 280)
    return {"title": {"type": "plain_text", "text": "Apply this change?"},
            "text": {"type": "plain_text", "text": summary},
            "confirm": {"type": "plain_text", "text": "Approve"},
            "deny": {"type": "plain_text", "text": "Not yet"}}


def approval_message(request: ActionRequest, approvers: str, two_person: bool) -> Message:
    """The request as it is now; the buttons only while it is pending (Revert once it is done)."""
    preview = request.the_preview
    title = _title(request, preview)
    blocks: list[dict[str, Any]] = [_section(f"{_headline(request)} *{title}*")]
    if preview is not None:
        blocks.extend(_preview_blocks(preview))
    blocks.append(_context(_status_line(request, approvers, two_person)))
    buttons = _buttons(request, preview)
    if buttons:
        blocks.append({"type": "actions", "block_id": f"{request.id}:{request.status}:{request.version}",
                       "elements": buttons})
    text = truncate(f"{_plain_headline(request)} {title}: {changes_text(preview.changes) if preview else ''}",
                    MAX_TEXT)
    return Message(text=text, blocks=blocks)


def _buttons(request: ActionRequest, preview: Preview | None) -> list[dict[str, Any]]:
    if request.status == state.PENDING and preview is not None:
        return [_button(APPROVE, "Approve", request, "primary", _confirm(request, preview)),
                _button(CANCEL, "Cancel", request)]
    outcome = request.the_outcome
    if request.status == state.DONE and not request.reverted_by and _revertible(request) and not (
            outcome is not None and outcome.already):  # nothing was written: a "revert" would undo someone else
        return [_button(REVERT, "Revert", request)]
    if request.status == state.CHANGED and not request.superseded_by:
        return [_button(REVERT, "Request again", request)]
    return []


def _revertible(request: ActionRequest) -> bool:
    return str(request.spec.get("action")) in ("scale", "limits", "breaker", "silence")


# Each state's headline: (emoji, words); approved and executing read "Applying".
HEADLINES = {
    state.PENDING: (":raised_hand:", "Approval needed:"), state.DONE: (":white_check_mark:", "Done:"),
    state.FAILED: (":x:", "Failed:"), state.CHANGED: (":warning:", "Not applied:"),
    state.CANCELLED: (":no_entry_sign:", "Cancelled:"), state.EXPIRED: (":hourglass:", "Expired:"),
    state.REFUSED: (":x:", "Refused:"),
}
APPLYING = (":hourglass_flowing_sand:", "Applying:")


def _headline(request: ActionRequest) -> str:
    emoji, words = HEADLINES.get(request.status, APPLYING)
    return f"{emoji} *{words}*"


def _plain_headline(request: ActionRequest) -> str:
    return HEADLINES.get(request.status, APPLYING)[1]


def _status_line(request: ActionRequest, approvers: str, two_person: bool) -> str:
    asked = f"Requested by {user(request.requester)}"
    if request.revert_of:
        asked += f" (reverts `{request.revert_of}`)"
    if request.again_of:
        asked += f" (asks again for `{request.again_of}`)"
    if request.status == state.PENDING:
        who = f"may approve: {safe(approvers)}" + (" (not the requester)" if two_person else "")
        return f"{asked} · {who} · expires {clock_time(request.expires_at)} · request `{request.id}`"
    if request.status == state.DONE:
        outcome = request.the_outcome
        applied = changes_text(outcome.changes) if outcome else ""
        note = " (already so: nothing written)" if outcome is not None and outcome.already else ""
        ref = f" · {safe(outcome.reference)}" if outcome is not None and outcome.reference else ""
        reverted = f" · reverted by request `{request.reverted_by}`" if request.reverted_by else ""
        return (f"{asked} · approved by {user(request.approver)} · applied in {request.elapsed:.1f} s · "
                f"{applied}{note}{ref}{reverted}")
    if request.status not in (state.FAILED, state.CHANGED, state.CANCELLED, state.EXPIRED, state.REFUSED):
        return f"{asked} · approved by {user(request.approver)} · applying…"
    if request.status == state.CANCELLED:
        return f"{asked} · cancelled by {user(request.approver)}; nothing changed"
    if request.status == state.EXPIRED:
        return (f"{asked} · expired at {clock_time(request.expires_at)} without an approval "
                f"({spoken_duration(request.expires_at - request.created_at)}); nothing changed")
    reason = safe(truncate(request.error, 500))
    if request.status == state.CHANGED:
        return f"{asked} · approved by {user(request.approver)} · changed since the preview: {reason}; nothing written"
    return f"{asked} · approved by {user(request.approver)} · {reason}" if request.approver else f"{asked} · {reason}"
