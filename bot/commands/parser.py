"""The kubectl-style parser the command table drives.

Each subcommand is declared once (bot/checks, put together in bot/commands/table.py). The
Slack handler, the terminal CLI and the help text all read the same table, so they cannot
disagree about what exists or how it is called. Arguments follow kubectl's habits: `-n prod`,
`--namespace prod`, `--namespace=prod`.
"""

from __future__ import annotations

import difflib
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field

from bot.commands.model import Arg, Args, Command, Invocation
from bot.errors import UsageError


@dataclass
class CommandTable:
    commands: dict[str, Command] = field(default_factory=dict)

    def add(self, command: Command) -> None:
        if command.name in self.commands:
            raise ValueError(f"duplicate command {command.name}")
        self.commands[command.name] = command

    def __iter__(self) -> Iterator[Command]:
        return iter(self.commands.values())

    def parse(self, text: str, default_namespace: str) -> Invocation:
        command, raw, words = self.read(text)
        return Invocation(command=command, args=convert_args(command, raw, default_namespace), text=" ".join(words))

    def read(self, text: str) -> tuple[Command, dict[str, str], list[str]]:
        """The command `text` names, its arguments' text by name (not converted yet), and its words.

        Which words are options and which argument each word is are settled here, from the text
        alone: playbook steps read their templates this way before any value is filled in."""
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
        return command, _read_words(command, rest), words


def normalise_quotes(text: str) -> str:
    # Slack's clients turn straight quotes into curly ones as people type.
    return text.replace("\u201c", '"').replace("\u201d", '"').replace("\u2018", "'").replace("\u2019", "'")


def split_words(text: str) -> list[str]:
    try:
        return shlex.split(normalise_quotes(text))
    except ValueError as e:  # e.g. an unclosed quote
        raise UsageError(f"Could not read the arguments: {e}.") from None


# A negative number is a value (`scale checkout -1` is a bad replica count, not an unknown option).
_NUMBER = re.compile(r"^-\d+(\.\d+)?$")


def _read_words(command: Command, words: list[str]) -> dict[str, str]:
    """The words as {argument name: its text}: options by their flags, the rest by position."""
    usage = command.usage
    options = {flag: arg for arg in command.args for flag in arg.flags}
    positionals = [a for a in command.args if a.positional]
    rest_arg = positionals[-1] if positionals and positionals[-1].kind == "rest" else None
    raw: dict[str, str] = {}
    rest_words: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        flag, inline, arg = _option(options, word)
        if arg is not None:
            if arg.name in raw:
                raise UsageError(f"`{flag}` given twice.", usage)
            raw[arg.name], i = _option_value(arg, flag, inline, words, i, usage)
        elif word.startswith("-") and len(word) > 1 and not (rest_arg and command.raw) and not _NUMBER.match(word):
            known = ", ".join(options) or "none"
            raise UsageError(f"`{command.name}` has no option `{flag}` (options: {known}).", usage)
        # A positional word; in a raw command anything that isn't a known option is part
        # of the expression (PromQL may start with '-').
        elif (free := next((a for a in positionals if a.name not in raw and a is not rest_arg), None)) is not None:
            raw[free.name] = word
        elif rest_arg is not None:
            rest_words.append(word)
        else:
            raise UsageError(f"Unexpected `{word}`: `{command.name}` takes no more arguments.", usage)
        i += 1
    if rest_arg is not None and rest_words:
        raw[rest_arg.name] = " ".join(rest_words)
    return raw


def _option(options: dict[str, Arg], word: str) -> tuple[str, str, Arg | None]:
    """`word` read as an option: its flag, its inline value (`--namespace=prod`, kubectl's `-nprod`)
    and the option it names (None if it names none, or the word is no option)."""
    flag, _, inline = word.partition("=")
    if flag not in options and flag.startswith("-") and not flag.startswith("--") and len(flag) > 2:
        flag, inline = flag[:2], flag[2:]  # kubectl's -nprod
    arg = options.get(flag) if word.startswith("-") and len(word) > 1 else None
    return flag, inline, arg


def _option_value(arg: Arg, flag: str, inline: str, words: list[str], i: int, usage: str) -> tuple[str, int]:
    """The text of option `arg` found at words[i], and the index of the last word it took."""
    if arg.kind == "switch":
        if inline:
            raise UsageError(f"`{flag}` takes no value.", usage)
        return "yes", i
    if inline:
        return inline, i
    if i + 1 < len(words):
        return words[i + 1], i + 1
    raise UsageError(f"`{flag}` needs a value.", usage)


def convert_args(command: Command, raw: dict[str, str], default_namespace: str) -> Args:
    """Each argument's value: converted from its text, else its default; a missing required one is an error."""
    usage = command.usage
    values: Args = {}
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
