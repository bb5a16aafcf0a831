"""Playbook steps as templates the command table reads once; alert labels fill them in as values.

A step (`logs {deployment} -n {namespace} --tail 50`) is read before any value is known, so
which words are options and which argument each placeholder fills are fixed by the playbook,
never by a label. A value then fills its slot and nothing else:
- a word (a positional, an option's value) goes through the argument's converter: `--previous`
  as a deployment name is that step's error, never a flag, and a value is never split;
- a label filter's value (`metric node-cpu instance={instance}`) is that matcher's value, quoted
  and escaped as a PromQL string when the query is built;
- inside a PromQL expression (`promql`, `graph`) a value is a PromQL string literal, escaped (or,
  between the template's own quotes, the inside of one), so it can never end the literal;
- where PromQL reads the value as a regex (a `=~`/`!~` matcher, a label filter's or a string's;
  label_replace's regex argument) it is regex-escaped first (RE2, as Prometheus reads it), so
  `.*` or `a|b` matches that text only. A `Pattern` (a fallback such as `.+`, a
  `playbook_defaults:` entry: configuration, not an alert's) goes in as the regex it is.
  `{expr}`, the alert rule's own expression, is PromQL by design: it may only be the whole
  expression, and is never read for options.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, replace
from typing import Any, Literal, Mapping

from bot.checks.prometheus import GraphQuery
from bot.commands.args import label_filters
from bot.commands.model import Arg, Command, Invocation
from bot.commands.parser import CommandTable, convert_args
from bot.errors import UsageError
from diagnostics.promql import Matcher, escape_string, regex_escape, regex_marks, string_literal

EXPR = "expr"  # the alert rule's expression: PromQL, not a label's value

# A template as string.Formatter reads it: (literal text, placeholder name or None), `{{` undone.
Pieces = tuple[tuple[str, "str | None"], ...]
SlotKind = Literal["word", "filters", "preset", "promql"]
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PLAIN = re.compile(r"^[^\s\"'`\\{}]+$")
_REGEX = ("=~", "!~")
_MARK = "\x00"  # a placeholder while the template is scanned for regexes


class Pattern(str):
    """A value that is a regex as written (a fallback such as `.+`, a `playbook_defaults:` entry):
    in a regex it goes in as it is; anywhere else, as its text."""


def pieces(template: str) -> Pieces:
    """`pods {deployment}` -> (("pods ", "deployment"),); a placeholder must be a plain name."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as e:
        raise UsageError(f"a broken placeholder ({e})") from None
    out = []
    for literal, name, spec, conversion in parsed:
        if name is not None and (not _NAME.match(name) or spec or conversion):
            raise UsageError(f"`{{{name}{'!' + conversion if conversion else ''}{':' + spec if spec else ''}}}` "
                             "is not a placeholder: use a label's name, e.g. {namespace}")
        out.append((literal, name))
    return tuple(out)


def names(template: str) -> list[str]:
    return [name for _, name in pieces(template) if name is not None]


@dataclass(frozen=True)
class Step:
    """One step for one alert: what it reads as, and its invocation or why it cannot run."""

    text: str
    invocation: Invocation | None = None
    problem: str = ""  # why it cannot run (when invocation is None)


@dataclass(frozen=True)
class Slot:
    """One argument of a step as written: its template text, and how a value fills it."""

    arg: Arg
    kind: SlotKind
    template: str
    parsed: Any = None  # filters, preset, promql: the template converted (values still templates)


@dataclass(frozen=True)
class StepTemplate:
    text: str
    command: Command
    slots: tuple[Slot, ...]
    placeholders: tuple[str, ...]

    @property
    def promql(self) -> bool:
        return any(slot.kind == "promql" for slot in self.slots)

    def fill(self, values: Mapping[str, str], default_namespace: str) -> Step:
        """The step for these values, or the step's problem (a label it lacks, a value that does not fit)."""
        missing = next((name for name in self.placeholders if name not in values), None)
        if missing is not None:
            return Step(f"{self.text} (the alert has no label {missing!r})",
                        problem=f"the alert has no label {missing!r}")
        text = self.text
        try:
            text = fill_text(self.text, values, bare_words=not self.promql, display=True)
            raw, typed = self._filled(values)
            args = {**convert_args(self.command, raw, default_namespace), **typed}
        except UsageError as e:
            return Step(text, problem=e.message)
        return Step(text, Invocation(command=self.command, args=args, text=text))

    def _filled(self, values: Mapping[str, str]) -> tuple[dict[str, str], dict[str, Any]]:
        """The arguments' text (for the parser's converters) and the values filled in after conversion."""
        raw: dict[str, str] = {}
        typed: dict[str, Any] = {}
        for slot in self.slots:
            # Converted from the template's own text: a label's value never decides the shape.
            raw[slot.arg.name] = slot.template
            if slot.kind == "word":
                raw[slot.arg.name] = _word(slot, values)
            elif slot.kind == "filters":
                typed[slot.arg.name] = _matchers(slot.parsed, values)
            elif slot.kind == "preset":
                typed[slot.arg.name] = replace(slot.parsed, matchers=tuple(_matchers(slot.parsed.matchers, values)))
            else:
                expr = fill_text(slot.template, values, bare_words=False)
                typed[slot.arg.name] = replace(slot.parsed, expr=expr) if isinstance(slot.parsed, GraphQuery) else expr
        return raw, typed


def _word(slot: Slot, values: Mapping[str, str]) -> str:
    text = fill_text(slot.template, values, bare_words=True, quoted=False)
    if text != slot.template:
        try:
            slot.arg.convert(text, slot.arg.name)
        except UsageError as e:
            raise UsageError(_label_problem(slot.template, values, e.message)) from None
    return text


def _label_problem(template: str, values: Mapping[str, str], message: str) -> str:
    used = names(template)
    if len(used) == 1 and template == "{" + used[0] + "}":
        value = values[used[0]]
        if message.startswith(f"`{value}` "):  # "`--previous` is not a valid deployment name: …"
            return f"the alert's label {used[0]}={message}"
        return f"the alert's label {used[0]}=`{value}` does not fit: {message}"
    shown = ", ".join(f"{name}=`{values[name]}`" for name in used)
    return f"the alert's labels {shown} do not fit: {message}"


def _matchers(matchers: Any, values: Mapping[str, str]) -> list[Matcher]:
    return [(name, op, fill_text(value, values, bare_words=True, quoted=False, regex=op in _REGEX))
            for name, op, value in matchers]


# --------------------------------------------------------------------------- reading a template


def parse_template(table: CommandTable, text: str) -> StepTemplate:
    """The step as the command table reads it, before any value: raises UsageError."""
    used = names(text)
    command, raw, _ = table.read(text)
    by_name = {arg.name: arg for arg in command.args}
    slots = tuple(_slot(command, by_name[name], template) for name, template in raw.items())
    if EXPR in used and not any(s.kind == "promql" and s.template == "{" + EXPR + "}" for s in slots):
        raise UsageError("{expr} (the alert rule's expression) must be the whole expression of "
                         "`graph` or `promql`, e.g. `graph {expr}`")
    return StepTemplate(text=text, command=command, slots=slots, placeholders=tuple(dict.fromkeys(used)))


def _slot(command: Command, arg: Arg, template: str) -> Slot:
    if command.raw and arg.kind == "rest":
        parsed = arg.convert(template, arg.name)  # a preset and filters, or PromQL
        if isinstance(parsed, GraphQuery) and parsed.preset is not None:
            return Slot(arg, "preset", template, parsed)
        return Slot(arg, "promql", template, parsed)
    if arg.convert is label_filters:
        return Slot(arg, "filters", template, arg.convert(template, arg.name))
    return Slot(arg, "word", template)


# --------------------------------------------------------------------------- filling text


def fill_text(template: str, values: Mapping[str, str], *, bare_words: bool, quoted: bool = True,
              display: bool = False, regex: bool = False) -> str:
    """`template` with its placeholders filled in.

    quoted: a value goes in as a PromQL string literal, escaped (between the template's own
    quotes: escaped as their inside); with bare_words, a value that is one plain word goes in as
    it is. Not quoted: the values as they are (one argument's text, after the words are read).
    A value PromQL reads as a regex (quoted: found in the template; `regex`: every value) is
    regex-escaped first, unless it is a Pattern. `{expr}` goes in as it is (display: on one line).
    """
    parts = pieces(template)
    in_regex = _regex_placeholders(parts) if quoted and not regex else []
    out: list[str] = []
    quote = ""
    for literal, name in parts:
        out.append(literal)
        quote, dangling = _quote_after(literal, quote)
        if name is None:
            continue
        value = values[name]
        read_as_regex = in_regex.pop(0) if in_regex else regex
        escaped = read_as_regex and name != EXPR and not isinstance(value, Pattern)
        if escaped:
            value = regex_escape(value)  # `a\.b`: still a plain word
        if not quoted or (name == EXPR and not quote):
            out.append(" ".join(value.split()) if display and name == EXPR else value)
        elif dangling:
            raise UsageError(f"{{{name}}} right after a backslash in a PromQL string")
        elif quote == "`":  # a raw string has no escapes
            if "`" in value:
                raise UsageError(f"the alert's label {name}=`{values[name]}` cannot go in a `…` string")
            out.append(value)
        elif quote:
            out.append(escape_string(value, quote))
        else:
            word = value.replace("\\", "") if escaped else value
            out.append(value if bare_words and _PLAIN.match(word) else string_literal(value))
    return "".join(out)


def _regex_placeholders(parts: Pieces) -> list[bool]:
    """For each placeholder of the template, in order: whether PromQL reads its value as a regex."""
    if any(_MARK in literal for literal, _ in parts):
        raise UsageError("a NUL character in a step")
    return regex_marks("".join(literal + (_MARK if name is not None else "") for literal, name in parts), _MARK)


def _quote_after(literal: str, quote: str) -> tuple[str, bool]:
    """The PromQL string `literal` leaves open (`quote`: the one open before it), and whether it
    ends on a backslash inside one."""
    i = 0
    while i < len(literal):
        c = literal[i]
        if quote and c == "\\" and quote != "`":
            if i + 1 == len(literal):
                return quote, True
            i += 1
        elif quote and c == quote:
            quote = ""
        elif not quote and c in "\"'`":
            quote = c
        i += 1
    return quote, False
