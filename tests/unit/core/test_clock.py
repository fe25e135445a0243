"""The write timestamp: fixed-width UTC text that sorts as time does."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

import core.clock as clock_module
from core.clock import iso_after, iso_of_ms, now_iso

STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def _parse(stamp: str) -> datetime:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def test_now_is_fixed_width_utc_and_now() -> None:
    before = datetime.now(UTC)
    stamp = now_iso()
    after = datetime.now(UTC)
    assert STAMP.fullmatch(stamp)
    assert before.replace(microsecond=before.microsecond // 1000 * 1000) <= _parse(stamp) <= after


def test_the_second_is_formatted_again_when_it_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cached `YYYY-MM-DDTHH:MM:SS.` part follows the clock, across days too."""
    clock = iter([1_700_000_000_999_000_000, 1_700_000_001_000_000_000, 1_700_006_400_005_000_000])
    monkeypatch.setattr(clock_module.time, "time_ns", lambda: next(clock))
    assert now_iso() == "2023-11-14T22:13:20.999Z"
    assert now_iso() == "2023-11-14T22:13:21.000Z"
    assert now_iso() == "2023-11-15T00:00:00.005Z"


def test_a_later_moment_sorts_after() -> None:
    assert iso_after(0) <= now_iso() < iso_after(2)


def test_a_given_moment_is_written_as_now_would_write_it() -> None:
    """`iso_of_ms` (token expiry on a store's clock) writes what `now_iso` would."""
    assert iso_of_ms(1_700_000_000_999) == "2023-11-14T22:13:20.999Z"
    assert iso_of_ms(1_700_006_400_005) == "2023-11-15T00:00:00.005Z"
    assert iso_of_ms(0) == "1970-01-01T00:00:00.000Z"
