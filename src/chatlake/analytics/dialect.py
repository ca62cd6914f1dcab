"""Databricks SQL to DuckDB SQL: sqlglot's translation plus the few fixes it needs.

Catalog tables are swapped for the names of the DuckDB views that hold their
snapshots, keeping the name the query used as the alias so that qualified
columns (``chat_events.model``) still resolve.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlglot import exp

from chatlake.analytics.guard import full_name, table_references

TARGET = "duckdb"


def to_duckdb(statement: exp.Expression, views: Mapping[str, str]) -> str:
    """DuckDB text of ``statement`` with each catalog table read from its view."""
    tree = statement.copy()
    for table in table_references(tree):
        table.replace(_view_reference(table, views[full_name(table)]))
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
