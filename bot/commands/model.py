"""The shapes of /ops commands: Arg, Command, Invocation, and the Context a command runs in.

A leaf module: the parser, the table and every bot/checks module build on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Literal

from bot.commands.report import Report

if TYPE_CHECKING:
    from bot.clients import Clients
    from bot.settings import Settings
    from bot.state.store import Store

@dataclass(frozen=True)
class Context:
    """What a command needs to run: settings and the backend clients, built once."""

    settings: "Settings"
    clients: "Clients"
    # Told the backend's name whenever a diagnostic fails against it (feeds /metrics).
    on_backend_error: Callable[[str], None] | None = None
    # The bot's state store (`audit` reads the trail from it); None where none is open.
    store: "Store | None" = None


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
    # "value": one word; "switch": an option that takes no value (True when given);
    # "rest": a positional that takes every remaining word, joined by spaces.
    # "word": an optional literal word such as `top`, shown as itself in the usage.
    kind: Literal["value", "switch", "rest", "word"] = "value"
    default: object = None

    @property
    def positional(self) -> bool:
        return not self.flags

    @property
    def usage(self) -> str:
        meta = f"<{self.metavar or self.name}>" + ("…" if self.kind == "rest" else "")
        if self.kind == "switch":
            text = self.flags[0]
        elif self.kind == "word":
            text = self.metavar or self.name
        else:
            text = meta if self.positional else f"{self.flags[0]} {meta}"
        return text if self.required else f"[{text}]"


# A command's arguments by name, each as its Arg's converter made it (str, int, bool, a tuple…):
# which type a name has is set by the command's Args, which the type system can't follow.
Args = dict[str, Any]
Runner = Callable[[Context, Args], Awaitable[Report]]


@dataclass(frozen=True)
class Command:
    name: str
    summary: str
    args: tuple[Arg, ...]
    run: Runner | None
    backend: str | None = None  # a key of bot.clients.BACKEND_SETTINGS: what must be configured
    mutating: bool = False
    example: str = ""
    # Raw commands (PromQL) split on white space only: quotes are part of the expression.
    raw: bool = False
    # Works in Slack only (it pages people, or needs a thread): the terminal refuses it.
    slack_only: bool = False

    @property
    def usage(self) -> str:
        return " ".join([self.name, *(a.usage for a in self.args)])


@dataclass(frozen=True)
class Invocation:
    command: Command
    args: Args
    text: str  # the words as typed, for echoing back


