"""THE table of /ops subcommands, and the parser it drives.

Each subcommand is declared once, here. The Slack handler, the terminal CLI and the help
text all read this table, so they cannot disagree about what exists or how it is called.
Arguments follow kubectl's habits: `-n prod`, `--namespace prod`, `--namespace=prod`.
"""

from __future__ import annotations

import difflib
import re
import shlex
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Awaitable, Callable, Literal

from bot.report import Report

if TYPE_CHECKING:
    from bot.clients import Clients
    from bot.config import Settings

Backend = Literal["kubernetes", "prometheus", "alertmanager", "elasticsearch", "aws", "database"]



class UsageError(Exception):
    """Bad input from a person: the message says what is wrong and what to type instead."""

    def __init__(self, message: str, usage: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.usage = usage


@dataclass(frozen=True)
class Context:
    """What a command needs to run: settings and the backend clients, built once."""

    settings: "Settings"
    clients: "Clients"
    # Told the backend's name whenever a diagnostic fails against it (feeds /metrics).
    on_backend_error: Callable[[str], None] | None = None


# A Kubernetes object name (RFC 1123 subdomain); namespaces are the stricter label form.
_K8S_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_K8S_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def k8s_name(value: str, what: str) -> str:
    if not _K8S_NAME.match(value):
        raise UsageError(
            f"`{value}` is not a valid {what} name: Kubernetes names are lowercase letters, digits, '-' and '.'"
        )
    return value


def k8s_namespace(value: str, what: str = "namespace") -> str:
    if not _K8S_LABEL.match(value):
        raise UsageError(f"`{value}` is not a valid namespace: lowercase letters, digits and '-', at most 63")
    return value


@dataclass(frozen=True)
class Arg:
    name: str
    help: str
    # Empty flags: a positional argument. Otherwise the option's spellings, short first.
    flags: tuple[str, ...] = ()
    required: bool = True
    # Turns the raw word into the value, raising UsageError with a readable message.
    convert: Callable[[str, str], object] = lambda value, what: value
    metavar: str = ""

    @property
    def positional(self) -> bool:
        return not self.flags

    @property
    def usage(self) -> str:
        meta = f"<{self.metavar or self.name}>"
        text = meta if self.positional else f"{self.flags[0]} {meta}"
        return text if self.required else f"[{text}]"


Runner = Callable[[Context, dict[str, object]], Awaitable[Report]]


@dataclass(frozen=True)
class Command:
    name: str
    summary: str
    args: tuple[Arg, ...]
    run: Runner | None
    backend: Backend | None = None
    mutating: bool = False
    example: str = ""

    @property
    def usage(self) -> str:
        return " ".join([self.name, *(a.usage for a in self.args)])


@dataclass(frozen=True)
class Invocation:
    command: Command
    args: dict[str, object]
    text: str  # the words as typed, for echoing back


@dataclass
class CommandTable:
    commands: dict[str, Command] = field(default_factory=dict)

    def add(self, command: Command) -> None:
        if command.name in self.commands:
            raise ValueError(f"duplicate command {command.name}")
        self.commands[command.name] = command

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.commands.values())

    def parse(self, text: str, default_namespace: str) -> Invocation:
        words = split_words(text)
        if not words:
            raise UsageError("Which check? Try `help` for the list.")
        name, rest = words[0].lower(), words[1:]
        command = self.commands.get(name)
        if command is None:
            hint = difflib.get_close_matches(name, list(self.commands), n=1, cutoff=0.5)
            suggestion = f" Did you mean `{hint[0]}`?" if hint else ""
            raise UsageError(f"Unknown command `{words[0]}`.{suggestion} Try `help` for the list.")
        args = _parse_args(command, rest, default_namespace)
        return Invocation(command=command, args=args, text=" ".join(words))


def split_words(text: str) -> list[str]:
    # Slack's clients turn straight quotes into curly ones as people type.
    text = text.replace("\u201c", '"').replace("\u201d", '"').replace("\u2018", "'").replace("\u2019", "'")
    try:
        return shlex.split(text)
    except ValueError as e:  # e.g. an unclosed quote
        raise UsageError(f"Could not read the arguments: {e}.") from None


def _parse_args(command: Command, words: list[str], default_namespace: str) -> dict[str, object]:
    usage = command.usage
    options = {flag: arg for arg in command.args for flag in arg.flags}
    positionals = [a for a in command.args if a.positional]
    values: dict[str, object] = {}
    raw: dict[str, str] = {}
    i = 0
    while i < len(words):
        word = words[i]
        if word.startswith("-") and len(word) > 1:
            flag, _, inline = word.partition("=")
            if flag not in options and flag.startswith("-") and not flag.startswith("--") and len(flag) > 2:
                flag, inline = flag[:2], flag[2:]  # kubectl's -nprod
            arg = options.get(flag)
            if arg is None:
                known = ", ".join(f for f in options) or "none"
                raise UsageError(f"`{command.name}` has no option `{flag}` (options: {known}).", usage)
            if inline:
                value = inline
            elif i + 1 < len(words):
                i += 1
                value = words[i]
            else:
                raise UsageError(f"`{flag}` needs a value.", usage)
            if arg.name in raw:
                raise UsageError(f"`{flag}` given twice.", usage)
            raw[arg.name] = value
        else:
            if not positionals:
                raise UsageError(f"Unexpected `{word}`: `{command.name}` takes no more arguments.", usage)
            raw[positionals.pop(0).name] = word
        i += 1
    for arg in command.args:
        if arg.name in raw:
            try:
                values[arg.name] = arg.convert(raw[arg.name], arg.name)
            except UsageError as e:
                raise UsageError(e.message, usage) from None
        elif arg.name == "namespace":
            values[arg.name] = default_namespace
        elif arg.required:
            raise UsageError(f"`{command.name}` needs {arg.usage}.", usage)
        else:
            values[arg.name] = None
    return values


NAMESPACE = Arg("namespace", "Kubernetes namespace (default from config)", flags=("-n", "--namespace"),
                required=False, convert=k8s_namespace)


def build_table() -> CommandTable:
    """Every /ops subcommand. Imported lazily so the table stays the single place."""
    from bot import runners

    table = CommandTable()
    table.add(Command("help", "List the commands and what each needs", (), run=None))
    table.add(Command(
        "pods",
        "Deployment replicas and each pod's phase, readiness, restarts and why it is unhealthy",
        (Arg("deployment", "deployment name", convert=k8s_name), NAMESPACE),
        run=runners.pods,
        backend="kubernetes",
        example="pods checkout -n prod",
    ))
    return table
