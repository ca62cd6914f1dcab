"""Storage end to end on real Delta tables: both durability modes, replay after a
crash, exactly-once across a crash between commit and segment deletion, dedupe
across restarts, settings."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from deltalake import DeltaTable
from prometheus_client import REGISTRY

from chatlake.errors import ConfigError
from chatlake.ingest import wal as wal_module
from chatlake.ingest.committer import committed_version
from chatlake.ingest.storage import Storage, StorageSettings, TableTarget
from chatlake.ingest.storage_errors import (
    BatchRejectedError,
    StorageClosedError,
    StorageError,
    WalError,
)

SCHEMA = pa.schema(
    [
        pa.field("telemetry_id", pa.string(), nullable=False),
        pa.field("ingestion_time", pa.timestamp("us", tz="UTC")),
        pa.field("user_message", pa.string()),
    ]
)
QUIET = {"maintenance_interval_s": 0}


def target(tmp_path, name="t", dedupe_key=None) -> TableTarget:
    location = (tmp_path / "tables" / name).as_uri()
    return TableTarget(f"main.chatbot.{name}", location, SCHEMA, dedupe_key)


def rows(*ids: str) -> pa.RecordBatch:
    now = pa.scalar(time.time_ns() // 1000, pa.timestamp("us", tz="UTC"))
    return pa.record_batch(
        [
            pa.array(ids, pa.string()),
            pa.array([now] * len(ids), pa.timestamp("us", tz="UTC")),
            pa.array([f"message {i} 😀" for i in ids]),
        ],
        schema=SCHEMA,
    )


def sql_ids(tgt: TableTarget) -> list[str]:
    """Row ids read back through SQL, as the analytics side reads them."""
    connection = duckdb.connect()
    connection.register("t", DeltaTable(tgt.location).to_pyarrow_dataset())
    result = connection.sql("select telemetry_id from t order by telemetry_id")
    ids = [row[0] for row in result.fetchall()]
    connection.close()
    return ids


def local_path(location: str) -> Path:
    return Path(location.removeprefix("file://"))


def abandon(storage: Storage) -> None:
    """Leave storage as a SIGKILL would: no final commit, files and locks let go."""
    for pipeline in storage._tables.values():
        pipeline.committer._closing = True
        pipeline.committer._task.cancel()
        if pipeline.wal is not None:
            pipeline.wal.close_file()
        if pipeline.lock_fd is not None:
            os.close(pipeline.lock_fd)
    storage._tables.clear()
    storage._running = False


async def test_wal_mode_lands_concurrent_appends_to_two_tables(tmp_path):
    storage = Storage(
        tmp_path / "data", StorageSettings(commit_interval_s=0.05, **QUIET)
    )
    first, second = target(tmp_path, "a"), target(tmp_path, "b")
    await storage.start()

    await asyncio.gather(
        *(storage.append(first, rows(f"a{i:03d}")) for i in range(100)),
        *(storage.append(second, rows(f"b{i:03d}", f"c{i:03d}")) for i in range(50)),
    )
    await storage.stop()

    assert sql_ids(first) == [f"a{i:03d}" for i in range(100)]
    assert sql_ids(second) == sorted(
        [f"b{i:03d}" for i in range(50)] + [f"c{i:03d}" for i in range(50)]
    )


async def test_an_acked_append_is_in_the_wal_before_any_commit(tmp_path):
    settings = StorageSettings(commit_interval_s=3600, **QUIET)
    storage = Storage(tmp_path / "data", settings)
    tgt = target(tmp_path)
    await storage.start()

    await storage.append(tgt, rows("x1", "x2"))

    assert not DeltaTable.is_deltatable(tgt.location)
    wal_dir = storage.wal_root / tgt.full_name
    log = wal_module.WriteAheadLog(wal_dir, segment_bytes=1 << 20, label="peek")
    records = log.open(committed_seq=-1)
    log.close_file()
    assert [r.batch.column("telemetry_id").to_pylist() for r in records] == [
        ["x1", "x2"]
    ]
    await storage.stop()
    assert sql_ids(tgt) == ["x1", "x2"]


async def test_restart_replays_what_the_crash_left_uncommitted(tmp_path):
    settings = StorageSettings(commit_interval_s=3600, **QUIET)
    tgt = target(tmp_path)
    crashed = Storage(tmp_path / "data", settings)
    await crashed.start()
    for i in range(10):
        await crashed.append(tgt, rows(f"r{i}"))
    abandon(crashed)

    restarted = Storage(tmp_path / "data", settings)
    await restarted.start()

    assert sql_ids(tgt) == [f"r{i}" for i in range(10)]
    await restarted.stop()
    assert sql_ids(tgt) == [f"r{i}" for i in range(10)]


async def test_a_crash_after_commit_before_segment_deletion_writes_nothing_twice(
    tmp_path, monkeypatch
):
    settings = StorageSettings(commit_interval_s=3600, wal_segment_bytes=512, **QUIET)
    tgt = target(tmp_path)
    crashed = Storage(tmp_path / "data", settings)
    await crashed.start()
    for i in range(6):
        await crashed.append(tgt, rows(f"r{i}"))
    monkeypatch.setattr(wal_module.WriteAheadLog, "release_through", lambda *a: 0)
    assert await crashed.flush()
    await crashed.append(tgt, rows("late"))
    abandon(crashed)
    monkeypatch.undo()

    restarted = Storage(tmp_path / "data", settings)
    await restarted.start()
    await restarted.stop()

    assert sql_ids(tgt) == sorted(["late"] + [f"r{i}" for i in range(6)])
    wal_files = list((restarted.wal_root / tgt.full_name).glob("*.wal"))
    assert len(wal_files) == 1


async def test_new_appends_after_replay_continue_the_sequence(tmp_path):
    settings = StorageSettings(commit_interval_s=3600, **QUIET)
    tgt = target(tmp_path)
    first = Storage(tmp_path / "data", settings)
    await first.start()
    await first.append(tgt, rows("a"))
    await first.stop()
    wal_id = _wal_id(first, tgt)

    second = Storage(tmp_path / "data", settings)
    await second.start()
    await second.append(tgt, rows("b"))
    await second.stop()

    assert sql_ids(tgt) == ["a", "b"]
    assert committed_version(tgt.location, wal_id) == 1


async def test_dedupe_keys_survive_a_restart(tmp_path):
    settings = StorageSettings(commit_interval_s=0.05, **QUIET)
    tgt = target(tmp_path, dedupe_key="telemetry_id")
    first = Storage(tmp_path / "data", settings)
    await first.start()
    await first.append(tgt, rows("t1", "t2"))
    await first.stop()

    second = Storage(tmp_path / "data", settings)
    await second.start()
    await second.append(tgt, rows("t2", "t3", "t3"))
    await second.stop()

    assert sql_ids(tgt) == ["t1", "t2", "t3"]


async def test_commit_mode_acks_after_the_commit_and_shares_commits(tmp_path):
    storage = Storage(tmp_path / "data", StorageSettings(durability="commit", **QUIET))
    tgt = target(tmp_path)
    await storage.start()

    await asyncio.gather(*(storage.append(tgt, rows(f"c{i:02d}")) for i in range(40)))

    assert sql_ids(tgt) == [f"c{i:02d}" for i in range(40)]
    assert len(DeltaTable(tgt.location).history()) < 40
    assert not (storage.wal_root / tgt.full_name).exists()
    await storage.stop()


async def test_a_recreated_table_gets_rows_at_its_new_location(tmp_path):
    storage = Storage(
        tmp_path / "data", StorageSettings(commit_interval_s=3600, **QUIET)
    )
    old = target(tmp_path, "old")
    new = TableTarget(old.full_name, (tmp_path / "tables" / "new").as_uri(), SCHEMA)
    await storage.start()

    await storage.append(old, rows("before"))
    await storage.append(new, rows("after"))
    await storage.stop()

    assert sql_ids(old) == ["before"]
    assert sql_ids(new) == ["after"]


async def test_append_before_start_or_after_stop_is_refused(tmp_path):
    storage = Storage(tmp_path / "data", StorageSettings(**QUIET))
    tgt = target(tmp_path)

    with pytest.raises(StorageClosedError, match=r"main\.chatbot\.t"):
        await storage.append(tgt, rows("a"))
    await storage.start()
    await storage.stop()
    await storage.stop()
    with pytest.raises(StorageClosedError, match="not running"):
        await storage.append(tgt, rows("a"))


async def test_two_processes_cannot_share_one_wal_directory(tmp_path):
    settings = StorageSettings(**QUIET)
    tgt = target(tmp_path)
    first = Storage(tmp_path / "data", settings)
    second = Storage(tmp_path / "data", settings)
    await first.start()
    await first.append(tgt, rows("a"))

    with pytest.raises(WalError, match="in use by another ingest process"):
        await second.start()

    with pytest.raises(StorageClosedError):
        await second.append(tgt, rows("b"))
    await first.stop()
    assert sql_ids(tgt) == ["a"]


async def test_a_table_name_unfit_for_a_directory_is_refused(tmp_path):
    storage = Storage(tmp_path / "data", StorageSettings(**QUIET))
    await storage.start()
    bad = TableTarget("../../etc", (tmp_path / "x").as_uri(), SCHEMA)

    with pytest.raises(StorageError, match="cannot name a WAL directory"):
        await storage.append(bad, rows("a"))

    await storage.stop()
    assert not (tmp_path / "etc").exists()


def test_settings_come_from_arguments_then_environment_then_defaults():
    environ = {"CHATLAKE_COMMIT_INTERVAL_S": "0.5", "CHATLAKE_DURABILITY": "commit"}

    settings = StorageSettings.from_env(environ, durability="wal")

    assert settings.durability == "wal"
    assert settings.commit_interval_s == 0.5
    assert settings.commit_bytes == 64 * 1024 * 1024


@pytest.mark.parametrize(
    "environ, message",
    [
        ({"CHATLAKE_DURABILITY": "fsync"}, "durability must be 'wal' or 'commit'"),
        ({"CHATLAKE_COMMIT_INTERVAL_S": "soon"}, "CHATLAKE_COMMIT_INTERVAL_S='soon'"),
        ({"CHATLAKE_COMMIT_INTERVAL_S": "0"}, "commit_interval_s must be greater"),
        ({"CHATLAKE_COMMIT_BYTES": "-5"}, "commit_bytes must be at least 1"),
        ({"CHATLAKE_MAINTENANCE_INTERVAL_S": "-1"}, "maintenance_interval_s"),
    ],
)
def test_bad_settings_are_refused_by_name(environ, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        StorageSettings.from_env(environ)


def _wal_id(storage: Storage, tgt: TableTarget) -> str:
    meta = json.loads((storage.wal_root / tgt.full_name / "target.json").read_text())
    return meta["wal_id"]


async def test_a_dedupe_key_added_to_the_table_takes_effect(tmp_path):
    storage = Storage(
        tmp_path / "data", StorageSettings(commit_interval_s=3600, **QUIET)
    )
    plain = target(tmp_path)
    keyed = TableTarget(plain.full_name, plain.location, SCHEMA, "telemetry_id")
    await storage.start()

    await storage.append(plain, rows("k1", "k1"))
    await storage.append(keyed, rows("k1", "k2", "k2"))
    await storage.stop()

    assert sql_ids(plain) == ["k1", "k1", "k2"]


async def test_commit_mode_reloads_dedupe_keys_after_a_restart(tmp_path):
    settings = StorageSettings(durability="commit", **QUIET)
    tgt = target(tmp_path, dedupe_key="telemetry_id")
    first = Storage(tmp_path / "data", settings)
    await first.start()
    await first.append(tgt, rows("d1"))
    await first.stop()

    second = Storage(tmp_path / "data", settings)
    await second.start()
    await second.append(tgt, rows("d1", "d2"))
    await second.stop()

    assert sql_ids(tgt) == ["d1", "d2"]


async def test_rows_without_the_dedupe_column_fail_commit_mode_appends(tmp_path):
    settings = StorageSettings(durability="commit", **QUIET)
    tgt = TableTarget("main.chatbot.t", (tmp_path / "t").as_uri(), SCHEMA, "missing")
    storage = Storage(tmp_path / "data", settings)
    await storage.start()

    with pytest.raises(
        BatchRejectedError,
        match=r"table main\.chatbot\.t: rows lack the dedupe key column 'missing'",
    ):
        await storage.append(tgt, rows("a"))

    await storage.stop()
    assert not DeltaTable.is_deltatable(tgt.location)


def nulls(*ids) -> pa.RecordBatch:
    """Rows with a null in the NOT NULL column: the Delta table refuses them."""
    batch = rows(*ids)
    bad = pa.array([None] * len(ids), pa.string())
    return pa.record_batch(
        [bad, *batch.columns[1:]],
        schema=SCHEMA.set(0, pa.field("telemetry_id", pa.string())),
    )


async def test_wal_mode_quarantines_a_batch_the_table_refuses(tmp_path):
    settings = StorageSettings(commit_interval_s=3600, **QUIET)
    tgt = target(tmp_path)
    DeltaTable.create(tgt.location, schema=SCHEMA)
    storage = Storage(tmp_path / "data", settings)
    await storage.start()
    await storage.append(tgt, rows("ok1"))
    await storage.append(tgt, nulls("bad"))
    await storage.append(tgt, rows("ok2"))

    assert await storage.flush()
    await storage.stop()
    restarted = Storage(tmp_path / "data", settings)
    await restarted.start()
    await restarted.stop()

    assert sql_ids(tgt) == ["ok1", "ok2"]
    rejected = storage.wal_root / tgt.full_name / "rejected" / f"{1:020d}.arrow"
    kept = pa.ipc.open_file(rejected).read_all()
    assert kept.column("user_message").to_pylist() == ["message bad 😀"]


async def test_commit_mode_refuses_a_batch_the_table_refuses(tmp_path):
    settings = StorageSettings(durability="commit", **QUIET)
    tgt = target(tmp_path)
    DeltaTable.create(tgt.location, schema=SCHEMA)
    storage = Storage(tmp_path / "data", settings)
    await storage.start()

    results = await asyncio.gather(
        storage.append(tgt, rows("ok1")),
        storage.append(tgt, nulls("bad")),
        storage.append(tgt, rows("ok2")),
        return_exceptions=True,
    )
    await storage.stop()

    assert results[0] is None and results[2] is None
    assert isinstance(results[1], BatchRejectedError)
    assert "failed validation" in str(results[1])
    assert sql_ids(tgt) == ["ok1", "ok2"]


@pytest.mark.parametrize("durability", ["wal", "commit"])
async def test_appends_racing_stop_end_promptly_and_acked_ones_land(
    tmp_path, durability
):
    settings = StorageSettings(durability=durability, commit_interval_s=0.05, **QUIET)
    tgt = target(tmp_path)
    storage = Storage(tmp_path / "data", settings)
    await storage.start()

    appends = [
        asyncio.create_task(storage.append(tgt, rows(f"r{i:03d}"))) for i in range(200)
    ]
    await asyncio.sleep(0)
    await storage.stop()
    results = await asyncio.wait_for(
        asyncio.gather(*appends, return_exceptions=True), 10
    )

    acked = [f"r{i:03d}" for i, result in enumerate(results) if result is None]
    assert all(r is None or isinstance(r, StorageError) for r in results)
    assert acked
    assert set(acked) <= set(sql_ids(tgt))


async def test_an_unreadable_wal_description_stops_start_naming_the_file(tmp_path):
    settings = StorageSettings(**QUIET)
    tgt = target(tmp_path)
    first = Storage(tmp_path / "data", settings)
    await first.start()
    await first.append(tgt, rows("a"))
    await first.stop()
    description = first.wal_root / tgt.full_name / "target.json"
    description.write_text("{not json")

    second = Storage(tmp_path / "data", settings)
    with pytest.raises(WalError, match="unreadable WAL description .*target.json"):
        await second.start()


async def test_metrics_count_commits_rows_and_pending_wal_bytes(tmp_path):
    settings = StorageSettings(commit_interval_s=3600, **QUIET)
    tgt = target(tmp_path, "metered", dedupe_key="telemetry_id")
    labels = {"table": tgt.full_name}
    storage = Storage(tmp_path / "data", settings)
    await storage.start()
    before = {
        name: REGISTRY.get_sample_value(name, labels) or 0.0
        for name in (
            "chatlake_ingest_commits_total",
            "chatlake_ingest_committed_rows_total",
            "chatlake_ingest_dedupe_dropped_rows_total",
            "chatlake_ingest_time_to_table_seconds_count",
        )
    }

    await storage.append(tgt, rows("m1", "m2"))
    await storage.append(tgt, rows("m2", "m3"))
    pending = REGISTRY.get_sample_value("chatlake_ingest_wal_pending_bytes", labels)
    assert await storage.flush()
    after_flush = REGISTRY.get_sample_value("chatlake_ingest_wal_pending_bytes", labels)
    await storage.stop()

    def grew(name: str) -> float:
        return REGISTRY.get_sample_value(name, labels) - before[name]

    assert pending > 0
    assert after_flush == 0
    assert grew("chatlake_ingest_commits_total") == 1
    assert grew("chatlake_ingest_committed_rows_total") == 3
    assert grew("chatlake_ingest_dedupe_dropped_rows_total") == 1
    assert grew("chatlake_ingest_time_to_table_seconds_count") == 2


async def test_commit_mode_first_commits_what_a_wal_run_left_behind(tmp_path):
    tgt = target(tmp_path)
    crashed = Storage(
        tmp_path / "data", StorageSettings(commit_interval_s=3600, **QUIET)
    )
    await crashed.start()
    await crashed.append(tgt, rows("from-wal"))
    abandon(crashed)

    switched = Storage(tmp_path / "data", StorageSettings(durability="commit", **QUIET))
    await switched.start()
    await switched.append(tgt, rows("from-commit-mode"))
    await switched.stop()

    assert sql_ids(tgt) == ["from-commit-mode", "from-wal"]
    wal_dir = switched.wal_root / tgt.full_name
    log = wal_module.WriteAheadLog(wal_dir, segment_bytes=1 << 20, label="peek")
    wal_id = _wal_id(switched, tgt)
    assert log.open(committed_seq=committed_version(tgt.location, wal_id)) == []
    log.close_file()


async def test_a_table_whose_storage_fails_does_not_hold_up_another(tmp_path):
    (tmp_path / "blocker").write_text("a file where a directory should be")
    broken = TableTarget(
        "main.chatbot.broken", (tmp_path / "blocker" / "t").as_uri(), SCHEMA
    )
    healthy = target(tmp_path, "healthy")
    storage = Storage(
        tmp_path / "data", StorageSettings(commit_interval_s=0.05, **QUIET)
    )
    await storage.start()

    await storage.append(broken, rows("kept-in-wal"))
    await storage.append(healthy, rows("h1"))
    deadline = time.monotonic() + 20
    while not DeltaTable.is_deltatable(healthy.location):
        assert time.monotonic() < deadline, "the healthy table was not committed"
        await asyncio.sleep(0.02)

    assert sql_ids(healthy) == ["h1"]
    assert not await storage.flush()
    await storage.stop()
    wal_dir = storage.wal_root / broken.full_name
    log = wal_module.WriteAheadLog(wal_dir, segment_bytes=1 << 20, label="peek")
    records = log.open(committed_seq=-1)
    log.close_file()
    assert [r.batch.column("telemetry_id").to_pylist() for r in records] == [
        ["kept-in-wal"]
    ]


async def test_an_unreadable_delta_table_at_replay_is_a_storage_error(tmp_path):
    settings = StorageSettings(**QUIET)
    tgt = target(tmp_path)
    first = Storage(tmp_path / "data", settings)
    await first.start()
    await first.append(tgt, rows("a"))
    await first.stop()
    log_file = local_path(tgt.location) / "_delta_log" / f"{0:020d}.json"
    log_file.write_text("this is not a delta log\n")

    second = Storage(tmp_path / "data", settings)
    with pytest.raises(StorageError, match=r"main\.chatbot\.t: cannot read the Delta"):
        await second.start()
