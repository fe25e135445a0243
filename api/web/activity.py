"""The last 24 hours as the admin page draws them (api/web/svg.py).

Minute buckets (shadow/charts.py) are grouped into 15-minute columns:
counts summed, the queue's deepest sample, lag histograms merged before
their p95 is read. Each chart comes with one sentence of text that says
what it shows, so nothing depends on reading the picture.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from markupsafe import Markup

from api.web import svg
from shadow.charts import Bucket, Series, p95

__all__ = ["COLUMN_MINUTES", "fleet_row", "tenant_charts"]

COLUMN_MINUTES = 15
#: Where the lag chart's (logarithmic) scale has its labels.
LAG_TICKS = ((0.1, "0.1 s"), (1.0, "1 s"), (10.0, "10 s"), (60.0, "1 min"), (3600.0, "1 h"))


def _hhmm(minute: int) -> str:
    return datetime.fromtimestamp(minute * 60, UTC).strftime("%H:%M")


def seconds_text(value: float) -> str:
    if value < 60:
        return f"{value:g} s"
    if value < 3600:
        return f"{value / 60:g} min"
    return f"{value / 3600:g} h"


def _columns(series: Series, width: int) -> list[Sequence[Bucket]]:
    """Columns that start on the clock (:00, :15, ...): the first, partial
    one is left out, the last is the current one."""
    skip = -series.start_minute % width
    b = series.buckets[skip:]
    return [b[i : i + width] for i in range(0, len(b), width)]


def _axis(columns: list[Sequence[Bucket]], width: int) -> svg.Axis:
    labels = [f"{_hhmm(c[0].minute)}-{_hhmm(c[-1].minute + 1)} UTC" for c in columns]
    # A tick at each column that starts a 3-hour block.
    ticks = [(i, _hhmm(c[0].minute)) for i, c in enumerate(columns) if c[0].minute % 180 == 0]
    return svg.Axis(labels, ticks)


def _lag(column: Sequence[Bucket]) -> float | None:
    return p95([sum(b.lags[i] for b in column) for i in range(len(column[0].lags))])


def tenant_charts(series: Series, prefix: str = "chart") -> list[dict[str, Any]]:
    """The tenant page's four pictures: `id`, `heading`, `svg`, `summary`."""
    columns = _columns(series, COLUMN_MINUTES)
    if not columns:
        return []
    axis = _axis(columns, COLUMN_MINUTES)
    applied = [sum(b.applied for b in c) for c in columns]
    failed = [sum(b.failed for b in c) for c in columns]
    queue = [max((b.queue for b in c if b.queue >= 0), default=None) for c in columns]
    lag = [_lag(c) for c in columns]
    window = (
        f"{_hhmm(series.start_minute)} to {_hhmm(series.start_minute + len(series.buckets))} UTC"
    )

    total_a, total_f = sum(applied), sum(failed)
    busiest = max(range(len(columns)), key=lambda i: applied[i] + failed[i])
    sync_text = f"{total_a:,} synced and {total_f:,} failed in the last 24 hours ({window})"
    if total_a + total_f:
        sync_text += (
            f"; busiest {axis.labels[busiest]} with {applied[busiest]:,} synced"
            f" and {failed[busiest]:,} failed"
        )
    sampled = [(q, i) for i, q in enumerate(queue) if q is not None]
    if sampled:
        deepest, at = max(sampled)
        queue_text = f"Deepest queue {deepest:,} users ({axis.labels[at]}); now {sampled[-1][0]:,}"
    else:
        queue_text = "No queue samples in the last 24 hours (no worker was running)"
    lags = [(v, i) for i, v in enumerate(lag) if v is not None]
    if lags:
        worst, at = max(lags)
        lag_text = (
            f"95% of changes reached the LMS within {seconds_text(worst)} in the worst "
            f"quarter hour ({axis.labels[at]}); within {seconds_text(lags[-1][0])} "
            "in the latest one"
        )
    else:
        lag_text = "No changes applied in the last 24 hours"

    def chart(key: str, heading: str, text: str, markup: Markup) -> dict[str, Any]:
        return {"id": f"{prefix}-{key}", "heading": heading, "svg": markup, "summary": text}

    return [
        chart(
            "syncs",
            "Syncs per 15 minutes",
            sync_text,
            svg.stacked_bars(
                f"{prefix}-syncs",
                "Syncs per 15 minutes: synced (solid) and failed (hatched)",
                sync_text,
                axis,
                [("synced", applied), ("failed", failed)],
                "syncs",
            ),
        ),
        chart(
            "queue",
            "Queue depth",
            queue_text,
            svg.line(
                f"{prefix}-queue",
                "Queue depth: users waiting for a sync (deepest sample per 15 minutes)",
                queue_text,
                axis,
                queue,
                "users waiting",
            ),
        ),
        chart(
            "lag",
            "Sync lag, 95th percentile",
            lag_text,
            svg.line(
                f"{prefix}-lag",
                "Sync lag p95: time from the IdP's change to the LMS (log scale)",
                lag_text,
                axis,
                lag,
                "lag (log scale)",
                log_ticks=LAG_TICKS,
                show=lambda v: "at most " + seconds_text(v),
            ),
        ),
    ]


def fleet_row(series: Series, slug: str) -> dict[str, Any]:
    """A tenant's 24 hours for its row on the tenants page: hourly bars."""
    hours = _columns(series, 60)
    applied = [sum(b.applied for b in h) for h in hours]
    failed = [sum(b.failed for b in h) for h in hours]
    text = f"last 24 h: {sum(applied):,} synced, {sum(failed):,} failed"
    title = f"{slug}, {text}; hourly bars, hatched where syncs failed"
    return {
        "svg": svg.sparkline(f"spark-{slug}", title, applied, failed),
        "summary": text,
    }
