"""The /ingestion page: is telemetry arriving, how fast, and what fails.

Live figures come from the ingest server's Prometheus endpoint
(``$CHATLAKE_INGEST_METRICS_URL``, default http://127.0.0.1:9464/metrics); the
history of streams from the Delta table system.ingest.stream_events; the spool
backlog from this app process's own telemetry client.
"""

from __future__ import annotations

import dataclasses
import logging

import dash
import flask
import httpx
from dash import Input, Output, State, dcc, html

from chatlake.analytics import charts, ingest_metrics, page_data
from chatlake.app import dashboard

log = logging.getLogger(__name__)

REPORTS = ["stream_activity", "stream_failures"]
CARDS_STYLE = {"display": "flex", "flexWrap": "wrap", "gap": "12px", "margin": "10px 0"}
CARD_STYLE = {
    "background": "#fff",
    "border": "1px solid #dde1e8",
    "borderRadius": "8px",
    "padding": "10px 16px",
    "minWidth": "140px",
}
VALUE_STYLE = {"fontSize": "1.4rem", "fontWeight": "600"}
FAILURES_SHOWN = 20


def layout() -> html.Div:
    return html.Div(
        className="analytics-page",
        id="ingestion-page",
        style=dashboard.PAGE_STYLE,
        children=[
            dashboard.controls("ingestion"),
            dcc.Store(id="ingestion-last-scrape"),
            html.Div(id="ingestion-status", className="analytics-status"),
            html.Div(id="ingestion-cards", className="cards", style=CARDS_STYLE),
            html.Div(
                className="chart-grid",
                style=dashboard.GRID_STYLE,
                children=[
                    dcc.Graph(id="chart-ingest-errors", config={"displaylogo": False}),
                    dcc.Graph(id="chart-stream-events", config={"displaylogo": False}),
                ],
            ),
            html.Div(
                [html.H3("Failed streams"), html.Div(id="table-stream-failures")],
                className="report",
            ),
        ],
    )


def register_callbacks(app: dash.Dash) -> None:
    dashboard.register_refresh_control(app, "ingestion")

    @app.callback(
        Output("ingestion-cards", "children"),
        Output("chart-ingest-errors", "figure"),
        Output("chart-stream-events", "figure"),
        Output("table-stream-failures", "children"),
        Output("ingestion-status", "children"),
        Output("ingestion-last-scrape", "data"),
        Input("ingestion-range", "value"),
        Input("ingestion-tick", "n_intervals"),
        State("ingestion-last-scrape", "data"),
    )
    def refresh(range_key, _tick, last_scrape):
        return render(range_key, last_scrape)


def render(range_key: str, last_scrape: dict | None) -> tuple:
    snapshot, problem = _scrape()
    rate = None
    if snapshot and last_scrape:
        before = ingest_metrics.IngestSnapshot(**last_scrape)
        rate = ingest_metrics.records_per_second(before, snapshot)
    results = page_data.SHARED.run(REPORTS, range_key or page_data.DEFAULT_RANGE)
    empty = dashboard.EMPTY
    status = dashboard.status_line(results)
    if problem:
        status.children.append(
            html.Div(problem, className="analytics-error", style=dashboard.ERROR_STYLE)
        )
    return (
        cards(snapshot, rate, _spool()),
        errors_figure(snapshot),
        charts.stream_activity(results.tables.get("stream_activity", empty)),
        dashboard.result_table(
            results.tables.get("stream_failures", empty), FAILURES_SHOWN
        ),
        status,
        dataclasses.asdict(snapshot) if snapshot else last_scrape,
    )


def _scrape() -> tuple[ingest_metrics.IngestSnapshot | None, str | None]:
    url = ingest_metrics.metrics_url()
    try:
        return ingest_metrics.fetch(url), None
    except (httpx.HTTPError, ValueError) as error:
        return None, f"ingest metrics unavailable at {url}: {error}"


def _spool() -> tuple[str, int] | None:
    """This app process's telemetry state and pending events, if it has any."""
    parts = flask.current_app.extensions.get("chatlake_parts")
    if parts is None:
        return None
    status = parts.service.telemetry.status()
    return status.state, status.pending


def cards(snapshot, rate, spool) -> list[html.Div]:
    def card(card_id: str, label: str, value: str) -> html.Div:
        return html.Div(
            [html.Div(value, className="card-value"), html.Div(label)],
            className="card",
            id=card_id,
        )

    def ms(seconds):
        return "–" if seconds is None else f"{seconds * 1000:.0f} ms"

    found = snapshot is not None
    shown = [
        card(
            "card-open-streams",
            "open streams",
            f"{snapshot.open_streams:.0f}" if found else "–",
        ),
        card("card-rate", "records/s", "–" if rate is None else f"{rate:,.1f}"),
        card(
            "card-records",
            "records since start",
            f"{snapshot.records_total:,.0f}" if found else "–",
        ),
        card(
            "card-lag",
            "time to table (mean)",
            ms(snapshot.time_to_table_mean_s) if found else "–",
        ),
        card(
            "card-ack",
            "ack latency (mean)",
            ms(snapshot.ack_latency_mean_s) if found else "–",
        ),
        card(
            "card-wal",
            "WAL not yet committed",
            f"{snapshot.wal_pending_bytes:,.0f} B" if found else "–",
        ),
    ]
    if spool is not None:
        state, pending = spool
        shown.append(card("card-spool", f"app spool ({state})", f"{pending:,}"))
    return shown


def errors_figure(snapshot) -> charts.Figure:
    errors = snapshot.errors_by_code if snapshot else {}
    codes = sorted(errors)
    return charts.bars(
        "Ingest errors by gRPC code (since start)", codes, [errors[c] for c in codes]
    )
