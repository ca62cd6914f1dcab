"""The ``databricks.zerobus.Zerobus`` servicer: one :class:`Stream` per RPC.

Life of a stream (see zerobus-protocol.md, section 4):

1. Response headers go out at once; the client waits for them.
2. The first request must be ``create_stream``: token, table, record type and
   descriptor are checked, then ``create_stream_response`` is sent.
3. Each ingest message is decoded (one bad record refuses the whole message
   with INVALID_ARGUMENT), handed to Storage, and acked cumulatively, in
   offset order, once Storage says it is durable. Acks are coalesced.
4. A half-close ends the RPC with OK after every accepted message is acked.
5. After ``max_stream_age_s`` the server sends ``close_stream_signal``, stops
   reading after the grace period, acks what it took, and ends the RPC with
   UNAVAILABLE "Error code 6002"; the SDK reconnects and resends the rest.

Expected failures end the RPC with their status code; anything else is logged
once with its traceback and ends the RPC with INTERNAL.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc
from google.protobuf.duration_pb2 import Duration

from chatlake.errors import ChatlakeError, TableNameError
from chatlake.ingest import metrics, zerobus_pb2_grpc
from chatlake.ingest import zerobus_pb2 as pb
from chatlake.ingest.auth import Authorizer
from chatlake.ingest.config import IngestSettings
from chatlake.ingest.decode import Decoder
from chatlake.ingest.errors import StreamRefused, invalid
from chatlake.ingest.schema_check import check_descriptor
from chatlake.ingest.storage import Storage
from chatlake.ingest.storage_errors import BatchRejectedError
from chatlake.ingest.stream_events import StreamEventLog
from chatlake.ingest.tables import TableDirectory, TableInfo
from chatlake.names import parse_table_name

log = logging.getLogger(__name__)

TABLE_HEADER = "x-databricks-zerobus-table-name"
ROTATION_MESSAGE = "Error code 6002: stream timeout reached; open a new stream"
RECORD_TYPES = {pb.PROTO: "PROTO", pb.JSON: "JSON"}
# A group of messages becomes one batch; these bound its memory.
MAX_GROUP_RECORDS = 10_000
MAX_GROUP_BYTES = 8 * 1024 * 1024


@dataclass
class _Group:
    """Messages decoded while an append was in flight, not yet handed to storage."""

    columns: list[list]
    last_offset: int = -1
    received: list[float] = field(default_factory=list)
    records: int = 0
    size: int = 0


class ZerobusService(zerobus_pb2_grpc.ZerobusServicer):
    """Serves EphemeralStream; shared state for all streams lives here."""

    def __init__(
        self,
        settings: IngestSettings,
        storage: Storage,
        tables: TableDirectory,
        authorizer: Authorizer,
        events: StreamEventLog | None = None,
    ) -> None:
        self.settings = settings
        self.storage = storage
        self.tables = tables
        self.authorizer = authorizer
        self.events = events
        self.open_streams = 0
        self.rotations = 0

    async def EphemeralStream(self, request_iterator, context):  # noqa: N802
        # The SDK sends create_stream only after it has the response headers.
        await context.send_initial_metadata(())
        stream = Stream(self, context)
        self.open_streams += 1
        try:
            await stream.run()
        finally:
            self.open_streams -= 1

    def record_event(self, event: str, **values) -> None:
        metrics.STREAM_EVENTS.labels(event).inc()
        if self.events is not None:
            self.events.record(event, **values)


class Stream:
    """One EphemeralStream RPC from create_stream to its final status."""

    def __init__(self, service: ZerobusService, context) -> None:
        self.service = service
        self.settings = service.settings
        self.context = context
        self.peer = context.peer()
        self.stream_id = ""
        self.table: TableInfo | None = None
        self.table_name = ""
        self.record_type = ""
        self.decoder: Decoder | None = None
        self.started = time.monotonic()
        self.messages = self.records = self.bytes = 0
        self.rotating = False
        self._inflight: deque[tuple[int, asyncio.Future, list[float], int, int]] = (
            deque()
        )
        self._group: _Group | None = None
        self._storing = 0
        self._wakeup = asyncio.Event()
        self._reading_done = False
        self._slots = asyncio.Semaphore(self.settings.max_pending_messages)
        self._write_lock = asyncio.Lock()
        self._last_offset = -1
        self._acked_offset = -1

    async def run(self) -> None:
        outcome: StreamRefused | None = None
        try:
            if await self._open():
                outcome = await self._serve()
        except StreamRefused as refused:
            outcome = refused
        except asyncio.CancelledError:
            self._finish("closed", "CANCELLED", "client went away")
            raise
        except Exception:
            log.exception("stream %s on %s failed", self.stream_id or "-", self._name)
            outcome = StreamRefused(grpc.StatusCode.INTERNAL, "internal server error")
        if outcome is None:
            self._finish("closed", "OK", "")
            return
        rotated = outcome.message == ROTATION_MESSAGE
        self._finish(
            "closed" if rotated else "failed", outcome.code.name, outcome.message
        )
        if not rotated:
            metrics.ERRORS.labels(outcome.code.name).inc()
        await self.context.abort(outcome.code, outcome.message)

    @property
    def _name(self) -> str:
        return self.table_name or "-"

    # ------------------------------------------------------------ creation

    async def _open(self) -> bool:
        """Handle create_stream; False if the client left before sending it."""
        request = await self.context.read()
        if request is grpc.aio.EOF:
            return False
        if request.WhichOneof("payload") != "create_stream":
            raise invalid(
                f"the first message of a stream must be create_stream, not "
                f"{request.WhichOneof('payload') or 'an empty message'}"
            )
        create = request.create_stream
        table_name = self.table_name = self._table_name(create)
        self._check_record_type(create, table_name)
        metadata = {k.lower(): v for k, v in self.context.invocation_metadata() or ()}
        self._check_header(metadata, table_name)
        self.service.authorizer.authorize(metadata, table_name)
        # Fresh, not cached: a table dropped a moment ago must take no new stream.
        self.table = await self.service.tables.lookup(table_name)
        self.decoder = self._decoder(create)
        self.stream_id = uuid.uuid4().hex
        await self._write(
            pb.EphemeralStreamResponse(
                create_stream_response=pb.CreateIngestStreamResponse(
                    stream_id=self.stream_id
                )
            )
        )
        metrics.OPEN_STREAMS.labels(self._name).inc()
        self._counters = tuple(
            counter.labels(self._name)
            for counter in (
                metrics.MESSAGES,
                metrics.RECORDS,
                metrics.BYTES,
                metrics.ACKS,
            )
        )
        log.info(
            "stream opened: table=%s stream=%s peer=%s type=%s",
            self._name,
            self.stream_id,
            self.peer,
            self.record_type,
        )
        self.service.record_event("opened", **self._identity())
        return True

    def _table_name(self, create: pb.CreateIngestStreamRequest) -> str:
        try:
            return parse_table_name(create.table_name).full_name
        except TableNameError as error:
            raise invalid(str(error)) from None

    def _check_record_type(self, create, table_name: str) -> None:
        if create.record_type == pb.AVRO:
            raise StreamRefused(
                grpc.StatusCode.UNIMPLEMENTED,
                f"AVRO streams are not supported (table {table_name}); "
                f"use PROTO or JSON records",
            )
        if create.record_type not in RECORD_TYPES:
            raise invalid(
                f"record_type must be PROTO or JSON (table {table_name}), got "
                f"{create.record_type}"
            )
        self.record_type = RECORD_TYPES[create.record_type]

    def _check_header(self, metadata: dict[str, str], table_name: str) -> None:
        header = metadata.get(TABLE_HEADER)
        if header is not None and header != table_name:
            raise invalid(
                f"header {TABLE_HEADER} names table {header!r} but create_stream "
                f"names {table_name!r}"
            )

    def _decoder(self, create) -> Decoder:
        columns = list(self.table.columns)
        if self.record_type == "JSON":
            return Decoder(columns, self.table.stamped)
        if not create.HasField("descriptor_proto"):
            raise invalid(f"a PROTO stream needs descriptor_proto (table {self._name})")
        try:
            checked = check_descriptor(
                create.descriptor_proto, columns, self.table.stamped
            )
        except StreamRefused as refused:
            raise invalid(f"table {self._name}: {refused.message}") from None
        return Decoder(columns, self.table.stamped, checked)

    # ------------------------------------------------------------ ingest

    async def _serve(self) -> StreamRefused | None:
        """Read, store and ack until the client half-closes, fails or rotates."""
        reader = asyncio.create_task(self._read_loop())
        acker = asyncio.create_task(self._ack_loop())
        rotation = asyncio.create_task(self._rotation_timer())
        watch = asyncio.create_task(self._watch_table())
        try:
            done, _ = await asyncio.wait(
                {reader, acker, rotation, watch}, return_when=asyncio.FIRST_COMPLETED
            )
            if acker in done:
                acker.result()  # a storage failure: raises
            if watch in done:
                # Messages not yet acked belong to a table that is gone: none
                # of them is acked, so the client still holds them.
                return watch.result()
            if self.rotating:
                reader.cancel()
                await rotation  # the close signal goes out before the status
                outcome = StreamRefused(grpc.StatusCode.UNAVAILABLE, ROTATION_MESSAGE)
            else:
                outcome = _error_of(reader)
            self._flush_group()  # what was taken is stored and acked
            self._reading_done = True
            self._wakeup.set()
            await acker
            return outcome
        finally:
            for task in (reader, acker, rotation, watch):
                task.cancel()
            await asyncio.gather(reader, acker, rotation, watch, return_exceptions=True)
            metrics.OPEN_STREAMS.labels(self._name).dec()

    async def _read_loop(self) -> None:
        while True:
            await self._slots.acquire()
            request = await self.context.read()
            if request is grpc.aio.EOF:
                return
            if self.rotating:
                # Not taken, so not acked: the client resends it on its new stream.
                return
            self._accept(request)

    def _accept(self, request: pb.EphemeralStreamRequest) -> None:
        """Decode one message into the open group (no await: all or nothing).

        While an append of this stream is in flight, arriving messages gather
        in a group that becomes one Arrow batch and one append when it ends
        (group commit): a busy single-record stream pays the per-batch cost
        once per group, not once per record, and an idle one waits for nothing.
        """
        received = time.perf_counter()
        offset, records, packed = self._unpack(request)
        columns = self.decoder.columns(records, offset, packed)
        group = self._group
        if group is None:
            group = self._group = _Group(columns)
        else:
            for mine, more in zip(group.columns, columns, strict=True):
                mine.extend(more)
        group.last_offset = offset
        group.received.append(received)
        group.records += len(records)
        group.size += sum(map(len, records))
        full = group.records >= MAX_GROUP_RECORDS or group.size >= MAX_GROUP_BYTES
        if full or not self._storing:
            self._flush_group()

    def _flush_group(self) -> None:
        """Hand the open group to storage as one batch."""
        group, self._group = self._group, None
        if group is None:
            return
        stored = asyncio.get_running_loop().create_future()
        if not group.records:  # only empty messages: acked without storage
            stored.set_result(None)
        else:
            try:
                batch = self.decoder.batch(
                    group.columns, group.records, group.last_offset
                )
            except StreamRefused as refused:
                stored.set_exception(refused)
            else:
                stored = asyncio.ensure_future(
                    self.service.storage.append(self.table.target, batch)
                )
                self._storing += 1
                stored.add_done_callback(self._stored)
        self._inflight.append(
            (group.last_offset, stored, group.received, group.records, group.size)
        )
        self._wakeup.set()

    def _stored(self, _future: asyncio.Future) -> None:
        self._storing -= 1
        if self._group is not None and not self._storing:
            self._flush_group()

    def _unpack(
        self, request: pb.EphemeralStreamRequest
    ) -> tuple[int, Sequence, bytes | None]:
        """Offset, records, and a proto batch's wire bytes for one-call parsing."""
        kind = request.WhichOneof("payload")
        packed = None
        if kind == "ingest_record":
            message = request.ingest_record
            record_kind = message.WhichOneof("record")
            records = [getattr(message, record_kind)] if record_kind else []
        elif kind == "ingest_record_batch":
            message = request.ingest_record_batch
            batch_kind = message.WhichOneof("batch")
            batch = getattr(message, batch_kind) if batch_kind else None
            records = batch.records if batch is not None else []
            if batch_kind == "proto_encoded_batch" and len(records) > 1:
                packed = batch.SerializeToString()
        else:
            raise invalid(
                f"table {self._name}: expected an ingest message, got "
                f"{kind or 'an empty message'}"
            )
        offset = message.offset_id
        if not message.HasField("offset_id") or offset <= self._last_offset:
            raise invalid(
                f"table {self._name}: offset {offset} does not follow offset "
                f"{self._last_offset}; offsets must increase within a stream"
            )
        if kind == "ingest_record" and record_kind == "avro_encoded_record":
            raise StreamRefused(
                grpc.StatusCode.UNIMPLEMENTED, "AVRO records are not supported"
            )
        self._last_offset = offset
        return offset, records, packed

    async def _ack_loop(self) -> None:
        """Ack in offset order as storage finishes; one ack covers all done ones."""
        while True:
            if not self._inflight:
                if self._reading_done:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            # wait() rather than await: cancelling the acker must not cancel a write.
            await asyncio.wait({self._inflight[0][1]})
            last = self._take_done()
            self._acked_offset = max(self._acked_offset, last)
            await self._write(
                pb.EphemeralStreamResponse(
                    ingest_record_response=pb.IngestRecordResponse(
                        durability_ack_up_to_offset=last
                    )
                )
            )
            self._counters[3].inc()

    def _take_done(self) -> int:
        """Pop every finished message at the head; the last offset popped."""
        now = time.perf_counter()
        last = -1
        while self._inflight and self._inflight[0][1].done():
            offset, stored, received, count, size = self._inflight.popleft()
            error = stored.exception()
            if isinstance(error, StreamRefused):
                raise error
            if error is not None:
                raise _storage_refusal(self._name, error) from error
            last = offset
            for arrived in received:
                self._slots.release()
                metrics.ACK_LATENCY.observe(now - arrived)
            self.messages += len(received)
            self.records += count
            self.bytes += size
            self._counters[0].inc(len(received))
            self._counters[1].inc(count)
            self._counters[2].inc(size)
        return last

    async def _watch_table(self) -> StreamRefused:
        """Return the refusal that ends the stream once its table is dropped.

        Dropping a table (and creating one of the same name) while a stream
        is open would otherwise keep acking rows the new table refuses.
        """
        interval_s = self.settings.table_check_interval_s
        name = self._name
        while True:
            await asyncio.sleep(interval_s)
            try:
                info = await self.service.tables.get(name, max_age_s=interval_s)
            except StreamRefused as refused:
                if refused.code != grpc.StatusCode.NOT_FOUND:
                    continue  # catalog unreachable: keep serving, ask again
                return StreamRefused(
                    grpc.StatusCode.NOT_FOUND,
                    f"table {name} was dropped while this stream was open; "
                    f"messages after offset {self._acked_offset} were not acked",
                )
            if info.table_id != self.table.table_id:
                return StreamRefused(
                    grpc.StatusCode.ABORTED,
                    f"table {name} was dropped and created again while this "
                    f"stream was open; messages after offset {self._acked_offset} "
                    f"were not acked; open a new stream for the new table",
                )

    async def _rotation_timer(self) -> None:
        """Announce the rotation, then stop taking messages at once.

        Everything taken before the signal is acked before the RPC ends, and
        nothing after it is stored, so the client's resends on its next stream
        never duplicate a row (C06).
        """
        await asyncio.sleep(self.settings.max_stream_age_s)
        self.rotating = True
        grace = self.settings.rotation_grace_s
        seconds, fraction = divmod(grace, 1)
        signal = pb.CloseStreamSignal(
            duration=Duration(seconds=int(seconds), nanos=int(fraction * 1e9))
        )
        await self._write(pb.EphemeralStreamResponse(close_stream_signal=signal))
        self.service.rotations += 1
        log.info(
            "stream rotating: table=%s stream=%s peer=%s",
            self._name,
            self.stream_id,
            self.peer,
        )
        self.service.record_event("rotated", **self._identity())

    async def _write(self, response: pb.EphemeralStreamResponse) -> None:
        async with self._write_lock:
            await self.context.write(response)

    # ------------------------------------------------------------ endings

    def _identity(self) -> dict:
        return {
            "stream_id": self.stream_id or None,
            "table_name": self.table_name or None,
            "peer": self.peer,
            "record_type": self.record_type or None,
        }

    def _finish(self, event: str, status: str, detail: str) -> None:
        duration_ms = int((time.monotonic() - self.started) * 1000)
        level = logging.INFO if event != "failed" else logging.WARNING
        log.log(
            level,
            "stream %s: table=%s stream=%s peer=%s status=%s messages=%d records=%d "
            "bytes=%d duration_ms=%d%s",
            event,
            self._name,
            self.stream_id or "-",
            self.peer,
            status,
            self.messages,
            self.records,
            self.bytes,
            duration_ms,
            f" detail={detail}" if detail else "",
        )
        self.service.record_event(
            event,
            **self._identity(),
            messages=self.messages,
            records=self.records,
            bytes=self.bytes,
            duration_ms=duration_ms,
            status=status,
            detail=detail or None,
        )


def _error_of(reader: asyncio.Task) -> StreamRefused | None:
    """The refusal the reader ended with, if any (None for a clean half-close)."""
    if not reader.done() or reader.cancelled():
        return None
    error = reader.exception()
    if error is None:
        return None
    if isinstance(error, StreamRefused):
        return error
    raise error


def _storage_refusal(table: str, error: BaseException) -> StreamRefused:
    if isinstance(error, BatchRejectedError):
        # The table itself refuses these rows: a resend would loop forever.
        log.warning("table %s refused a batch: %s", table, error)
        return StreamRefused(
            grpc.StatusCode.INVALID_ARGUMENT, f"table {table} refused the rows: {error}"
        )
    if isinstance(error, ChatlakeError):
        log.warning("storage failed for table %s: %s", table, error)
        return StreamRefused(
            grpc.StatusCode.UNAVAILABLE, f"table {table}: storage failed: {error}"
        )
    log.error("storage failed for table %s", table, exc_info=error)
    return StreamRefused(
        grpc.StatusCode.UNAVAILABLE, f"table {table}: storage failed; retry"
    )
