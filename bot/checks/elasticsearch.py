"""Elasticsearch log checks: `errors` and `slow`, the runbook's log queries.

chatops.yaml, all optional (the runbook's defaults shown):

    elasticsearch:
      index: claude-deployment-logs-*
      app_field: kubernetes.labels.app
      default_app: claude-deployment-api
      message_field: log
      level_field: level
      endpoint_field: endpoint.keyword
      response_time_field: response_time   # milliseconds
      timestamp_field: "@timestamp"
"""

from __future__ import annotations

import dataclasses
import re
from functools import partial
from typing import Any, Awaitable, Callable

from bot.checks.common import Check, run_checks
from bot.commands.args import duration, integer
from bot.commands.model import Arg, Args, Command, Context
from bot.commands.report import Report
from bot.errors import UsageError
from bot.sections import DEFAULT_FILE, Where, argument, read, text
from diagnostics.elasticsearch import LogFields
from diagnostics.result import Result

_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$")

SINCE = Arg("since", "how far back (e.g. 15m, 1h, 1d; default 1h)", flags=("--since",), required=False,
            convert=duration, metavar="duration", default=3600)


def app_label(value: str, what: str) -> str:
    if not _LABEL_VALUE.match(value):
        raise UsageError(f"`{value}` is not a valid {what} label value: letters, digits, '-', '_', '.'")
    return value


# The section's keys are LogFields' fields (declared in diagnostics, which knows no chatops.yaml):
# every one a non-empty string; default_app also a valid app label, as `errors <app>` takes.
_CONVERTERS = {**{f.name: text for f in dataclasses.fields(LogFields)}, "default_app": argument(app_label)}


def load(raw: Any, file: str = DEFAULT_FILE) -> LogFields:
    """chatops.yaml `elasticsearch:` over the runbook's index and field names. Raises ConfigError."""
    return read(LogFields, raw, Where(file, "elasticsearch"), _CONVERTERS, absent_ok=True)


async def errors(fields: LogFields, ctx: Context, args: Args) -> Report:
    from diagnostics.durations import compact_duration
    from diagnostics.elasticsearch import error_logs

    app = str(args["app"] or fields.default_app)
    since = int(args["since"])
    return await _search(ctx, fields, f"Errors · {app} · last {compact_duration(since)}", error_logs, app, since)


async def slow(fields: LogFields, ctx: Context, args: Args) -> Report:
    from diagnostics.durations import compact_duration
    from diagnostics.elasticsearch import slow_requests

    min_ms, since = int(args["min_ms"]), int(args["since"])
    return await _search(ctx, fields, f"Slow requests · ≥ {min_ms} ms · last {compact_duration(since)}", slow_requests,
                         min_ms, since)


async def _search(ctx: Context, fields: LogFields, title: str, diagnostic: Callable[..., Awaitable[Result]],
                  *args: object) -> Report:
    from diagnostics.elasticsearch import LogSearch

    s = ctx.settings
    logs = LogSearch(ctx.clients.elasticsearch, fields, s.diagnostic_timeout, s.kibana_url, ctx.clients.cache)
    check = Check(title, "elasticsearch", lambda: diagnostic(logs, *args))
    return Report(title=title, results=await run_checks(ctx, [check]))


def commands(fields: LogFields) -> list[Command]:
    """`errors` and `slow`, for the `elasticsearch:` section given."""
    return [
        Command(
            "errors",
            ("Newest error log lines of an app (ERROR looked for, and the message shown, in the configured field, "
             "`message`, `log` or `error.message`; each line cut to 300 characters) and the error count per "
             "endpoint (Elasticsearch)"),
            (Arg("app", "app label (default from chatops.yaml)", required=False, convert=app_label), SINCE),
            run=partial(errors, fields),
            backend="elasticsearch",
            example="errors claude-deployment-api --since 30m",
        ),
        Command(
            "slow",
            "The slowest requests in the logs, slowest first (Elasticsearch)",
            (Arg("min_ms", "only requests at least this slow, in ms (default 1000)", flags=("--min-ms",),
                 required=False, convert=integer(1, 3_600_000), metavar="ms", default=1000), SINCE),
            run=partial(slow, fields),
            backend="elasticsearch",
            example="slow --min-ms 2000 --since 15m",
        ),
    ]
