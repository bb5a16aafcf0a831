"""The terminal: `python app.py ops <words>` runs one /ops command and prints the result.

Configuration is read and checked as when serving (the environment, then every section of
chatops.yaml, then the playbooks' steps against the command table), so a bad chatops.yaml
stops both with the same one line. Slack variables are not needed here.

Exit codes, like a monitoring check: 0 ok, 1 warning, 2 critical, 3 unknown or the check
failed; 2 also for a configuration error (one line on stderr); 64 bad usage.
"""

from __future__ import annotations

import asyncio
import shlex
import sys
from typing import TYPE_CHECKING

from bot.alerting.playbooks import validate_steps
from bot.all_sections import load_sections
from bot.clients import Clients, ClientSetupError
from bot.commands.parser import CommandTable
from bot.commands.table import build_table
from bot.errors import ConfigError, UsageError
from bot.runtime.logsetup import setup_logging
from bot.settings import Settings, load_settings
from bot.slack.mrkdwn import plain, redact
from bot.slack.render import help_text, report_text
from diagnostics.result import Status

if TYPE_CHECKING:
    from bot.commands.model import Invocation
    from bot.commands.report import Report
    from bot.state.store import Store

EXIT_CONFIG = 2
EXIT_USAGE = 64
STATUS_EXIT = {Status.OK: 0, Status.WARNING: 1, Status.CRITICAL: 2, Status.UNKNOWN: 3, Status.ERROR: 3}
PROGRAM = "python app.py ops"


def config_error(error: Exception) -> int:
    """A configuration problem: its one line on stderr, exit 2 (both `python app.py` and `ops`)."""
    print(f"config error: {error}", file=sys.stderr)
    return EXIT_CONFIG


def main(words: list[str]) -> int:
    """`python app.py ops <words>`: the exit code."""
    try:
        settings = load_settings(mode="cli")
        sections = load_sections(settings)
        table = build_table(sections)
        validate_steps(sections.playbooks, table, settings.default_namespace,
                       settings.config_name)
    except ConfigError as e:
        return config_error(e)
    setup_logging("WARNING", settings.log_format, settings.secrets())
    try:
        return asyncio.run(run_cli(settings, table, words))
    except (ClientSetupError, ConfigError) as e:
        return config_error(e)
    except KeyboardInterrupt:
        return 130


async def run_cli(settings: Settings, table: CommandTable, words: list[str]) -> int:
    from bot.commands.execute import execute
    from bot.commands.model import Context

    try:
        invocation = table.parse(shlex.join(words), settings.default_namespace)
    except UsageError as e:
        print(f"error: {e.message}", file=sys.stderr)
        if e.usage:
            print(f"usage: {PROGRAM} {e.usage}", file=sys.stderr)
        return EXIT_USAGE
    if invocation.command.mutating:
        print(f"error: `{invocation.command.name}` changes production: ask for it in Slack "
              f"({settings.command} {invocation.text}), where someone else approves it", file=sys.stderr)
        return EXIT_USAGE
    if invocation.command.slack_only:
        print(f"error: `{invocation.command.name}` works in Slack only ({settings.command} {invocation.text})",
              file=sys.stderr)
        return EXIT_USAGE
    clients = await Clients.build(settings)
    store = _store(settings, invocation)
    try:
        if invocation.command.name == "help":
            print(help_text(table, PROGRAM, clients.unconfigured()), end="")
            return 0
        report = await execute(invocation, Context(settings, clients, store=store))
        # Backend text as the terminal shows it: no escape sequences, no credentials.
        print(redact(plain(report_text(report)), settings.secrets()), end="")
        save_files(report)
        return STATUS_EXIT[report.status]
    finally:
        await clients.close()
        if store is not None:
            await store.close()


def _store(settings: Settings, invocation: "Invocation") -> "Store | None":
    """The state store, for the commands that read it (`audit`); None for every other."""
    if invocation.command.name != "audit":
        return None
    from bot.state.store import open_store

    return open_store(settings.state_url)


def save_files(report: "Report") -> None:
    """Charts and long logs, which Slack gets as uploads, are written to a fresh directory."""
    files = [f for result in report.results for f in result.files]
    if not files:
        return
    import tempfile
    from pathlib import Path

    directory = Path(tempfile.mkdtemp(prefix="ops-"))
    for file in files:
        path = directory / Path(file.filename).name
        path.write_bytes(file.content)
        print(f"{file.title or 'file'}: {path}")
