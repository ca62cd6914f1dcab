"""Printing query results: an aligned table, CSV or JSON."""

from __future__ import annotations

import csv
import io
import json
import sys
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, Literal

import click
import pyarrow as pa
from rich import box
from rich.console import Console
from rich.table import Table

Format = Literal["table", "csv", "json"]
FORMATS = ("table", "csv", "json")

# Wide enough that piped output is never wrapped mid-row.
_PIPE_WIDTH = 10_000


def render(results: list[pa.Table], fmt: Format) -> None:
    """Print each result on stdout in ``fmt``; JSON gives one array per line."""
    console = make_console() if fmt == "table" else None
    for index, result in enumerate(results):
        if fmt == "json":
            click.echo(to_json(result))
        elif fmt == "csv":
            click.echo(to_csv(result), nl=False)
        else:
            if index:
                console.out("")
            console.print(to_rich(result))
            console.out(row_count(result))


def make_console() -> Console:
    console = Console(file=sys.stdout, highlight=False)
    if not console.is_terminal:
        console = Console(file=sys.stdout, highlight=False, width=_PIPE_WIDTH)
    return console


def to_rich(result: pa.Table) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for field in result.schema:
        numeric = pa.types.is_integer(field.type) or pa.types.is_floating(field.type)
        table.add_column(field.name, justify="right" if numeric else "left")
    for row in result.to_pylist():
        table.add_row(*(_text(value) for value in row.values()))
    return table


def row_count(result: pa.Table) -> str:
    # A line of its own: a caption wraps to the table's width, one letter per
    # line under a one-character column.
    return f"{result.num_rows} row{'s' if result.num_rows != 1 else ''}"


def to_csv(result: pa.Table) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(result.column_names)
    for row in result.to_pylist():
        writer.writerow(["" if v is None else _text(v) for v in row.values()])
    return buffer.getvalue()


def to_json(result: pa.Table) -> str:
    return json.dumps(result.to_pylist(), default=_json_value, ensure_ascii=False)


def _text(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict | list):
        return json.dumps(value, default=_json_value, ensure_ascii=False)
    return str(value)


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    return str(value)
