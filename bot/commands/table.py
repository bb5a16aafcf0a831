"""THE table of /ops subcommands: each bot/checks module's commands, in the order `help` lists them."""

from __future__ import annotations

from bot.commands.model import Command
from bot.commands.parser import CommandTable


def build_table() -> CommandTable:
    """Every /ops subcommand, in the order `help` lists them.

    Each backend's commands are declared in its own module of bot/checks, next to the
    functions that run them; this is the one place they are put together.
    """
    from bot.checks import all_commands

    table = CommandTable()
    table.add(Command("help", "List the commands and what each needs", (), run=None))
    for command in all_commands():
        table.add(command)
    return table
