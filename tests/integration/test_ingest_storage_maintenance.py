"""Table maintenance: optimize_table, the scheduler inside Storage, and
``chatlake tables optimize`` against a real catalog."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from deltalake import DeltaTable, write_deltalake

from chatlake.cli import main
from chatlake.ingest.maintenance import ROW_GROUP_ROWS, optimize_table
from chatlake.ingest.storage import Storage, StorageSettings, TableTarget
from chatlake.ingest.storage_errors import MaintenanceError
from chatlake.types import parse_columns

SCHEMA = pa.schema([("id", pa.int64()), ("text", pa.string())])


def small_commits(location: str, count: int) -> None:
    for i in range(count):
        write_deltalake(
            location,
            pa.table({"id": [i], "text": [f"t{i}"]}, schema=SCHEMA),
            mode="append",
        )


def parquet_files(location: str) -> int:
    return len(list(_path(location).glob("*.parquet")))


def ids(location: str) -> list[int]:
    return sorted(DeltaTable(location).to_pyarrow_table().column("id").to_pylist())


def _path(location: str) -> Path:
    return Path(location.removeprefix("file://"))


def test_optimize_compacts_checkpoints_and_vacuums(tmp_path):
    location = (tmp_path / "t").as_uri()
    small_commits(location, 6)

    report = optimize_table("main.s.t", location, vacuum_retention_hours=0)

    assert (report.files_removed, report.files_added, report.vacuumed_files) == (
        6,
        1,
        6,
    )
    assert report.checkpoint_version == 6
    assert report.version == 8  # vacuum records its start and end
    assert parquet_files(location) == 1
    assert ids(location) == list(range(6))
    assert (_path(location) / "_delta_log" / f"{6:020d}.checkpoint.parquet").exists()


def test_compacted_files_have_row_groups_of_at_most_128k_rows(tmp_path):
    location = (tmp_path / "t").as_uri()
    rows = ROW_GROUP_ROWS * 2 + 5
    for first, end in ((0, rows // 2), (rows // 2, rows)):
        ids_ = pa.array(range(first, end), pa.int64())
        batch = pa.table({"id": ids_, "text": pa.nulls(len(ids_), pa.string())})
        write_deltalake(location, batch, mode="append")

    optimize_table("main.s.t", location, vacuum=False)

    [file] = [uri.removeprefix("file://") for uri in DeltaTable(location).file_uris()]
    metadata = pq.ParquetFile(file).metadata
    sizes = [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
    assert sizes == [ROW_GROUP_ROWS, ROW_GROUP_ROWS, 5]
    assert ids(location) == list(range(rows))


def test_optimize_keeps_files_younger_than_the_retention(tmp_path):
    location = (tmp_path / "t").as_uri()
    small_commits(location, 3)

    report = optimize_table("main.s.t", location, vacuum_retention_hours=168)

    assert report.vacuumed_files == 0
    assert parquet_files(location) == 4
    assert ids(location) == [0, 1, 2]


def test_optimize_without_a_table_names_it(tmp_path):
    with pytest.raises(MaintenanceError, match=r"table main\.s\.gone: no Delta table"):
        optimize_table("main.s.gone", (tmp_path / "gone").as_uri())


async def test_storage_runs_maintenance_on_its_schedule(tmp_path):
    settings = StorageSettings(
        commit_interval_s=0.01,
        maintenance_interval_s=0.2,
        vacuum_retention_hours=168,
    )
    target = TableTarget("main.s.t", (tmp_path / "t").as_uri(), SCHEMA)
    storage = Storage(tmp_path / "data", settings)
    await storage.start()
    for i in range(5):
        batch = pa.record_batch([pa.array([i]), pa.array([f"t{i}"])], schema=SCHEMA)
        await storage.append(target, batch)
        assert await storage.flush()

    deadline = time.monotonic() + 20
    while len(DeltaTable(target.location).file_uris()) != 1:
        assert time.monotonic() < deadline, "maintenance did not compact in time"
        await asyncio.sleep(0.05)
    await storage.stop()

    assert ids(target.location) == [0, 1, 2, 3, 4]


def test_tables_optimize_command(catalog_server):
    admin = catalog_server.admin_client
    admin.create_catalog("main")
    admin.create_schema("main", "s")
    info = admin.create_table("main.s.t", parse_columns("id BIGINT, text STRING"))
    small_commits(info["storage_location"], 4)
    options = ["--catalog-url", catalog_server.url]
    options += ["--data-dir", str(catalog_server.data_dir)]

    result = CliRunner().invoke(
        main,
        ["tables", "optimize", "main.s.t", "--retention-hours", "0", "--json"]
        + options,
    )

    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["table"] == "main.s.t"
    assert (report["files_removed"], report["files_added"]) == (4, 1)
    assert report["vacuumed_files"] == 4
    assert ids(info["storage_location"]) == [0, 1, 2, 3]


@pytest.mark.parametrize(
    "name, message",
    [
        ("main.s", "expected catalog.schema.table"),
        ("main.s.missing", "main.s.missing"),
    ],
)
def test_tables_optimize_refuses_bad_names_in_one_line(catalog_server, name, message):
    admin = catalog_server.admin_client
    admin.create_catalog("main")
    admin.create_schema("main", "s")
    options = ["--catalog-url", catalog_server.url]
    options += ["--data-dir", str(catalog_server.data_dir)]

    result = CliRunner().invoke(main, ["tables", "optimize", name, *options])

    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output


async def test_optimize_while_storage_commits_loses_and_duplicates_nothing(tmp_path):
    settings = StorageSettings(commit_interval_s=0.01, maintenance_interval_s=0)
    target = TableTarget("main.s.busy", (tmp_path / "busy").as_uri(), SCHEMA)
    storage = Storage(tmp_path / "data", settings)
    await storage.start()
    stop = asyncio.Event()

    async def keep_appending() -> int:
        count = 0
        while not stop.is_set():
            batch = pa.record_batch(
                [pa.array([count]), pa.array([f"t{count}"])], schema=SCHEMA
            )
            await storage.append(target, batch)
            count += 1
            if count % 20 == 0:
                await storage.flush()
        return count

    writer = asyncio.create_task(keep_appending())
    for _ in range(3):
        while not DeltaTable.is_deltatable(target.location):
            await asyncio.sleep(0.01)
        # A retention of hours, as in production: vacuum with none can delete
        # the file of a commit still in flight.
        await asyncio.to_thread(
            optimize_table, target.full_name, target.location, vacuum_retention_hours=1
        )
    stop.set()
    appended = await writer
    await storage.stop()

    assert ids(target.location) == list(range(appended))
