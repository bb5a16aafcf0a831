"""The kubectl-style parser the command table drives.

Each subcommand is declared once (bot/checks, put together in bot/commands/table.py). The
Slack handler, the terminal CLI and the help text all read the same table, so they cannot
disagree about what exists or how it is called. Arguments follow kubectl's habits: `-n prod`,
`--namespace prod`, `--namespace=prod`.
"""

from __future__ import annotations

import difflib
import shlex
from dataclasses import dataclass, field

from bot.commands.model import Command, Invocation
from bot.errors import UsageError


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
        if command is not None and command.raw:
            words = normalise_quotes(text).split()
            rest = words[1:]
        if command is None:
            hint = difflib.get_close_matches(name, list(self.commands), n=1, cutoff=0.5)
            suggestion = f" Did you mean `{hint[0]}`?" if hint else ""
            raise UsageError(f"Unknown command `{words[0]}`.{suggestion} Try `help` for the list.")
        args = _parse_args(command, rest, default_namespace)
        return Invocation(command=command, args=args, text=" ".join(words))


def normalise_quotes(text: str) -> str:
    # Slack's clients turn straight quotes into curly ones as people type.
    return text.replace("\u201c", '"').replace("\u201d", '"').replace("\u2018", "'").replace("\u2019", "'")


def split_words(text: str) -> list[str]:
    try:
        return shlex.split(normalise_quotes(text))
    except ValueError as e:  # e.g. an unclosed quote
        raise UsageError(f"Could not read the arguments: {e}.") from None


def _parse_args(command: Command, words: list[str], default_namespace: str) -> dict[str, object]:
    usage = command.usage
    options = {flag: arg for arg in command.args for flag in arg.flags}
    positionals = [a for a in command.args if a.positional]
    rest_arg = positionals[-1] if positionals and positionals[-1].kind == "rest" else None
    raw: dict[str, str] = {}
    rest_words: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        flag, _, inline = word.partition("=")
        if flag not in options and flag.startswith("-") and not flag.startswith("--") and len(flag) > 2:
            flag, inline = flag[:2], flag[2:]  # kubectl's -nprod
        arg = options.get(flag) if word.startswith("-") and len(word) > 1 else None
        if arg is None and word.startswith("-") and len(word) > 1 and not (rest_arg and command.raw):
            known = ", ".join(options) or "none"
            raise UsageError(f"`{command.name}` has no option `{flag}` (options: {known}).", usage)
        if arg is None:
            # A positional word; in a raw command anything that isn't a known option is part
            # of the expression (PromQL may start with '-').
            if len(raw_positionals := [a for a in positionals if a.name not in raw and a is not rest_arg]):
                raw[raw_positionals[0].name] = word
            elif rest_arg is not None:
                rest_words.append(word)
            else:
                raise UsageError(f"Unexpected `{word}`: `{command.name}` takes no more arguments.", usage)
        elif arg.name in raw:
            raise UsageError(f"`{flag}` given twice.", usage)
        elif arg.kind == "switch":
            if inline:
                raise UsageError(f"`{flag}` takes no value.", usage)
            raw[arg.name] = "yes"
        elif inline:
            raw[arg.name] = inline
        elif i + 1 < len(words):
            i += 1
            raw[arg.name] = words[i]
        else:
            raise UsageError(f"`{flag}` needs a value.", usage)
        i += 1
    if rest_arg is not None and rest_words:
        raw[rest_arg.name] = " ".join(rest_words)

    values: dict[str, object] = {}
    for arg in command.args:
        if arg.name in raw:
            if arg.kind == "switch":
                values[arg.name] = True
                continue
            try:
                values[arg.name] = arg.convert(raw[arg.name], arg.name)
            except UsageError as e:
                raise UsageError(e.message, usage) from None
        elif arg.name == "namespace":
            values[arg.name] = default_namespace
        elif arg.required:
            raise UsageError(f"`{command.name}` needs {arg.usage}.", usage)
        else:
            values[arg.name] = False if arg.kind == "switch" else arg.default
    return values


