"""What a query reads of one Delta table: the files of its current version, or of
the version a ``VERSION AS OF`` / ``TIMESTAMP AS OF`` clause asks for.

A local table of plain Parquet files (no deletion vectors, column mapping or
partition columns: what chatlake's committer writes) is read by DuckDB's own
Parquet reader, which skips row groups by their statistics and runs several
times faster than an Arrow scan. DuckDB may then open exactly that table's
directory and nothing else. Any other table is handed over as a pyarrow
dataset that deltalake builds, which honours every Delta feature it supports.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit

import duckdb
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from deltalake import DeltaTable
from deltalake.exceptions import DeltaError, TableNotFoundError

from chatlake.analytics.errors import TableAccessError
from chatlake.analytics.resolver import ResolvedTable


@dataclass(frozen=True)
class Snapshot:
    """Either Parquet ``files`` under ``directory``, or an Arrow ``dataset``."""

    files: tuple[str, ...] = ()
    directory: str | None = None
    dataset: ds.Dataset | None = None
    # Matching columns by name across files costs DuckDB about half its scan
    # speed; needed only when files differ (columns added over time).
    union_by_name: bool = False

    def attach(self, cursor: duckdb.DuckDBPyConnection, view: str) -> None:
        """Make the snapshot readable as ``view`` on this cursor only."""
        if self.dataset is not None:
            cursor.register(view, self.dataset)
            return
        listed = ", ".join(_literal(path) for path in self.files)
        union = "true" if self.union_by_name else "false"
        cursor.execute(
            f'CREATE TEMP VIEW "{view}" AS SELECT * FROM '
            f"read_parquet([{listed}], union_by_name = {union})"
        )


def load(table: ResolvedTable, as_of: int | datetime | None = None) -> Snapshot:
    """``table`` now, or at version/moment ``as_of``; TableAccessError if unreadable."""
    try:
        delta = _open(table, as_of)
        return _direct(delta, table.location) or Snapshot(
            dataset=delta.to_pyarrow_dataset()
        )
    except TableNotFoundError:
        if table.schema is not None and as_of is None:
            # Created in the catalog but nothing committed yet: no rows.
            return Snapshot(dataset=ds.dataset(table.schema.empty_table()))
        raise TableAccessError(
            f"table {table.full_name} has no Delta table at {table.location}"
        ) from None
    except TableAccessError:
        raise  # a PermissionError, hence an OSError: already says what is wrong
    except (DeltaError, OSError) as error:
        raise TableAccessError(
            f"cannot read table {table.full_name} at {table.location}: {error}"
        ) from error


def _open(table: ResolvedTable, as_of: int | datetime | None) -> DeltaTable:
    if as_of is None:
        return DeltaTable(table.location)
    delta = DeltaTable(table.location)
    latest = delta.version()
    if isinstance(as_of, int):
        if as_of > latest:
            raise TableAccessError(
                f"table {table.full_name} has no version {as_of}: "
                f"its latest version is {latest}"
            )
        return DeltaTable(table.location, version=as_of)
    delta.load_as_version(as_of)
    if delta.version() == 0:
        _check_existed(delta, table, as_of)
    return delta


def _check_existed(delta: DeltaTable, table: ResolvedTable, moment: datetime) -> None:
    # deltalake answers a moment before the first commit with version 0; the
    # table did not exist then, so that is an error, as in Databricks.
    created = _first_commit_time(delta, table.location)
    if moment < created:
        full_name = table.full_name
        raise TableAccessError(
            f"table {full_name} did not exist at {moment.isoformat()}: "
            f"its first version is from {created.isoformat()}"
        )


def _first_commit_time(delta: DeltaTable, location: str) -> datetime:
    # deltalake picks versions by their log files' modification times, so the
    # same clock decides whether the table existed; history() is for remote ones.
    directory = _local_directory(location)
    if directory is not None:
        first = os.path.join(directory, "_delta_log", f"{0:020d}.json")
        with contextlib.suppress(OSError):
            return datetime.fromtimestamp(os.stat(first).st_mtime, UTC)
    first_ms = min(entry["timestamp"] for entry in delta.history())
    return datetime.fromtimestamp(first_ms / 1000, UTC)


def _direct(delta: DeltaTable, location: str) -> Snapshot | None:
    directory = _local_directory(location)
    if directory is None or delta.protocol().min_reader_version > 1:
        return None
    if delta.metadata().partition_columns:
        return None
    files = tuple(_local_path(uri) for uri in delta.file_uris())
    if not files or not all(_inside(path, directory) for path in files):
        return None
    # DuckDB takes the first file's columns for all of them: if it lacks one,
    # match by name. A later file that lacks one fails loudly (the engine then
    # asks for union_by_name).
    columns = {field.name for field in delta.schema().fields}
    first = set(pq.read_schema(files[0]).names)
    return Snapshot(files=files, directory=directory, union_by_name=first != columns)


def _local_directory(location: str) -> str | None:
    if location.startswith("file://"):
        path = unquote(urlsplit(location).path)
    elif "://" in location:
        return None
    else:
        path = location
    return os.path.realpath(path) + os.sep


def _local_path(uri: str) -> str:
    return unquote(urlsplit(uri).path) if uri.startswith("file://") else uri


def _inside(path: str, directory: str) -> bool:
    return os.path.realpath(path).startswith(directory)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
