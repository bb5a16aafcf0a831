"""What every bot/checks module shares: the namespace option and running checks together."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Awaitable, Callable, Sequence

from bot.commands.args import k8s_namespace
from bot.commands.model import Arg, Context
from bot.errors import ConfigError
from bot.errors import UsageError
from bot.commands.report import run_diagnostic
from diagnostics.result import Result

if TYPE_CHECKING:
    from bot.settings import Settings

NAMESPACE = Arg("namespace", "Kubernetes namespace (default from config)", flags=("-n", "--namespace"),
                required=False, convert=k8s_namespace)


@dataclass(frozen=True)
class Check:
    """One diagnostic to run: what it is called, which backend it asks, and how to run it."""

    title: str
    backend: str  # a key of bot.clients.BACKEND_SETTINGS
    run: Callable[[], Awaitable[Result]]
    timeout: float | None = None  # default: settings.diagnostic_timeout


async def run_checks(ctx: Context, checks: Sequence[Check]) -> list[Result]:
    """Run checks concurrently, each under its own timeout; results in the order given.

    A check whose backend isn't configured answers so, without running.
    """
    from bot.clients import BACKEND_SETTINGS

    async def one(check: Check) -> Result:
        if not ctx.clients.configured(check.backend):
            name, variable = BACKEND_SETTINGS[check.backend]
            return Result.not_configured(check.title, name, variable)
        timeout = check.timeout or ctx.settings.diagnostic_timeout
        return await run_diagnostic(check.title, check.run, ctx.clients.backend(check.backend), timeout,
                                    on_error=ctx.on_backend_error)

    return list(await asyncio.gather(*(one(c) for c in checks)))


def string_section(
    settings: "Settings",
    section: str,
    defaults: dict[str, str],
    converters: dict[str, Callable[[str, str], str]] | None = None,
) -> dict[str, str]:
    """A chatops.yaml section of string settings, checked, with the defaults filled in.

    Only the keys of `defaults` are accepted; each value must be a non-empty string and
    pass its converter (a bot.args-style converter: UsageError on a bad value).
    """
    where = settings.config_file or "chatops.yaml"
    raw = settings.sections.get(section) or {}
    out = dict(defaults)
    for key, value in raw.items():
        if key not in defaults:
            raise ConfigError(f"{where}: unknown setting {section}.{key} (known: {', '.join(defaults)})")
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{where}: {section}.{key} must be a non-empty string, not {value!r}")
        convert = (converters or {}).get(key)
        try:
            out[key] = convert(value.strip(), key) if convert else value.strip()
        except UsageError as e:
            raise ConfigError(f"{where}: {section}.{key}: {e.message}") from None
    return out
