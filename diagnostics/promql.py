"""PromQL text helpers: add label matchers to every selector of an expression, and format values.

`inject_matchers` is a small scanner, not a parser: it knows enough of PromQL's lexical rules
(strings, comments, durations, `[range]`, `{matchers}`, keywords, function calls, the label
lists of `by`/`without`/`on`/`ignoring`/`group_left`/`group_right`) to tell a metric name from
everything else. A metric name gets the matchers added to its `{...}` (or a new `{...}`),
and so does a bare `{...}` selector.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping

# (label, operator, value) as produced by bot.args.label_filters: ("service", "=", "checkout")
Matcher = tuple[str, str, str]

_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
# Numbers and durations: 0.95, 1e3, 0x1f, 5m, 1h30m.
_NUMBER = re.compile(r"0[xX][0-9a-fA-F]+|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?[a-zA-Z0-9_]*")
# Followed by a parenthesised list of label names, never metric names.
_LABEL_LIST_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_KEYWORDS = _LABEL_LIST_KEYWORDS | {"bool", "offset", "and", "or", "unless", "atan2", "inf", "nan"}
_AGGREGATIONS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
                 "bottomk", "topk", "quantile"}
_OPERATORS = {"=", "!=", "=~", "!~"}


def render_matchers(matchers: Iterable[Matcher]) -> str:
    """`service="checkout", env!="dev"`: values quoted and escaped as PromQL strings."""
    parts = []
    for name, op, value in matchers:
        if op not in _OPERATORS:
            raise ValueError(f"not a PromQL matcher operator: {op!r}")
        parts.append(f"{name}{op}{string_literal(value)}")
    return ", ".join(parts)


_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape_string(value: str, quote: str = '"') -> str:
    """`value` as the inside of a PromQL string literal quoted with `quote` (`"` or `'`): the quote
    and backslash escaped, anything unprintable as an escape (PromQL takes Go's), so no value can
    end the literal.
    """
    out = []
    for c in value:
        if c in ("\\", quote):
            out.append("\\" + c)
        elif c in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[c])
        elif not c.isprintable():
            out.append(f"\\u{ord(c):04x}" if ord(c) < 0x10000 else f"\\U{ord(c):08x}")
        else:
            out.append(c)
    return "".join(out)


def string_literal(value: str) -> str:
    """`value` as a double-quoted PromQL string literal."""
    return '"' + escape_string(value) + '"'


_RE2_META = frozenset("\\.+*?()|[]{}^$")


def regex_escape(value: str) -> str:
    """`value` as an RE2 pattern (Prometheus's regex syntax) matching exactly that text: its meta
    characters escaped, as Go's regexp.QuoteMeta does. Still to be put in a string literal."""
    return "".join("\\" + c if c in _RE2_META else c for c in value)


# Function arguments PromQL reads as a regex (0-based): label_replace(v, dst, replacement, src, regex).
_REGEX_ARGUMENTS = {"label_replace": 4}
_BARE_VALUE = re.compile(r"[^\s\"'`,})]+")


def regex_marks(expr: str, mark: str) -> list[bool]:
    """For each `mark` (a character that stands for a value) in `expr`, in order: whether PromQL
    reads it as part of a regex, i.e. it is in (or is) the value after `=~`/`!~`, or in
    label_replace's regex argument. A scanner like inject_matchers', not a parser."""
    out: list[bool] = []
    calls: list[tuple[str, int]] = []  # the open brackets: (function name or "", argument index)
    previous = ""
    i, n = 0, len(expr)
    while i < n:
        c = expr[i]
        if c == mark or c in "\"'`":
            end = i + 1 if c == mark else _string_end(expr, i)
            regex = previous in ("=~", "!~") or (
                bool(calls) and _REGEX_ARGUMENTS.get(calls[-1][0]) == calls[-1][1])
            out += [regex] * expr.count(mark, i, end)
            previous, i = "value", end
        elif c == "#":
            end = expr.find("\n", i)
            end = n if end < 0 else end
            out += [False] * expr.count(mark, i, end)
            i = end
        elif expr.startswith(("=~", "!~"), i):
            previous, i = expr[i:i + 2], i + 2
            if bare := _BARE_VALUE.match(expr, i):  # `instance=~node-{n}`: a label filter's word
                out += [True] * bare.group().count(mark)
                previous, i = "value", bare.end()
        else:
            previous, i = _token(expr, i, calls, previous)
    return out


def _token(expr: str, i: int, calls: list[tuple[str, int]], previous: str) -> tuple[str, int]:
    """regex_marks' other tokens: a name (a function call opens its arguments), a bracket, a comma
    (the next argument); the token and the index just past it."""
    if match := _IDENT.match(expr, i):
        following = _skip_space(expr, match.end())
        if expr[following:following + 1] != "(":
            return match.group(), match.end()
        calls.append((match.group().lower(), 0))
        return "(", following + 1
    c = expr[i]
    if c in "([{":
        calls.append(("", 0))
    elif c in ")]}" and calls:
        calls.pop()
    elif c == "," and calls:
        calls[-1] = (calls[-1][0], calls[-1][1] + 1)
    return previous if c.isspace() else c, i + 1


def inject_matchers(expr: str, matchers: Iterable[Matcher]) -> str:
    """`expr` with `matchers` added to every series selector in it.

    >>> inject_matchers('sum(rate(http_requests_total{status=~"5.."}[5m])) by (le)', [("job", "=", "api")])
    'sum(rate(http_requests_total{status=~"5..", job="api"}[5m])) by (le)'
    """
    added = render_matchers(matchers)
    if not added:
        return expr
    out: list[str] = []
    i, n = 0, len(expr)
    while i < n:
        c = expr[i]
        if c in "\"'`":
            end = _string_end(expr, i)
            out.append(expr[i:end])
            i = end
        elif c == "#":
            end = expr.find("\n", i)
            end = n if end < 0 else end
            out.append(expr[i:end])
            i = end
        elif c == "[":
            end = _closing(expr, i, "[", "]")
            out.append(expr[i:end])
            i = end
        elif c == "{":
            text, i = _inject_braces(expr, i, added)
            out.append(text)
        elif c.isdigit() or (c == "." and i + 1 < n and expr[i + 1].isdigit()):
            match = _NUMBER.match(expr, i)
            end = match.end() if match else i + 1
            out.append(expr[i:end])
            i = end
        elif match := _IDENT.match(expr, i):
            text, i = _name(expr, match, added)
            out.append(text)
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _name(expr: str, match: re.Match[str], added: str) -> tuple[str, int]:
    """The name `match` found and what belongs to it, with `added` put in if it is a metric name;
    and the index just past that."""
    word, i = match.group(), match.end()
    following = _skip_space(expr, i)
    lower = word.lower()
    after = expr[following:following + 1]
    if lower in _LABEL_LIST_KEYWORDS and after == "(":
        end = _closing(expr, following, "(", ")")
        return word + expr[i:end], end  # `by (le)`: label names, not metric names
    if lower in _KEYWORDS or lower in _AGGREGATIONS or after == "(":
        return word, i  # a keyword, an aggregation or a function call
    if after == "{":
        text, end = _inject_braces(expr, following, added)
        return word + expr[i:following] + text, end
    return word + "{" + added + "}", i


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i].isspace():
        i += 1
    return i


def _string_end(text: str, start: int) -> int:
    """Index just past the string literal that starts at `start` (raw strings: backquotes)."""
    quote, i = text[start], start + 1
    while i < len(text):
        if text[i] == "\\" and quote != "`":
            i += 2
            continue
        if text[i] == quote:
            return i + 1
        i += 1
    return len(text)  # unterminated: Prometheus will say so


def _closing(text: str, start: int, opening: str, closing: str) -> int:
    """Index just past the bracket matching the one at `start`, skipping string literals."""
    depth, i = 0, start
    while i < len(text):
        c = text[i]
        if c in "\"'`":
            i = _string_end(text, i)
            continue
        if c == opening:
            depth += 1
        elif c == closing:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return len(text)


def _inject_braces(text: str, start: int, added: str) -> tuple[str, int]:
    end = _closing(text, start, "{", "}")
    inner = text[start + 1:end - 1] if text[end - 1:end] == "}" else text[start + 1:end]
    existing = inner.strip().rstrip(",").strip()
    body = f"{existing}, {added}" if existing else added
    return "{" + body + "}", end


# --------------------------------------------------------------------------- values and labels


def parse_value(text: object) -> float:
    """A sample value as Prometheus sends it ("0.5", "NaN", "+Inf") -> float."""
    try:
        return float(str(text))
    except ValueError:
        return math.nan


def format_number(value: float) -> str:
    """Four significant digits, no exponent for everyday magnitudes: 0.05, 2, 1.235, 99.95, 1,234."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.1f}".removesuffix(".0")
    return f"{value:.4g}"


_BINARY = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def format_value(value: float, unit: str = "") -> str:
    """A value in its unit, the way a person reads it: 250 ms, 1.5 GiB, 2.5 %, 12 req/s."""
    if math.isnan(value) or math.isinf(value):
        return format_number(value)
    if unit == "s":
        if abs(value) < 1:
            return f"{format_number(value * 1000)} ms"
        return f"{format_number(value)} s"
    if unit in ("bytes", "B/s"):
        suffix = "/s" if unit == "B/s" else ""
        scaled, index = value, 0
        while abs(scaled) >= 1024 and index < len(_BINARY) - 1:
            scaled, index = scaled / 1024, index + 1
        return f"{format_number(scaled)} {_BINARY[index]}{suffix}"
    return f"{format_number(value)} {unit}".rstrip()


def format_labels(labels: Mapping[str, str], *, braces: bool = True) -> str:
    """`{handler="/api", method="GET"}` (the metric name first, as Prometheus shows it)."""
    name = labels.get("__name__", "")
    pairs = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
    if not braces:
        return " ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k != "__name__") or name
    return f"{name}{{{pairs}}}" if pairs or not name else name
