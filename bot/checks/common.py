"""What every bot/checks module shares: the namespace option and running checks together."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Awaitable, Callable, Sequence

from bot.commands.args import k8s_namespace
from bot.commands.model import Arg, Context
from bot.commands.report import run_diagnostic
from diagnostics.result import Result

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
        if check.backend == "kubernetes":
            await ctx.clients.kubernetes_ready()
        timeout = check.timeout or ctx.settings.diagnostic_timeout
        return await run_diagnostic(check.title, check.run, ctx.clients.backend(check.backend), timeout,
                                    on_error=ctx.on_backend_error)

    return list(await asyncio.gather(*(one(c) for c in checks)))
