"""A destination's last hours, per minute, drawn by the service as inline SVG.

Nothing is loaded from elsewhere and no script draws it: the page gets the shapes (bars for
the events delivered each minute, a line for the lag sampled each minute) as numbers, and
the same figures as a table for screen readers. The colours come from the panel's CSS
(classes only: the pages' Content-Security-Policy allows no inline style).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from auditrelay.model import MinuteFigures
from auditrelay.store import iso_from_ms

MINUTE_MS = 60_000
#: How far back the chart looks.
HOURS = 3
#: The drawing's own units (the SVG scales to the page's width).
WIDTH = 720
HEIGHT = 120


@dataclass(frozen=True)
class Minute:
    """One row of the chart's table."""

    at: str
    delivered: int
    lag_events: int | None
    lag_seconds: float | None


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    title: str


@dataclass(frozen=True)
class Panel:
    """One drawing: its bars or its line (segments, broken where no sample was taken)."""

    title: str
    top: str  # the value of the drawing's top edge, as shown on its axis
    bars: list[Bar]
    lines: list[str]  # each an SVG `points` attribute
    dots: list[Bar]  # lone samples, which a line cannot show
    empty: bool


@dataclass(frozen=True)
class Chart:
    since: str
    until: str
    hours: int
    width: int
    height: int
    ticks: list[tuple[float, str]]  # x, label (UTC time of day)
    delivered: Panel
    lag: Panel
    rows: list[Minute]  # minutes with a figure, newest first
    delivered_total: int


def minutes_chart(figures: Sequence[MinuteFigures], now_ms: int, hours: int = HOURS) -> Chart:
    count = hours * 60
    last = now_ms // MINUTE_MS * MINUTE_MS
    first = last - (count - 1) * MINUTE_MS
    by_minute = {f.minute_ms: f for f in figures if first <= f.minute_ms <= last}
    step = WIDTH / count

    def x_of(minute_ms: int) -> float:
        return (minute_ms - first) / MINUTE_MS * step

    delivered_top = _nice(max((f.delivered for f in by_minute.values()), default=0))
    bars = []
    for minute_ms, f in sorted(by_minute.items()):
        if f.delivered:
            height = f.delivered / delivered_top * HEIGHT
            label = f"{_clock(minute_ms)}: {f.delivered} delivered"
            bars.append(
                Bar(
                    round(x_of(minute_ms), 2),
                    round(HEIGHT - height, 2),
                    round(step, 2),
                    round(height, 2),
                    label,
                )
            )

    lag_top = _nice(max((f.lag_events or 0 for f in by_minute.values()), default=0))
    lines: list[str] = []
    dots: list[Bar] = []
    segment: list[tuple[float, float, str]] = []

    def close() -> None:
        if len(segment) == 1:
            x, y, label = segment[0]
            dots.append(Bar(x, y, 0, 0, label))
        elif segment:
            lines.append(" ".join(f"{x},{y}" for x, y, _ in segment))
        segment.clear()

    for i in range(count):
        minute_ms = first + i * MINUTE_MS
        sample = by_minute.get(minute_ms)
        if sample is None or sample.lag_events is None:
            close()
            continue
        y = HEIGHT - sample.lag_events / lag_top * HEIGHT
        label = f"{_clock(minute_ms)}: lag {sample.lag_events}"
        segment.append((round(x_of(minute_ms) + step / 2, 2), round(y, 2), label))
    close()

    ticks = []
    for h in range(hours + 1):
        at = first + h * 60 * MINUTE_MS
        ticks.append((round(min(WIDTH, x_of(at)), 2), _clock(min(at, last))))
    rows = [
        Minute(
            iso_from_ms(m) or "",
            f.delivered,
            f.lag_events,
            None if f.lag_ms is None else round(f.lag_ms / 1000, 1),
        )
        for m, f in sorted(by_minute.items(), reverse=True)
    ]
    return Chart(
        since=iso_from_ms(first) or "",
        until=iso_from_ms(last + MINUTE_MS) or "",
        hours=hours,
        width=WIDTH,
        height=HEIGHT,
        ticks=ticks,
        delivered=Panel("Events delivered per minute", str(delivered_top), bars, [], [], not bars),
        lag=Panel(
            "Lag (events still owed), sampled each minute", str(lag_top), [], lines, dots, not (lines or dots)
        ),
        rows=rows,
        delivered_total=sum(f.delivered for f in by_minute.values()),
    )


def _nice(value: int) -> int:
    """The axis's top: `value` rounded up to 1, 2 or 5 times a power of ten (at least 1)."""
    top = 1
    while True:
        for factor in (1, 2, 5):
            if value <= top * factor:
                return top * factor
        top *= 10


def _clock(ms: int) -> str:
    return (iso_from_ms(ms) or "")[11:16]
