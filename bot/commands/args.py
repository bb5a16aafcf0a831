"""Converters for /ops arguments: each turns a typed word into a value or raises a
UsageError that says what is wrong and what would be right."""

from __future__ import annotations

import re
from typing import Callable

from bot.errors import UsageError

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


_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def duration(value: str, what: str) -> int:
    """`30s`, `10m`, `1h`, `2d`, `1w` -> seconds (at most 30 days)."""
    match = _DURATION.match(value.strip().lower())
    if not match:
        raise UsageError(f"`{value}` is not a duration for {what}: use e.g. 30s, 10m, 1h, 2d")
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if not 0 < seconds <= 30 * 86400:
        raise UsageError(f"{what} `{value}` must be more than 0 and at most 30d")
    return seconds


def integer(low: int, high: int) -> Callable[[str, str], int]:
    def convert(value: str, what: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise UsageError(f"{what} `{value}` is not a whole number") from None
        if not low <= number <= high:
            raise UsageError(f"{what} must be between {low} and {high}, not {number}")
        return number

    return convert


def choice(*options: str) -> Callable[[str, str], str]:
    def convert(value: str, what: str) -> str:
        if value.lower() not in options:
            raise UsageError(f"{what} must be one of {', '.join(options)}, not `{value}`")
        return value.lower()

    return convert


_LABEL = re.compile(r"^([a-zA-Z_][a-zA-Z0-9_]*)(=~|!=|!~|=)(.+)$")


def label_filters(value: str, what: str) -> list[tuple[str, str, str]]:
    """`service=checkout env!=dev` -> [(name, op, value), ...], as PromQL label matchers."""
    matchers = []
    for word in value.split():
        match = _LABEL.match(word)
        if not match:
            raise UsageError(f"`{word}` is not a label filter: use label=value (or !=, =~, !~)")
        name, op, text = match.groups()
        matchers.append((name, op, text.strip('"')))
    return matchers
