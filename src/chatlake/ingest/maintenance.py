"""Keep ingested Delta tables healthy: compact, checkpoint, vacuum.

One commit a second leaves one small file a second. Compaction rewrites them
into few large files (readers open fewer files), a checkpoint lets readers
skip replaying the JSON log, and vacuum deletes files that no version within
the retention period still references. All three are safe beside a running
committer: Delta's optimistic concurrency lets appends and compaction commit
side by side.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, TypeVar

from deltalake import DeltaTable, WriterProperties
from deltalake.exceptions import DeltaError

from chatlake.ingest import storage_metrics as metrics
from chatlake.ingest.storage_errors import MaintenanceError

if TYPE_CHECKING:
    from chatlake.ingest.storage import TableTarget

log = logging.getLogger(__name__)
T = TypeVar("T")

# Rows per Parquet row group in compacted files. deltalake's default of about
# a million leaves a query of the last day reading a million-row group for a
# few thousand rows, and gives DuckDB a handful of units to split among its
# threads. On 10M chat turns, 128k-row groups made the dashboard's 24 h render
# 1.7x and recent_conversations 8x faster (benchmarks/analytics.py).
ROW_GROUP_ROWS = 131_072


@dataclass(frozen=True)
class MaintenanceReport:
    """What one maintenance pass did to a table."""

    table: str
    version: int
    files_removed: int
    files_added: int
    checkpoint_version: int
    vacuumed_files: int

    def to_dict(self) -> dict:
        return asdict(self)


def optimize_table(
    full_name: str,
    location: str,
    *,
    vacuum: bool = True,
    vacuum_retention_hours: float = 168.0,
) -> MaintenanceReport:
    """Compact small files, write a checkpoint, then vacuum old files.

    Blocking; raises MaintenanceError naming the table and the step.
    """
    if not _step(full_name, "open", lambda: DeltaTable.is_deltatable(location)):
        raise MaintenanceError(f"table {full_name}: no Delta table at {location}")
    table = _step(full_name, "open", lambda: DeltaTable(location))
    properties = WriterProperties(max_row_group_size=ROW_GROUP_ROWS)
    compacted = _step(
        full_name,
        "compact",
        lambda: table.optimize.compact(writer_properties=properties),
    )
    _step(full_name, "checkpoint", table.create_checkpoint)
    checkpoint_version = table.version()
    _step(full_name, "log cleanup", table.cleanup_metadata)
    vacuumed = []
    if vacuum:
        # Rounded up: a fraction of an hour must not become "delete everything".
        hours = math.ceil(vacuum_retention_hours)
        vacuumed = _step(
            full_name,
            "vacuum",
            lambda: table.vacuum(
                retention_hours=hours, dry_run=False, enforce_retention_duration=False
            ),
        )
    return MaintenanceReport(
        table=full_name,
        version=table.version(),
        files_removed=int(compacted.get("numFilesRemoved", 0)),
        files_added=int(compacted.get("numFilesAdded", 0)),
        checkpoint_version=checkpoint_version,
        vacuumed_files=len(vacuumed),
    )


def _step(full_name: str, step: str, action: Callable[[], T]) -> T:
    try:
        return action()
    except (DeltaError, OSError) as error:
        raise MaintenanceError(f"table {full_name}: {step} failed: {error}") from error


class MaintenanceScheduler:
    """Runs optimize_table on every known table every ``interval_s`` seconds."""

    def __init__(
        self,
        targets: Callable[[], list[TableTarget]],
        *,
        interval_s: float,
        vacuum_retention_hours: float,
    ) -> None:
        self._targets = targets
        self.interval_s = interval_s
        self.vacuum_retention_hours = vacuum_retention_hours
        self._stopping = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="table maintenance")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def run_once(self) -> list[MaintenanceReport]:
        """One pass over every table; a failing table does not stop the others."""
        reports = []
        for target in self._targets():
            try:
                report = await asyncio.to_thread(
                    optimize_table,
                    target.full_name,
                    target.location,
                    vacuum_retention_hours=self.vacuum_retention_hours,
                )
            except MaintenanceError as error:
                metrics.MAINTENANCE_RUNS.labels(target.full_name, "failed").inc()
                log.warning("maintenance of %s failed: %s", target.full_name, error)
                continue
            metrics.MAINTENANCE_RUNS.labels(target.full_name, "ok").inc()
            log.info(
                "maintenance of %s: %d files compacted into %d, %d vacuumed",
                target.full_name,
                report.files_removed,
                report.files_added,
                report.vacuumed_files,
            )
            reports.append(report)
        return reports

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await asyncio.wait_for(self._stopping.wait(), self.interval_s)
                return
            except TimeoutError:
                pass
            await self.run_once()
