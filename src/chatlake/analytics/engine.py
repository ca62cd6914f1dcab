"""Databricks SQL over catalog tables, answered by DuckDB on Delta snapshots.

A query goes through four steps: parse it as Databricks SQL and refuse
anything but a read (guard), resolve each three-part table through the
catalog with the caller's credentials (resolver), expose each table's current
Delta snapshot as a view (snapshots), then run sqlglot's DuckDB translation
on a database that may open only those tables' directories, with every other
file, the network and its settings out of reach.

    engine = SqlEngine(CatalogClient.local_admin(url, data_dir))
    table = engine.query("SELECT count(*) FROM main.chatbot.chat_events")
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb
import pyarrow as pa
from sqlglot import exp

from chatlake import config
from chatlake.analytics import dialect, guard, snapshots
from chatlake.analytics.errors import (
    QueryError,
    QueryInterruptedError,
    QueryTimeoutError,
)
from chatlake.analytics.resolver import TableResolver
from chatlake.errors import ConfigError

log = logging.getLogger(__name__)

# Extensions never load; file and network access is switched off after the
# table directories a database may read are set (see _connect).
_DUCKDB_CONFIG = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
}
MAX_DATABASES = 8
INTERRUPT_REPEAT_S = 0.05


class SqlEngine:
    """Runs read-only Databricks SQL over tables the caller may SELECT from.

    ``source`` is a TableResolver, or a CatalogClient whose principal must hold
    SELECT on each table a query reads. A statement running longer than
    ``timeout_s`` is stopped with QueryTimeoutError; interrupt() stops every
    running statement from another thread, and the engine runs none after it.
    """

    def __init__(
        self,
        source: Any,
        *,
        owns_source: bool = False,
        timeout_s: float | None = None,
    ) -> None:
        _check_timeout(timeout_s)
        self._resolver = _as_resolver(source)
        self._owns_source = owns_source
        self._timeout_s = timeout_s
        # Each running statement's cursor, and the event set when it ends.
        self._running: dict[duckdb.DuckDBPyConnection, threading.Event] = {}
        self._running_lock = threading.Lock()
        self._interrupted = False
        self._databases: dict[frozenset[str], duckdb.DuckDBPyConnection] = {}
        self._database_lock = threading.Lock()

    def close(self) -> None:
        """Close the resolver's connections if this engine was given ownership."""
        close = getattr(self._resolver, "close", None)
        if self._owns_source and close is not None:
            close()
        with self._database_lock:
            for database in self._databases.values():
                database.close()
            self._databases.clear()

    def interrupt(self) -> None:
        """Stop every statement, running or yet to run: QueryInterruptedError."""
        with self._running_lock:
            self._interrupted = True
            for cursor, finished in self._running.items():
                with contextlib.suppress(duckdb.Error):  # it may just have ended
                    cursor.interrupt()
                # Not a daemon: one killed inside DuckDB at exit aborts the process.
                threading.Thread(
                    target=_keep_interrupting, args=(cursor, finished)
                ).start()

    def __enter__(self) -> SqlEngine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        """The result of one SELECT statement as an Arrow table."""
        prepared = prepare(sql)
        if len(prepared) != 1:
            raise QueryError(
                f"expected one statement, got {len(prepared)}; "
                f"use run_script() or `chatlake sql --file` for several"
            )
        return self._run(prepared[0], params or {})

    def run_script(self, sql: str) -> list[pa.Table]:
        """Every statement of a script, all checked before the first runs."""
        return [self._run(statement, {}) for statement in prepare(sql)]

    def _run(self, statement: Prepared, params: Mapping[str, Any]) -> pa.Table:
        bound = statement.bind(params)
        tables = [self._resolver.resolve(name) for name in statement.tables]
        started = time.perf_counter()
        try:
            result = self._read(statement, tables, bound)
        except _FileGone:
            # Compaction and vacuum may delete a file between listing and
            # reading; the next snapshot no longer names it.
            result = self._read(statement, tables, bound)
        log.debug(
            "query over %s: %d rows in %.1f ms",
            statement.tables,
            result.num_rows,
            (time.perf_counter() - started) * 1000,
        )
        return result

    def _read(self, statement: Prepared, tables: list, bound: dict) -> pa.Table:
        versions = statement.as_of or (None,) * len(tables)
        loaded = [
            snapshots.load(table) if as_of is None else snapshots.load(table, as_of)
            for table, as_of in zip(tables, versions, strict=True)
        ]
        try:
            return self._read_snapshots(statement, loaded, bound)
        except _SchemaDrift:
            by_name = [dataclasses.replace(s, union_by_name=True) for s in loaded]
            return self._read_snapshots(statement, by_name, bound)

    def _read_snapshots(
        self, statement: Prepared, loaded: list, bound: dict
    ) -> pa.Table:
        readable = frozenset(s.directory for s in loaded if s.directory)
        with self._cursor(readable) as cursor:
            for view, snapshot in zip(statement.views, loaded, strict=True):
                try:
                    snapshot.attach(cursor, view)
                except duckdb.IOException as error:
                    raise _FileGone(
                        f"cannot read a table file: {_clean(error)}"
                    ) from error
            with self._watching(cursor):
                if statement.fast_sql is not None:
                    try:
                        return _execute(cursor, statement.fast_sql, bound)
                    except _WrongTypes:
                        pass  # a date or hour of a non-timestamp: translate plainly
                return _execute(cursor, statement.duckdb_sql, bound)

    @contextlib.contextmanager
    def _watching(self, cursor: duckdb.DuckDBPyConnection) -> Iterator[None]:
        """Let interrupt() and the timeout stop what ``cursor`` runs."""
        with self._running_lock:
            if self._interrupted:
                raise QueryInterruptedError("query interrupted")
            finished = self._running[cursor] = threading.Event()
        expired = threading.Event()
        timer = None
        if self._timeout_s is not None:
            timer = threading.Timer(
                self._timeout_s, _expire, (cursor, expired, finished)
            )
            timer.start()  # not a daemon either; cancelled when the statement ends
        try:
            yield
        except QueryInterruptedError:
            if expired.is_set():
                raise QueryTimeoutError(
                    f"query stopped after the {self._timeout_s:g} s timeout"
                ) from None
            raise
        finally:
            with self._running_lock:
                del self._running[cursor]
            finished.set()
            if timer is not None:
                timer.cancel()

    def _cursor(self, readable: frozenset[str]) -> duckdb.DuckDBPyConnection:
        # A cursor is a cheap connection of its own to an in-memory database:
        # its views stay private and it may run in any thread. Each database may
        # open only the table directories it was made for, so there is one per
        # set of directories (in practice one or two), kept in a small LRU.
        with self._database_lock:
            database = self._databases.pop(readable, None) or _connect(readable)
            self._databases[readable] = database
            while len(self._databases) > MAX_DATABASES:
                oldest = next(iter(self._databases))
                self._databases.pop(oldest).close()
            return database.cursor()


@dataclass(frozen=True)
class Prepared:
    """One checked statement: its DuckDB text, the tables it reads, its markers."""

    duckdb_sql: str
    tables: tuple[str, ...]
    views: tuple[str, ...]
    markers: frozenset[str]
    fast_sql: str | None = None
    # Per table: the Delta version (int) or moment of a time travel, or None.
    as_of: tuple[int | datetime | None, ...] = ()

    def bind(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The values of the ``:name`` markers; all must be given."""
        missing = sorted(name for name in self.markers if name not in params)
        if missing:
            raise QueryError(f"no value given for parameter(s) {', '.join(missing)}")
        return {name: params[name] for name in self.markers}


@functools.lru_cache(maxsize=256)
def prepare(sql: str) -> tuple[Prepared, ...]:
    """Parse, check and translate every statement of ``sql`` (cached by text)."""
    statements = guard.parse(sql)
    for statement in statements:
        guard.check_read_only(statement)
    return tuple(_prepare_one(statement) for statement in statements)


def _prepare_one(statement: exp.Expression) -> Prepared:
    references = sorted(
        {
            (guard.full_name(t), guard.as_of(t))
            for t in guard.table_references(statement)
        },
        key=lambda reference: (reference[0], str(reference[1])),
    )
    names = [name for name, _ in references]
    views = [f"_cl{i}_{name.rsplit('.', 1)[-1]}" for i, name in enumerate(names)]
    markers = frozenset(m.name for m in statement.find_all(exp.Placeholder))
    mapping = dict(zip(references, views, strict=True))
    duckdb_sql = dialect.to_duckdb(statement, mapping)
    fast_sql = dialect.to_duckdb(statement, mapping, utc_arithmetic=True)
    fast = fast_sql if fast_sql != duckdb_sql else None
    as_of = tuple(when for _, when in references)
    return Prepared(duckdb_sql, tuple(names), tuple(views), markers, fast, as_of)


def _as_resolver(source: Any) -> TableResolver:
    if hasattr(source, "resolve"):
        return source
    from chatlake.analytics.catalog_resolver import CatalogResolver

    return CatalogResolver(source)


def _connect(readable: frozenset[str] = frozenset()) -> duckdb.DuckDBPyConnection:
    """A database that may read only ``readable`` directories, settings locked."""
    connection = duckdb.connect(":memory:", config=_DUCKDB_CONFIG)
    if readable:
        listed = ", ".join("'" + d.replace("'", "''") + "'" for d in sorted(readable))
        connection.execute(f"SET allowed_directories = [{listed}]")
    connection.execute("SET enable_external_access = false")
    # Databricks reads TIMESTAMP in the session time zone, UTC by default.
    connection.execute("SET TimeZone = 'UTC'")
    connection.execute("SET lock_configuration = true")
    return connection


def _execute(
    connection: duckdb.DuckDBPyConnection, sql: str, params: Mapping[str, Any]
) -> pa.Table:
    try:
        result = connection.sql(sql, params=dict(params) or None)
        table = result.to_arrow_table() if result is not None else pa.table({})
    except duckdb.IOException as error:
        raise _FileGone(f"query failed: {_clean(error)}") from error
    except duckdb.InterruptException:
        raise QueryInterruptedError("query interrupted") from None
    except duckdb.InvalidInputException as error:
        if "schema mismatch" in str(error):
            raise _SchemaDrift(f"query failed: {_clean(error)}") from error
        raise QueryError(f"query failed: {_clean(error)}") from error
    except (duckdb.BinderException, duckdb.ConversionException) as error:
        raise _WrongTypes(f"query failed: {_clean(error)}") from error
    except duckdb.Error as error:
        raise QueryError(f"query failed: {_clean(error)}") from error
    return _databricks_types(table)


class _FileGone(QueryError):
    """A snapshot's file could not be opened: retried once with a new snapshot."""


class _SchemaDrift(QueryError):
    """Files of one table have different columns: read again matching by name."""


class _WrongTypes(QueryError):
    """DuckDB refused the types of an expression (binder or conversion error)."""


def _expire(
    cursor: duckdb.DuckDBPyConnection,
    expired: threading.Event,
    finished: threading.Event,
) -> None:
    expired.set()
    _keep_interrupting(cursor, finished)


def _keep_interrupting(
    cursor: duckdb.DuckDBPyConnection, finished: threading.Event
) -> None:
    # DuckDB forgets an interrupt that comes before the statement starts to
    # execute, so repeat it until the statement has ended.
    while not finished.is_set():
        with contextlib.suppress(duckdb.Error):  # it may just have ended
            cursor.interrupt()
        finished.wait(INTERRUPT_REPEAT_S)


def _databricks_types(table: pa.Table) -> pa.Table:
    """Integer sums and counts as BIGINT, as Databricks returns them.

    DuckDB widens them to HUGEINT, which reaches Arrow as decimal(38, 0).
    """
    for index, field in enumerate(table.schema):
        if _is_hugeint(field.type):
            try:
                column = table.column(index).cast(pa.int64())
            except pa.ArrowInvalid:
                continue
            table = table.set_column(index, field.with_type(pa.int64()), column)
    return table


def _clean(error: duckdb.Error) -> str:
    # DuckDB messages name our internal view names; keep only the first line.
    return str(error).strip().splitlines()[0]


def _is_hugeint(data_type: pa.DataType) -> bool:
    return (
        pa.types.is_decimal(data_type)
        and data_type.precision == 38
        and data_type.scale == 0
    )


def _check_timeout(timeout_s: float | None) -> None:
    # nan would stop every statement at once, infinity overflow the timer.
    if timeout_s is None:
        return
    problem = config.number_problem(
        timeout_s, maximum=threading.TIMEOUT_MAX, above_minimum=True
    )
    if problem:
        raise ConfigError(f"SQL timeout_s {problem}, got {timeout_s!r}")
