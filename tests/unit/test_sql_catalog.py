"""SQL through the real catalog: SELECT checked per caller, and the CLI commands."""

from __future__ import annotations

import csv
import io
import json
import socket

import pytest
from click.testing import CliRunner

from chatlake.analytics.engine import SqlEngine
from chatlake.analytics.errors import TableAccessError
from chatlake.analytics.testing import chat_rows, feedback_rows, write_table
from chatlake.catalog.bootstrap import ensure_chat_tables
from chatlake.catalog.client import CatalogClient
from chatlake.chat_tables import CHAT_EVENTS, FEEDBACK
from chatlake.cli import main

EVENTS = "main.chatbot.chat_events"
PER_MODEL = (
    "SELECT model, count(*) AS turns, max(response_time_ms) AS slowest "
    f"FROM {EVENTS} GROUP BY model ORDER BY model"
)


@pytest.fixture
def catalog(catalog_server):
    """The catalog with both chat tables filled with the known rows."""
    admin = catalog_server.admin_client
    ensure_chat_tables(admin, "main", "chatbot")
    for spec, rows in ((CHAT_EVENTS, chat_rows()), (FEEDBACK, feedback_rows())):
        location = admin.get_table(f"main.chatbot.{spec.name}")["storage_location"]
        write_table(location, spec, rows)
    return catalog_server


def principal(catalog_server, name: str, grants: list[tuple[str, str, str]]):
    admin = catalog_server.admin_client
    credentials = admin.create_principal(name)
    for privilege, kind, full_name in grants:
        admin.grant(privilege, kind, full_name, name)
    return CatalogClient(
        catalog_server.url, credentials["client_id"], credentials["client_secret"]
    )


def test_admin_reads_catalog_tables(catalog) -> None:
    rows = SqlEngine(catalog.admin_client).query(PER_MODEL).to_pylist()

    assert rows == [
        {"model": "model-a", "turns": 5, "slowest": 900},
        {"model": "model-b", "turns": 5, "slowest": 1000},
    ]


def test_select_is_checked_per_table_with_the_callers_credentials(catalog) -> None:
    grants = [
        ("USE CATALOG", "catalog", "main"),
        ("USE SCHEMA", "schema", "main.chatbot"),
        ("SELECT", "table", EVENTS),
    ]
    with principal(catalog, "analyst", grants) as analyst:
        engine = SqlEngine(analyst)
        counted = engine.query(f"SELECT count(*) AS n FROM {EVENTS}").to_pylist()
        with pytest.raises(
            TableAccessError, match="no SELECT access to table main.chatbot.feedback"
        ):
            engine.query("SELECT count(*) FROM main.chatbot.feedback")

    assert counted == [{"n": 10}]


def test_modify_alone_does_not_allow_reading(catalog) -> None:
    grants = [
        ("USE CATALOG", "catalog", "main"),
        ("USE SCHEMA", "schema", "main.chatbot"),
        ("MODIFY", "table", EVENTS),
    ]
    with (
        principal(catalog, "writer", grants) as writer,
        pytest.raises(
            TableAccessError, match="no SELECT access to table main.chatbot.chat_events"
        ),
    ):
        SqlEngine(writer).query(f"SELECT * FROM {EVENTS}")


def test_unknown_table_is_refused_by_the_catalog(catalog) -> None:
    with pytest.raises(TableAccessError, match="main.chatbot.nope"):
        SqlEngine(catalog.admin_client).query("SELECT * FROM main.chatbot.nope")


def cli(catalog, *args: str):
    options = ["--catalog-url", catalog.url, "--data-dir", str(catalog.data_dir)]
    return CliRunner().invoke(main, [*args, *options], catch_exceptions=False)


def test_sql_command_prints_an_aligned_table(catalog) -> None:
    result = cli(catalog, "sql", PER_MODEL)

    assert result.exit_code == 0, result.output
    lines = [line.rstrip() for line in result.output.splitlines() if line.strip()]
    assert lines[0].split() == ["model", "turns", "slowest"]
    assert lines[2].split() == ["model-a", "5", "900"]
    assert lines[3].split() == ["model-b", "5", "1000"]
    assert lines[4].strip() == "2 rows"


def test_sql_command_csv_and_json(catalog) -> None:
    as_csv = cli(catalog, "sql", PER_MODEL, "--format", "csv")
    as_json = cli(catalog, "sql", PER_MODEL, "--json")

    assert list(csv.reader(io.StringIO(as_csv.output))) == [
        ["model", "turns", "slowest"],
        ["model-a", "5", "900"],
        ["model-b", "5", "1000"],
    ]
    assert json.loads(as_json.output) == [
        {"model": "model-a", "turns": 5, "slowest": 900},
        {"model": "model-b", "turns": 5, "slowest": 1000},
    ]


def test_sql_command_runs_a_script_file(catalog, tmp_path) -> None:
    script = tmp_path / "two.sql"
    script.write_text(
        f"-- two answers\nSELECT count(*) AS n FROM {EVENTS};\n"
        "SELECT count(*) AS ratings FROM main.chatbot.feedback;\n"
    )

    result = cli(catalog, "sql", "--file", str(script), "--format", "json")

    assert result.exit_code == 0, result.output
    assert [json.loads(line) for line in result.output.splitlines()] == [
        [{"n": 10}],
        [{"ratings": 6}],
    ]


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        (
            f"DELETE FROM {EVENTS}",
            "Error: only SELECT queries are allowed; refused DELETE",
        ),
        (
            "SELECT * FROM read_parquet('/etc/x')",
            "Error: function read_parquet() is not allowed",
        ),
        (
            "SELECT nope FROM main.chatbot.chat_events",
            "Error: query failed: Binder Error",
        ),
        ("SELEC", "Error: SQL syntax error"),
    ],
)
def test_sql_command_errors_are_one_clean_line(catalog, sql, message) -> None:
    before = cli(catalog, "sql", f"SELECT count(*) AS n FROM {EVENTS}", "--json")

    result = cli(catalog, "sql", sql)

    assert result.exit_code == 1
    assert result.output.startswith(message)
    assert len(result.output.strip().splitlines()) == 1
    after = cli(catalog, "sql", f"SELECT count(*) AS n FROM {EVENTS}", "--json")
    assert json.loads(after.output) == json.loads(before.output) == [{"n": 10}]


def test_report_command_lists_and_runs_reports(catalog) -> None:
    listing = cli(catalog, "report", "--json")
    latency = cli(catalog, "report", "tokens_by_model", "--json")
    windowed = cli(
        catalog,
        "report",
        "messages_per_hour",
        "--since",
        "2026-12-02",
        "--format",
        "csv",
    )

    assert "feedback_by_model" in [r["name"] for r in json.loads(listing.output)]
    assert [r["total_tokens"] for r in json.loads(latency.output)] == [179, 118]
    assert windowed.output == "hour,messages,users\n2026-12-02T00:00:00+00:00,1,1\n"


def test_report_command_refuses_bad_options(catalog) -> None:
    unknown = cli(catalog, "report", "nope")
    bad_span = cli(catalog, "report", "latency", "--last", "soon")

    assert unknown.exit_code == 1
    assert "unknown report 'nope'" in unknown.output
    assert bad_span.exit_code == 1
    assert "invalid time span 'soon'" in bad_span.output


C18_PER_DAY = """
SELECT
  DATE(ingestion_time) AS date,
  AVG(response_time_ms) AS avg_response_time_ms,
  MAX(response_time_ms) AS max_response_time_ms,
  COUNT(*) AS conversations
FROM main.chatbot.chat_events
GROUP BY DATE(ingestion_time)
ORDER BY date DESC
"""


def test_c18_guide_query_runs_verbatim_through_the_command(catalog) -> None:
    result = cli(catalog, "sql", C18_PER_DAY, "--format", "csv")

    assert result.exit_code == 0, result.output
    assert result.output == (
        "date,avg_response_time_ms,max_response_time_ms,conversations\n"
        "2026-12-02,950.0,1000,2\n"
        "2026-12-01,700.0,800,3\n"
        "2026-11-30,300.0,500,5\n"
    )


def test_unreachable_catalog_is_one_clear_line() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    options = [
        "--catalog-url",
        f"http://127.0.0.1:{closed}",
        "--client-id",
        "x",
        "--client-secret",
        "y",
    ]

    result = CliRunner().invoke(main, ["sql", f"SELECT 1 FROM {EVENTS}", *options])

    assert result.exit_code == 1
    assert result.output.startswith(
        f"Error: cannot check the credentials of client id 'x': cannot reach the "
        f"catalog at http://127.0.0.1:{closed}"
    )
