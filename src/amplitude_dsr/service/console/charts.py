"""Small server-rendered SVG charts for the console (no script, no library, no external asset:
the page's Content-Security-Policy allows none). This module computes the geometry; the template
draws it (``budgets.html``), so every text in the chart is escaped by Jinja."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

WIDTH, HEIGHT, MARK = 240, 44, 5  # pixels: the whole chart, and the 429 marker band at its top


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    marked: bool  # the hour had 429s: a red mark above the bar
    label: str  # its hour and figures (the bar's <title>)


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    mark: int
    bars: list[Bar]
    summary: str  # the chart's aria-label


def hourly_bars(calls: Sequence[int], throttled: Sequence[int], end: datetime) -> Chart:
    """One bar per hour (the last one ends at ``end``), its height the calls started that hour
    relative to the busiest hour; an hour with 429s is marked. Pure."""
    hours = len(calls)
    peak = max(calls, default=0) or 1
    step = WIDTH / max(hours, 1)
    bars = []
    for i, (n, t) in enumerate(zip(calls, throttled, strict=True)):
        start = end - timedelta(hours=hours - i)
        height = 0.0 if n == 0 else max(1.0, (HEIGHT - MARK - 1) * n / peak)
        label = f"{start:%H}:{start:%M} UTC, the hour after: {n} calls, {t} answered 429"
        bars.append(
            Bar(round(i * step, 1), round(HEIGHT - height, 1), round(step - 1, 1), round(height, 1), t > 0, label)
        )
    summary = (
        f"Last {hours} hours: {sum(calls)} calls, {sum(throttled)} answered 429; "
        f"at most {max(calls, default=0)} calls in an hour"
    )
    return Chart(WIDTH, HEIGHT, MARK, bars, summary)
