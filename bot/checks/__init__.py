"""The /ops subcommands, one module per backend: each declares its `COMMANDS` and the
functions that run them (diagnostics through bot.report, returning a Report)."""

from __future__ import annotations

from bot.checks import kubernetes

ALL_COMMANDS = [
    *kubernetes.COMMANDS,
]
