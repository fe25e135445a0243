"""Charts as inline SVG, drawn on the server: no script, nothing fetched.

Pure functions from numbers to markup. Every chart carries a `<title>` and
a `<desc>` (what a screen reader says), labelled axes, and a `<title>` on
each bar or point with its time and value (a tooltip). Series differ by
shape and pattern as well as colour: stacked bars are solid and hatched and
the legend says which is which; lines have markers. Colours and text sizes
are presentation attributes, so the page's strict CSP (no inline styles)
allows them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from html import escape

from markupsafe import Markup

__all__ = ["Axis", "line", "nice_ceiling", "sparkline", "stacked_bars"]

WIDTH, HEIGHT = 720, 200
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 12, 34
INK, MUTED, GRID = "#1d2330", "#667085", "#e3e6eb"
BLUE, RED = "#2f5fd0", "#b42318"


class Axis:
    """The time axis: `columns` equal slots from `start` (labels given)."""

    def __init__(self, labels: Sequence[str], ticks: Sequence[tuple[int, str]]) -> None:
        self.labels = labels  # one per column, e.g. "14:00-14:15 UTC"
        self.ticks = ticks  # (column index, label) drawn under the axis


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 5 times a power of ten at or above `value` (1 at least)."""
    if value <= 1:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return float(step * power)
    return float(10 * power)  # pragma: no cover - the loop ends at 10


def _n(value: float) -> str:
    """A coordinate, short."""
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _count(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 or value == int(value) else f"{value:g}"


def _frame(chart_id: str, title: str, desc: str, body: list[str]) -> Markup:
    head = (
        f'<svg class="chart-svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{chart_id}-t {chart_id}-d" xmlns="http://www.w3.org/2000/svg">'
        f'<title id="{chart_id}-t">{escape(title)}</title>'
        f'<desc id="{chart_id}-d">{escape(desc)}</desc>'
    )
    return Markup(head + "".join(body) + "</svg>")


def _plot_width(columns: int) -> float:
    return (WIDTH - LEFT - RIGHT) / max(columns, 1)


def _x_axis(axis: Axis, caption: str) -> list[str]:
    step = _plot_width(len(axis.labels))
    base = HEIGHT - BOTTOM
    out = [f'<line x1="{LEFT}" y1="{base}" x2="{WIDTH - RIGHT}" y2="{base}" stroke="{INK}"/>']
    for index, label in axis.ticks:
        x = LEFT + index * step
        out.append(f'<line x1="{_n(x)}" y1="{base}" x2="{_n(x)}" y2="{base + 4}" stroke="{INK}"/>')
        out.append(
            f'<text x="{_n(x)}" y="{base + 16}" font-size="11" fill="{INK}" '
            f'text-anchor="middle">{escape(label)}</text>'
        )
    out.append(
        f'<text x="{WIDTH - RIGHT}" y="{HEIGHT - 2}" font-size="11" fill="{MUTED}" '
        f'text-anchor="end">{escape(caption)}</text>'
    )
    return out


def _y_axis(ticks: Sequence[tuple[float, str]], unit: str) -> list[str]:
    """Grid lines at `(y, label)`; the unit written along the axis."""
    out = [f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{HEIGHT - BOTTOM}" stroke="{INK}"/>']
    for y, label in ticks:
        out.append(
            f'<line x1="{LEFT}" y1="{_n(y)}" x2="{WIDTH - RIGHT}" y2="{_n(y)}" stroke="{GRID}"/>'
        )
        out.append(
            f'<text x="{LEFT - 6}" y="{_n(y + 4)}" font-size="11" fill="{INK}" '
            f'text-anchor="end">{escape(label)}</text>'
        )
    mid = (TOP + HEIGHT - BOTTOM) / 2
    out.append(
        f'<text x="12" y="{_n(mid)}" font-size="11" fill="{MUTED}" text-anchor="middle" '
        f'transform="rotate(-90 12 {_n(mid)})">{escape(unit)}</text>'
    )
    return out


def _count_top(value: float) -> float:
    """The top of a count axis: four round steps, so every tick is whole."""
    return 4 * nice_ceiling(value / 4)


def _linear(top: float) -> Callable[[float], float]:
    span = HEIGHT - BOTTOM - TOP
    return lambda v: HEIGHT - BOTTOM - span * min(v, top) / top


def _logarithmic(low: float, high: float) -> Callable[[float], float]:
    span, bottom, top = HEIGHT - BOTTOM - TOP, math.log10(low), math.log10(high)

    def scale(v: float) -> float:
        at = (math.log10(min(max(v, low), high)) - bottom) / (top - bottom)
        return HEIGHT - BOTTOM - span * at

    return scale


def _linear_ticks(top: float, scale: Callable[[float], float]) -> list[tuple[float, str]]:
    return [(scale(top * i / 4), _count(top * i / 4)) for i in range(5)]


def stacked_bars(
    chart_id: str,
    title: str,
    desc: str,
    axis: Axis,
    series: Sequence[tuple[str, Sequence[float]]],
    unit: str,
) -> Markup:
    """Bars of up to two series, the second stacked on the first and
    hatched; each bar's `<title>` gives both values."""
    columns = zip(*(values for _, values in series), strict=True)
    top = _count_top(max((sum(column) for column in columns), default=0))
    scale = _linear(top)
    step = _plot_width(len(axis.labels))
    hatch = f"{chart_id}-hatch"
    body = [
        f'<defs><pattern id="{hatch}" patternUnits="userSpaceOnUse" width="5" height="5" '
        f'patternTransform="rotate(45)"><rect width="5" height="5" fill="#fdecea"/>'
        f'<line x1="0" y1="0" x2="0" y2="5" stroke="{RED}" stroke-width="2.5"/></pattern></defs>',
        *_y_axis(_linear_ticks(top, scale), unit),
    ]
    fills = [BLUE, f"url(#{hatch})"]
    for index, label in enumerate(axis.labels):
        values = [s[1][index] for s in series]
        if not any(values):
            continue
        x, below = LEFT + index * step + 0.5, 0.0
        said = ", ".join(f"{_count(v)} {name}" for (name, _), v in zip(series, values, strict=True))
        body.append(f"<g><title>{escape(label)}: {escape(said)}</title>")
        for value, fill in zip(values, fills, strict=False):
            if value:
                y, base = scale(below + value), scale(below)
                body.append(
                    f'<rect x="{_n(x)}" y="{_n(y)}" width="{_n(max(step - 1, 1))}" '
                    f'height="{_n(max(base - y, 1))}" fill="{fill}" stroke="{INK}" '
                    'stroke-width="0.3"/>'
                )
                below += value
        body.append("</g>")
    legend_x = LEFT + 8
    for (name, _), fill in zip(series, fills, strict=False):
        body.append(
            f'<rect x="{legend_x}" y="{TOP + 2}" width="12" height="10" fill="{fill}" '
            f'stroke="{INK}" stroke-width="0.5"/><text x="{legend_x + 16}" y="{TOP + 11}" '
            f'font-size="11" fill="{INK}">{escape(name)}</text>'
        )
        legend_x += 28 + 7 * len(name)
    body += _x_axis(axis, "time (UTC)")
    return _frame(chart_id, title, desc, body)


def line(
    chart_id: str,
    title: str,
    desc: str,
    axis: Axis,
    values: Sequence[float | None],
    unit: str,
    *,
    log_ticks: Sequence[tuple[float, str]] = (),
    show: Callable[[float], str] = _count,
) -> Markup:
    """A line with a square marker at each value; None leaves a gap. With
    `log_ticks` ((value, label), lowest first) the scale is logarithmic."""
    scale: Callable[[float], float]
    if log_ticks:
        scale = _logarithmic(log_ticks[0][0], log_ticks[-1][0])
        ticks = [(scale(v), label) for v, label in log_ticks]
    else:
        top = _count_top(max((v for v in values if v is not None), default=0))
        scale = _linear(top)
        ticks = _linear_ticks(top, scale)
    step = _plot_width(len(axis.labels))
    body = _y_axis(ticks, unit)
    runs: list[list[str]] = [[]]
    marks = []
    for index, (label, value) in enumerate(zip(axis.labels, values, strict=True)):
        if value is None:
            runs.append([])
            continue
        x, y = LEFT + (index + 0.5) * step, scale(value)
        runs[-1].append(f"{_n(x)},{_n(y)}")
        marks.append(
            f'<rect x="{_n(x - 2.5)}" y="{_n(y - 2.5)}" width="5" height="5" fill="{INK}">'
            f"<title>{escape(label)}: {escape(show(value))}</title></rect>"
        )
    for run in runs:
        if len(run) > 1:
            points = " ".join(run)
            body.append(
                f'<polyline points="{points}" fill="none" stroke="{BLUE}" stroke-width="1.5"/>'
            )
    body += marks
    body += _x_axis(axis, "time (UTC)")
    return _frame(chart_id, title, desc, body)


def sparkline(
    chart_id: str, title: str, values: Sequence[float], failed: Sequence[float]
) -> Markup:
    """A small bar strip for a table row: totals in its `<title>`; hatched
    bars mark hours with failures."""
    width, height = 120, 24
    top = max(max(values, default=0), 1)
    step = width / max(len(values), 1)
    hatch = f"{chart_id}-hatch"
    body = [
        f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-labelledby="{chart_id}-t" xmlns="http://www.w3.org/2000/svg">'
        f'<title id="{chart_id}-t">{escape(title)}</title>'
        f'<defs><pattern id="{hatch}" patternUnits="userSpaceOnUse" width="4" height="4" '
        f'patternTransform="rotate(45)"><rect width="4" height="4" fill="#fdecea"/>'
        f'<line x1="0" y1="0" x2="0" y2="4" stroke="{RED}" stroke-width="2"/></pattern></defs>'
        f'<line x1="0" y1="{height - 0.5}" x2="{width}" y2="{height - 0.5}" stroke="{GRID}"/>'
    ]
    for index, (value, bad) in enumerate(zip(values, failed, strict=True)):
        h = max((height - 2) * value / top, 2 if bad else 0)
        if h:
            fill = f"url(#{hatch})" if bad else BLUE
            body.append(
                f'<rect x="{_n(index * step + 0.5)}" y="{_n(height - h)}" '
                f'width="{_n(max(step - 1, 1))}" height="{_n(h)}" fill="{fill}"/>'
            )
    return Markup("".join(body) + "</svg>")
