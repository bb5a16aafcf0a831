"""Kubernetes resource quantities ("6Gi", "2000m", "4", "1e3") as exact Decimals: pure.

Limits are compared and validated before anything is sent (a memory limit below the container's
request, a policy's max_memory), and the API server writes quantities back in its canonical form
("2000m" is read back as "2"), so equality must be by value, not by spelling.

The grammar is the API's (k8s.io/apimachinery resource.Quantity):

    quantity  ::= [+|-] number suffix
    number    ::= digits | digits "." digits | digits "." | "." digits
    suffix    ::= binary (Ki Mi Gi Ti Pi Ei) | decimal (n u m "" k M G T P E) | ("e"|"E") [+|-] digits

Not `kubernetes.utils.parse_quantity`: importing `kubernetes.utils` imports the whole synchronous
client (seconds of import time) for twenty lines of parsing.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}

# The exponent alternative comes first: "1E3" is 1000, "1E" one exa.
_QUANTITY = re.compile(
    r"(?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+))"
    r"(?:[eE](?P<exponent>[+-]?\d+)|(?P<binary>[KMGTPE]i)|(?P<decimal>[numkMGTPE]?))"
)
# Beyond this, a quantity is no resource a container has (and Decimal's context would overflow).
_MAX_EXPONENT = 100


def parse_quantity(text: str) -> Decimal:
    """The value of a Kubernetes quantity: "6Gi" -> 6442450944, "2000m" -> 2, "1e3" -> 1000.

    Anything else is a ValueError whose message is one line naming the text and the forms accepted.
    """
    match = _QUANTITY.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"{text!r} is not a Kubernetes quantity (a number with an optional suffix: "
                         "Ki Mi Gi Ti Pi Ei, m k M G T P E, or an exponent like 1e3)")
    number = Decimal(match["number"])
    if match["binary"]:
        return number * BINARY[match["binary"]]
    exponent = int(match["exponent"]) if match["exponent"] is not None else DECIMAL[match["decimal"]]
    if abs(exponent) > _MAX_EXPONENT:
        raise ValueError(f"{text!r} is out of range for a Kubernetes quantity")
    try:
        return number.scaleb(exponent)
    except InvalidOperation:  # pragma: no cover - bounded by _MAX_EXPONENT
        raise ValueError(f"{text!r} is out of range for a Kubernetes quantity") from None


def same_quantity(a: str | None, b: str | None) -> bool:
    """Whether two quantities (None: not set) have the same value; unparseable ones compare as text."""
    if a is None or b is None:
        return a is b
    try:
        return parse_quantity(a) == parse_quantity(b)
    except ValueError:
        return a == b
