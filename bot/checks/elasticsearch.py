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
from typing import TYPE_CHECKING, Awaitable, Callable

from bot.commands.args import duration, integer
from bot.checks.common import Check, run_checks, string_section
from bot.commands.model import Arg, Command, Context
from bot.errors import UsageError
from bot.commands.report import Report

if TYPE_CHECKING:
    from bot.settings import Settings
    from diagnostics.elasticsearch import LogFields
    from diagnostics.result import Result

_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$")

SINCE = Arg("since", "how far back (e.g. 15m, 1h, 1d; default 1h)", flags=("--since",), required=False,
            convert=duration, metavar="duration", default=3600)


def app_label(value: str, what: str) -> str:
    if not _LABEL_VALUE.match(value):
        raise UsageError(f"`{value}` is not a valid {what} label value: letters, digits, '-', '_', '.'")
    return value


def log_fields(settings: "Settings") -> "LogFields":
    from diagnostics.elasticsearch import LogFields

    defaults = {f.name: f.default for f in dataclasses.fields(LogFields)}
    return LogFields(**string_section(settings, "elasticsearch", defaults, {"default_app": app_label}))


def validate(settings: "Settings") -> None:
    log_fields(settings)


async def errors(ctx: Context, args: dict[str, object]) -> Report:
    from diagnostics.durations import compact_duration
    from diagnostics.elasticsearch import error_logs

    app = str(args["app"] or log_fields(ctx.settings).default_app)
    since = int(args["since"])  # type: ignore[call-overload]
    return await _search(ctx, f"Errors · {app} · last {compact_duration(since)}", error_logs, app, since)


async def slow(ctx: Context, args: dict[str, object]) -> Report:
    from diagnostics.durations import compact_duration
    from diagnostics.elasticsearch import slow_requests

    min_ms, since = int(args["min_ms"]), int(args["since"])  # type: ignore[call-overload]
    return await _search(ctx, f"Slow requests · ≥ {min_ms} ms · last {compact_duration(since)}", slow_requests,
                         min_ms, since)


async def _search(ctx: Context, title: str, diagnostic: Callable[..., Awaitable[Result]], *args: object) -> Report:
    from diagnostics.elasticsearch import LogSearch

    s = ctx.settings
    logs = LogSearch(ctx.clients.elasticsearch, log_fields(s), s.diagnostic_timeout, s.kibana_url,
                     ctx.clients.cache)
    check = Check(title, "elasticsearch", lambda: diagnostic(logs, *args))
    return Report(title=title, results=await run_checks(ctx, [check]))


COMMANDS = [
    Command(
        "errors",
        "Newest error log lines of an app and the error count per endpoint (Elasticsearch)",
        (Arg("app", "app label (default from chatops.yaml)", required=False, convert=app_label), SINCE),
        run=errors,
        backend="elasticsearch",
        example="errors claude-deployment-api --since 30m",
    ),
    Command(
        "slow",
        "The slowest requests in the logs, slowest first (Elasticsearch)",
        (Arg("min_ms", "only requests at least this slow, in ms (default 1000)", flags=("--min-ms",),
             required=False, convert=integer(1, 3_600_000), metavar="ms", default=1000), SINCE),
        run=slow,
        backend="elasticsearch",
        example="slow --min-ms 2000 --since 15m",
    ),
]
