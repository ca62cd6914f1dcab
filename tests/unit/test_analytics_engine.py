"""SqlEngine over real Delta tables: snapshots, translation fixes and failures."""

from __future__ import annotations

import dataclasses
import os
from datetime import UTC, date, datetime

import duckdb
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from chatlake.analytics import engine as engine_module
from chatlake.analytics import snapshots
from chatlake.analytics.engine import SqlEngine, prepare
from chatlake.analytics.errors import QueryError, TableAccessError
from chatlake.analytics.resolver import ResolvedTable, StaticResolver
from chatlake.analytics.testing import chat_rows, table_schema, write_table
from chatlake.chat_tables import CHAT_EVENTS
from chatlake.errors import ChatlakeError


@pytest.fixture
def events(tmp_path):
    location = tmp_path / "chat_events"
    write_table(location, CHAT_EVENTS, chat_rows()[:3])
    return location


@pytest.fixture
def engine(events) -> SqlEngine:
    return SqlEngine(StaticResolver({"main.chatbot.chat_events": str(events)}))


def test_each_query_reads_the_current_snapshot(engine: SqlEngine, events) -> None:
    sql = "SELECT count(*) AS n FROM main.chatbot.chat_events"
    before = engine.query(sql).to_pylist()

    write_table(events, CHAT_EVENTS, chat_rows()[3:])

    assert before == [{"n": 3}]
    assert engine.query(sql).to_pylist() == [{"n": 10}]


def test_qualified_columns_and_self_joins(engine: SqlEngine) -> None:
    sql = """
        SELECT chat_events.telemetry_id, b.telemetry_id AS next_id
        FROM main.chatbot.chat_events
        JOIN main.chatbot.chat_events AS b
          ON b.turn_index = chat_events.turn_index
         AND b.event_time > chat_events.event_time
        ORDER BY 1, 2
    """

    rows = [tuple(r.values()) for r in engine.query(sql).to_pylist()]

    assert rows == [("t01", "t02"), ("t01", "t03"), ("t02", "t03")]


def test_databricks_functions_keep_databricks_meaning(engine: SqlEngine) -> None:
    sql = """
        SELECT dayofweek(event_time) AS weekday, percentile(response_time_ms, 0.25)
               AS p25, count_if(status = 'ok') AS ok, sum(input_tokens) AS tokens
        FROM main.chatbot.chat_events GROUP BY 1
    """

    table = engine.query(sql)

    assert table.to_pylist() == [{"weekday": 2, "p25": 150.0, "ok": 3, "tokens": 42}]
    assert table.schema.field("ok").type == pa.int64()
    assert table.schema.field("tokens").type == pa.int64()


def test_parameters_are_bound_not_pasted(engine: SqlEngine) -> None:
    sql = "SELECT count(*) AS n FROM main.chatbot.chat_events WHERE user_message = :m"

    assert engine.query(sql, {"m": "help"}).to_pylist() == [{"n": 1}]
    assert engine.query(sql, {"m": "x' OR '1'='1"}).to_pylist() == [{"n": 0}]


def test_missing_parameter_is_named(engine: SqlEngine) -> None:
    with pytest.raises(QueryError, match="no value given for parameter"):
        engine.query("SELECT * FROM main.chatbot.chat_events WHERE model = :model")


def test_query_takes_one_statement_and_scripts_take_many(engine: SqlEngine) -> None:
    with pytest.raises(QueryError, match="expected one statement, got 2"):
        engine.query("SELECT 1; SELECT 2")

    results = engine.run_script("SELECT 1 AS a; SELECT 'b' AS b")

    assert [r.to_pylist() for r in results] == [[{"a": 1}], [{"b": "b"}]]


def test_unknown_table_is_an_access_error(engine: SqlEngine) -> None:
    with pytest.raises(TableAccessError, match="main.chatbot.nope does not exist"):
        engine.query("SELECT * FROM main.chatbot.nope")


def test_duckdb_failures_become_query_errors(engine: SqlEngine) -> None:
    with pytest.raises(QueryError, match="query failed: .*no_such_column"):
        engine.query("SELECT no_such_column FROM main.chatbot.chat_events")


def test_table_without_delta_data_reads_as_empty(tmp_path) -> None:
    schema = table_schema(CHAT_EVENTS)
    resolver = StaticResolver({})
    resolver.resolve = lambda name: ResolvedTable(name, str(tmp_path / "none"), schema)

    rows = SqlEngine(resolver).query("SELECT count(*) AS n FROM a.b.c").to_pylist()

    assert rows == [{"n": 0}]


def test_missing_delta_table_without_schema_names_the_location(tmp_path) -> None:
    engine = SqlEngine(StaticResolver({"a.b.c": str(tmp_path / "gone")}))

    with pytest.raises(TableAccessError, match="a.b.c has no Delta table at"):
        engine.query("SELECT * FROM a.b.c")


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM read_csv('/etc/hostname')",
        "SET enable_external_access = true",
        "INSTALL httpfs",
    ],
)
def test_the_duckdb_connection_is_a_second_fence(sql: str) -> None:
    # Even a query that slipped past the guard cannot reach files or settings.
    with engine_module._connect() as connection, pytest.raises(duckdb.Error):
        connection.execute(sql)


def test_all_errors_share_the_chatlake_root() -> None:
    assert issubclass(QueryError, ChatlakeError)
    assert issubclass(TableAccessError, ChatlakeError)


def test_chatlake_tables_are_read_by_duckdbs_parquet_reader(events) -> None:
    snapshot = snapshots.load(ResolvedTable("a.b.c", f"file://{events}"))

    assert snapshot.dataset is None
    assert snapshot.directory == f"{events.resolve()}/"
    assert len(snapshot.files) == 1


def test_partitioned_tables_go_through_arrow(tmp_path) -> None:
    rows = pa.Table.from_pylist(chat_rows(), schema=table_schema(CHAT_EVENTS))
    write_deltalake(str(tmp_path / "t"), rows, partition_by=["model"])
    engine = SqlEngine(StaticResolver({"a.b.c": str(tmp_path / "t")}))

    result = engine.query(
        "SELECT model, count(*) AS n FROM a.b.c GROUP BY 1 ORDER BY 1"
    )

    assert snapshots.load(ResolvedTable("a.b.c", str(tmp_path / "t"))).dataset
    assert result.to_pylist() == [
        {"model": "model-a", "n": 5},
        {"model": "model-b", "n": 5},
    ]


def test_a_vacuumed_file_is_read_again_from_a_new_snapshot(events) -> None:
    # Compact, then delete the old files as an eager vacuum would, between the
    # listing the engine first gets and the read.
    write_table(events, CHAT_EVENTS, chat_rows()[3:])
    stale = snapshots.load(ResolvedTable("a.b.c", str(events)))
    DeltaTable(str(events)).optimize.compact()
    DeltaTable(str(events)).vacuum(
        retention_hours=0, enforce_retention_duration=False, dry_run=False
    )
    calls = []
    real_load = snapshots.load

    def first_stale(table):
        calls.append(table)
        return stale if len(calls) == 1 else real_load(table)

    engine = SqlEngine(StaticResolver({"a.b.c": str(events)}))
    original, snapshots.load = snapshots.load, first_stale
    try:
        rows = engine.query("SELECT count(*) AS n FROM a.b.c").to_pylist()
    finally:
        snapshots.load = original

    assert rows == [{"n": 10}]
    assert len(calls) == 2


def test_utc_arithmetic_matches_the_calendar_before_1970(tmp_path) -> None:
    # 31 December 1969, 23:30 UTC, a Wednesday (weekday 4 counting Sunday as 1).
    row = chat_rows()[0]
    moment = datetime(1969, 12, 31, 23, 30, tzinfo=UTC)
    row.update(event_time=moment, ingestion_time=moment, user_message="2026-12-01")
    write_table(tmp_path / "old", CHAT_EVENTS, [row])
    engine = SqlEngine(StaticResolver({"a.b.c": str(tmp_path / "old")}))
    sql = """
        SELECT DATE(event_time) AS day, date_trunc('HOUR', event_time) AS hour_start,
               date_trunc('DAY', event_time) AS day_start, hour(event_time) AS hour,
               dayofweek(event_time) AS weekday, date_trunc('MONTH', event_time) AS m
        FROM a.b.c
    """

    ran = []
    real_execute = engine_module._execute

    def recording(cursor, text, params):
        ran.append(text)
        return real_execute(cursor, text, params)

    engine_module._execute = recording
    try:
        rows = engine.query(sql).to_pylist()
    finally:
        engine_module._execute = real_execute

    assert ran == [prepare(sql)[0].fast_sql]  # no fallback was needed
    assert "EPOCH_US" in ran[0]
    assert rows == [
        {
            "day": date(1969, 12, 31),
            "hour_start": datetime(1969, 12, 31, 23, tzinfo=UTC),
            "day_start": datetime(1969, 12, 31, tzinfo=UTC),
            "hour": 23,
            "weekday": 4,
            "m": datetime(1969, 12, 1, tzinfo=UTC),
        }
    ]


def test_dates_of_text_columns_fall_back_to_the_plain_translation(engine) -> None:
    sql = "SELECT DATE(user_message) AS d FROM main.chatbot.chat_events"

    rows = engine.query(sql.replace("user_message", "'2026-12-01'")).to_pylist()
    with pytest.raises(QueryError, match="Conversion Error"):
        engine.query(sql)

    assert rows == [{"d": date(2026, 12, 1)}] * 3


@pytest.mark.parametrize("newest_first", [False, True])
def test_files_written_before_a_column_was_added(tmp_path, newest_first) -> None:
    location = str(tmp_path / "evolving")
    write_deltalake(location, pa.table({"a": [1]}))
    write_deltalake(
        location, pa.table({"a": [2], "c": ["x"]}), mode="append", schema_mode="merge"
    )
    real_load = snapshots.load

    def ordered(table):
        found = real_load(table)
        files = sorted(found.files, key=lambda f: os.path.getmtime(f))
        files = files[::-1] if newest_first else files
        # What load() decides for this order: only an old first file needs it.
        return dataclasses.replace(
            found, files=tuple(files), union_by_name=not newest_first
        )

    snapshots.load = ordered
    try:
        engine = SqlEngine(StaticResolver({"a.b.c": location}))
        rows = engine.query("SELECT a, c FROM a.b.c ORDER BY a").to_pylist()
    finally:
        snapshots.load = real_load

    assert rows == [{"a": 1, "c": None}, {"a": 2, "c": "x"}]
