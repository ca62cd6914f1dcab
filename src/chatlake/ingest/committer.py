"""Turn durable batches into Delta commits, one committer per table.

Every commit carries a Delta application transaction ``(app_id, version)``
where ``app_id`` names the write-ahead log and ``version`` is the sequence
number of the last batch in the commit. Delta stores the highest version per
app id atomically with the data, so after a crash the WAL replays only what
lies beyond it, and a retried commit whose first attempt did land is skipped:
no batch is ever written twice.

Two triggers decide when to commit:

- WAL mode: every ``commit_interval_s`` after the oldest pending batch, or as
  soon as ``commit_bytes`` are pending, whichever comes first.
- commit mode (``group_commit``): as soon as the previous commit finishes,
  with everything that arrived meanwhile, because each appender waits.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake.exceptions import DeltaError, SchemaMismatchError

from chatlake.ingest import storage_metrics as metrics
from chatlake.ingest.dedupe import DedupeIndex, DedupeResult
from chatlake.ingest.storage_errors import (
    BatchRejectedError,
    CommitError,
    StorageClosedError,
)

if TYPE_CHECKING:
    from chatlake.ingest.storage import TableTarget

log = logging.getLogger(__name__)

RETRY_BACKOFF_S = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0)
COMMIT_MODE_ATTEMPTS = 3
# A DeltaTable kept open across commits grows in memory with every commit it
# applies (about 80 KB each, measured): a process committing every second
# would grow without bound. Reloading it now and then reads the latest
# checkpoint (deltalake writes one every 100 versions) and frees that state.
REOPEN_AFTER_COMMITS = 100
# deltalake raises these for data the table's schema or constraints refuse.
_DATA_ERRORS = (
    SchemaMismatchError,
    pa.ArrowInvalid,
    pa.ArrowTypeError,
    pa.ArrowNotImplementedError,
)
_DATA_ERROR_TEXTS = ("Invalid data found", "failed validation", "Cast error")


@dataclass
class PendingBatch:
    """A batch waiting for its commit. ``done`` is set in commit mode only."""

    seq: int
    batch: pa.RecordBatch
    size_bytes: int
    appended_at_s: float = field(default_factory=time.monotonic)
    done: asyncio.Future | None = None


@dataclass(frozen=True)
class CommitOutcome:
    """What one commit wrote."""

    version: int
    rows_written: int
    rows_dropped: int
    skipped_as_committed: bool


def committed_version(location: str, app_id: str) -> int:
    """The highest transaction version of ``app_id`` in the table, else -1."""
    if not DeltaTable.is_deltatable(location):
        return -1
    version = DeltaTable(location).transaction_version(app_id)
    return -1 if version is None else version


class Committer:
    """Collects pending batches of one table and commits them in the background.

    ``on_committed(version)`` runs after each successful commit (the WAL uses
    it to delete segments). Call ``start()`` once, ``close()`` at the end.

    A batch the table refuses (schema, NOT NULL, types) must not block the
    table forever: the committer finds it by committing one batch at a time,
    then fails its appender (commit mode) or moves it to ``quarantine_dir``
    as an Arrow file (wal mode, where it was already acked) and moves on.
    """

    def __init__(
        self,
        target: TableTarget,
        *,
        app_id: str,
        commit_interval_s: float,
        commit_bytes: int,
        max_pending_bytes: int,
        group_commit: bool,
        dedupe: DedupeIndex | None = None,
        on_committed: Callable[[int], Awaitable[None]] | None = None,
        quarantine_dir: Path | None = None,
    ) -> None:
        self.target = target
        self.app_id = app_id
        self.commit_interval_s = commit_interval_s
        self.commit_bytes = commit_bytes
        self.max_pending_bytes = max_pending_bytes
        self.group_commit = group_commit
        self.dedupe = dedupe
        self.on_committed = on_committed
        self.quarantine_dir = quarantine_dir
        self._table: DeltaTable | None = None
        self._table_location: str | None = None
        self._commits_on_table = 0
        self._one_at_a_time_through = -1
        self._pending: deque[PendingBatch] = deque()
        self._pending_bytes = 0
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._commit_lock = asyncio.Lock()
        self._task: asyncio.Task | None = None
        self._closing = False
        self._uncertain = False
        self._failures_in_row = 0

    # -- feeding --------------------------------------------------------------

    @property
    def pending_bytes(self) -> int:
        return self._pending_bytes

    @property
    def pending_batches(self) -> int:
        return len(self._pending)

    def add(self, item: PendingBatch) -> None:
        """Queue a batch; it must come in sequence order."""
        if self._closing:
            raise StorageClosedError(f"table {self.label}: storage is stopping")
        self._pending.append(item)
        self._pending_bytes += item.size_bytes
        if self._pending_bytes > self.max_pending_bytes:
            self._room.clear()
        self._wake.set()

    @property
    def has_room(self) -> bool:
        return self._room.is_set()

    async def wait_for_room(self) -> None:
        """Block while more than ``max_pending_bytes`` wait for a commit."""
        await self._room.wait()

    # -- life cycle -----------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"commit {self.label}")

    @property
    def label(self) -> str:
        return self.target.full_name

    async def close(self) -> bool:
        """Stop the background loop, then try one last commit of what is left.

        Returns False if something stayed uncommitted (in wal mode it stays in
        the log for the next start).
        """
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        committed = await self.commit_now(attempts=1)
        self._fail_waiters(CommitError(f"table {self.label}: storage stopped"))
        return committed

    async def _run(self) -> None:
        while not self._closing:
            await self._wait_until_due()
            if self._closing:
                return
            if not await self._commit_due():
                await self._back_off()

    async def _commit_due(self) -> bool:
        # WAL mode commits what was due when it woke; batches arriving during
        # that commit wait for their own interval, so a busy table still gets
        # about one commit per interval, not one per commit duration.
        if self.group_commit:
            return await self.commit_now()
        async with self._commit_lock:
            if not self._pending:
                return True
            return await self._commit_pending(None, through_seq=self._pending[-1].seq)

    async def _wait_until_due(self) -> None:
        while not self._closing:
            self._wake.clear()
            if not self._pending:
                await self._wake.wait()
                continue
            if self.group_commit or self._pending_bytes >= self.commit_bytes:
                return
            due_s = self._pending[0].appended_at_s + self.commit_interval_s
            remaining_s = due_s - time.monotonic()
            if remaining_s <= 0:
                return
            try:
                await asyncio.wait_for(self._wake.wait(), remaining_s)
            except TimeoutError:
                return

    async def _back_off(self) -> None:
        step = min(self._failures_in_row, len(RETRY_BACKOFF_S)) - 1
        try:
            await asyncio.wait_for(self._wait_closing(), RETRY_BACKOFF_S[max(step, 0)])
        except TimeoutError:
            pass

    async def _wait_closing(self) -> None:
        while not self._closing:
            self._wake.clear()
            await self._wake.wait()

    async def retarget(self, target: TableTarget, dedupe: DedupeIndex | None) -> bool:
        """Commit what is pending to the old target, then switch to ``target``.

        Returns False if the pending batches could not be committed first (they
        then go to the new target).
        """
        async with self._commit_lock:
            committed = await self._commit_pending(attempts=None)
            self.target = target
            self.dedupe = dedupe
            return committed

    # -- committing -----------------------------------------------------------

    async def commit_now(self, attempts: int | None = None) -> bool:
        """Commit everything pending now. False if a commit failed (kept pending).

        In commit mode a batch whose commit failed ``COMMIT_MODE_ATTEMPTS``
        times is dropped and its appender gets CommitError.
        """
        async with self._commit_lock:
            return await self._commit_pending(attempts)

    async def _commit_pending(
        self, attempts: int | None, through_seq: int | None = None
    ) -> bool:
        while self._pending:
            if through_seq is not None and self._pending[0].seq > through_seq:
                return True
            items = self._take_run(through_seq)
            if not await self._commit_items(items, attempts):
                return False
        return True

    def _take_run(self, through_seq: int | None = None) -> list[PendingBatch]:
        """The oldest batches up to commit_bytes that share one schema."""
        first = self._pending.popleft()
        items, size = [first], first.size_bytes
        one_at_a_time = first.seq <= self._one_at_a_time_through
        while self._pending and size < self.commit_bytes and not one_at_a_time:
            following = self._pending[0]
            if through_seq is not None and following.seq > through_seq:
                break
            if not following.batch.schema.equals(first.batch.schema):
                break
            items.append(self._pending.popleft())
            size += following.size_bytes
        self._pending_bytes -= size
        return items

    async def _commit_items(
        self, items: list[PendingBatch], attempts: int | None
    ) -> bool:
        started = time.perf_counter()
        try:
            outcome = await asyncio.to_thread(self._write, items)
        except BatchRejectedError as error:
            return await self._isolate_or_reject(items, error)
        except CommitError as error:
            return self._commit_failed(items, error, attempts)
        except Exception as error:  # a bug: keep the batches, report it once
            log.exception("table %s: unexpected commit failure", self.label)
            failure = CommitError(f"table {self.label}: commit failed: {error!r}")
            return self._commit_failed(items, failure, attempts)

        self._failures_in_row = 0
        self._record(items, outcome, time.perf_counter() - started)
        await self._notify_committed(outcome.version)
        for item in items:
            if item.done is not None and not item.done.done():
                item.done.set_result(outcome.version)
        self._update_room()
        return True

    def _commit_failed(self, items, error: CommitError, attempts: int | None) -> bool:
        self._failures_in_row += 1
        self._uncertain = True
        metrics.COMMIT_FAILURES.labels(self.label).inc()
        limit = attempts or (COMMIT_MODE_ATTEMPTS if self.group_commit else None)
        if self.group_commit and self._failures_in_row >= limit:
            log.error(
                "table %s: dropping %d batches after %d failed commits: %s",
                self.label,
                len(items),
                self._failures_in_row,
                error,
            )
            for item in items:
                if item.done is not None and not item.done.done():
                    item.done.set_exception(error)
            self._failures_in_row = 0
            self._update_room()
            return True
        log.warning(
            "table %s: commit failed (attempt %d), will retry: %s",
            self.label,
            self._failures_in_row,
            error,
        )
        self._restore(items)
        return False

    def _restore(self, items: list[PendingBatch]) -> None:
        self._pending.extendleft(reversed(items))
        self._pending_bytes += sum(item.size_bytes for item in items)

    async def _isolate_or_reject(
        self, items: list[PendingBatch], error: BatchRejectedError
    ) -> bool:
        if len(items) > 1:
            log.warning(
                "table %s: the table refuses a batch among sequences %d-%d (%s); "
                "committing them one at a time",
                self.label,
                items[0].seq,
                items[-1].seq,
                error,
            )
            self._one_at_a_time_through = items[-1].seq
            self._restore(items)
            return True
        await self._reject(items[0], error)
        return True

    async def _reject(self, item: PendingBatch, error: BatchRejectedError) -> None:
        metrics.REJECTED_BATCHES.labels(self.label).inc()
        if item.done is not None:
            if not item.done.done():
                item.done.set_exception(error)
        else:
            path = await asyncio.to_thread(self._quarantine, item)
            log.error(
                "table %s: batch %d (%d rows) refused by the table, %s: %s",
                self.label,
                item.seq,
                item.batch.num_rows,
                f"kept in {path}" if path else "dropped",
                error,
            )
        self._uncertain = False
        await self._notify_committed(item.seq)
        self._update_room()

    def _quarantine(self, item: PendingBatch) -> Path | None:
        if self.quarantine_dir is None:
            return None
        self.quarantine_dir.mkdir(parents=True, exist_ok=True)
        path = self.quarantine_dir / f"{item.seq:020d}.arrow"
        partial = path.with_suffix(".partial")
        with pa.OSFile(str(partial), "wb") as sink:
            with pa.ipc.new_file(sink, item.batch.schema) as writer:
                writer.write_batch(item.batch)
        with open(partial, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(partial, path)
        return path

    async def _notify_committed(self, version: int) -> None:
        if self.on_committed is None:
            return
        try:
            await self.on_committed(version)
        except OSError as error:
            # Only cleanup failed; the next commit releases these segments too.
            log.warning(
                "table %s: releasing WAL up to %d failed: %s",
                self.label,
                version,
                error,
            )

    def _update_room(self) -> None:
        if self._pending_bytes <= self.max_pending_bytes:
            self._room.set()

    def _record(
        self, items: list[PendingBatch], outcome: CommitOutcome, took_s: float
    ) -> None:
        metrics.COMMITS.labels(self.label).inc()
        metrics.COMMIT_ROWS.labels(self.label).inc(outcome.rows_written)
        metrics.COMMIT_SECONDS.labels(self.label).observe(took_s)
        if outcome.rows_dropped:
            metrics.DEDUPE_DROPPED.labels(self.label).inc(outcome.rows_dropped)
            log.info(
                "table %s: dropped %d duplicate rows", self.label, outcome.rows_dropped
            )
        now = time.monotonic()
        time_to_table = metrics.TIME_TO_TABLE_SECONDS.labels(self.label)
        for item in items:
            time_to_table.observe(now - item.appended_at_s)

    # -- the blocking part, run in a worker thread ------------------------------

    def _write(self, items: list[PendingBatch]) -> CommitOutcome:
        version = items[-1].seq
        location = self.target.location
        try:
            if self._uncertain and committed_version(location, self.app_id) >= version:
                # The failed attempt did land; writing again would duplicate.
                self._uncertain = False
                return CommitOutcome(version, 0, 0, skipped_as_committed=True)
            deduped = self._deduplicated(items)
            write_deltalake(
                self._open_table(location),
                deduped.table,
                mode="append",
                commit_properties=CommitProperties(
                    app_transactions=[Transaction(self.app_id, version)]
                ),
            )
        except Exception as error:
            self._table = None  # reload the log next time: it may have moved on
            raise self._translate(error, location) from error
        self._uncertain = False
        self._commits_on_table += 1
        if self._commits_on_table >= REOPEN_AFTER_COMMITS:
            self._table = None  # see REOPEN_AFTER_COMMITS
        self._remember_keys(deduped)
        return CommitOutcome(
            version,
            deduped.table.num_rows,
            deduped.dropped_rows,
            skipped_as_committed=False,
        )

    def _open_table(self, location: str) -> DeltaTable | str:
        """The table kept open between commits (deltalake updates it on write).

        Reading the log again for every commit costs more as the log grows.
        A location without a table yet is returned as is: the write creates it.
        """
        if self._table is not None and self._table_location == location:
            return self._table
        if not DeltaTable.is_deltatable(location):
            return location
        self._table = DeltaTable(location)
        self._table_location = location
        self._commits_on_table = 0
        return self._table

    def _translate(self, error: Exception, location: str) -> Exception:
        """A CommitError (retryable) or BatchRejectedError (not); bugs pass."""
        text = str(error)
        if isinstance(error, BatchRejectedError):
            return error
        if isinstance(error, _DATA_ERRORS) or any(t in text for t in _DATA_ERROR_TEXTS):
            return BatchRejectedError(
                f"table {self.label}: the table refuses the data: {text}"
            )
        if isinstance(error, (DeltaError, OSError, pa.ArrowException)):
            return CommitError(
                f"table {self.label}: Delta commit at {location} failed: {text}"
            )
        return error

    def _deduplicated(self, items: list[PendingBatch]) -> DedupeResult:
        table = pa.Table.from_batches([item.batch for item in items])
        key = self.target.dedupe_key
        if self.dedupe is None or key is None:
            return DedupeResult(table, 0)
        if key not in table.column_names:
            raise BatchRejectedError(
                f"table {self.label}: rows lack the dedupe key column {key!r}"
            )
        return self.dedupe.filter(table, key, now_s=time.time())

    def _remember_keys(self, deduped: DedupeResult) -> None:
        if self.dedupe is None or self.target.dedupe_key is None:
            return
        before = self.dedupe.evicted_keys
        # The hashes filter() made for the kept rows: no second pass over keys.
        self.dedupe.remember_kept(deduped, now_s=time.time())
        evicted = self.dedupe.evicted_keys - before
        if evicted:
            metrics.DEDUPE_EVICTED.labels(self.label).inc(evicted)
            log.warning(
                "table %s: dedupe index full, forgot %d keys early", self.label, evicted
            )

    def _fail_waiters(self, error: CommitError) -> None:
        while self._pending:
            item = self._pending.popleft()
            if item.done is not None and not item.done.done():
                item.done.set_exception(error)
        self._pending_bytes = 0
        self._room.set()
