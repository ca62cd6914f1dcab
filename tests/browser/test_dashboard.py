"""The /dashboard and /ingestion pages in chromium, served by `chatlake app`.

The app runs as a child process against a real catalog whose chat tables hold
the known rows (four to two days old) and whose system.ingest.stream_events
holds three events; a local HTTP server plays the ingest server's /metrics.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import expect

from chatlake.analytics.testing import chat_rows, feedback_rows, write_table
from chatlake.app import plotly_js
from chatlake.app.testing import ChildProcess, free_port
from chatlake.catalog.bootstrap import ensure_chat_tables
from chatlake.chat_tables import CHAT_EVENTS, FEEDBACK, TableSpec
from chatlake.ingest.stream_events import COLUMNS as STREAM_EVENT_COLUMNS
from chatlake.telemetry.spool import Spool, StreamFormat

# The first callback of a fresh gunicorn worker pays for imports and tokens, and
# this machine is shared: wait generously for the first values, never sleep.
FIRST_PAINT_MS = 30_000

METRICS = """\
# TYPE chatlake_ingest_open_streams gauge
chatlake_ingest_open_streams{table="main.chatbot.chat_events"} 2.0
# TYPE chatlake_ingest_records_total counter
chatlake_ingest_records_total{table="main.chatbot.chat_events"} 1234.0
# TYPE chatlake_ingest_errors_total counter
chatlake_ingest_errors_total{code="INVALID_ARGUMENT"} 3.0
"""

STREAM_EVENTS = TableSpec(
    name="stream_events",
    columns=", ".join(
        f"{c.name} {c.type.type_text}{'' if c.nullable else ' NOT NULL'}"
        for c in STREAM_EVENT_COLUMNS
    ),
)


class MetricsServer:
    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = METRICS.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/metrics"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def fill_tables(admin) -> None:
    ensure_chat_tables(admin, "main", "chatbot")
    # On the hour, so the turns fall into the same hourly buckets as on DAY0.
    day0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    day0 -= timedelta(days=4)
    for spec, rows in ((CHAT_EVENTS, chat_rows(day0)), (FEEDBACK, feedback_rows(day0))):
        location = admin.get_table(f"main.chatbot.{spec.name}")["storage_location"]
        write_table(location, spec, rows)
    admin.create_catalog("system")
    admin.create_schema("system", "ingest")
    created = admin.create_table("system.ingest.stream_events", STREAM_EVENT_COLUMNS)
    now = datetime.now(UTC) - timedelta(minutes=5)
    events = [
        {
            "event_time": now,
            "event": "opened",
            "table_name": "main.chatbot.chat_events",
        },
        {"event_time": now, "event": "opened", "table_name": "main.chatbot.feedback"},
        {
            "event_time": now,
            "event": "failed",
            "table_name": "main.chatbot.chat_events",
            "status": "INVALID_ARGUMENT",
            "detail": "record 3: column turn_index: not an int",
            "records": 7,
        },
    ]
    write_table(created["storage_location"], STREAM_EVENTS, events)


@pytest.fixture
def app_url(catalog_server, tmp_path):
    fill_tables(catalog_server.admin_client)
    metrics = MetricsServer()
    port = free_port()
    env = {
        "CHATLAKE_CATALOG_URL": catalog_server.url,
        "CHATLAKE_DATA_DIR": str(catalog_server.data_dir),
        "CHATLAKE_INGEST_METRICS_URL": metrics.url,
        "ZEROBUS_SERVER_ENDPOINT": "",
    }
    app = ChildProcess(
        ["app", "--port", str(port), "--data-dir", str(catalog_server.data_dir)],
        tmp_path / "app.log",
        env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        app.wait_http(url + "/")
        yield url
    finally:
        code = app.stop()
        metrics.stop()
        assert code == 0, app.log()


def choose(page, dropdown: str, label: str) -> None:
    page.click(dropdown)
    page.get_by_role("option", name=label).click()


def test_dashboard_charts_follow_the_time_range(page, app_url) -> None:
    page.goto(app_url + "/dashboard")

    expect(page.locator("#dashboard-status")).to_contain_text(
        "updated", timeout=FIRST_PAINT_MS
    )
    # The known rows are two to four days old: nothing in the last 24 hours.
    expect(page.locator("#table-questions")).to_have_text("no data in this time range")
    expect(page.locator("#chart-messages")).to_contain_text(
        "no data in this time range"
    )

    choose(page, "#dashboard-range", "last 7 days")

    questions = page.locator("#table-questions tbody tr")
    expect(questions).to_have_count(5, timeout=FIRST_PAINT_MS)
    expect(questions.first).to_have_text("hi3")
    expect(page.locator("#chart-messages g.trace.bars g.point")).to_have_count(5)
    expect(page.locator("#chart-feedback-model g.trace.bars")).to_have_count(2)
    expect(page.locator("#chart-latency g.trace.scatter")).to_have_count(4)
    expect(page.locator("#chart-peak g.hm, #chart-peak image").first).to_be_attached()
    for graph in ("error-rate", "error-types", "feedback-day", "tokens", "sessions"):
        expect(page.locator(f"#chart-{graph} .main-svg").first).to_be_visible()
        expect(page.locator(f"#chart-{graph}")).not_to_contain_text("no data")
    expect(page.locator("#table-recent tbody tr")).to_have_count(10)
    expect(page.locator("#dashboard-status .analytics-error")).to_have_count(0)
    # The app serves plotly's cartesian build, not Dash's full one.
    traces = page.evaluate("Object.keys(Plotly.PlotSchema.get().traces)")
    assert set(traces) == plotly_js.CARTESIAN_TRACES


def test_ingestion_page_shows_metrics_and_stream_events(
    page, app_url, catalog_server
) -> None:
    # A client that ended with two events unsent: the page lists its spool.
    orphan = Spool(catalog_server.data_dir / "telemetry-spool", 1_000_000)
    orphan.open()
    orphan.add("@chat", StreamFormat("json"), [b"one", b"three"])
    orphan.close()
    page.goto(app_url + "/ingestion")

    expect(page.locator("#card-open-streams .card-value")).to_have_text(
        "2", timeout=FIRST_PAINT_MS
    )
    expect(page.locator("#card-records .card-value")).to_have_text("1,234")
    expect(page.locator("#card-spool .card-value")).to_have_text("2")
    expect(page.locator("#card-spool")).to_contain_text(
        "events waiting in 1 client spool"
    )
    spools = page.locator("#spool-clients tbody tr")
    expect(spools).to_have_count(1)
    expect(spools.locator("td").nth(1)).to_have_text("orphaned")
    expect(spools.locator("td").nth(3)).to_have_text("8")
    expect(page.locator("#chart-ingest-errors g.trace.bars g.point")).to_have_count(1)
    expect(page.locator("#chart-stream-events g.trace.bars")).to_have_count(2)
    # The events share one hour, and its bars still fill 80% of that hour.
    bar = page.locator("#chart-stream-events g.trace.bars g.point path").first
    plot = page.locator("#chart-stream-events rect.nsewdrag").first
    share = bar.bounding_box()["width"] / plot.bounding_box()["width"]
    assert share == pytest.approx(0.8, abs=0.01)
    failures = page.locator("#table-stream-failures tbody tr")
    expect(failures).to_have_count(1)
    expect(failures).to_contain_text("record 3: column turn_index: not an int")
    expect(page.locator("#ingestion-status .analytics-error")).to_have_count(0)
