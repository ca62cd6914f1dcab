"""The pieces behind the dashboard pages: metrics parsing, ranges, page results."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import flask
import pyarrow as pa
import pytest

from chatlake.analytics import ingest_metrics, page_data, timerange
from chatlake.analytics.engine import SqlEngine
from chatlake.analytics.errors import ReportError, TableAccessError
from chatlake.analytics.resolver import StaticResolver
from chatlake.analytics.testing import write_known_tables
from chatlake.app import dashboard, ingestion

METRICS = """\
# TYPE chatlake_ingest_open_streams gauge
chatlake_ingest_open_streams{table="a.b.c"} 2.0
chatlake_ingest_open_streams{table="a.b.d"} 1.0
# TYPE chatlake_ingest_records_total counter
chatlake_ingest_records_total{table="a.b.c"} 100.0
# TYPE chatlake_ingest_errors_total counter
chatlake_ingest_errors_total{code="INVALID_ARGUMENT"} 3.0
chatlake_ingest_errors_total{code="PERMISSION_DENIED"} 1.0
# TYPE chatlake_ingest_time_to_table_seconds histogram
chatlake_ingest_time_to_table_seconds_bucket{table="a.b.c",le="+Inf"} 4.0
chatlake_ingest_time_to_table_seconds_sum{table="a.b.c"} 2.0
chatlake_ingest_time_to_table_seconds_count{table="a.b.c"} 4.0
"""


def test_metrics_are_summed_over_labels() -> None:
    snapshot = ingest_metrics.parse(METRICS, at=10.0)

    assert snapshot.open_streams == 3.0
    assert snapshot.records_total == 100.0
    assert snapshot.errors_by_code == {
        "INVALID_ARGUMENT": 3.0,
        "PERMISSION_DENIED": 1.0,
    }
    assert snapshot.time_to_table_mean_s == 0.5
    assert snapshot.ack_latency_mean_s is None


def test_record_rate_between_scrapes_and_across_a_restart() -> None:
    before = ingest_metrics.IngestSnapshot(at=10.0, records_total=100.0)
    after = ingest_metrics.IngestSnapshot(at=14.0, records_total=300.0)
    restarted = ingest_metrics.IngestSnapshot(at=15.0, records_total=5.0)

    assert ingest_metrics.records_per_second(before, after) == 50.0
    assert ingest_metrics.records_per_second(after, restarted) is None


@pytest.mark.parametrize(
    ("text", "span"),
    [
        ("30s", timedelta(seconds=30)),
        ("15m", timedelta(minutes=15)),
        ("24h", timedelta(hours=24)),
        (" 7D ", timedelta(days=7)),
        ("2w", timedelta(weeks=2)),
    ],
)
def test_spans(text: str, span: timedelta) -> None:
    assert timerange.parse_span(text) == span


@pytest.mark.parametrize("text", ["0h", "-1h", "1y", "soon", ""])
def test_bad_spans_are_refused(text: str) -> None:
    with pytest.raises(ReportError, match="invalid time span"):
        timerange.parse_span(text)


def test_window_counts_back_from_until() -> None:
    since, until = timerange.window(until="2026-12-02", last="1d")

    assert (since, until) == (
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2026, 12, 2, tzinfo=UTC),
    )
    with pytest.raises(ReportError, match="--last or --since"):
        timerange.window(since="2026-12-01", last="1d")
    with pytest.raises(ReportError, match="invalid --since 'yesterday'"):
        timerange.window(since="yesterday")


@pytest.fixture
def known_pages(tmp_path, monkeypatch):
    tables = write_known_tables(tmp_path)
    engine = SqlEngine(
        StaticResolver(
            {
                "main.chatbot.chat_events": str(tables["chat_events"]),
                "main.chatbot.feedback": str(tables["feedback"]),
            }
        )
    )
    monkeypatch.setattr(page_data, "SHARED", page_data.PageData(engine))
    monkeypatch.delenv(page_data.ENV_CHAT_TABLE, raising=False)
    monkeypatch.delenv(page_data.ENV_FEEDBACK_TABLE, raising=False)


def test_dashboard_render_builds_every_chart(known_pages) -> None:
    *figures, questions, recent, status = dashboard.render("all")

    by_id = dict(zip([graph for graph, _, _ in dashboard.CHARTS], figures, strict=True))
    assert by_id["chart-messages"]["data"][0]["y"] == [3, 2, 3, 1, 1]
    assert by_id["chart-feedback-model"]["data"][1]["y"] == [0, 2]
    assert by_id["chart-peak"]["data"][0]["z"][1][9] == 3  # Monday, 09:00
    assert len(questions.children[1].children) == 5
    assert len(recent.children[1].children) == 10
    assert "updated" in status.children[0].children
    assert len(status.children) == 1  # no error lines


def test_dashboard_shows_an_empty_range_as_such(known_pages) -> None:
    *figures, questions, _, _ = dashboard.render("1h")

    assert all(
        f["layout"]["annotations"][0]["text"] == "no data in this time range"
        for f in figures
    )
    assert questions.children == "no data in this time range"


def test_page_errors_are_shown_not_raised(monkeypatch) -> None:
    class Broken:
        def resolve(self, full_name):
            raise TableAccessError(f"cannot reach the catalog for {full_name}")

    monkeypatch.setattr(page_data, "SHARED", page_data.PageData(SqlEngine(Broken())))
    app = flask.Flask(__name__)
    monkeypatch.setenv(ingest_metrics.ENV_METRICS_URL, "http://127.0.0.1:9/metrics")

    *_, status = dashboard.render("24h")
    with app.app_context():
        cards, _, _, _, ingest_status, _ = ingestion.render("24h", None)

    assert [line.children for line in status.children[1:]] == [
        "cannot reach the catalog for main.chatbot.chat_events",
        "cannot reach the catalog for main.chatbot.feedback",
    ]
    assert "ingest metrics unavailable at http://127.0.0.1:9/metrics" in str(
        ingest_status.children[-1].children
    )
    assert cards[0].children[0].children == "–"


def test_table_cells_are_cut_to_one_line_of_text() -> None:
    long = "x" * 500
    table = pa.table({"question": ["short", long], "turns": [3.0, 1234.5]})

    rendered = dashboard.result_table(table, limit=10)

    rows = rendered.children[1].children
    cells = [[cell.children for cell in row.children] for row in rows]
    assert cells[0] == ["short", "3"]
    assert cells[1][0] == "x" * (dashboard.CELL_CHARS - 1) + "…"
    assert len(cells[1][0]) == dashboard.CELL_CHARS
    assert cells[1][1] == "1,234"
