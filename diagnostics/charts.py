"""A range query as a PNG chart (matplotlib, Agg canvas: no display, no pyplot global state).

`render_png` blocks for a few hundred milliseconds: run it through a BlockingPool (the source's
chart_pool, apart from the pool its queries use).
"""

from __future__ import annotations

import io
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from diagnostics.durations import compact_duration
from diagnostics.http_api import BackendError
from diagnostics.presets import Thresholds
from diagnostics.prometheus import PrometheusSource, series_name, worst_summary
from diagnostics.promql import format_value
from diagnostics.result import FileAttachment, Link, Result, Status

WIDTH, HEIGHT, DPI = 1200, 600, 100
MAX_SERIES = 8  # more lines than this are unreadable; the legend says how many were left out
LABEL_CHARS = 48
FEW_POINTS = 30
WARNING_COLOUR, CRITICAL_COLOUR = "#d99a00", "#d62728"
_AXIS_LABELS = {"%": "percent", "s": "seconds", "bytes": "bytes", "B/s": "bytes per second", "": "value"}


@dataclass(frozen=True)
class ChartSeries:
    label: str
    points: Sequence[tuple[float, float]]  # (unix time, value); NaN breaks the line

    @property
    def peak(self) -> float:
        values = [v for _, v in self.points if not math.isnan(v)]
        return max(values) if values else -math.inf


def pick_series(series: Sequence[ChartSeries], limit: int = MAX_SERIES) -> list[ChartSeries]:
    """The `limit` series with the highest peaks, in their original order."""
    if len(series) <= limit:
        return list(series)
    keep = set(sorted(range(len(series)), key=lambda i: series[i].peak, reverse=True)[:limit])
    return [s for i, s in enumerate(series) if i in keep]


def render_png(series: Sequence[ChartSeries], *, title: str, unit: str = "",
               thresholds: Thresholds | None = None, subtitle: str = "",
               span: tuple[float, float] | None = None) -> bytes:
    """The chart as PNG bytes, WIDTH × HEIGHT px; `span` (unix start, end) fixes the time axis."""
    import matplotlib.dates as mdates
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    figure = Figure(figsize=(WIDTH / DPI, HEIGHT / DPI), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    shown = pick_series(series)
    for s in shown:
        times = [datetime.fromtimestamp(t, timezone.utc) for t, _ in s.points]
        label = s.label if len(s.label) <= LABEL_CHARS else s.label[: LABEL_CHARS - 1] + "…"
        # A series with few points (new, or sparse) gets markers: a lone point draws no line.
        marker = "o" if len(s.points) < FEW_POINTS else None
        # Datetimes on x: matplotlib's date units convert them; its stubs know numbers only.
        axes.plot(times, [v for _, v in s.points],  # type: ignore[arg-type]
                  label=label, linewidth=1.8, marker=marker, markersize=4)
    if thresholds is not None:
        for status, level, colour in ((Status.WARNING, thresholds.warning, WARNING_COLOUR),
                                      (Status.CRITICAL, thresholds.critical, CRITICAL_COLOUR)):
            if level is not None:
                axes.axhline(level, color=colour, linestyle="--", linewidth=1.4,
                             label=thresholds.level_of(status, unit))
    if not any(s.points for s in shown):
        axes.text(0.5, 0.5, "no data in this range", transform=axes.transAxes, ha="center", va="center",
                  fontsize=16, color="grey")
    axes.set_title(title + (f"\n{subtitle}" if subtitle else ""), fontsize=14, loc="left")
    axes.set_xlabel("time (UTC)")
    axes.set_ylabel(_AXIS_LABELS.get(unit, unit))
    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: format_value(value, unit)))
    locator = mdates.AutoDateLocator(tz=timezone.utc)
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=timezone.utc))
    finite = [v for s in shown for _, v in s.points if math.isfinite(v)]
    if finite and min(finite) >= 0:
        axes.set_ylim(bottom=0)  # rates, ratios and sizes: a chart from 0 doesn't exaggerate change
    if span is not None:
        axes.set_xlim(*(datetime.fromtimestamp(t, timezone.utc) for t in span))  # type: ignore[arg-type]  # as plot
    axes.grid(True, alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        left_out = len(series) - len(shown)
        legend_title = f"top {len(shown)} of {len(series)} series" if left_out else None
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", title=legend_title,
                    title_fontsize="small", frameon=False)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


# --------------------------------------------------------------------------- the graph diagnostic


def _file_name(name: str) -> str:
    stem = re.sub(r"[^a-zA-Z0-9_.-]+", "-", name).strip("-.")[:60] or "query"
    return f"{stem}.png"


async def graph(prom: PrometheusSource, expr: str, seconds: int, *, title: str, name: str, unit: str = "",
                thresholds: Thresholds | None = None, links: list[Link] | None = None) -> Result:
    """A range query as a chart file, and one line: the last value against the thresholds."""
    window = compact_duration(seconds)
    try:
        series = await prom.range(expr, seconds)
        ended = time.time()
    except BackendError as e:
        return Result(Status.ERROR, title, str(e), lines=[expr])
    lasts = [(values[-1], s) for s in series if (values := s.values)]
    if not lasts:
        return Result(Status.UNKNOWN, title, f"no data in the last {window}: the query returned no samples",
                      lines=[expr], links=links or [])
    limits = thresholds or Thresholds()
    rated = limits.worst_first(lasts)
    summary = worst_summary(limits, unit, rated, name, prefix="last ")
    chart = [ChartSeries(series_name(s.labels, name), s.points) for s in series]
    pool = prom.chart_pool or prom.pool
    png = await pool.run(render_png, chart, title=title, unit=unit, thresholds=thresholds,
                         subtitle=f"last {window} · {prom.location}", span=(ended - seconds, ended))
    attachment = FileAttachment(_file_name(name), png, title=f"{title} (last {window})", mimetype="image/png")
    return Result(rated[0][0], title, summary, lines=[expr], links=links or [], files=[attachment])
