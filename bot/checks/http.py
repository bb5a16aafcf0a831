"""HTTP checks: `deps`, the external dependencies the runbook checks by hand.

chatops.yaml (default: the runbook's https://api.openai.com/v1/models):

    dependencies:
      - name: OpenAI API
        url: https://api.openai.com/v1/models
      - name: payments
        url: https://payments.internal/healthz
        method: HEAD          # default GET
        expect_status: 200    # default: any answer below 500 counts as reachable
        timeout: 3            # seconds, default diagnostic_timeout
"""

from __future__ import annotations

from functools import partial
from typing import Any
from urllib.parse import urlsplit

from bot.checks.common import Check, run_checks
from bot.commands.model import Args, Command, Context
from bot.commands.report import Report
from bot.sections import (
    DEFAULT_FILE,
    Where,
    entry,
    list_of,
    number,
    one_of,
    optional,
    show,
    text,
    whole,
)
from diagnostics.http import DEFAULT_DEPENDENCIES, Dependency

METHODS = ("GET", "HEAD", "POST", "OPTIONS")


def _url(value: Any, where: Where) -> str:
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise where.wrong("must be an http(s) URL", value)
    return str(value)


# One entry of the list: Dependency's fields are its keys (declared in diagnostics, which knows
# no chatops.yaml); name and url are required.
_KEYS = {
    "name": text,
    "url": _url,
    "method": one_of(*METHODS, upper=True),
    "expect_status": optional(whole(at_least=100, at_most=599, must="must be an HTTP status 100-599")),
    "timeout": optional(number(above=0, at_most=120, must="must be a number of seconds more than 0, at most 120")),
}


def load(raw: Any, file: str = DEFAULT_FILE) -> tuple[Dependency, ...]:
    """chatops.yaml `dependencies:`, or the runbook's when absent. Raises ConfigError (one line)."""
    if raw is None:
        return DEFAULT_DEPENDENCIES
    where = Where(file, "dependencies")
    if raw == []:
        raise where.error("is empty: list at least one {name, url} or remove the key")
    parsed: tuple[Dependency, ...] = list_of(entry(Dependency, _KEYS))(raw, where)
    names = [d.name for d in parsed]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise where.item(i).key("name").error(f"{show(name)} is used twice")
    return parsed


async def deps(configured: tuple[Dependency, ...], ctx: Context, args: Args) -> Report:
    from diagnostics.http import check_dependencies

    timeout = ctx.settings.diagnostic_timeout
    longest = max(d.timeout or timeout for d in configured)
    check = Check(
        "Dependencies", "http",
        lambda: check_dependencies(ctx.clients.http, configured, timeout=timeout, cache=ctx.clients.cache),
        timeout=longest + 1,  # each dependency times out on its own first
    )
    return Report(title="Dependencies", results=await run_checks(ctx, [check]))


def commands(dependencies: tuple[Dependency, ...]) -> list[Command]:
    """`deps`, for the `dependencies:` section given."""
    return [
        Command(
            "deps",
            "Each external dependency's HTTP status and latency (from chatops.yaml `dependencies:`)",
            (),
            run=partial(deps, dependencies),
            backend="http",
            example="deps",
        ),
    ]
