"""The workers' metrics hash in Redis: its key, its field layout and the
series it holds, with their Prometheus names.

Workers add into it (worker/metrics.py); the API renders it at `/metrics`
(api/metrics.py); both take the names from here, so they cannot drift.
Label values are tenant slugs, endpoint templates from `lms_client`
("PATCH /learners/{id}") and HTTP statuses: never ids, emails or keys.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Final, NamedTuple

__all__ = [
    "FLUSH_INTERVAL_S",
    "LMS_CALLS",
    "LMS_DURATION",
    "LMS_DURATION_BUCKETS",
    "LMS_RATE_LIMITED",
    "LMS_RETRIES",
    "METRICS_KEY",
    "PREFIX",
    "SERIES",
    "SYNC_LAG",
    "SYNC_LAG_BUCKETS",
    "Key",
    "Series",
    "decode_field",
    "encode_field",
]

#: Every series the bridge exposes starts with this.
PREFIX: Final = "scim_bridge_"

#: The one hash every worker adds into (a hash tag of its own, so the key can
#: sit on any Redis Cluster node).
METRICS_KEY: Final = "{scim-bridge:metrics}:worker"
FLUSH_INTERVAL_S: Final = 5.0

#: From a blink to an hour: a change waits behind pacing, deferrals, outages.
SYNC_LAG_BUCKETS: Final = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
#: One HTTP attempt; the client's read timeout is 30 s.
LMS_DURATION_BUCKETS: Final = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Series(NamedTuple):
    """One metric as stored in the hash and rendered by the API."""

    name: str  # without the `scim_bridge_` prefix
    kind: str  # "counter" | "histogram"
    labels: tuple[str, ...]
    help: str
    buckets: tuple[float, ...] = ()


SYNC_LAG = Series(
    "sync_lag_seconds",
    "histogram",
    ("tenant",),
    "Seconds from a user becoming pending (SCIM 2xx) to its change applied in the LMS.",
    SYNC_LAG_BUCKETS,
)
LMS_CALLS = Series(
    "lms_calls_total",
    "counter",
    ("tenant", "endpoint", "outcome"),
    "HTTP attempts to the LMS by endpoint template and outcome (status, or 'transport').",
)
LMS_DURATION = Series(
    "lms_call_duration_seconds",
    "histogram",
    ("tenant", "endpoint"),
    "Duration of one HTTP attempt to the LMS.",
    LMS_DURATION_BUCKETS,
)
LMS_RETRIES = Series(
    "lms_retries_total",
    "counter",
    ("tenant", "endpoint"),
    "LMS attempts repeated by the client's retry policy (after a 429, 5xx or no answer).",
)
LMS_RATE_LIMITED = Series(
    "lms_rate_limited_total",
    "counter",
    ("tenant", "endpoint"),
    "429 answers received from the LMS.",
)
SERIES: Final = {
    s.name: s for s in (SYNC_LAG, LMS_CALLS, LMS_DURATION, LMS_RETRIES, LMS_RATE_LIMITED)
}

Key = tuple[str, ...]
"""(series name, *label values, part); part is "" for a counter, and
"sum", "count" or a bucket's upper bound ("0.5", "+Inf") for a histogram."""


def encode_field(key: Key) -> str:
    return json.dumps(key, separators=(",", ":"))


@lru_cache(maxsize=1 << 18)  # the same fields come back every scrape
def decode_field(field: bytes | str) -> Key | None:
    """A hash field back to its key; None for anything not written here."""
    try:
        value = json.loads(field)
    except ValueError:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return None
    series = SERIES.get(value[0]) if value else None
    if series is None or len(value) != len(series.labels) + 2:
        return None
    return tuple(value)
