"""Wall-clock timestamps as the bridge writes them: UTC, millisecond
precision, fixed width (`2026-11-29T16:47:28.161Z`), so they sort as text.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

__all__ = ["iso_after", "iso_of_ms", "now_iso"]

#: (whole second, its `YYYY-MM-DDTHH:MM:SS.` text): every write stamps the
#: time, and strftime costs more than the rest of the stamp.
_last_second: tuple[int, str] = (-1, "")


def now_iso() -> str:
    """The UTC time now as `2026-11-29T16:47:28.161Z` (fixed width)."""
    global _last_second
    now_ms = time.time_ns() // 1_000_000
    second, millis = divmod(now_ms, 1000)
    if second != _last_second[0]:
        moment = datetime.fromtimestamp(second, UTC)
        _last_second = (second, moment.strftime("%Y-%m-%dT%H:%M:%S."))
    return f"{_last_second[1]}{millis:03d}Z"


def iso_after(seconds: float) -> str:
    """UTC time `seconds` from now, in `now_iso`'s format."""
    moment = datetime.now(UTC) + timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def iso_of_ms(ms: int) -> str:
    """An epoch time in milliseconds, in `now_iso`'s format."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
