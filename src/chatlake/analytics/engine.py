"""Databricks SQL over catalog tables, answered by DuckDB on Delta snapshots.

A query goes through four steps: parse it as Databricks SQL and refuse
anything but a read (guard), resolve each three-part table through the
catalog with the caller's credentials (resolver), register each table's
current Delta snapshot as an Arrow dataset view, then run sqlglot's DuckDB
translation on a connection that cannot touch files or the network.

    engine = SqlEngine(CatalogClient.local_admin(url, data_dir))
    table = engine.query("SELECT count(*) FROM main.chatbot.chat_events")
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
from deltalake import DeltaTable
from deltalake.exceptions import DeltaError, TableNotFoundError
from sqlglot import exp

from chatlake.analytics import dialect, guard
from chatlake.analytics.errors import QueryError, TableAccessError
from chatlake.analytics.resolver import ResolvedTable, TableResolver

log = logging.getLogger(__name__)

# File and network access stay off; the snapshots arrive as Arrow objects.
_DUCKDB_CONFIG = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
}


class SqlEngine:
    """Runs read-only Databricks SQL over tables the caller may SELECT from.

    ``source`` is a TableResolver, or a CatalogClient whose principal must hold
    SELECT on each table a query reads.
    """

    def __init__(self, source: Any, *, owns_source: bool = False) -> None:
        self._resolver = _as_resolver(source)
        self._owns_source = owns_source

    def close(self) -> None:
        """Close the resolver's connections if this engine was given ownership."""
        close = getattr(self._resolver, "close", None)
        if self._owns_source and close is not None:
            close()

    def __enter__(self) -> SqlEngine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        """The result of one SELECT statement as an Arrow table."""
        statements = guard.parse(sql)
        if len(statements) != 1:
            raise QueryError(
                f"expected one statement, got {len(statements)}; "
                f"use run_script() or `chatlake sql --file` for several"
            )
        return self._run(statements[0], params or {})

    def run_script(self, sql: str) -> list[pa.Table]:
        """Every statement of a script, checked first, then run in order."""
        statements = guard.parse(sql)
        for statement in statements:
            guard.check_read_only(statement)
        return [self._run(statement, {}) for statement in statements]

    def _run(self, statement: exp.Expression, params: Mapping[str, Any]) -> pa.Table:
        guard.check_read_only(statement)
        bound = _bind_parameters(statement, params)
        names = sorted({guard.full_name(t) for t in guard.table_references(statement)})
        tables = [self._resolver.resolve(name) for name in names]
        views = {
            table.full_name: f"_cl{i}_{_short(table)}" for i, table in enumerate(tables)
        }
        started = time.perf_counter()
        with _connect() as connection:
            for table in tables:
                connection.register(views[table.full_name], _snapshot(table))
            result = _execute(connection, dialect.to_duckdb(statement, views), bound)
        log.debug(
            "query over %s: %d rows in %.1f ms",
            names,
            result.num_rows,
            (time.perf_counter() - started) * 1000,
        )
        return result


def _as_resolver(source: Any) -> TableResolver:
    if hasattr(source, "resolve"):
        return source
    from chatlake.analytics.catalog_resolver import CatalogResolver

    return CatalogResolver(source)


def _short(table: ResolvedTable) -> str:
    return table.full_name.rsplit(".", 1)[-1]


def _bind_parameters(
    statement: exp.Expression, params: Mapping[str, Any]
) -> dict[str, Any]:
    """The values of the ``:name`` markers the statement uses; all must be given."""
    wanted = {marker.name for marker in statement.find_all(exp.Placeholder)}
    missing = sorted(name for name in wanted if name not in params)
    if missing:
        raise QueryError(f"no value given for parameter(s) {', '.join(missing)}")
    return {name: params[name] for name in wanted}


def _connect() -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect(":memory:", config=_DUCKDB_CONFIG)
    # Databricks reads TIMESTAMP in the session time zone, UTC by default.
    connection.execute("SET TimeZone = 'UTC'")
    connection.execute("SET lock_configuration = true")
    return connection


def _snapshot(table: ResolvedTable) -> ds.Dataset:
    """The table's current Delta version as a lazily read Arrow dataset."""
    try:
        return DeltaTable(table.location).to_pyarrow_dataset()
    except TableNotFoundError:
        if table.schema is not None:
            # Created in the catalog but nothing committed yet: no rows.
            return ds.dataset(pa.table(table.schema.empty_table()))
        raise TableAccessError(
            f"table {table.full_name} has no Delta table at {table.location}"
        ) from None
    except (DeltaError, OSError) as error:
        raise TableAccessError(
            f"cannot read table {table.full_name} at {table.location}: {error}"
        ) from error


def _execute(
    connection: duckdb.DuckDBPyConnection, sql: str, params: Mapping[str, Any]
) -> pa.Table:
    try:
        result = connection.sql(sql, params=dict(params) or None)
        table = result.to_arrow_table() if result is not None else pa.table({})
    except duckdb.Error as error:
        raise QueryError(f"query failed: {_clean(error)}") from error
    return _databricks_types(table)


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
