"""Run one parsed /ops command: the entry point shared by Slack and the terminal."""

from __future__ import annotations

import time

from bot.clients import BACKEND_SETTINGS
from bot.commands.model import Context, Invocation
from bot.commands.report import Report
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
