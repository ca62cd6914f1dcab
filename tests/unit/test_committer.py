"""The committer: triggers, transaction ids, retries without duplicates, dedupe."""

from __future__ import annotations

import asyncio
import threading
import time

import pyarrow as pa
import pytest
from deltalake import DeltaTable
from deltalake.exceptions import DeltaError

from chatlake.ingest import committer as committer_module
from chatlake.ingest.committer import Committer, PendingBatch, committed_version
from chatlake.ingest.dedupe import DedupeIndex
from chatlake.ingest.storage import TableTarget
from chatlake.ingest.storage_errors import CommitError

SCHEMA = pa.schema([("id", pa.string()), ("n", pa.int64())])
APP_ID = "chatlake-wal-test"


def rows(*ids: str) -> pa.RecordBatch:
    return pa.record_batch(
        [pa.array(ids, pa.string()), pa.array(range(len(ids)), pa.int64())],
        schema=SCHEMA,
    )


def make(tmp_path, *, dedupe_key=None, group_commit=False, **options) -> Committer:
    target = TableTarget("main.s.t", (tmp_path / "t").as_uri(), SCHEMA, dedupe_key)
    settings = {
        "commit_interval_s": 0.05,
        "commit_bytes": 1 << 30,
        "max_pending_bytes": 1 << 31,
    }
    settings.update(options)
    dedupe = DedupeIndex(window_s=3600, max_keys=1000) if dedupe_key else None
    return Committer(
        target, app_id=APP_ID, group_commit=group_commit, dedupe=dedupe, **settings
    )


def table_ids(committer: Committer) -> list[str]:
    table = DeltaTable(committer.target.location).to_pyarrow_table()
    return sorted(table.column("id").to_pylist())


async def until(condition, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def test_interval_commit_carries_the_last_sequence_as_txn_version(tmp_path):
    committer = make(tmp_path)
    released = []

    async def on_committed(version):
        released.append(version)

    committer.on_committed = on_committed
    committer.start()
    for seq, ids in enumerate([("a", "b"), ("c",), ("d",)]):
        committer.add(PendingBatch(seq, rows(*ids), 100))

    await until(lambda: released)
    await committer.close()

    assert released == [2]
    assert table_ids(committer) == ["a", "b", "c", "d"]
    assert committed_version(committer.target.location, APP_ID) == 2
    assert DeltaTable(committer.target.location).version() == 0


async def test_commit_bytes_trigger_does_not_wait_for_the_interval(tmp_path):
    committer = make(tmp_path, commit_interval_s=3600, commit_bytes=250)
    committer.start()
    committer.add(PendingBatch(0, rows("a"), 200))
    committer.add(PendingBatch(1, rows("b"), 200))

    location = committer.target.location
    await until(lambda: committed_version(location, APP_ID) == 1)
    await committer.close()

    assert table_ids(committer) == ["a", "b"]


async def test_one_commit_takes_at_most_commit_bytes(tmp_path):
    committer = make(tmp_path, commit_interval_s=3600, commit_bytes=250)
    for seq in range(5):
        committer.add(PendingBatch(seq, rows(f"r{seq}"), 200))

    assert await committer.commit_now()

    history = DeltaTable(committer.target.location).history()
    assert len(history) == 3  # sequences 0-1, 2-3, 4
    assert committed_version(committer.target.location, APP_ID) == 4


async def test_a_batch_the_table_refuses_is_set_aside_and_the_rest_commit(tmp_path):
    committer = make(tmp_path)
    committer.quarantine_dir = tmp_path / "rejected"
    wider = pa.schema([("id", pa.string()), ("n", pa.int64()), ("x", pa.int32())])
    committer.add(PendingBatch(0, rows("a"), 10))
    committer.add(PendingBatch(1, pa.record_batch([["b"], [1], [2]], schema=wider), 10))
    committer.add(PendingBatch(2, rows("c"), 10))

    assert await committer.commit_now()

    assert table_ids(committer) == ["a", "c"]
    assert committed_version(committer.target.location, APP_ID) == 2
    assert committer.pending_batches == 0
    quarantined = pa.ipc.open_file(tmp_path / "rejected" / f"{1:020d}.arrow")
    assert quarantined.read_all().to_pydict() == {"id": ["b"], "n": [1], "x": [2]}


async def test_a_refused_batch_inside_a_commit_is_found_one_batch_at_a_time(tmp_path):
    target_schema = pa.schema(
        [pa.field("id", pa.string(), nullable=False), ("n", pa.int64())]
    )
    location = (tmp_path / "t").as_uri()
    DeltaTable.create(location, schema=target_schema)
    committer = make(tmp_path)
    released = []

    async def on_committed(version):
        released.append(version)

    committer.on_committed = on_committed
    for seq, ids in enumerate([("a",), ("b", None), ("c",)]):
        committer.add(PendingBatch(seq, rows(*ids), 10))

    assert await committer.commit_now()

    assert table_ids(committer) == ["a", "c"]
    assert released == [0, 1, 2]
    assert committer.pending_batches == 0


async def test_a_failed_commit_that_did_land_is_not_written_twice(
    tmp_path, monkeypatch
):
    committer = make(tmp_path)
    real_write = committer_module.write_deltalake
    calls = []

    def lands_then_fails(*args, **kwargs):
        calls.append(1)
        real_write(*args, **kwargs)
        if len(calls) == 1:
            raise DeltaError("connection reset after commit")

    monkeypatch.setattr(committer_module, "write_deltalake", lands_then_fails)
    committer.add(PendingBatch(0, rows("a", "b"), 10))

    assert not await committer.commit_now()
    assert await committer.commit_now()

    assert len(calls) == 1
    assert table_ids(committer) == ["a", "b"]
    assert committer.pending_batches == 0


async def test_a_failed_commit_keeps_its_batches_and_the_loop_retries(
    tmp_path, monkeypatch
):
    committer = make(tmp_path)
    real_write = committer_module.write_deltalake
    failures = [DeltaError("storage unavailable")]

    def flaky(*args, **kwargs):
        if failures:
            raise failures.pop()
        real_write(*args, **kwargs)

    monkeypatch.setattr(committer_module, "write_deltalake", flaky)
    committer.start()
    committer.add(PendingBatch(0, rows("a"), 10))

    location = committer.target.location
    await until(lambda: committed_version(location, APP_ID) == 0)
    await committer.close()

    assert table_ids(committer) == ["a"]


async def test_commit_mode_shares_one_commit_among_waiting_appenders(tmp_path):
    committer = make(tmp_path, group_commit=True)
    loop = asyncio.get_running_loop()
    waiters = [loop.create_future() for _ in range(20)]
    for seq, done in enumerate(waiters):
        committer.add(PendingBatch(seq, rows(f"r{seq:02d}"), 10, done=done))

    committer.start()
    versions = await asyncio.gather(*waiters)
    await committer.close()

    assert versions == [19] * 20
    assert len(DeltaTable(committer.target.location).history()) == 1


async def test_commit_mode_reports_a_commit_that_keeps_failing(tmp_path, monkeypatch):
    committer = make(tmp_path, group_commit=True)

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(committer_module, "write_deltalake", broken)
    done = asyncio.get_running_loop().create_future()
    committer.add(PendingBatch(0, rows("a"), 10, done=done))
    committer.start()

    with pytest.raises(CommitError, match=r"table main\.s\.t: .*No space left"):
        await done
    await committer.close()
    assert committer.pending_batches == 0


async def test_dedupe_drops_keys_committed_earlier(tmp_path):
    committer = make(tmp_path, dedupe_key="id")
    committer.add(PendingBatch(0, rows("a", "b"), 10))
    await committer.commit_now()

    committer.add(PendingBatch(1, rows("b", "c", "c"), 10))
    await committer.commit_now()

    assert table_ids(committer) == ["a", "b", "c"]
    assert committed_version(committer.target.location, APP_ID) == 1


async def test_dedupe_keeps_rows_without_a_key_and_remembers_the_others(tmp_path):
    committer = make(tmp_path, dedupe_key="id")
    committer.add(PendingBatch(0, rows(None, "a", None), 10))
    await committer.commit_now()

    committer.add(PendingBatch(1, rows(None, "a", "b"), 10))
    await committer.commit_now()

    ids = DeltaTable(committer.target.location).to_pyarrow_table().column("id")
    assert ids.null_count == 3
    assert sorted(ids.drop_null().to_pylist()) == ["a", "b"]
    assert len(committer.dedupe) == 2


async def test_a_commit_of_only_duplicates_still_records_its_version(tmp_path):
    committer = make(tmp_path, dedupe_key="id")
    committer.add(PendingBatch(0, rows("a"), 10))
    await committer.commit_now()
    committer.add(PendingBatch(1, rows("a"), 10))

    await committer.commit_now()

    assert table_ids(committer) == ["a"]
    assert committed_version(committer.target.location, APP_ID) == 1


async def test_backpressure_blocks_while_too_much_is_pending(tmp_path):
    committer = make(tmp_path, commit_bytes=100, max_pending_bytes=100)
    committer.add(PendingBatch(0, rows("a"), 150))
    blocked = asyncio.create_task(committer.wait_for_room())
    await asyncio.sleep(0)
    assert not blocked.done()

    await committer.commit_now()

    await asyncio.wait_for(blocked, 5)
    assert committer.pending_bytes == 0


def test_committed_version_of_a_missing_table_is_minus_one(tmp_path):
    assert committed_version((tmp_path / "none").as_uri(), APP_ID) == -1


async def test_an_unexpected_failure_keeps_the_batches_pending(tmp_path, monkeypatch):
    committer = make(tmp_path)

    def buggy(*args, **kwargs):
        raise RuntimeError("a bug in the writer")

    monkeypatch.setattr(committer_module, "write_deltalake", buggy)
    committer.add(PendingBatch(0, rows("a"), 10))

    assert not await committer.commit_now()

    assert committer.pending_batches == 1
    assert committed_version(committer.target.location, APP_ID) == -1


async def test_commits_continue_after_another_writer_commits_in_between(tmp_path):
    committer = make(tmp_path)
    committer.add(PendingBatch(0, rows("a"), 10))
    await committer.commit_now()
    committer.add(PendingBatch(1, rows("b"), 10))
    await committer.commit_now()

    DeltaTable(committer.target.location).optimize.compact()
    committer.add(PendingBatch(2, rows("c"), 10))
    assert await committer.commit_now()

    assert table_ids(committer) == ["a", "b", "c"]
    assert committed_version(committer.target.location, APP_ID) == 2
    assert DeltaTable(committer.target.location).version() == 3


async def test_batches_arriving_during_a_commit_wait_for_their_own_interval(
    tmp_path, monkeypatch
):
    committer = make(tmp_path, commit_interval_s=3600)
    real_write = committer_module.write_deltalake
    writing, release = threading.Event(), threading.Event()

    def slow_write(*args, **kwargs):
        writing.set()
        assert release.wait(10)
        real_write(*args, **kwargs)

    monkeypatch.setattr(committer_module, "write_deltalake", slow_write)
    committed = asyncio.Event()

    async def on_committed(version):
        committed.set()

    committer.on_committed = on_committed
    committer.add(
        PendingBatch(0, rows("due"), 10, appended_at_s=time.monotonic() - 7200)
    )
    committer.start()
    assert await asyncio.to_thread(writing.wait, 10)
    committer.add(PendingBatch(1, rows("fresh"), 10))
    release.set()
    await asyncio.wait_for(committed.wait(), 10)
    for _ in range(5):
        await asyncio.sleep(0)

    assert committer.pending_batches == 1
    assert table_ids(committer) == ["due"]
    await committer.close()
    assert table_ids(committer) == ["due", "fresh"]
