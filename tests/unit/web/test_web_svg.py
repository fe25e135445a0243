"""The chart renderer (api/web/svg.py) and the page's reading of 24 hours
(api/web/activity.py): pure functions, no Redis, no browser."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from api.web import svg
from api.web.activity import fleet_row, tenant_charts
from shadow.charts import LAG_BOUNDS, Bucket, Series, lag_bin, p95

NS = {"s": "http://www.w3.org/2000/svg"}
NOW = 29_000_000 - 29_000_000 % 1440 + 1439  # 23:59 UTC of some day


def parse(markup: str) -> ET.Element:
    return ET.fromstring(str(markup))


def axis(n: int = 4) -> svg.Axis:
    return svg.Axis([f"col {i}" for i in range(n)], [(0, "00:00"), (2, "12:00")])


def test_a_chart_is_well_formed_svg_with_a_title_and_a_description() -> None:
    root = parse(
        svg.stacked_bars(
            "c1",
            "Syncs",
            "3 synced, 1 failed",
            axis(),
            [("synced", [1, 0, 2, 0]), ("failed", [0, 0, 1, 0])],
            "syncs",
        )
    )
    assert root.get("role") == "img"
    assert root.get("aria-labelledby") == "c1-t c1-d"
    assert root.find("s:title", NS).text == "Syncs"  # type: ignore[union-attr]
    assert root.find("s:desc", NS).text == "3 synced, 1 failed"  # type: ignore[union-attr]


def test_each_bar_says_its_time_and_values_and_failures_are_hatched_not_only_red() -> None:
    root = parse(
        svg.stacked_bars(
            "c1", "t", "d", axis(), [("synced", [1, 0, 2, 0]), ("failed", [0, 0, 1, 0])], "syncs"
        )
    )
    tips = [t.text for t in root.iterfind("s:g/s:title", NS)]
    assert tips == ["col 0: 1 synced, 0 failed", "col 2: 2 synced, 1 failed"]
    fills = [r.get("fill") for r in root.iterfind("s:g/s:rect", NS)]
    assert fills.count("url(#c1-hatch)") == 1
    assert root.find("s:defs/s:pattern[@id='c1-hatch']", NS) is not None
    texts = [t.text for t in root.iterfind("s:text", NS)]
    assert {"synced", "failed", "00:00", "12:00", "syncs", "time (UTC)"} <= set(texts)


def test_the_y_axis_reads_in_round_numbers() -> None:
    assert [svg.nice_ceiling(v) for v in (0, 1, 3, 7, 12, 180, 4000)] == [
        1,
        1,
        5,
        10,
        20,
        200,
        5000,
    ]
    root = parse(svg.line("q", "t", "d", axis(), [3, None, 12, 7], "users"))
    labels = [t.text for t in root.iterfind("s:text", NS) if t.get("text-anchor") == "end"]
    assert labels[:5] == ["0", "5", "10", "15", "20"]


def test_a_line_has_a_marker_per_value_and_breaks_at_gaps() -> None:
    root = parse(svg.line("q", "t", "d", axis(), [3, None, 12, 7], "users"))
    marks = [r.find("s:title", NS).text for r in root.iterfind("s:rect", NS)]  # type: ignore[union-attr]
    assert marks == ["col 0: 3", "col 2: 12", "col 3: 7"]
    (run,) = root.iterfind("s:polyline", NS)  # the lone point before the gap draws no line
    assert len(run.get("points", "").split()) == 2


def test_text_is_escaped() -> None:
    markup = str(svg.line("q", "<b>", "a & b", svg.Axis(["<x>"], []), [1], "u"))
    assert "<b>" not in markup
    assert "&lt;b&gt;" in markup
    assert "a &amp; b" in markup
    parse(markup)


def test_lag_bins_and_p95_read_as_an_upper_bound() -> None:
    assert [lag_bin(s) for s in (0.05, 0.1, 0.3, 9999)] == [0, 0, 2, 12]
    histogram = [0] * (len(LAG_BOUNDS) + 1)
    histogram[1] = 94  # 94 within 0.25 s
    histogram[4] = 6  # 6 within 2.5 s
    assert p95(histogram) == 2.5
    histogram[1], histogram[4] = 95, 5  # exactly 95% within 0.25 s
    assert p95(histogram) == 0.25
    assert p95([0] * 13) is None


def bucket(minute: int, **fields: object) -> Bucket:
    return Bucket(minute=minute, **fields)  # type: ignore[arg-type]


def test_a_day_becomes_three_charts_worth_of_text_and_pictures() -> None:
    lags = tuple(5 if i == 3 else 0 for i in range(13))  # within 1 s
    series = Series.of(
        [
            bucket(NOW - 60, applied=40, failed=2, queue=17, lags=lags),
            bucket(NOW - 59, applied=10, queue=3),
            bucket(NOW - 5000, applied=99),  # older than 24 hours: left out
        ],
        NOW,
    )
    assert len(series.buckets) == 1440
    charts = tenant_charts(series)
    assert [c["id"] for c in charts] == ["chart-syncs", "chart-queue", "chart-lag"]
    syncs, queue, lag = (c["summary"] for c in charts)
    assert syncs.startswith("50 synced and 2 failed in the last 24 hours (00:00 to 00:00 UTC)")
    assert "busiest 22:45-23:00 UTC with 40 synced and 2 failed" in syncs
    assert queue == "Deepest queue 17 users (22:45-23:00 UTC); now 3"
    assert lag.startswith("95% of changes reached the LMS within 1 s")
    for chart in charts:
        root = parse(chart["svg"])
        assert root.find("s:desc", NS).text == chart["summary"]  # type: ignore[union-attr]


def test_an_idle_day_says_so() -> None:
    _, queue, lag = (c["summary"] for c in tenant_charts(Series.of([], NOW)))
    assert queue.startswith("No queue samples")
    assert lag == "No changes applied in the last 24 hours"


def test_the_fleet_sums_tenants_and_rows_get_hourly_sparklines() -> None:
    a = Series.of([bucket(NOW, applied=3, queue=2)], NOW)
    b = Series.of([bucket(NOW, applied=4, failed=1, queue=-1)], NOW)
    fleet = Series.total([a, b])
    assert (fleet.buckets[-1].applied, fleet.buckets[-1].failed, fleet.buckets[-1].queue) == (
        7,
        1,
        2,
    )
    row = fleet_row(b, "globex")
    assert row["summary"] == "last 24 h: 4 synced, 1 failed"
    root = parse(row["svg"])
    assert root.find("s:title", NS).text.startswith("globex, last 24 h: 4 synced, 1 failed")  # type: ignore[union-attr]
    assert [r.get("fill") for r in root.iterfind("s:rect", NS)] == ["url(#spark-globex-hatch)"]
