"""Stream life-cycle events as rows of the Delta table system.ingest.stream_events.

The dashboard reads this table to show who streams what. Events are buffered in
memory (bounded; the oldest are dropped and counted when full) and appended
through Storage about once a second. The table is created in the catalog on
first use. Rows never hold record contents or tokens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import Any

import grpc

from chatlake.catalog.errors import CatalogError
from chatlake.errors import ChatlakeError
from chatlake.ingest.errors import StreamRefused
from chatlake.ingest.storage import Storage
from chatlake.ingest.tables import TableDirectory, TableInfo
from chatlake.types import parse_columns

log = logging.getLogger(__name__)

CATALOG, SCHEMA, TABLE = "system", "ingest", "stream_events"
FULL_NAME = f"{CATALOG}.{SCHEMA}.{TABLE}"
COLUMNS = parse_columns(
    "event_time TIMESTAMP NOT NULL, event STRING NOT NULL, stream_id STRING, "
    "table_name STRING, peer STRING, record_type STRING, messages BIGINT, "
    "records BIGINT, bytes BIGINT, duration_ms BIGINT, status STRING, "
    "detail STRING"
)
FIELDS = [c.name for c in COLUMNS]
MAX_BUFFERED = 10_000


class StreamEventLog:
    """Buffers stream events and appends them to the events table."""

    def __init__(
        self, storage: Storage, tables: TableDirectory, flush_interval_s: float = 1.0
    ) -> None:
        self.storage = storage
        self.tables = tables
        self.flush_interval_s = flush_interval_s
        self.dropped = 0
        self._buffer: deque[dict[str, Any]] = deque()
        self._task: asyncio.Task | None = None
        self._table: TableInfo | None = None
        self._failing = False

    def record(self, event: str, **values: Any) -> None:
        """Queue one event; never blocks, never raises."""
        if len(self._buffer) >= MAX_BUFFERED:
            self._buffer.popleft()
            self.dropped += 1
        row = dict.fromkeys(FIELDS)
        row.update(values, event=event, event_time=time.time_ns() // 1000)
        self._buffer.append(row)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="stream-events")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval_s)
            await self.flush()

    async def flush(self) -> None:
        """Append what is buffered; on failure keep it for the next try."""
        if not self._buffer:
            return
        rows = list(self._buffer)
        try:
            table = await self._target()
            batch = _batch(table, rows)
            await self.storage.append(table.target, batch)
        except (ChatlakeError, OSError) as error:
            # Warn once per outage, not once a second.
            level = logging.DEBUG if self._failing else logging.WARNING
            log.log(level, "cannot write %d stream events yet: %s", len(rows), error)
            self._failing = True
            return
        if self._failing:
            log.info("stream events are written again")
            self._failing = False
        for _ in rows:
            self._buffer.popleft()

    async def _target(self) -> TableInfo:
        if self._table is None:
            try:
                self._table = await self.tables.get(FULL_NAME)
            except StreamRefused as refused:
                if refused.code != grpc.StatusCode.NOT_FOUND:
                    raise
                await asyncio.to_thread(self._create)
                self._table = await self.tables.get(FULL_NAME)
        return self._table

    def _create(self) -> None:
        client = self.tables.client()
        steps = (
            lambda: client.create_catalog(CATALOG),
            lambda: client.create_schema(CATALOG, SCHEMA),
            lambda: client.create_table(
                FULL_NAME, COLUMNS, comment="Ingest stream life-cycle events."
            ),
        )
        for step in steps:
            try:
                step()
            except CatalogError as error:
                if error.status != 409:  # already there: fine
                    raise
        self.tables.forget(FULL_NAME)
        log.info("created table %s", FULL_NAME)


def _batch(table: TableInfo, rows: list[dict[str, Any]]):
    import pyarrow as pa

    schema = table.target.schema
    arrays = [pa.array([row.get(f.name) for row in rows], type=f.type) for f in schema]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
