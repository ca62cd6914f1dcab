"""The /dashboard page: the named reports as charts, with a time range and refresh.

The app's router calls ``layout()`` for the page and ``register_callbacks(app)``
once at start. The page arrives with the default range already drawn (no
callback round trip before the first charts), and the reports behind it start
as soon as the browser asks for the page, while it still loads its scripts.
After that one callback runs every report of the page (side by side) when the
range changes or the refresh interval ticks.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import dash
import flask
import pyarrow as pa
from dash import Input, Output, dcc, html

from chatlake.analytics import charts, page_data

log = logging.getLogger(__name__)

REFRESH_OPTIONS_S = {"off": 0, "10 s": 10, "30 s": 30, "1 min": 60}
DEFAULT_REFRESH_S = 30

# (graph id, report, figure builder), in page order.
CHARTS = [
    ("chart-messages", "messages_per_hour", charts.messages),
    ("chart-latency", "latency", charts.latency),
    ("chart-error-rate", "error_rate", charts.error_rate),
    ("chart-error-types", "error_types", charts.error_types),
    ("chart-feedback-model", "feedback_by_model", charts.feedback_by_model),
    ("chart-feedback-day", "feedback_by_day", charts.feedback_by_day),
    ("chart-tokens", "tokens_by_model", charts.tokens),
    ("chart-peak", "peak_usage", charts.peak_usage),
    ("chart-sessions", "sessions", charts.sessions),
]
TABLES = [
    ("table-questions", "top_questions", "Most common questions"),
    ("table-recent", "recent_conversations", "Recent conversations"),
]
RECENT_ROWS_SHOWN = 20
REPORT_NAMES = [name for _, name, _ in CHARTS] + [name for _, name, _ in TABLES]
# Browser paths of this page: asking for one starts its reports (see prefetch).
PAGE_PATHS = ("/dashboard",)

# The page's frame is styled inline; the tables' many cells by the app's
# stylesheet (assets/style.css), so the layout does not carry a style per cell.
PAGE_STYLE = {"padding": "12px 20px"}
GRID_STYLE = {
    "display": "grid",
    "gridTemplateColumns": "repeat(auto-fit, minmax(460px, 1fr))",
    "gap": "12px",
}
CONTROLS_STYLE = {"display": "flex", "alignItems": "center", "gap": "10px"}
# A cell shows one line of at most 420 px: longer text is cut before it is sent.
CELL_CHARS = 160
ERROR_STYLE = {"color": "#d62828"}


def layout() -> html.Div:
    """The page with the default range drawn in (its reports run, or are shared)."""
    *drawn, status = render(page_data.DEFAULT_RANGE)
    figures, tables = drawn[: len(CHARTS)], drawn[len(CHARTS) :]
    return html.Div(
        className="analytics-page",
        id="dashboard-page",
        style=PAGE_STYLE,
        children=[
            controls("dashboard"),
            html.Div(status, id="dashboard-status", className="analytics-status"),
            html.Div(
                className="chart-grid",
                style=GRID_STYLE,
                children=[
                    dcc.Graph(id=graph_id, figure=figure, config={"displaylogo": False})
                    for (graph_id, _, _), figure in zip(CHARTS, figures, strict=True)
                ],
            ),
            *[
                html.Div(
                    [html.H3(title), html.Div(table, id=table_id)], className="report"
                )
                for (table_id, _, title), table in zip(TABLES, tables, strict=True)
            ],
        ],
    )


def controls(prefix: str) -> html.Div:
    """The time-range picker, the refresh picker and their interval timer."""
    return html.Div(
        className="analytics-controls",
        style=CONTROLS_STYLE,
        children=[
            html.Label("Time range", htmlFor=f"{prefix}-range"),
            dcc.Dropdown(
                id=f"{prefix}-range",
                options=[
                    {"label": v, "value": k} for k, v in page_data.RANGE_LABELS.items()
                ],
                value=page_data.DEFAULT_RANGE,
                clearable=False,
                style={"width": "180px"},
            ),
            html.Label("Refresh", htmlFor=f"{prefix}-refresh-every"),
            dcc.Dropdown(
                id=f"{prefix}-refresh-every",
                options=[
                    {"label": k, "value": v} for k, v in REFRESH_OPTIONS_S.items()
                ],
                value=DEFAULT_REFRESH_S,
                clearable=False,
                style={"width": "110px"},
            ),
            dcc.Interval(id=f"{prefix}-tick", interval=DEFAULT_REFRESH_S * 1000),
        ],
    )


def register_callbacks(
    app: dash.Dash, page_paths: tuple[str, ...] = PAGE_PATHS
) -> None:
    """The refresh callbacks, and the prefetch when a browser asks for the page."""
    register_refresh_control(app, "dashboard")
    register_prefetch(app, page_paths)
    outputs = [Output(graph_id, "figure") for graph_id, _, _ in CHARTS]
    outputs += [Output(table_id, "children") for table_id, _, _ in TABLES]
    outputs.append(Output("dashboard-status", "children"))

    # The layout already holds the default range: no call when the page appears.
    @app.callback(
        outputs,
        Input("dashboard-range", "value"),
        Input("dashboard-tick", "n_intervals"),
        prevent_initial_call=True,
    )
    def refresh(range_key, _tick):
        return render(range_key)


def register_prefetch(app: dash.Dash, page_paths: tuple[str, ...]) -> None:
    """Start the default range's reports as soon as the browser asks for the page.

    They run while the browser loads Dash's scripts, and layout() then picks
    up their results.
    """

    @app.server.before_request
    def prefetch_first_view():
        request = flask.request
        if request.method == "GET" and request.path in page_paths:
            page_data.SHARED.prefetch(REPORT_NAMES, page_data.DEFAULT_RANGE)


def register_refresh_control(app: dash.Dash, prefix: str) -> None:
    """Refresh picker -> interval timer (0 disables it)."""

    @app.callback(
        Output(f"{prefix}-tick", "interval"),
        Output(f"{prefix}-tick", "disabled"),
        Input(f"{prefix}-refresh-every", "value"),
    )
    def set_refresh(seconds):
        seconds = int(seconds or 0)
        return max(seconds, 1) * 1000, seconds == 0


def render(range_key: str) -> list:
    """Figures, tables and status line of one range, in the callback's order."""
    names = REPORT_NAMES
    results = page_data.SHARED.shared(names, range_key or page_data.DEFAULT_RANGE)
    figures = [build(results.tables.get(name, EMPTY)) for _, name, build in CHARTS]
    tables = [
        result_table(results.tables.get(name, EMPTY), RECENT_ROWS_SHOWN)
        for _, name, _ in TABLES
    ]
    return [*figures, *tables, status_line(results)]


EMPTY = pa.table({})


def status_line(results: page_data.PageResults) -> html.Div:
    updated = datetime.now(UTC).strftime("%H:%M:%S UTC")
    parts = [html.Span(f"updated {updated} in {results.elapsed_ms:.0f} ms")]
    if results.errors:
        # The same failure (say, the catalog is down) usually hits every report.
        for message in sorted(set(results.errors.values())):
            parts.append(
                html.Div(message, className="analytics-error", style=ERROR_STYLE)
            )
    return html.Div(parts)


def result_table(table: pa.Table, limit: int) -> html.Table | html.P:
    if table.num_rows == 0:
        return html.P("no data in this time range", className="note")
    head = html.Thead(html.Tr([html.Th(name) for name in table.column_names]))
    rows = [
        html.Tr([html.Td(_cell(value)) for value in row.values()])
        for row in table.slice(0, limit).to_pylist()
    ]
    return html.Table([head, html.Tbody(rows)], className="report-table")


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"
    text = str(value)
    return text if len(text) <= CELL_CHARS else text[: CELL_CHARS - 1] + "…"
