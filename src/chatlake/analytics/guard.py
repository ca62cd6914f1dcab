"""Parsing Databricks SQL and refusing anything that is not a read of catalog tables.

The check runs on sqlglot's syntax tree, not on the text, so comments, quoting
and case cannot hide a statement. It is the first of two fences: the DuckDB
connection that runs the query also has file and network access switched off.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ParseError, TokenError

from chatlake.analytics.errors import ReadOnlyError, SqlSyntaxError
from chatlake.errors import TableNameError
from chatlake.names import parse_table_name

log = logging.getLogger(__name__)

# sqlglot warns on stderr whenever it falls back to an opaque Command; the guard
# refuses those statements itself with a clearer message.
logging.getLogger("sqlglot").setLevel(logging.ERROR)

DIALECT = "databricks"

# Statement kinds that write, change settings or reach the file system.
_FORBIDDEN_NODES: dict[type[exp.Expression], str] = {
    exp.Insert: "INSERT",
    exp.Update: "UPDATE",
    exp.Delete: "DELETE",
    exp.Merge: "MERGE",
    exp.Create: "CREATE",
    exp.Drop: "DROP",
    exp.Alter: "ALTER",
    exp.Copy: "COPY",
    exp.Set: "SET",
    exp.Pragma: "PRAGMA",
    exp.Use: "USE",
    exp.Into: "SELECT INTO",
    exp.LoadData: "LOAD DATA",
    exp.TruncateTable: "TRUNCATE",
}

# Table functions that only generate rows; every other one is refused.
_ALLOWED_TABLE_FUNCTIONS = {"range", "generate_series", "unnest", "explode"}

# Functions that read files, the network or the process environment, wherever
# they appear (DuckDB names and their Databricks look-alikes).
_FORBIDDEN_FUNCTION_PREFIXES = ("read_", "parquet_", "csv_", "json_scan", "iceberg_")
_FORBIDDEN_FUNCTIONS = {
    "glob",
    "getenv",
    "query",
    "query_table",
    "sniff_csv",
    "delta_scan",
    "parquet_scan",
    "sqlite_scan",
    "postgres_scan",
    "mysql_scan",
    "http_get",
    "read_text",
    "read_blob",
    "load_extension",
    "install",
    "load",
    "read_files",
    "duckdb_secrets",
    "which_secret",
    "current_setting",
}

# Leading words of statements that sqlglot may not parse but that must read as
# a refusal rather than a syntax error.
_FORBIDDEN_WORDS = {
    "ATTACH",
    "DETACH",
    "INSTALL",
    "LOAD",
    "COPY",
    "EXPORT",
    "IMPORT",
    "CALL",
    "CHECKPOINT",
    "VACUUM",
    "OPTIMIZE",
    "RESET",
    "GRANT",
    "REVOKE",
}


def parse(sql: str) -> list[exp.Expression]:
    """Parse one or more statements, raising SqlSyntaxError with the position."""
    try:
        statements = sqlglot.parse(sql, read=DIALECT)
    except (ParseError, TokenError) as error:
        _refuse_by_tokens(sql)
        raise SqlSyntaxError(f"SQL syntax error: {_first_error(error)}") from None
    found = [statement for statement in statements if statement is not None]
    if not found:
        raise SqlSyntaxError("no SQL statement given")
    return found


def check_read_only(statement: exp.Expression) -> None:
    """Raise ReadOnlyError unless ``statement`` is a query over catalog tables."""
    _check_root(statement)
    for node in statement.walk():
        _check_node(node)
    ctes = cte_names(statement)
    for table in statement.find_all(exp.Table):
        _check_table(table, ctes)


def cte_names(statement: exp.Expression) -> set[str]:
    """Names defined by WITH clauses anywhere in the statement (lower case)."""
    return {cte.alias_or_name.lower() for cte in statement.find_all(exp.CTE)}


def table_references(statement: exp.Expression) -> list[exp.Table]:
    """The Table nodes that name catalog tables (three parts, not a CTE)."""
    return [
        table
        for table in statement.find_all(exp.Table)
        if isinstance(table.this, exp.Identifier) and table.catalog
    ]


def full_name(table: exp.Table) -> str:
    """``catalog.schema.table`` of a Table node, as the catalog spells names."""
    return f"{table.catalog}.{table.db}.{table.name}".lower()


def as_of(table: exp.Table) -> int | datetime | None:
    """The Delta version (int) or moment a ``VERSION|TIMESTAMP AS OF`` asks for."""
    clause = table.args.get("version")
    if clause is None:
        return None
    kind = clause.text("this").upper()
    value = clause.args.get("expression")
    shown = f"{full_name(table)} {clause.sql(DIALECT)}"
    if clause.text("kind").upper() != "AS OF" or not isinstance(value, exp.Literal):
        raise SqlSyntaxError(
            f"unsupported time travel {shown!r}: use VERSION AS OF <number> or "
            f"TIMESTAMP AS OF '<ISO 8601 time>'"
        )
    if kind == "VERSION":
        return _version_number(value, shown)
    return _moment(value, shown)


def _version_number(value: exp.Literal, shown: str) -> int:
    if value.is_string or not value.this.isdigit():
        raise SqlSyntaxError(
            f"invalid time travel {shown!r}: the version must be a whole number >= 0"
        )
    return int(value.this)


def _moment(value: exp.Literal, shown: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.this.strip())
    except ValueError:
        raise SqlSyntaxError(
            f"invalid time travel {shown!r}: the timestamp must be ISO 8601, "
            f"e.g. '2026-12-04T16:40:00' (UTC unless it names a zone)"
        ) from None
    # Databricks reads a zoneless timestamp in the session time zone, UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _refuse_by_tokens(sql: str) -> None:
    """Turn a parse failure into a refusal when the text is plainly not a read."""
    try:
        tokens = Dialect.get_or_raise(DIALECT).tokenize(sql)
    except TokenError:
        return
    pairs = list(zip(tokens, tokens[1:], strict=False))
    starts = tokens[:1] + [after for before, after in pairs if before.text == ";"]
    for token in starts:
        if token.text.upper() in _FORBIDDEN_WORDS:
            raise ReadOnlyError(
                f"only SELECT queries are allowed; refused {token.text.upper()}"
            )
    for token, following in pairs:
        if following.text == "(" and _is_forbidden_function(token.text.lower()):
            raise ReadOnlyError(_function_refusal(token.text.lower()))


def _check_root(statement: exp.Expression) -> None:
    if isinstance(statement, exp.Query | exp.Subquery):
        return
    word = _statement_word(statement)
    if isinstance(statement, exp.Command):
        word = str(statement.this).upper()
    kind = _FORBIDDEN_NODES.get(type(statement))
    if kind is None and word not in _FORBIDDEN_WORDS and _is_bare(statement):
        # A lone word or expression (``SELEC``): a typo, not a statement.
        raise SqlSyntaxError(f"SQL syntax error: expected a query, got {word!r}")
    raise ReadOnlyError(f"only SELECT queries are allowed; refused {kind or word}")


def _is_bare(statement: exp.Expression) -> bool:
    return isinstance(statement, exp.Condition | exp.Alias | exp.Identifier)


def _check_node(node: exp.Expression) -> None:
    kind = _FORBIDDEN_NODES.get(type(node))
    if isinstance(node, exp.Command):
        kind = str(node.this).upper()
    if kind is not None:
        raise ReadOnlyError(
            f"only SELECT queries are allowed; refused {kind} inside the query"
        )
    if isinstance(node, exp.Func):
        name = _function_name(node)
        if _is_forbidden_function(name):
            raise ReadOnlyError(_function_refusal(name))


def _check_table(table: exp.Table, ctes: set[str]) -> None:
    if isinstance(table.this, exp.Dot):  # four or more parts
        raise SqlSyntaxError(
            f"invalid table name {table.sql(DIALECT)!r}: expected "
            f"catalog.schema.table (three parts)"
        )
    if not isinstance(table.this, exp.Identifier):
        _check_table_function(table)
        return
    if table.catalog and table.db:
        _check_name_parts(table)
        return
    if not table.db and table.name.lower() in ctes:
        return
    raise ReadOnlyError(
        f"table {table.sql(DIALECT)!r} must be a three-part name "
        f"catalog.schema.table registered in the catalog"
    )


def _check_name_parts(table: exp.Table) -> None:
    try:
        parse_table_name(f"{table.catalog}.{table.db}.{table.name}")
    except TableNameError as error:
        raise SqlSyntaxError(str(error)) from None


def _check_table_function(table: exp.Table) -> None:
    function = table.this
    name = _function_name(function) if isinstance(function, exp.Func) else ""
    if name in _ALLOWED_TABLE_FUNCTIONS:
        return
    shown = name or function.sql(DIALECT)
    raise ReadOnlyError(
        f"table function {shown}() is not allowed: queries may read only "
        f"catalog tables, not files or the network"
    )


def _function_name(node: exp.Func) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.this).lower()
    return node.sql_name().lower()


def _is_forbidden_function(name: str) -> bool:
    return name in _FORBIDDEN_FUNCTIONS or name.startswith(_FORBIDDEN_FUNCTION_PREFIXES)


def _function_refusal(name: str) -> str:
    return (
        f"function {name}() is not allowed: queries may read only catalog "
        f"tables, not files, the network or settings"
    )


def _statement_word(statement: exp.Expression) -> str:
    text = statement.sql(DIALECT).split(None, 1)
    return text[0].upper() if text else type(statement).__name__.upper()


def _first_error(error: ParseError) -> str:
    if not error.errors:
        return str(error)
    first = error.errors[0]
    where = f"line {first.get('line')}, column {first.get('col')}"
    return f"{first.get('description')} at {where}"
