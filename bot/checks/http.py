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

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from bot.checks.common import Check, run_checks
from bot.commands.model import Command, Context
from bot.errors import ConfigError
from bot.commands.report import Report

if TYPE_CHECKING:
    from bot.settings import Settings
    from diagnostics.http import Dependency

METHODS = ("GET", "HEAD", "POST", "OPTIONS")
_KEYS = ("name", "url", "method", "expect_status", "timeout")


def dependencies(settings: "Settings") -> "tuple[Dependency, ...]":
    from diagnostics.http import DEFAULT_DEPENDENCIES

    items = settings.sections.get("dependencies")
    if items is None:
        return DEFAULT_DEPENDENCIES
    where = f"{settings.config_file or 'chatops.yaml'}: dependencies"
    if not items:
        raise ConfigError(f"{where} is empty: list at least one {{name, url}} or remove the key")
    parsed = tuple(_dependency(item, f"{where}[{i}]") for i, item in enumerate(items))
    names = [d.name for d in parsed]
    if len(set(names)) < len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise ConfigError(f"{where}: the name {twice!r} is used twice")
    return parsed


def _dependency(item: Any, where: str) -> "Dependency":
    from diagnostics.http import Dependency

    if not isinstance(item, dict):
        raise ConfigError(f"{where} must be a mapping with name and url, not {item!r}")
    unknown = [key for key in item if key not in _KEYS]
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(_KEYS)})")
    name, url = item.get("name"), item.get("url")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{where}: name must be a non-empty string")
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{where} ({name}): url {url!r} is not an http(s) URL")
    method = item.get("method", "GET")
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise ConfigError(f"{where} ({name}): method {method!r} is not one of {', '.join(METHODS)}")
    expect = item.get("expect_status")
    if expect is not None and (type(expect) is not int or not 100 <= expect <= 599):
        raise ConfigError(f"{where} ({name}): expect_status must be an HTTP status 100-599, not {expect!r}")
    timeout = item.get("timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                or not 0 < timeout <= 120):
        raise ConfigError(f"{where} ({name}): timeout must be a number of seconds between 0 and 120")
    return Dependency(name.strip(), url, method.upper(), expect, float(timeout) if timeout is not None else None)


def validate(settings: "Settings") -> None:
    dependencies(settings)


async def deps(ctx: Context, args: dict[str, object]) -> Report:
    from diagnostics.http import check_dependencies

    configured, timeout = dependencies(ctx.settings), ctx.settings.diagnostic_timeout
    longest = max(d.timeout or timeout for d in configured)
    check = Check(
        "Dependencies", "http",
        lambda: check_dependencies(ctx.clients.http, configured, timeout=timeout, cache=ctx.clients.cache),
        timeout=longest + 1,  # each dependency times out on its own first
    )
    return Report(title="Dependencies", results=await run_checks(ctx, [check]))


COMMANDS = [
    Command(
        "deps",
        "Each external dependency's HTTP status and latency (from chatops.yaml `dependencies:`)",
        (),
        run=deps,
        backend="http",
        example="deps",
    ),
]
