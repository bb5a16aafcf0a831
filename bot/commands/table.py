"""THE table of /ops subcommands: each bot/checks module's commands, in the order `help` lists them."""

from __future__ import annotations

from bot.actions import audit_command
from bot.actions import commands as actions
from bot.alerting import escalate_command
from bot.all_sections import Sections
from bot.checks import aws, elasticsearch, http, kubernetes, monitoring, postgres, prometheus
from bot.commands.model import Command
from bot.commands.parser import CommandTable


def build_table(sections: Sections) -> CommandTable:
    """Every /ops subcommand, in the order `help` lists them, built from chatops.yaml's parsed sections.

    Each backend's commands are declared in its own module of bot/checks, next to the
    functions that run them; this is the one place they are put together. Modules with a
    section get it here, once (`Sections()` gives the defaults: no chatops.yaml).
    """
    table = CommandTable()
    table.add(Command("help", "List the commands and what each needs", (), run=None))
    for command in [
        *kubernetes.COMMANDS,
        *prometheus.commands(sections.presets, sections.slo),
        *elasticsearch.commands(sections.elasticsearch),
        *aws.commands(sections.aws),
        *postgres.COMMANDS,
        *http.commands(sections.dependencies),
        *monitoring.COMMANDS,
        *actions.COMMANDS,
        audit_command.COMMAND,
        escalate_command.COMMAND,
    ]:
        table.add(command)
    return table
