"""Jinja filters of the admin page: times and durations as people read them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["FILTERS", "duration", "when"]


def when(value: Any) -> str:
    """`2024-05-01T12:03:04.123Z` -> `2024-05-01 12:03:04 UTC`; empty stays empty."""
    text = str(value or "")
    if len(text) < 19 or text[10] != "T":
        return text
    return f"{text[:10]} {text[11:19]} UTC"


def duration(value: Any) -> str:
    """Seconds as `45 s`, `3 min 20 s`, `2 h 5 min`, `3 d 4 h`."""
    try:
        seconds = int(float(value or 0))
    except (TypeError, ValueError):
        return str(value)
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, mins = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {mins} min" if mins else f"{hours} h"
    days, hrs = divmod(hours, 24)
    return f"{days} d {hrs} h" if hrs else f"{days} d"


FILTERS: dict[str, Callable[[Any], str]] = {"when": when, "duration": duration}
