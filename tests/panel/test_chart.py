"""The destination page's chart: bars for events delivered, a lag line broken where no
sample was taken, and the same figures as a table."""

from __future__ import annotations

from auditrelay.model import MinuteFigures
from auditrelay.panel.chart import HEIGHT, MINUTE_MS, WIDTH, minutes_chart

NOW = 1_800_000_000_000 + 30_000  # half a minute into a minute
LAST = NOW // MINUTE_MS * MINUTE_MS


def minute(ago: int, delivered: int = 0, lag: int | None = None) -> MinuteFigures:
    return MinuteFigures(LAST - ago * MINUTE_MS, delivered, lag, None if lag is None else lag * 1000)


def test_bars_scale_to_the_busiest_minute_and_old_minutes_are_left_out() -> None:
    chart = minutes_chart([minute(200, 50), minute(10, 4), minute(0, 10)], NOW)
    assert chart.delivered.top == "10" and chart.delivered_total == 14
    heights = [b.height for b in chart.delivered.bars]
    assert heights == [HEIGHT * 0.4, HEIGHT]
    assert chart.delivered.bars[-1].x + chart.delivered.bars[-1].width == WIDTH
    assert [r.delivered for r in chart.rows] == [10, 4]  # newest first, the 200th minute gone


def test_the_lag_line_breaks_where_no_sample_was_taken() -> None:
    chart = minutes_chart([minute(5, lag=3), minute(4, lag=7), minute(2, 1, lag=None), minute(0, lag=0)], NOW)
    assert chart.lag.top == "10"
    assert len(chart.lag.lines) == 1 and len(chart.lag.lines[0].split()) == 2  # minutes 5 and 4
    assert [d.title.endswith("lag 0") for d in chart.lag.dots] == [True]  # a lone sample: a dot
    assert [(r.lag_events, r.lag_seconds) for r in chart.rows] == [(0, 0.0), (None, None), (7, 7.0), (3, 3.0)]


def test_nothing_at_all_is_an_empty_chart() -> None:
    chart = minutes_chart([], NOW)
    assert chart.delivered.empty and chart.lag.empty and chart.rows == []
    assert len(chart.ticks) == 4 and chart.ticks[-1][0] <= WIDTH
