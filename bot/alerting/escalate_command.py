"""`/ops escalate <reason>`: a manual incident (PagerDuty and the managers' channel), from anywhere.

Declared here for the command table (help, usage, the README's list); the slash command handler
records it as an incident job (bot.alerting.incidents) instead of running it. In an alert's
thread, `@ops escalate <reason>` escalates that alert instead.
"""

from __future__ import annotations

from bot.commands.model import Arg, Command
from bot.errors import UsageError

NAME = "escalate"
MAX_REASON = 500


def reason(value: object, what: str) -> str:
    text = " ".join(str(v) for v in value) if isinstance(value, (list, tuple)) else str(value)
    if not text.strip():
        raise UsageError("say why: `escalate <reason>`, e.g. `escalate customers report failed checkouts`")
    if len(text) > MAX_REASON:
        raise UsageError(f"the reason is {len(text)} characters; at most {MAX_REASON}")
    return text.strip()


COMMAND = Command(
    NAME, "Open an incident now: page the on-call (PagerDuty) and tell the managers' channel, with a reason",
    (Arg("reason", "why (what customers report, what you see)", kind="rest", convert=reason, metavar="reason"),),
    run=None, slack_only=True, example="escalate customers report failed checkouts")
