"""Durations as people read them. One module, so each format has one name.

    compact_duration(5400) == "90m"     Prometheus's own syntax, the largest unit that divides evenly
    spoken_duration(5400) == "1 h 30 min"   how long something has lasted, for a sentence
"""

from __future__ import annotations


def compact_duration(seconds: int) -> str:
    """3600 -> "1h", 5400 -> "90m", 90 -> "90s": Prometheus' duration syntax, largest exact unit."""
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def spoken_duration(seconds: float) -> str:
    """How long something lasted: "45 s", "23 min", "2 h 5 min", "3 d 4 h"."""
    minutes = max(int(seconds // 60), 0)
    if minutes < 1:
        return f"{max(int(seconds), 0)} s"
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{hours // 24} d {hours % 24} h"
