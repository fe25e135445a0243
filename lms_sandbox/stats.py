"""Request counts by organisation, route and status, for tests and benchmarks to assert on.

A test that wants to know "how many POSTs did the bridge send, and how
many met a 429" reads `GET /_sandbox/stats` instead of instrumenting the
client. A write whose connection was dropped on purpose counts under the
status `"dropped"`: the caller never saw its real status.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

__all__ = ["DROPPED", "Stats"]

DROPPED = "dropped"


class Stats:
    """Counts of LMS requests keyed by (org, "METHOD /path/template", status)."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, str, str]] = Counter()

    def record(self, org: str, route: str, status: int | str) -> None:
        self._counts[(org, route, str(status))] += 1

    def clear(self) -> None:
        self._counts.clear()

    def snapshot(self) -> dict[str, Any]:
        """Totals plus a per-organisation breakdown.

        Shape: `{"total": N, "by_status": {"201": n}, "by_route": {"POST
        /api/v1/learners": n}, "orgs": {"acme": {"total": n, "by_status":
        {...}, "by_route": {...}, "routes": {"POST /api/v1/learners":
        {"201": n, "429": n}}}}}`.
        """
        by_status: Counter[str] = Counter()
        by_route: Counter[str] = Counter()
        orgs: dict[str, dict[str, Any]] = {}
        for (org, route, status), count in sorted(self._counts.items()):
            by_status[status] += count
            by_route[route] += count
            entry = orgs.setdefault(
                org, {"total": 0, "by_status": Counter(), "by_route": Counter(), "routes": {}}
            )
            entry["total"] += count
            entry["by_status"][status] += count
            entry["by_route"][route] += count
            entry["routes"].setdefault(route, {})[status] = count
        return {
            "total": sum(by_status.values()),
            "by_status": dict(by_status),
            "by_route": dict(by_route),
            "orgs": {
                org: {
                    **entry,
                    "by_status": dict(entry["by_status"]),
                    "by_route": dict(entry["by_route"]),
                }
                for org, entry in orgs.items()
            },
        }
