"""VERSION AS OF and TIMESTAMP AS OF read the table as it was, or are refused."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime

import pyarrow as pa
import pytest
from click.testing import CliRunner
from deltalake import DeltaTable, write_deltalake

from chatlake.analytics.engine import SqlEngine
from chatlake.analytics.errors import SqlSyntaxError, TableAccessError
from chatlake.analytics.resolver import StaticResolver
from chatlake.analytics.testing import chat_rows, write_table
from chatlake.catalog.bootstrap import ensure_chat_tables
from chatlake.chat_tables import CHAT_EVENTS
from chatlake.cli import main

TABLE = "a.b.versions"


@pytest.fixture
def engine(tmp_path) -> SqlEngine:
    """Versions 0, 1, 2 hold 1, 3 and 6 rows, committed on 1, 2, 3 December."""
    location = tmp_path / "versions"
    for version in range(3):
        rows = pa.table({"v": [version] * (version + 1)})
        write_deltalake(location, rows, mode="append")
        committed = datetime(2026, 12, 1 + version, tzinfo=UTC).timestamp()
        log_file = location / "_delta_log" / f"{version:020d}.json"
        os.utime(log_file, (committed, committed))
    with SqlEngine(StaticResolver({TABLE: str(location)})) as engine:
        yield engine


def count(engine: SqlEngine, clause: str) -> int:
    return (
        engine.query(f"SELECT count(*) AS n FROM {TABLE} {clause}").column(0)[0].as_py()
    )


def test_version_as_of_reads_that_version(engine) -> None:
    counts = [count(engine, f"VERSION AS OF {v}") for v in (0, 1, 2)]

    assert counts == [1, 3, 6]
    assert count(engine, "") == 6


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        ("2026-12-01T12:00:00", 1),
        ("2026-12-02", 3),
        ("2026-12-02T23:59:59", 3),
        ("2026-12-03T01:00:00+02:00", 3),  # 23:00 UTC on 2 December
        ("2026-12-03T00:00:00", 6),
        ("2027-01-01T00:00:00Z", 6),
    ],
)
def test_timestamp_as_of_reads_the_version_current_then(engine, moment, expected):
    assert count(engine, f"TIMESTAMP AS OF '{moment}'") == expected


def test_one_query_reads_two_versions_of_a_table(engine) -> None:
    sql = (
        f"SELECT (SELECT count(*) FROM {TABLE} VERSION AS OF 0) AS first, "
        f"(SELECT count(*) FROM {TABLE}) AS now, "
        f"(SELECT max(v) FROM {TABLE} TIMESTAMP AS OF '2026-12-02T08:00:00') AS then"
    )

    assert engine.query(sql).to_pylist() == [{"first": 1, "now": 6, "then": 1}]


@pytest.mark.parametrize(
    ("clause", "error", "message"),
    [
        (
            "VERSION AS OF 3",
            TableAccessError,
            f"table {TABLE} has no version 3: its latest version is 2",
        ),
        (
            "TIMESTAMP AS OF '2026-11-30T23:00:00'",
            TableAccessError,
            f"table {TABLE} did not exist at 2026-11-30T23:00:00+00:00: "
            f"its first version is from 2026-12-01T00:00:00+00:00",
        ),
        (
            "TIMESTAMP AS OF 'yesterday'",
            SqlSyntaxError,
            f"invalid time travel \"{TABLE} TIMESTAMP AS OF 'yesterday'\": the "
            f"timestamp must be ISO 8601",
        ),
        (
            "VERSION AS OF 1.5",
            SqlSyntaxError,
            f"invalid time travel '{TABLE} VERSION AS OF 1.5': the version must be "
            f"a whole number >= 0",
        ),
        (
            "TIMESTAMP AS OF current_timestamp()",
            SqlSyntaxError,
            f"unsupported time travel '{TABLE} TIMESTAMP AS OF CURRENT_TIMESTAMP()': "
            f"use VERSION AS OF <number> or TIMESTAMP AS OF '<ISO 8601 time>'",
        ),
    ],
)
def test_impossible_time_travel_is_refused(engine, clause, error, message) -> None:
    with pytest.raises(error) as refused:
        count(engine, clause)

    assert str(refused.value).startswith(message)


def test_sql_command_time_travels_through_the_catalog(catalog_server) -> None:
    admin = catalog_server.admin_client
    ensure_chat_tables(admin, "main", "chatbot")
    location = admin.get_table("main.chatbot.chat_events")["storage_location"]
    before = DeltaTable(location).version()
    events = "main.chatbot.chat_events"
    sql = (
        f"SELECT (SELECT count(*) FROM {events} VERSION AS OF {before}) AS before, "
        f"(SELECT count(*) FROM {events}) AS now"
    )
    write_table(location, CHAT_EVENTS, chat_rows()[:4])

    result = CliRunner().invoke(
        main,
        [
            "sql",
            sql,
            "--json",
            "--catalog-url",
            catalog_server.url,
            "--data-dir",
            str(catalog_server.data_dir),
        ],
    )

    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == [{"before": 0, "now": 4}]
