"""Databricks SQL to DuckDB SQL: sqlglot's translation plus the few fixes it needs.

Catalog tables are swapped for the names of the DuckDB views that hold their
snapshots, keeping the name the query used as the alias so that qualified
columns (``chat_events.model``) still resolve.
"""

from __future__ import annotations

from collections.abc import Mapping

import sqlglot
from sqlglot import exp

from chatlake.analytics.guard import as_of, full_name, table_references

TARGET = "duckdb"


def to_duckdb(
    statement: exp.Expression, views: Mapping[str, str], *, utc_arithmetic=False
) -> str:
    """DuckDB text of ``statement`` with each catalog table read from its view.

    ``views`` maps (full name, as_of) of each table reference to its view;
    as_of is the reference's time travel target (guard.as_of), or None.

    With ``utc_arithmetic``, dates, hours, weekdays and truncations of columns
    are computed from epoch microseconds instead of through DuckDB's ICU
    calendar: the same answer (the session time zone is UTC) several times
    faster. It assumes those columns are timestamps or dates; the engine runs
    the plain translation when DuckDB rejects that assumption.
    """
    tree = statement.copy()
    for table in table_references(tree):
        key = (full_name(table), as_of(table))
        table.replace(_view_reference(table, views[key]))
    if utc_arithmetic:
        tree = tree.transform(_utc_arithmetic)
    tree = tree.transform(_fix_semantics)
    return tree.sql(TARGET)


def _view_reference(table: exp.Table, view: str) -> exp.Table:
    alias = table.args.get("alias") or exp.TableAlias(
        this=exp.to_identifier(table.name)
    )
    reference = exp.Table(this=exp.to_identifier(view, quoted=True), alias=alias)
    for key in ("sample", "joins", "laterals", "pivots"):
        if table.args.get(key):
            reference.set(key, table.args[key])
    return reference


def _fix_semantics(node: exp.Expression) -> exp.Expression:
    # Databricks percentile() interpolates; DuckDB's quantile() picks a row.
    if isinstance(node, exp.Quantile):
        return exp.Anonymous(
            this="quantile_cont",
            expressions=[node.this, node.args["quantile"]],
        )
    # Databricks counts weekdays 1 (Sunday) to 7; DuckDB's dayofweek from 0.
    if isinstance(node, exp.DayOfWeek):
        shifted = exp.Anonymous(this="dayofweek", expressions=[node.this])
        return exp.Paren(this=exp.Add(this=shifted, expression=exp.Literal.number(1)))
    return node


_MICROS = {"SECOND": 1_000_000, "MINUTE": 60_000_000, "HOUR": 3_600_000_000}
_MICROS_PER_DAY = 86_400_000_000


def _utc_arithmetic(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.Cast) and node.to.is_type("date"):
        column = _column(node.this)
        return _date_of(column) if column else node
    if isinstance(node, exp.TsOrDsToDate) and not node.args.get("format"):
        column = _column(node.this)
        return _date_of(column) if column else node
    if isinstance(node, exp.TimestampTrunc):
        return _truncated(node)
    if isinstance(node, exp.Hour) and _column(node.this):
        hours = _units(node.this, 3_600_000_000)
        return _sql(f"CAST((({hours}) % 24 + 24) % 24 AS BIGINT)")
    if isinstance(node, exp.DayOfWeek):
        inner = node.this.this if isinstance(node.this, exp.TsOrDsToDate) else node.this
        column = _column(inner)
        if column:
            # 1 January 1970 was a Thursday, weekday 5 when Sunday is 1.
            days = _units(column, _MICROS_PER_DAY)
            return _sql(f"CAST(((({days}) + 4) % 7 + 7) % 7 + 1 AS BIGINT)")
    return node


def _truncated(node: exp.TimestampTrunc) -> exp.Expression:
    unit = node.text("unit").upper()
    column = _column(node.this)
    step = _MICROS.get(unit) or (_MICROS_PER_DAY if unit == "DAY" else None)
    if column is None or step is None:
        return node
    seconds = f"({_units(column, step)}) * {step / 1_000_000!r}"
    return _sql(f"to_timestamp({seconds})")


def _date_of(column: exp.Column) -> exp.Expression:
    days = _units(column, _MICROS_PER_DAY)
    return _sql(f"(DATE '1970-01-01' + CAST({days} AS INTEGER))")


def _units(column: exp.Expression, micros: int) -> str:
    """Whole ``micros`` since the epoch, rounded down (also before 1970)."""
    return f"floor(epoch_us({column.sql(TARGET)}) / {micros})"


def _column(node: exp.Expression) -> exp.Column | None:
    return node if isinstance(node, exp.Column) else None


def _sql(text: str) -> exp.Expression:
    return sqlglot.parse_one(text, read=TARGET)
