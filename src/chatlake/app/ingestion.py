"""The /ingestion page: is telemetry arriving, how fast, and what fails.

Live figures come from the ingest server's Prometheus endpoint
(``$CHATLAKE_INGEST_METRICS_URL``, default http://127.0.0.1:9464/metrics); the
history of streams from the Delta table system.ingest.stream_events; the spool
backlog of every telemetry client spooling into the app's spool directory
(``$CHATLAKE_SPOOL_DIR``, default ``<data dir>/telemetry-spool``), which
``GET /metrics`` also serves to Prometheus and to alert rules.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

import dash
import flask
import httpx
import pyarrow as pa
from dash import Input, Output, State, dcc, html
from prometheus_client import CollectorRegistry, make_wsgi_app
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from chatlake.analytics import charts, ingest_metrics, page_data
from chatlake.app import dashboard
from chatlake.telemetry.backlog import Backlog, BacklogCollector, read_backlog
from chatlake.telemetry.config import TelemetryConfig

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
SPOOLS_SHOWN = 20
METRICS_PATH = "/metrics"


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
        cards(snapshot, rate, read_backlog(spool_dir())),
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


def spool_dir() -> Path:
    """The directory the app's own telemetry client spools into."""
    return TelemetryConfig.from_env().spool_dir


def serve_metrics(server: flask.Flask, directory: Path | None = None) -> None:
    """Serves the spool backlog at GET /metrics, in Prometheus text format.

    Mounted in front of Flask: a scrape runs no Dash callback and no request
    hook (so it gets no identity cookie), only ``read_backlog`` of
    ``directory`` (default: ``spool_dir()``).
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BacklogCollector(directory or spool_dir()))
    server.wsgi_app = DispatcherMiddleware(
        server.wsgi_app, {METRICS_PATH: make_wsgi_app(registry)}
    )


def cards(snapshot, rate, backlog: Backlog | None) -> list[html.Div]:
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
    if backlog is not None:
        shown.append(spool_card(backlog))
    return shown


def spool_card(backlog: Backlog) -> html.Div:
    """Events waiting in every client's spool, then one row per spool file."""
    clients = "client spool" if len(backlog.spools) == 1 else "client spools"
    oldest = backlog.oldest_age_s
    summary = (
        f"{backlog.clients} live, {backlog.orphans} orphaned"
        f"{f', {backlog.unreadable} unreadable' if backlog.unreadable else ''}"
        f" · oldest {'–' if oldest is None else age_text(oldest)}"
    )
    children = [
        html.Div(f"{backlog.events:,}", className="card-value"),
        html.Div(f"events waiting in {len(backlog.spools)} {clients}"),
        html.Div(summary, id="spool-summary"),
    ]
    if backlog.spools:
        children.append(
            html.Div(
                dashboard.result_table(spool_rows(backlog), SPOOLS_SHOWN),
                id="spool-clients",
            )
        )
    return html.Div(children, className="card", id="card-spool")


def spool_rows(backlog: Backlog) -> pa.Table:
    """The spools holding most events first; this worker's own is marked."""
    spools = sorted(backlog.spools, key=lambda s: (-s.events, s.name))
    me = os.getpid()

    def client(spool) -> str:
        pid = "?" if spool.pid is None else str(spool.pid)
        mine = spool.pid == me and spool.state == "live"
        return f"{pid} (this worker)" if mine else pid

    return pa.table(
        {
            "pid": [client(s) for s in spools],
            "state": [
                s.state if s.error is None else f"{s.state}: {s.error}" for s in spools
            ],
            "events": [f"{s.events:,}" for s in spools],
            "bytes": [f"{s.payload_bytes:,}" for s in spools],
            "oldest": [
                "–" if s.oldest_age_s is None else age_text(s.oldest_age_s)
                for s in spools
            ],
        }
    )


def age_text(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def errors_figure(snapshot) -> charts.Figure:
    errors = snapshot.errors_by_code if snapshot else {}
    codes = sorted(errors)
    return charts.bars(
        "Ingest errors by gRPC code (since start)", codes, [errors[c] for c in codes]
    )
