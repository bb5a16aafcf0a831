"""The /ops subcommands, one module per backend: each declares its `COMMANDS` and the
functions that run them (diagnostics through bot.report, returning a Report). A module
that reads a section of chatops.yaml also defines `validate(settings)`, raising
ConfigError with one readable line, so that mistakes stop the bot at start."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.commands.model import Command
    from bot.settings import Settings

# In the order `help` lists them.
MODULES = ("kubernetes", "prometheus", "elasticsearch", "aws", "postgres", "http", "monitoring")


def _modules() -> list:  # type: ignore[type-arg]
    import importlib

    return [importlib.import_module(f"bot.checks.{name}") for name in MODULES]


def all_commands() -> "list[Command]":
    return [command for module in _modules() for command in module.COMMANDS]


def validate(settings: "Settings") -> None:
    for module in _modules():
        check = getattr(module, "validate", None)
        if check is not None:
            check(settings)
