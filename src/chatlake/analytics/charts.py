"""Plotly figures for the dashboard pages, built from report results.

Figures are plain dicts in Plotly's JSON form: dcc.Graph takes them as they
are, and building them costs nothing next to plotly.graph_objects, whose
validation took longer than the queries. An empty table gives a figure that
says so instead of blank axes.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

Figure = dict[str, Any]

WEEKDAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
_AXIS = {"gridcolor": "#e5e8ee", "zeroline": False}
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
# A time bucket's bar fills this share of the bucket, leaving a gap between bars.
BAR_SHARE = 0.8
# Room on the right for a second y axis's tick labels ("4.52"), which the
# default margin clips.
SECOND_AXIS_MARGIN = 60
# Whole-number tick steps for count axes, and at most this many ticks.
COUNT_STEPS = (1, 2, 5)
MAX_COUNT_TICKS = 6


def base(title: str, **layout: Any) -> Figure:
    return {
        "data": [],
        "layout": {
            "title": {"text": title, "x": 0.01},
            "margin": {"l": 50, "r": 20, "t": 40, "b": 40},
            "height": 300,
            "paper_bgcolor": "#fff",
            "plot_bgcolor": "#fff",
            "legend": {"orientation": "h", "y": -0.2},
            "xaxis": dict(_AXIS),
            "yaxis": dict(_AXIS),
            **layout,
        },
    }


def empty(figure: Figure) -> Figure:
    figure["layout"]["annotations"] = [
        {
            "text": "no data in this time range",
            "showarrow": False,
            "xref": "paper",
            "yref": "paper",
            "x": 0.5,
            "y": 0.5,
            "font": {"size": 14},
        }
    ]
    figure["layout"]["xaxis"]["visible"] = False
    figure["layout"]["yaxis"]["visible"] = False
    return figure


def trace(kind: str, x: list, y: list, name: str, **extra: Any) -> dict[str, Any]:
    return {"type": kind, "x": x, "y": y, "name": name, **extra}


def time_bars(x: list, y: list, name: str, step: timedelta) -> dict[str, Any]:
    """Bars for time buckets ``step`` long, with an explicit width.

    Plotly sizes bars on a date axis by the distance between them, so a lone
    bucket, the whole first hour of use, would be drawn zero wide.
    """
    width_ms = step / timedelta(milliseconds=1) * BAR_SHARE
    return trace("bar", x, y, name, width=width_ms)


def _col(table: pa.Table, name: str) -> list:
    return table.column(name).to_pylist()


def count_step(top: float) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50... giving at most MAX_COUNT_TICKS
    steps from zero to ``top``."""
    scale = 1
    while True:
        for step in COUNT_STEPS:
            if top <= step * scale * MAX_COUNT_TICKS:
                return step * scale
        scale *= 10


def count_axis(axis: dict[str, Any], *columns: list) -> None:
    """Whole-number ticks from zero: plotly's own ticks read 2.633 sessions.

    ``columns`` stack: the axis must reach their sum at each position.
    """
    sums = [sum(v or 0 for v in values) for values in zip(*columns, strict=True)]
    axis.update(
        rangemode="tozero",
        tickmode="linear",
        tick0=0,
        dtick=count_step(max(sums, default=0)),
        tickformat=",d",
    )


def one_bucket_axis(figure: Figure, values: list, step: timedelta) -> Figure:
    """Label a time axis holding a single bucket with that bucket alone.

    Plotly pads one point by a fraction of a millisecond and labels the
    axis 15:59:59.9996 ... 16:00:00.0004; a range of one step around it and
    one tick read as the hour (or day) it is.
    """
    distinct = {value for value in values if value is not None}
    if len(distinct) != 1:
        return figure
    (only,) = distinct
    if not isinstance(only, datetime) and isinstance(only, date):
        only = datetime.combine(only, time())
    if not isinstance(only, datetime):
        return figure
    figure["layout"]["xaxis"].update(
        range=[(only - step / 2).isoformat(), (only + step / 2).isoformat()],
        tickvals=[only.isoformat()],
        tickformat="%Y-%m-%d %H:%M" if step < DAY else "%Y-%m-%d",
    )
    return figure


def messages(table: pa.Table) -> Figure:
    figure = base("Messages per hour")
    if table.num_rows == 0:
        return empty(figure)
    hours = _col(table, "hour")
    figure["data"] = [
        time_bars(hours, _col(table, "messages"), "messages", HOUR),
        # With markers a single hour still shows as a point, not nothing.
        trace("scatter", hours, _col(table, "users"), "users", mode="lines+markers"),
    ]
    count_axis(figure["layout"]["yaxis"], _tallest(table, "messages", "users"))
    return one_bucket_axis(figure, hours, HOUR)


def latency(table: pa.Table) -> Figure:
    figure = base("Latency (ms)")
    if table.num_rows == 0:
        return empty(figure)
    hours = _col(table, "hour")
    series = (
        ("p50_ms", "p50"),
        ("p95_ms", "p95"),
        ("p99_ms", "p99"),
        ("ttft_p50_ms", "time to first token p50"),
    )
    figure["data"] = [
        trace("scatter", hours, _col(table, column), label, mode="lines+markers")
        for column, label in series
    ]
    return one_bucket_axis(figure, hours, HOUR)


def error_rate(table: pa.Table) -> Figure:
    figure = base("Error rate")
    if table.num_rows == 0:
        return empty(figure)
    figure["data"] = [
        trace(
            "scatter",
            _col(table, "hour"),
            _col(table, "error_rate"),
            "error rate",
            mode="lines+markers",
        )
    ]
    figure["layout"]["yaxis"].update(tickformat=".0%", rangemode="tozero")
    return one_bucket_axis(figure, _col(table, "hour"), HOUR)


def error_types(table: pa.Table) -> Figure:
    figure = base("Errors by type")
    if table.num_rows == 0:
        return empty(figure)
    figure["data"] = [
        trace("bar", _col(table, "error_type"), _col(table, "errors"), "errors")
    ]
    count_axis(figure["layout"]["yaxis"], _col(table, "errors"))
    return figure


def feedback_by_model(table: pa.Table) -> Figure:
    figure = base("Feedback by model (last rating per turn)", barmode="stack")
    if table.num_rows == 0:
        return empty(figure)
    models = _col(table, "model")
    figure["data"] = [
        trace("bar", models, _col(table, "thumbs_up"), "thumbs up"),
        trace("bar", models, _col(table, "thumbs_down"), "thumbs down"),
    ]
    up_and_down = (_col(table, "thumbs_up"), _col(table, "thumbs_down"))
    count_axis(figure["layout"]["yaxis"], *up_and_down)
    return figure


def feedback_by_day(table: pa.Table) -> Figure:
    figure = base("Thumbs-up ratio by day")
    if table.num_rows == 0:
        return empty(figure)
    figure["data"] = [
        trace(
            "scatter",
            _col(table, "day"),
            _col(table, "thumbs_up_ratio"),
            "thumbs-up ratio",
            mode="lines+markers",
        )
    ]
    figure["layout"]["yaxis"].update(tickformat=".0%", range=[0, 1.05])
    return one_bucket_axis(figure, _col(table, "day"), DAY)


def tokens(table: pa.Table) -> Figure:
    figure = base("Tokens by model", barmode="stack")
    if table.num_rows == 0:
        return empty(figure)
    models = _col(table, "model")
    figure["data"] = [
        trace("bar", models, _col(table, "input_tokens"), "input"),
        trace("bar", models, _col(table, "output_tokens"), "output"),
    ]
    return figure


def peak_usage(table: pa.Table) -> Figure:
    figure = base("Peak usage (UTC)")
    if table.num_rows == 0:
        return empty(figure)
    grid = [[0] * 24 for _ in WEEKDAYS]
    cells = zip(
        _col(table, "weekday"),
        _col(table, "hour"),
        _col(table, "messages"),
        strict=True,
    )
    for weekday, hour, count in cells:
        grid[weekday - 1][hour] = count
    figure["data"] = [
        {
            "type": "heatmap",
            "z": grid,
            "x": list(range(24)),
            "y": WEEKDAYS,
            "colorscale": "Blues",
        }
    ]
    figure["layout"]["xaxis"]["title"] = {"text": "hour of day"}
    return figure


def sessions(table: pa.Table) -> Figure:
    figure = base("Sessions per day")
    if table.num_rows == 0:
        return empty(figure)
    days = _col(table, "day")
    figure["data"] = [
        time_bars(days, _col(table, "sessions"), "sessions", DAY),
        trace(
            "scatter",
            days,
            _col(table, "avg_turns_per_session"),
            "turns per session",
            mode="lines+markers",
            yaxis="y2",
        ),
    ]
    figure["layout"]["yaxis2"] = {"overlaying": "y", "side": "right", "showgrid": False}
    count_axis(figure["layout"]["yaxis"], _col(table, "sessions"))
    count_axis(figure["layout"]["yaxis2"], _col(table, "avg_turns_per_session"))
    figure["layout"]["margin"]["r"] = SECOND_AXIS_MARGIN
    return one_bucket_axis(figure, days, DAY)


def stream_activity(table: pa.Table) -> Figure:
    figure = base("Stream events per hour", barmode="stack")
    if table.num_rows == 0:
        return empty(figure)
    for event in sorted(set(_col(table, "event"))):
        rows = table.filter(pc.equal(table.column("event"), event))
        figure["data"].append(
            time_bars(_col(rows, "hour"), _col(rows, "events"), event, HOUR)
        )
    count_axis(figure["layout"]["yaxis"], _events_per_hour(table))
    return one_bucket_axis(figure, _col(table, "hour"), HOUR)


def _tallest(table: pa.Table, *names: str) -> list:
    """Per row, the largest of the named columns."""
    columns = [_col(table, name) for name in names]
    return [max(v or 0 for v in row) for row in zip(*columns, strict=True)]


def _events_per_hour(table: pa.Table) -> list:
    """The height of each hour's stack of stream events."""
    grouped = table.group_by("hour").aggregate([("events", "sum")])
    return _col(grouped, "events_sum")


def bars(title: str, labels: list, values: list) -> Figure:
    figure = base(title)
    if not labels:
        return empty(figure)
    figure["data"] = [trace("bar", labels, values, title)]
    return figure
