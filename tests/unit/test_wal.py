"""The write-ahead log: framing, group fsync, rotation, torn tails, failures."""

from __future__ import annotations

import asyncio
import threading
import time

import pyarrow as pa
import pytest

from chatlake.ingest import wal as wal_module
from chatlake.ingest.storage_errors import WalCorruptError, WalError
from chatlake.ingest.wal import SEGMENT_MAGIC, WriteAheadLog

SCHEMA = pa.schema([("id", pa.int64()), ("text", pa.string())])


def batch(*ids: int) -> pa.RecordBatch:
    return pa.record_batch(
        [pa.array(ids, pa.int64()), pa.array([f"row {i} ✓ 漢字" for i in ids])],
        schema=SCHEMA,
    )


OPENED: list[WriteAheadLog] = []


@pytest.fixture(autouse=True)
def _close_every_log():
    yield
    while OPENED:
        OPENED.pop().close_file()


def open_wal(directory, committed_seq=-1, segment_bytes=1 << 20):
    log = WriteAheadLog(directory, segment_bytes=segment_bytes, label="t")
    OPENED.append(log)
    records = log.open(committed_seq=committed_seq)
    return log, records


def ids_of(records) -> list[list[int]]:
    return [r.batch.column("id").to_pylist() for r in records]


def segments(directory) -> list[str]:
    return sorted(p.name for p in directory.glob("*.wal"))


async def test_appends_come_back_in_order_after_reopen(tmp_path):
    log, records = open_wal(tmp_path)
    assert records == []

    seqs = [await log.append(batch(i, i + 100)) for i in range(3)]
    await log.close()
    _, records = open_wal(tmp_path)

    assert seqs == [0, 1, 2]
    assert [r.seq for r in records] == [0, 1, 2]
    assert ids_of(records) == [[0, 100], [1, 101], [2, 102]]
    assert records[0].batch.equals(batch(0, 100))


async def test_reopen_returns_only_records_after_the_committed_sequence(tmp_path):
    log, _ = open_wal(tmp_path)
    for i in range(5):
        await log.append(batch(i))
    await log.close()

    reopened, records = open_wal(tmp_path, committed_seq=2)

    assert [r.seq for r in records] == [3, 4]
    assert reopened.next_seq == 5


async def test_sequence_continues_after_committed_version_when_log_is_empty(tmp_path):
    log, records = open_wal(tmp_path, committed_seq=41)

    seq = await log.append(batch(1))

    assert records == []
    assert seq == 42


async def test_one_fsync_covers_every_append_that_arrived_meanwhile(
    tmp_path, monkeypatch
):
    log, _ = open_wal(tmp_path)
    entered, gate = threading.Event(), threading.Event()
    data_syncs = []
    real_fsync = wal_module.os.fsync

    def slow_fsync(fd):
        data_syncs.append(fd)
        entered.set()
        assert gate.wait(10)
        real_fsync(fd)

    monkeypatch.setattr(wal_module.os, "fsync", slow_fsync)
    first = asyncio.create_task(log.append(batch(0)))
    assert await asyncio.to_thread(entered.wait, 10)
    rest = [asyncio.create_task(log.append(batch(i))) for i in range(1, 50)]
    await _until(lambda: len(log._queue) == 49)
    gate.set()

    seqs = await asyncio.gather(first, *rest)

    assert sorted(seqs) == list(range(50))
    assert len(data_syncs) == 2
    await log.close()


async def test_durable_batches_reach_the_sink_in_order_even_if_appender_cancelled(
    tmp_path, monkeypatch
):
    log, _ = open_wal(tmp_path)
    seen = []
    log.sink = lambda seq, b, size: seen.append((seq, b.column("id").to_pylist()))
    gate = threading.Event()
    real_fsync = wal_module.os.fsync
    monkeypatch.setattr(
        wal_module.os, "fsync", lambda fd: (gate.wait(10), real_fsync(fd))
    )

    cancelled = asyncio.create_task(log.append(batch(7)))
    await _until(lambda: log._flusher is not None)
    cancelled.cancel()
    gate.set()
    later = await log.append(batch(8))

    assert later == 1
    assert seen == [(0, [7]), (1, [8])]
    await log.close()


async def test_segments_rotate_and_committed_ones_are_deleted(tmp_path):
    log, _ = open_wal(tmp_path, segment_bytes=600)
    for i in range(6):
        await log.append(batch(i))
    names = segments(tmp_path)
    assert len(names) >= 3
    assert names[0] == f"{0:020d}.wal"

    deleted = log.release_through(5)
    await log.close()

    assert deleted == len(names) - 1
    assert segments(tmp_path) == names[-1:]
    assert log.pending_bytes == 0
    _, records = open_wal(tmp_path, committed_seq=5)
    assert records == []


async def test_release_keeps_segments_holding_uncommitted_records(tmp_path):
    log, _ = open_wal(tmp_path, segment_bytes=600)
    for i in range(6):
        await log.append(batch(i))
    log.release_through(2)
    await log.close()

    _, records = open_wal(tmp_path, committed_seq=2)

    assert [r.seq for r in records] == [3, 4, 5]


async def test_torn_tail_is_truncated_and_appending_continues(tmp_path):
    log, _ = open_wal(tmp_path)
    for i in range(3):
        await log.append(batch(i))
    await log.close()
    path = tmp_path / segments(tmp_path)[0]
    whole = path.read_bytes()
    path.write_bytes(whole[:-5])  # the last frame lost its final bytes

    log, records = open_wal(tmp_path)
    assert [r.seq for r in records] == [0, 1]
    assert path.stat().st_size < len(whole) - 5
    assert await log.append(batch(9)) == 2
    await log.close()

    _, records = open_wal(tmp_path)
    assert ids_of(records) == [[0], [1], [9]]


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data + b"\x07" * 11,  # half a header
        lambda data: data + wal_module.FRAME_HEADER.pack(1 << 31, 0, 3),  # huge length
        lambda data: data + wal_module.encode_frame(3, b"xyz")[:-1],  # short payload
        lambda data: data + wal_module.FRAME_HEADER.pack(3, 0, 3) + b"abc",  # bad crc
    ],
    ids=["short-header", "impossible-length", "short-payload", "bad-checksum"],
)
async def test_a_torn_frame_after_the_last_good_one_is_dropped(tmp_path, damage):
    log, _ = open_wal(tmp_path)
    for i in range(3):
        await log.append(batch(i))
    await log.close()
    path = tmp_path / segments(tmp_path)[0]
    path.write_bytes(damage(path.read_bytes()))

    _, records = open_wal(tmp_path)

    assert [r.seq for r in records] == [0, 1, 2]


async def test_flipped_bit_loses_exactly_the_damaged_frame(tmp_path):
    log, _ = open_wal(tmp_path)
    for i in range(3):
        await log.append(batch(i))
    await log.close()
    path = tmp_path / segments(tmp_path)[0]
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))

    _, records = open_wal(tmp_path)

    assert [r.seq for r in records] == [0, 1]


async def test_torn_segment_header_is_rewritten(tmp_path):
    log, _ = open_wal(tmp_path)
    await log.close()
    path = tmp_path / segments(tmp_path)[0]
    path.write_bytes(SEGMENT_MAGIC[:3])

    log, records = open_wal(tmp_path)
    await log.append(batch(5))
    await log.close()

    assert records == []
    assert path.read_bytes().startswith(SEGMENT_MAGIC)
    _, records = open_wal(tmp_path)
    assert ids_of(records) == [[5]]


async def test_damage_in_an_older_segment_is_an_error_naming_the_file(tmp_path):
    log, _ = open_wal(tmp_path, segment_bytes=600)
    for i in range(6):
        await log.append(batch(i))
    await log.close()
    oldest = tmp_path / segments(tmp_path)[0]
    data = bytearray(oldest.read_bytes())
    data[20] ^= 0xFF
    oldest.write_bytes(bytes(data))

    with pytest.raises(WalCorruptError, match=oldest.name):
        open_wal(tmp_path)


async def test_stray_file_in_wal_directory_is_an_error(tmp_path):
    (tmp_path / "notes.wal").write_bytes(b"hello")

    with pytest.raises(WalCorruptError, match="notes.wal"):
        open_wal(tmp_path)


async def test_failed_fsync_refuses_this_and_every_later_append(tmp_path, monkeypatch):
    log, _ = open_wal(tmp_path)

    def broken_fsync(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(wal_module.os, "fsync", broken_fsync)
    with pytest.raises(WalError, match="Input/output error"):
        await log.append(batch(1))
    monkeypatch.undo()

    with pytest.raises(WalError, match="WAL t write failed"):
        await log.append(batch(2))
    await log.close()


async def _until(condition, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.001)


async def test_a_large_batch_round_trips_through_the_worker_thread(tmp_path):
    log, _ = open_wal(tmp_path)
    text = "é" * (300 * 1024)
    big = pa.record_batch([pa.array([1]), pa.array([text])], schema=SCHEMA)
    assert big.nbytes >= wal_module.INLINE_ENCODE_BYTES

    assert await log.append(big) == 0
    await log.close()
    _, records = open_wal(tmp_path)

    assert records[0].batch.column("text").to_pylist() == [text]


async def test_append_to_a_closed_log_is_refused(tmp_path):
    log, _ = open_wal(tmp_path)
    await log.close()

    with pytest.raises(WalError, match="WAL t is closed"):
        await log.append(batch(1))


async def test_a_log_behind_the_table_starts_a_segment_numbered_after_it(tmp_path):
    log, _ = open_wal(tmp_path)
    await log.append(batch(0))
    await log.close()

    log, _ = open_wal(tmp_path, committed_seq=9)
    assert await log.append(batch(10)) == 10
    await log.close()
    _, records = open_wal(tmp_path, committed_seq=9)

    assert segments(tmp_path) == [f"{0:020d}.wal", f"{10:020d}.wal"]
    assert [r.seq for r in records] == [10]


async def test_a_full_disk_refuses_the_group_and_the_log_recovers(
    tmp_path, monkeypatch
):
    log, _ = open_wal(tmp_path)
    assert await log.append(batch(0)) == 0
    real_write = wal_module.os.write
    calls = []

    def disk_fills_up(fd, data):
        calls.append(len(data))
        if len(calls) == 1:
            return real_write(fd, bytes(data[:10]))  # part of the frame lands
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(wal_module.os, "write", disk_fills_up)
    with pytest.raises(WalError, match="nothing stored: .*No space left"):
        await log.append(batch(1))
    monkeypatch.undo()

    assert await log.append(batch(2)) == 1
    await log.close()
    _, records = open_wal(tmp_path)
    assert ids_of(records) == [[0], [2]]


async def test_a_failed_rotation_keeps_appending_to_the_old_segment(
    tmp_path, monkeypatch
):
    log, _ = open_wal(tmp_path, segment_bytes=100)
    await log.append(batch(0))
    real_open = wal_module.os.open

    def no_new_files(path, flags, *mode):
        if flags & wal_module.os.O_CREAT:
            raise OSError(28, "No space left on device")
        return real_open(path, flags, *mode)

    monkeypatch.setattr(wal_module.os, "open", no_new_files)
    with pytest.raises(WalError, match="nothing stored"):
        await log.append(batch(1))
    monkeypatch.undo()

    assert await log.append(batch(3)) == 1
    await log.close()
    _, records = open_wal(tmp_path)
    assert ids_of(records) == [[0], [3]]
    assert len(segments(tmp_path)) == 2


async def test_a_crash_at_any_byte_leaves_a_prefix_that_keeps_appending(tmp_path):
    source = tmp_path / "source"
    log, _ = open_wal(source)
    for i in range(4):
        await log.append(batch(i, i + 10))
    await log.close()
    whole = (source / segments(source)[0]).read_bytes()

    for cut in sorted(set(range(0, len(whole), 31)) | {len(whole) - 1}):
        directory = tmp_path / f"cut{cut}"
        directory.mkdir()
        (directory / segments(source)[0]).write_bytes(whole[:cut])

        log, records = open_wal(directory)
        kept = [r.seq for r in records]
        assert kept == list(range(len(kept))), cut
        assert await log.append(batch(99)) == len(kept), cut
        await log.close()
        _, again = open_wal(directory)
        assert [r.seq for r in again] == [*kept, len(kept)], cut
