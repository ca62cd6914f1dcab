"""How fast chatlake answers SQL over a large chat table, against DuckDB's floor.

Generates N chat turns (default 10 million) and 10% as many ratings with
DuckDB, appends them through the ingest server's storage (write-ahead log,
then Delta commits by its committer, deduplicated on each table's key),
compacts them as chatlake's maintenance does (128k-row groups), and also
writes the same rows to one Parquet file each. Then, for the three C18 guide
queries and every report, it times SqlEngine (guard, translation, Delta
snapshot, DuckDB) against DuckDB running the identical translated SQL
straight on the Parquet files, and prints the ratio. Last, it
times the dashboard's render (all reports of the page, server side) for two
time ranges, and its first paint in chromium (benchmarks/first_paint.py).

    .venv/bin/python benchmarks/analytics.py            # 10M rows
    .venv/bin/python benchmarks/analytics.py --rows 1000000 --keep /tmp/bench
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
from deltalake import DeltaTable
from prometheus_client import REGISTRY

from chatlake.analytics import page_data, reports
from chatlake.analytics.engine import SqlEngine, prepare
from chatlake.analytics.resolver import StaticResolver
from chatlake.analytics.testing import table_schema
from chatlake.app import dashboard
from chatlake.chat_tables import CHAT_EVENTS, DEDUPE_KEY_PROPERTY, FEEDBACK
from chatlake.ingest.maintenance import optimize_table
from chatlake.ingest.storage import Storage, StorageSettings, TableTarget

EVENTS = reports.DEFAULT_CHAT_EVENTS
RATINGS = reports.DEFAULT_FEEDBACK
BATCH_ROWS = 1_000_000  # rows DuckDB generates per query
# Rows per storage append: ~7.7 MB WAL frames, the size of one large SDK
# message (the SDK sends at most 10,420,224 bytes per message).
APPEND_ROWS = 25_000
SPAN_DAYS = 30

C18 = {
    "c18_recent": f"""
        SELECT telemetry_id, user_message, assistant_message, response_time_ms,
               ingestion_time
        FROM {EVENTS}
        WHERE ingestion_time >= current_timestamp() - INTERVAL 1 DAY
        ORDER BY ingestion_time DESC LIMIT 100""",
    "c18_per_day": f"""
        SELECT DATE(ingestion_time) AS date, AVG(response_time_ms) AS avg_ms,
               MAX(response_time_ms) AS max_ms, COUNT(*) AS conversations
        FROM {EVENTS} GROUP BY DATE(ingestion_time) ORDER BY date DESC""",
    "c18_prefixes": f"""
        SELECT SUBSTRING(user_message, 1, 100) AS prefix, COUNT(*) AS count
        FROM {EVENTS} GROUP BY SUBSTRING(user_message, 1, 100)
        ORDER BY count DESC LIMIT 20""",
}

# Columns of chat_events generated from the row number i (DuckDB SQL).
_TURNS = """
SELECT
  'turn-' || i AS telemetry_id,
  ts AS event_time,
  ts + to_microseconds((hash(i, 'lag') % 2000000)::BIGINT) AS ingestion_time,
  'session-' || (i // 4) AS session_id,
  'user-' || (hash(i // 4) % 5000) AS user_id,
  (i % 4)::INT AS turn_index,
  'bench' AS app_name, '1.0' AS app_version, 'chat' AS endpoint,
  ['model-a', 'model-b', 'model-c'][(1 + hash(i, 'model') % 3)::BIGINT] AS model,
  'How do I ' || ['reset', 'export', 'share', 'delete', 'rename'][(1 + i % 5)::BIGINT]
    || ' my ' || ['account', 'report', 'table', 'dashboard'][(1 + (i // 5) % 4)::BIGINT]
    || ' (variant ' || (hash(i, 'q') % 40) || ')?' AS user_message,
  repeat('Here is how. ', 8) AS assistant_message,
  (200 + hash(i, 'rt') % 4000)::BIGINT AS response_time_ms,
  (50 + hash(i, 'ttft') % 600)::BIGINT AS ttft_ms,
  (10 + hash(i, 'in') % 400)::INT AS input_tokens,
  (20 + hash(i, 'out') % 800)::INT AS output_tokens,
  'stop' AS finish_reason,
  CASE WHEN hash(i, 'err') % 50 = 0 THEN 'error' ELSE 'ok' END AS status,
  CASE WHEN hash(i, 'err') % 50 = 0
       THEN ['timeout', 'rate_limit'][(1 + i % 2)::BIGINT] END AS error_type,
  NULL::VARCHAR AS error_message,
  'req-' || i AS request_id
FROM (
  -- Rows arrive in time order, as the ingest server appends them.
  SELECT i,
    $end - to_microseconds(($span_us::DOUBLE * ($rows - i) / $rows)::BIGINT) AS ts
  FROM range($start, $stop) AS t(i)
)
"""

_RATINGS = """
SELECT
  'fb-' || i AS feedback_id,
  'turn-' || (i * 10) AS telemetry_id,
  $end - to_microseconds(($span_us::DOUBLE * ($rows - i) / $rows)::BIGINT)
    + INTERVAL 30 SECOND AS event_time,
  NULL::TIMESTAMPTZ AS ingestion_time,
  'session-' || (i * 10 // 4) AS session_id,
  NULL::VARCHAR AS user_id,
  CASE WHEN hash(i, 'rating') % 4 = 0 THEN -1 ELSE 1 END AS rating,
  NULL::VARCHAR AS comment
FROM range($start, $stop) AS t(i)
"""


def generate(root: Path, rows: int) -> dict[str, Path]:
    """Write both tables through ingest storage, compact them, copy to Parquet."""
    end = datetime.now(UTC)
    logging.getLogger("chatlake.ingest.committer").addFilter(_quiet_evictions)
    paths = {}
    for name, sql, count, spec, full_name in (
        ("chat_events", _TURNS, rows, CHAT_EVENTS, EVENTS),
        ("feedback", _RATINGS, rows // 10, FEEDBACK, RATINGS),
    ):
        location, parquet = root / name, root / f"{name}.parquet"
        target = TableTarget(
            full_name,
            location.as_uri(),
            table_schema(spec),
            dedupe_key=spec.properties[DEDUPE_KEY_PROPERTY],
        )
        # A directory per table: in a shared one, the second table's start
        # would replay the first table's log and reload its dedupe keys.
        storage_dir = root / f"storage-{name}"
        timing = asyncio.run(ingest(storage_dir, target, sql, count, end))
        shutil.rmtree(storage_dir)

        started = time.perf_counter()
        # As `chatlake tables optimize` and the ingest server's maintenance do.
        optimize_table(full_name, location.as_uri(), vacuum=False)
        compacted = time.perf_counter()
        copy_to_parquet(location, parquet)
        copied = time.perf_counter()

        print(timing.summary(name, count))
        print(
            f"{name}: compacted in {compacted - started:.1f} s, "
            f"copied to one Parquet file in {copied - compacted:.1f} s"
        )
        paths[name] = location
        paths[f"{name}.parquet"] = parquet
    return paths


def _quiet_evictions(record: logging.LogRecord) -> bool:
    # The dedupe index keeps 1M keys by design, so at millions of rows this
    # warning comes with every commit; the summary line gives the total.
    return "dedupe index full" not in str(record.msg)


@dataclass
class IngestTiming:
    """Where ingest() spent its time: DuckDB making rows, storage taking them."""

    table: str
    sql_s: float = 0.0
    storage_s: float = 0.0

    def summary(self, name: str, count: int) -> str:
        labels = {"table": self.table}
        commits = REGISTRY.get_sample_value("chatlake_ingest_commits_total", labels)
        forgotten = REGISTRY.get_sample_value(
            "chatlake_ingest_dedupe_evicted_keys_total", labels
        )
        return (
            f"{name}: {count:,} rows made by DuckDB in {self.sql_s:.1f} s, "
            f"stored in {self.storage_s:.1f} s "
            f"({count / self.storage_s:,.0f} rows/s through storage), "
            f"{commits or 0:.0f} Delta commits, "
            f"{forgotten or 0:,.0f} dedupe keys forgotten early"
        )


async def ingest(
    data_dir: Path, target: TableTarget, sql: str, count: int, end: datetime
) -> IngestTiming:
    """Append ``count`` generated rows to ``target`` and wait for their commits.

    Storage time runs from each chunk's first append until its last one is
    durable, plus the final flush; commits also run meanwhile, in the
    committer's thread, while DuckDB makes the next chunk.
    """
    timing = IngestTiming(target.full_name)
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    storage = Storage(data_dir, StorageSettings(maintenance_interval_s=0))
    await storage.start()
    try:
        for first in range(0, count, BATCH_ROWS):
            started = time.perf_counter()
            chunk = generated_rows(connection, sql, first, count, end, target.schema)
            timing.sql_s += time.perf_counter() - started

            started = time.perf_counter()
            # One append at a time keeps the rows in time order in the table.
            for batch in chunk.to_batches(max_chunksize=APPEND_ROWS):
                await storage.append(target, batch)
            timing.storage_s += time.perf_counter() - started

        started = time.perf_counter()
        if not await storage.flush():
            raise SystemExit(f"{target.full_name}: a Delta commit failed")
        timing.storage_s += time.perf_counter() - started
    finally:
        await storage.stop()
        connection.close()
    return timing


def generated_rows(
    connection: duckdb.DuckDBPyConnection,
    sql: str,
    first: int,
    count: int,
    end: datetime,
    schema: pa.Schema,
) -> pa.Table:
    """Rows ``first`` up to ``first + BATCH_ROWS`` of ``sql``, as Arrow."""
    params = {
        "start": first,
        "stop": min(first + BATCH_ROWS, count),
        "end": end,
        "span_us": SPAN_DAYS * 86_400_000_000,
        "rows": count,
    }
    return connection.sql(sql, params=params).to_arrow_table().cast(schema)


def copy_to_parquet(location: Path, parquet: Path) -> None:
    """The table's current rows as one Parquet file: the floor's input."""
    connection = duckdb.connect()
    connection.register("source", DeltaTable(str(location)).to_pyarrow_dataset())
    connection.execute(f"COPY source TO '{parquet}' (FORMAT parquet)")
    connection.close()


def timed(run, repeats: int) -> float:
    """Median wall time in ms of ``repeats`` runs after one warm-up."""
    run()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def floor_runner(paths: dict[str, Path], sql: str, params: dict):
    """DuckDB running the engine's own translated SQL over the Parquet files."""
    [prepared] = prepare(sql)
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    for view, table in zip(prepared.views, prepared.tables, strict=True):
        parquet = paths[f"{table.rsplit('.', 1)[-1]}.parquet"]
        connection.execute(
            f"CREATE VIEW {view} AS SELECT * FROM read_parquet('{parquet}')"
        )
    bound = prepared.bind(params)
    sql_text = prepared.fast_sql or prepared.duckdb_sql
    return lambda: connection.sql(sql_text, params=bound).to_arrow_table()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="Keep (or reuse) data in this dir.")
    parser.add_argument(
        "--chromium",
        default=os.environ.get("CHATLAKE_CHROMIUM", "/usr/bin/chromium"),
        help="Chromium for the first-paint measurement (skipped if absent).",
    )
    parser.add_argument(
        "--loads", type=int, default=7, help="First paints timed per build (7)."
    )
    args = parser.parse_args()
    for flag, value in (("--rows", args.rows), ("--repeats", args.repeats)):
        if value < 1:
            parser.error(f"{flag} {value}: must be at least 1")
    if args.loads < 1:
        parser.error(f"--loads {args.loads}: at least one load is needed")

    root = args.keep or Path(tempfile.mkdtemp(prefix="chatlake-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        run(args, root)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


def run(args: argparse.Namespace, root: Path) -> None:
    if (root / "chat_events.parquet").exists():
        paths = {n: root / n for n in ("chat_events", "feedback")}
        paths |= {
            f"{n}.parquet": root / f"{n}.parquet" for n in ("chat_events", "feedback")
        }
        print(f"reusing data in {root}")
    else:
        paths = generate(root, args.rows)

    engine = SqlEngine(
        StaticResolver(
            {
                EVENTS: str(paths["chat_events"]),
                RATINGS: str(paths["feedback"]),
            }
        )
    )
    tables = reports.ReportTables()
    everything = {"since": reports.EARLIEST, "until": reports.LATEST}
    cases = {name: (sql, {}) for name, sql in C18.items()}
    for report in reports.list_reports():
        if "${stream_events}" in report.sql:
            continue
        cases[f"report {report.name}"] = (
            reports.report_sql(report, tables),
            everything,
        )

    print(f"\n{'query':34} {'chatlake ms':>12} {'parquet ms':>11} {'ratio':>7}")
    for name, (sql, params) in cases.items():
        ours = timed(lambda s=sql, p=params: engine.query(s, p), args.repeats)
        floor = timed(floor_runner(paths, sql, params), args.repeats)
        print(f"{name:34} {ours:12.0f} {floor:11.0f} {ours / floor:7.2f}")

    page_data.SHARED = page_data.PageData(engine)
    # Time the reports themselves, not a run shared from the previous call.
    shared_s, page_data.SHARE_RESULTS_S = page_data.SHARE_RESULTS_S, 0.0
    print()
    for range_key in ("24h", "30d"):
        started = time.perf_counter()
        dashboard.render(range_key)
        first = (time.perf_counter() - started) * 1000
        again = timed(lambda k=range_key: dashboard.render(k), 1)
        print(
            f"dashboard first render ({range_key}): {first:.0f} ms, warm {again:.0f} ms"
        )
    page_data.SHARE_RESULTS_S = shared_s
    if Path(args.chromium).is_file():
        # The sibling script: benchmarks/ is on sys.path when a script there runs.
        import first_paint

        print()
        first_paint.measure(root, args.loads, args.chromium)
    else:
        print(f"no chromium at {args.chromium}: first paint not measured")


if __name__ == "__main__":
    main()
