"""What each /ops subcommand does: call its diagnostics through the report runner.

These functions are named in the command table (bot/commands.py); they know nothing of
Slack or the terminal and return a Report for the renderer.
"""

from __future__ import annotations

import time

from bot.clients import BACKEND_SETTINGS
from bot.commands import Context, Invocation
from bot.report import Report, run_diagnostic
from diagnostics.result import Result


async def execute(invocation: Invocation, ctx: Context) -> Report:
    """Run one parsed command; a backend that isn't configured gets a clear answer instead."""
    command = invocation.command
    start = time.monotonic()
    if command.backend and not ctx.clients.configured(command.backend):
        name, variable = BACKEND_SETTINGS[command.backend]
        report = Report(title=invocation.text, results=[Result.not_configured(invocation.text, name, variable)])
    else:
        assert command.run is not None, f"{command.name} has no runner"
        report = await command.run(ctx, invocation.args)
    report.elapsed = time.monotonic() - start
    return report


async def pods(ctx: Context, args: dict[str, object]) -> Report:
    from diagnostics.kubernetes import pod_status

    deployment, namespace = str(args["deployment"]), str(args["namespace"])
    timeout = ctx.settings.diagnostic_timeout
    title = f"Pods · {deployment} ({namespace})"
    result = await run_diagnostic(
        title,
        lambda: pod_status(ctx.clients.kubernetes, deployment, namespace, timeout=timeout),
        ctx.clients.backend("kubernetes"),
        # The diagnostic times out its own API calls; this outer bound catches anything else.
        timeout=timeout + 1,
        on_error=ctx.on_backend_error,
    )
    return Report(title=title, results=[result])
