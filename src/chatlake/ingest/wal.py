"""A per-table write-ahead log of Arrow record batches, synced in groups.

Layout of a WAL directory::

    <dir>/00000000000000000042.wal   segments, named by their first sequence
    <dir>/00000000000000000977.wal   number; only the newest one is appended to

A segment starts with an 8-byte magic, then frames::

    u32 payload length | u32 CRC32 of (payload + seq) | u64 seq | payload

all little-endian, where the payload is one batch in the Arrow IPC stream
format. Each append gets the next sequence number. Appends that arrive while
a write+fsync is in flight are written together and covered by the next
single fsync (group commit), so a busy table pays one fsync per group, not
per message.

A crash can leave a torn frame at the end of the newest segment; opening the
log detects it (short frame or bad checksum) and truncates it away. The same
damage in an older segment cannot come from a crash and raises
WalCorruptError instead of silently losing acknowledged data.
"""

from __future__ import annotations

import asyncio
import logging
import os
import struct
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from chatlake.ingest import storage_metrics as metrics
from chatlake.ingest.storage_errors import WalCorruptError, WalError

log = logging.getLogger(__name__)

SEGMENT_MAGIC = b"CLWAL01\n"
SEGMENT_SUFFIX = ".wal"
FRAME_HEADER = struct.Struct("<IIQ")
_SEQ = struct.Struct("<Q")
# A length above this cannot be a real frame (the SDK's limit is ~10 MB); it
# marks garbage, not an allocation to attempt.
MAX_FRAME_BYTES = 1 << 30
# Smaller batches are encoded on the event loop: cheaper than a thread hop.
INLINE_ENCODE_BYTES = 256 * 1024


@dataclass(frozen=True)
class WalRecord:
    """One appended batch, as read back from the log."""

    seq: int
    batch: pa.RecordBatch
    size_bytes: int


@dataclass
class _Segment:
    path: Path
    first_seq: int
    last_seq: int  # first_seq - 1 while empty
    size_bytes: int


DurableSink = Callable[[int, pa.RecordBatch, int], None]


def encode_batch(batch: pa.RecordBatch, schema_message: bytes | None = None) -> bytes:
    """One batch as an Arrow IPC stream: the schema message, then the batch.

    ``schema_message`` is ``batch.schema.serialize()`` when the caller has it
    cached; building a stream writer per batch costs several times more.
    """
    if schema_message is None:
        schema_message = batch.schema.serialize().to_pybytes()
    return schema_message + batch.serialize().to_pybytes()


def decode_batch(payload: bytes) -> pa.RecordBatch:
    """The batch encoded by encode_batch."""
    reader = pa.ipc.open_stream(payload)
    batches = list(reader)
    if len(batches) != 1:
        raise pa.ArrowInvalid(f"expected one batch, found {len(batches)}")
    return batches[0]


def frame_checksum(seq: int, payload_crc: int) -> int:
    """CRC32 of the payload followed by the sequence number."""
    return zlib.crc32(_SEQ.pack(seq), payload_crc)


def encode_frame(seq: int, payload: bytes, payload_crc: int | None = None) -> bytes:
    """Header plus payload; the checksum covers the sequence number too."""
    if payload_crc is None:
        payload_crc = zlib.crc32(payload)
    header = FRAME_HEADER.pack(len(payload), frame_checksum(seq, payload_crc), seq)
    return header + payload


def _encode_payload(
    batch: pa.RecordBatch, schema_message: bytes
) -> tuple[list, int, int]:
    """encode_batch's payload as unjoined parts, with its length and CRC32.

    Joining the parts (and the frame header) would copy every byte of the
    batch twice more, costing more than encoding it; writing the parts one
    after the other puts the same bytes in the file.
    """
    body = batch.serialize()
    payload_crc = zlib.crc32(body, zlib.crc32(schema_message))
    return [schema_message, body], len(schema_message) + body.size, payload_crc


class WriteAheadLog:
    """The log of one table. Open with ``open()``, then ``append()`` from asyncio.

    ``sink(seq, batch, frame_bytes)`` is called for every append once it is
    durable, in sequence order, before any appender is released: the committer
    learns about every durable batch even if its appender was cancelled.
    """

    def __init__(self, directory: Path, *, segment_bytes: int, label: str) -> None:
        self.directory = Path(directory)
        self.segment_bytes = segment_bytes
        self.label = label
        self.sink: DurableSink | None = None
        self._segments: list[_Segment] = []
        self._fd: int | None = None  # the active segment, opened O_APPEND
        self._next_seq = 0
        # (seq, batch, frame parts, frame bytes, future) per queued append
        self._queue: list[tuple[int, pa.RecordBatch, list, int, asyncio.Future]] = []
        self._flusher: asyncio.Task | None = None
        self._failure: WalError | None = None
        self._lock = threading.Lock()
        self._pending: deque[tuple[int, int]] = deque()
        self._pending_bytes = 0
        self._schema_cache: tuple[pa.Schema | None, bytes] = (None, b"")
        # Its own thread: fsyncs must not queue behind Delta commits of other
        # tables in the shared default executor.
        self._syncer = ThreadPoolExecutor(1, thread_name_prefix=f"wal {label}")

    # -- opening and recovery (blocking: call in a thread) --------------------

    def open(self, *, committed_seq: int) -> list[WalRecord]:
        """Recover the log; return the records after ``committed_seq``.

        Sequence numbers continue after both the log's last record and
        ``committed_seq``, so a new record can never hide behind a version
        the Delta table already holds.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        paths = sorted(self.directory.glob("*" + SEGMENT_SUFFIX))
        records: list[WalRecord] = []
        for index, path in enumerate(paths):
            newest = index == len(paths) - 1
            segment, found = self._read_segment(path, newest=newest)
            self._segments.append(segment)
            records.extend(r for r in found if r.seq > committed_seq)

        last_seq = self._segments[-1].last_seq if self._segments else -1
        self._next_seq = max(last_seq, committed_seq) + 1
        self._open_active_segment()
        self._track_pending([(r.seq, r.size_bytes) for r in records])
        return records

    def _read_segment(self, path: Path, *, newest: bool) -> tuple[_Segment, list]:
        first_seq = _first_seq_from_name(path)
        data = path.read_bytes()
        records, good_end, problem = _parse_frames(data, first_seq)
        if problem is not None and not newest:
            raise WalCorruptError(
                f"WAL segment {path} is damaged at byte {good_end}: {problem}; "
                f"it is not the newest segment, so this is not a torn write"
            )
        if problem is not None and good_end < len(SEGMENT_MAGIC):
            log.warning(
                "WAL %s: rewriting the torn header of %s", self.label, path.name
            )
            path.write_bytes(SEGMENT_MAGIC)
            _truncate(path, len(SEGMENT_MAGIC))
            return _Segment(path, first_seq, first_seq - 1, len(SEGMENT_MAGIC)), []
        if problem is not None:
            log.warning(
                "WAL %s: truncating torn tail of %s at byte %d (%s, %d bytes lost)",
                self.label,
                path.name,
                good_end,
                problem,
                len(data) - good_end,
            )
            _truncate(path, good_end)
        last_seq = records[-1].seq if records else first_seq - 1
        return _Segment(path, first_seq, last_seq, good_end), records

    def _open_active_segment(self) -> None:
        active = self._segments[-1] if self._segments else None
        # A segment's frames must number on from its name: when the table is
        # ahead of the log (segments removed by hand), start a fresh segment.
        if (
            active is None
            or active.size_bytes >= self.segment_bytes
            or active.last_seq + 1 != self._next_seq
        ):
            self._start_segment(self._next_seq)
            return
        self._fd = os.open(active.path, os.O_WRONLY | os.O_APPEND)

    def _start_segment(self, first_seq: int) -> None:
        # The new segment must be complete before the old one is let go, so a
        # failure here (a full disk) leaves the log appending where it was.
        path = self.directory / f"{first_seq:020d}{SEGMENT_SUFFIX}"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            _write_all(fd, SEGMENT_MAGIC)
            os.fsync(fd)
            fsync_directory(self.directory)
        except OSError:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        if self._fd is not None:
            os.close(self._fd)
        self._fd = fd
        with self._lock:
            self._segments.append(_Segment(path, first_seq, first_seq - 1, 8))

    # -- appending ------------------------------------------------------------

    @property
    def next_seq(self) -> int:
        return self._next_seq

    @property
    def pending_bytes(self) -> int:
        """Bytes of frames appended but not yet released by a commit."""
        return self._pending_bytes

    async def append(self, batch: pa.RecordBatch) -> int:
        """Append one batch; return its sequence number once it is fsynced."""
        self._check_open()
        # Serializing and checksumming a large batch is CPU work: off the loop.
        schema_message = self._schema_message(batch.schema)
        if batch.nbytes >= INLINE_ENCODE_BYTES:
            payload, length, payload_crc = await asyncio.to_thread(
                _encode_payload, batch, schema_message
            )
        else:
            payload, length, payload_crc = _encode_payload(batch, schema_message)
        self._check_open()
        seq = self._next_seq
        self._next_seq += 1
        future = asyncio.get_running_loop().create_future()
        header = FRAME_HEADER.pack(length, frame_checksum(seq, payload_crc), seq)
        size = FRAME_HEADER.size + length
        self._queue.append((seq, batch, [header, *payload], size, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_groups())
        # The future is this append's alone: cancelling it cancels nothing else,
        # and the flusher skips futures that are already done.
        return await future

    def _schema_message(self, schema: pa.Schema) -> bytes:
        cached_schema, message = self._schema_cache
        if schema is cached_schema:
            return message
        if cached_schema is None or not schema.equals(
            cached_schema, check_metadata=True
        ):
            message = schema.serialize().to_pybytes()
            self._schema_cache = (schema, message)
        return message

    def _check_open(self) -> None:
        if self._failure is not None:
            raise self._failure
        if self._fd is None:
            raise WalError(f"WAL {self.label} is closed")

    async def _flush_groups(self) -> None:
        while self._queue:
            group, self._queue = self._queue, []
            started = time.perf_counter()
            try:
                await asyncio.get_running_loop().run_in_executor(
                    self._syncer, self._write_group, [g[2:4] for g in group]
                )
            except _WriteUndone as undone:
                self._refuse(group, undone.error)
                continue
            except Exception as error:
                if not isinstance(error, OSError):
                    log.exception("WAL %s: unexpected failure writing", self.label)
                self._fail(group, error)
                return
            metrics.WAL_FSYNC_SECONDS.observe(time.perf_counter() - started)
            metrics.WAL_GROUP_FRAMES.observe(len(group))
            self._release(group)

    def _release(self, group: list) -> None:
        self._track_pending([(seq, size) for seq, _, _, size, _ in group])
        for seq, batch, _, size, _ in group:
            if self.sink is not None:
                self.sink(seq, batch, size)
        for seq, *_, future in group:
            if not future.done():
                future.set_result(seq)

    def _refuse(self, group: list, error: OSError) -> None:
        # The write failed (a full disk) and was undone: refuse this group and
        # what queued behind it, and reuse their sequence numbers, so the log
        # keeps numbering without a gap and later appends can succeed.
        refused = WalError(f"WAL {self.label} write failed, nothing stored: {error}")
        log.warning("WAL %s: write failed and undone: %s", self.label, error)
        for *_, future in group + self._queue:
            if not future.done():
                future.set_exception(refused)
        self._next_seq = group[0][0]
        self._queue = []

    def _fail(self, group: list, error: Exception) -> None:
        # After a failed fsync the page cache state is unknown: refuse all
        # further appends rather than acknowledge data that may be gone.
        self._failure = WalError(f"WAL {self.label} write failed: {error}")
        log.error(
            "WAL %s write failed, refusing further appends: %s", self.label, error
        )
        for *_, future in group + self._queue:
            if not future.done():
                future.set_exception(self._failure)
        self._queue = []

    def _write_group(self, frames: list[tuple[list, int]]) -> None:
        """Write and fsync; raises _WriteUndone if the log is as it was before.

        ``frames`` holds each frame's parts and its size in bytes.
        """
        active = self._segments[-1]
        try:
            if (
                active.size_bytes >= self.segment_bytes
                and active.last_seq >= active.first_seq
            ):
                self._start_segment(active.last_seq + 1)
                active = self._segments[-1]
            for parts, _ in frames:
                for part in parts:
                    _write_all(self._fd, part)
        except OSError as error:
            self._undo_write(active, error)
        os.fsync(self._fd)
        with self._lock:
            active.size_bytes += sum(size for _, size in frames)
            active.last_seq += len(frames)

    def _undo_write(self, active: _Segment, error: OSError) -> None:
        # Cut off whatever part of the group reached the file; if even that
        # fails, the caller treats the log as failed.
        os.ftruncate(self._fd, active.size_bytes)
        os.fsync(self._fd)
        raise _WriteUndone(error)

    # -- releasing committed segments -----------------------------------------

    def _track_pending(self, frames: list[tuple[int, int]]) -> None:
        # Under the lock: release_through() runs in a worker thread.
        with self._lock:
            self._pending.extend(frames)
            self._pending_bytes += sum(size for _, size in frames)
            pending_bytes = self._pending_bytes
        metrics.WAL_PENDING_BYTES.labels(self.label).set(pending_bytes)

    def release_through(self, seq: int) -> int:
        """Forget records up to ``seq`` and delete segments that hold only those.

        Returns the number of segment files deleted. The active segment is kept.
        """
        with self._lock:
            while self._pending and self._pending[0][0] <= seq:
                self._pending_bytes -= self._pending.popleft()[1]
            metrics.WAL_PENDING_BYTES.labels(self.label).set(self._pending_bytes)
            done = [s for s in self._segments[:-1] if s.last_seq <= seq]
            self._segments = [s for s in self._segments if s not in done]
        for segment in done:
            segment.path.unlink(missing_ok=True)
        return len(done)

    @property
    def segment_count(self) -> int:
        return len(self._segments)

    async def close(self) -> None:
        """Wait for queued appends to be synced, then close the active segment."""
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
        self.close_file()

    def close_file(self) -> None:
        """Close the active segment at once, leaving queued appends unwritten."""
        self._syncer.shutdown(wait=False)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class _WriteUndone(Exception):
    """A group's write failed and was cut off again: the log is intact."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


def _write_all(fd: int, data) -> None:
    """Write all of ``data`` (bytes or an Arrow buffer)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _parse_frames(
    data: bytes, first_seq: int
) -> tuple[list[WalRecord], int, str | None]:
    """Valid records of a segment, where they end, and what stopped the scan."""
    if len(data) < len(SEGMENT_MAGIC):
        return [], 0, "segment shorter than its header"
    if data[: len(SEGMENT_MAGIC)] != SEGMENT_MAGIC:
        return [], 0, "bad segment header"
    records: list[WalRecord] = []
    offset = len(SEGMENT_MAGIC)
    expected_seq = first_seq
    while offset < len(data):
        record, problem = _parse_frame(data, offset, expected_seq)
        if problem is not None:
            return records, offset, problem
        records.append(record)
        offset += record.size_bytes
        expected_seq += 1
    return records, offset, None


def _parse_frame(data: bytes, offset: int, expected_seq: int):
    if offset + FRAME_HEADER.size > len(data):
        return None, "incomplete frame header"
    length, crc, seq = FRAME_HEADER.unpack_from(data, offset)
    start = offset + FRAME_HEADER.size
    if length > MAX_FRAME_BYTES or start + length > len(data):
        return None, "incomplete frame payload"
    payload = data[start : start + length]
    if frame_checksum(seq, zlib.crc32(payload)) != crc:
        return None, "checksum mismatch"
    if seq != expected_seq:
        return None, f"sequence {seq} where {expected_seq} was expected"
    try:
        batch = decode_batch(payload)
    except (pa.ArrowException, IndexError) as error:
        return None, f"unreadable Arrow payload ({error})"
    return WalRecord(seq, batch, FRAME_HEADER.size + length), None


def _first_seq_from_name(path: Path) -> int:
    try:
        return int(path.name.removesuffix(SEGMENT_SUFFIX))
    except ValueError:
        raise WalCorruptError(f"unexpected file in WAL directory: {path}") from None


def _truncate(path: Path, size_bytes: int) -> None:
    with open(path, "r+b") as handle:
        handle.truncate(size_bytes)
        handle.flush()
        os.fsync(handle.fileno())


def fsync_directory(directory: Path) -> None:
    """Make the directory's entries durable (new, renamed or removed files).

    Without it a crash could lose a whole new file whose contents were fsynced.
    """
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
