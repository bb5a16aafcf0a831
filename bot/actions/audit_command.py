"""`/ops audit [--since <duration>] [--user <@user>] [--action <name>]`: the audit trail, newest first.

Read-only. `--user` takes a mention as Slack escapes it (`<@U123|alice>`, with `should_escape` on
the slash command), a user ID, or `@name` (matched against the names Slack sent with requests).
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from bot.actions.audit import Audit, AuditEntry
from bot.commands.args import duration
from bot.commands.model import Arg, Args, Command, Context
from bot.commands.report import Report
from bot.errors import UsageError
from diagnostics.durations import spoken_duration
from diagnostics.result import Result, Row, Status
from operations.model import Change

MAX_ROWS = 40
ACTIONS = ("scale", "restart", "limits", "breaker", "silence", "unsilence")
_MENTION = re.compile(r"^<@([UW][A-Z0-9]+)(\|[^>]*)?>$")
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")


def user_filter(value: str, what: str) -> str:
    mention = _MENTION.match(value)
    if mention:
        return mention.group(1)
    if _USER_ID.match(value) or (value.startswith("@") and len(value) > 1):
        return value
    raise UsageError(f"{what} `{value}`: use @name, a mention or a user ID (U…)")


def action_filter(value: str, what: str) -> str:
    if value.lower() not in ACTIONS:
        raise UsageError(f"{what} must be one of {', '.join(ACTIONS)}, not `{value}`")
    return value.lower()


async def run_audit(ctx: Context, args: Args) -> Report:
    title = "audit"
    if ctx.store is None:
        return Report(title, [Result.error(title, "the audit trail lives in the bot's state store, "
                                                  "which this process has not opened")])
    since = ctx.store.clock.now() - float(args["since"])
    entries = [e for e in await Audit(ctx.store).read(since) if _matches(e, args.get("user"), args.get("action"))]
    rows = [_row(e) for e in entries[:MAX_ROWS]]
    summary = f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'} in the last " \
              f"{spoken_duration(float(args['since']))}"
    if len(entries) > MAX_ROWS:
        summary += f" (newest {MAX_ROWS} shown)"
    result = Result(status=Status.OK, title=title, summary=summary,
                    columns=("when", "what", "who", "target", "change", "request"), rows=rows)
    return Report(title, [result])


def _matches(entry: AuditEntry, user: str | None, action: str | None) -> bool:
    if action and entry.action != action:
        return False
    if not user:
        return True
    if user.startswith("@"):
        return user[1:].lower() in (entry.user_name.lower(), entry.requester_name.lower())
    return user in (entry.user, entry.requester)


def _row(entry: AuditEntry) -> Row:
    when = datetime.fromtimestamp(entry.at, timezone.utc).strftime("%m-%d %H:%M:%S")
    change = ", ".join(Change(str(c.get("field", "")), _text(c.get("before")), _text(c.get("after"))).text()
                       for c in entry.changes)
    what = entry.event + (f": {entry.reason}" if entry.reason else "")
    who = f"{entry.user_name} ({entry.user})" if entry.user_name else entry.user
    status = Status.WARNING if entry.event in ("refused", "failed", "changed", "preview-failed") else Status.OK
    return Row(cells=(when, what, who, entry.target, change, entry.request), status=status)


def _text(value: object) -> str | None:
    return None if value is None else str(value)




COMMAND = Command("audit", "The audit trail of requested and applied changes", (
    Arg("since", "how far back (default 24h)", flags=("--since",), required=False, convert=duration,
        metavar="duration", default=86400),
    Arg("user", "only what this person did or asked for", flags=("--user",), required=False, convert=user_filter,
        metavar="@user"),
    Arg("action", "only this action", flags=("--action",), required=False, convert=action_filter, metavar="name"),
), run=run_audit, example="audit --since 2h --action scale")
