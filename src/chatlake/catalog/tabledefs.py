"""A create-table request, validated completely before anything is created."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from chatlake.catalog import privileges as p
from chatlake.catalog import tablefiles
from chatlake.catalog.access import check_full_name
from chatlake.catalog.errors import InvalidArgument
from chatlake.chat_tables import DEDUPE_KEY_PROPERTY, INGESTION_TIME_PROPERTY
from chatlake.errors import TableNameError, TypeSpecError
from chatlake.names import check_part, quoted, shortened
from chatlake.types import Column, ColumnType, arrow_schema, column_from_uc

TABLE_TYPES = ("MANAGED", "EXTERNAL")
KNOWN_PROPERTIES = (INGESTION_TIME_PROPERTY, DEDUPE_KEY_PROPERTY)
# The hosted service's limit, kept so tables move between the two unchanged.
MAX_COLUMNS = 2000
_COMPOUND = ("ARRAY", "MAP", "STRUCT")
# ColumnInfo fields that chatlake reads, and their JSON types.
_COLUMN_FIELDS = {"name": str, "type_text": str, "nullable": bool, "comment": str}


@dataclass(frozen=True)
class TableDefinition:
    catalog: str
    schema: str
    name: str
    table_type: str
    columns: list[Column]
    storage_location: str
    properties: dict[str, str] = field(default_factory=dict)

    @property
    def full_name(self) -> str:
        return f"{self.catalog}.{self.schema}.{self.name}"

    @property
    def path(self) -> Path:
        return tablefiles.location_path(self.storage_location)

    def key(self) -> dict[str, str]:
        return {
            "catalog_name": self.catalog,
            "schema_name": self.schema,
            "name": self.name,
        }

    def arrow_schema(self) -> pa.Schema:
        return arrow_schema(self.columns)

    def row(self) -> dict[str, Any]:
        return {
            **self.key(),
            "table_type": self.table_type,
            "data_source_format": "DELTA",
            "columns": [c.to_uc(i) for i, c in enumerate(self.columns)],
            "storage_location": self.storage_location,
            "properties": self.properties,
        }

    def check_existing(self, names: list[str]) -> None:
        """An external location that already holds a table must have our columns."""
        wanted = [c.name for c in self.columns]
        if names != wanted:
            raise InvalidArgument(
                f"the Delta table at {self.storage_location} has columns {names}, "
                f"not {wanted}"
            )


def parse_table_request(
    body: dict[str, Any], tables_dir: Path, table_id: str
) -> TableDefinition:
    """Validate a UC CreateTable body; InvalidArgument names the first problem.

    ``table_id`` is the new table's id: a MANAGED table lives at
    ``<tables_dir>/<catalog>/<schema>/<name>-<table_id>``.
    """
    catalog, schema, name = _names(body)
    table_type = _choice(body, "table_type", TABLE_TYPES, "MANAGED")
    _choice(body, "data_source_format", ("DELTA",), "DELTA")
    columns = parse_column_infos(body.get("columns"))
    properties = _string_map(body.get("properties"))
    check_properties(properties, columns)
    managed_path = managed_location(tables_dir, catalog, schema, name, table_id)
    location = _location(body, table_type, managed_path)
    return TableDefinition(
        catalog, schema, name, table_type, columns, location, properties
    )


def managed_location(
    tables_dir: Path, catalog: str, schema: str, name: str, table_id: str
) -> Path:
    """Where a MANAGED table's files go.

    The id makes each table's directory its own, as in Unity Catalog: a table
    created again under a dropped one's name never lands on files the old one
    left (rows an open stream still committed after the drop, say). Table
    names cannot hold a '-', so no name-only directory of an older data
    directory can clash with one of these.
    """
    return tables_dir / catalog / schema / f"{name}-{table_id}"


def _names(body: dict[str, Any]) -> tuple[str, str, str]:
    parts = []
    for key in ("catalog_name", "schema_name", "name"):
        value = body.get(key)
        if not isinstance(value, str) or not value:
            raise InvalidArgument(f"the request needs {key!r} as a non-empty string")
        parts.append(value)
    full = check_full_name(".".join(parts), p.TABLE)
    catalog, schema, name = full.split(".")
    return catalog, schema, name


def _quoted_any(value: Any) -> str:
    return quoted(value) if isinstance(value, str) else shortened(repr(value))


def _choice(body: dict[str, Any], key: str, allowed: tuple[str, ...], default: str):
    value = body.get(key) or default
    if not isinstance(value, str) or value.upper() not in allowed:
        raise InvalidArgument(
            f"{key} {_quoted_any(value)} is not supported: use {' or '.join(allowed)}"
        )
    return value.upper()


def parse_column_infos(value: Any) -> list[Column]:
    """Columns from a list of UC ColumnInfo objects, in list order."""
    if not isinstance(value, list) or not value:
        raise InvalidArgument("'columns' must be a non-empty list of column objects")
    if len(value) > MAX_COLUMNS:
        raise InvalidArgument(
            f"{len(value)} columns is more than the {MAX_COLUMNS} allowed"
        )
    columns = [_column(index, info) for index, info in enumerate(value)]
    check_columns(columns)
    return columns


def _column(index: int, info: Any) -> Column:
    if not isinstance(info, dict):
        given = _quoted_any(info)
        raise InvalidArgument(f"column {index} must be an object, got {given}")
    for key, kind in _COLUMN_FIELDS.items():
        if key in info and info[key] is not None and not isinstance(info[key], kind):
            raise InvalidArgument(
                f"column {index}: {key!r} must be a {kind.__name__}, "
                f"got {_quoted_any(info[key])}"
            )
    try:
        return column_from_uc(info)
    except TypeSpecError as error:
        raise InvalidArgument(
            f"column {index} ({_quoted_any(info.get('name'))}): {error}"
        ) from None


def check_columns(columns: list[Column]) -> None:
    """Names must be safe identifiers (struct fields too) and unique."""
    seen: set[str] = set()
    for column in columns:
        _check_name(column.name, "column")
        _check_field_names(column.type, column.name)
        if column.name.lower() in seen:
            raise InvalidArgument(f"duplicate column {column.name!r}")
        seen.add(column.name.lower())


def _check_field_names(column_type: ColumnType, where: str) -> None:
    for part in (column_type.element, column_type.key, column_type.value):
        if part is not None:
            _check_field_names(part, where)
    for struct_field in column_type.fields:
        _check_name(struct_field.name, f"struct field of {where}")
        _check_field_names(struct_field.type, f"{where}.{struct_field.name}")


def _check_name(name: str, what: str) -> None:
    try:
        check_part(name, f"{what} name")
    except TableNameError as error:
        raise InvalidArgument(str(error)) from None


def _string_map(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise InvalidArgument("'properties' must be an object of string values")
    return dict(value)


def check_properties(properties: dict[str, str], columns: list[Column]) -> None:
    """The chatlake.* properties must name suitable columns of this table."""
    by_name = {c.name: c for c in columns}
    for key, value in properties.items():
        if key.startswith("chatlake.") and key not in KNOWN_PROPERTIES:
            raise InvalidArgument(
                f"unknown table property {quoted(key)}: chatlake knows "
                f"{', '.join(KNOWN_PROPERTIES)}"
            )
        if key in KNOWN_PROPERTIES and value not in by_name:
            raise InvalidArgument(
                f"property {key}={quoted(value)} names no column of the table"
            )
    stamped = properties.get(INGESTION_TIME_PROPERTY)
    if stamped is not None and by_name[stamped].type.name != "TIMESTAMP":
        raise InvalidArgument(
            f"property {INGESTION_TIME_PROPERTY}={stamped!r}: the column is "
            f"{by_name[stamped].type}, it must be TIMESTAMP"
        )
    key = properties.get(DEDUPE_KEY_PROPERTY)
    if key is not None and by_name[key].type.name in _COMPOUND:
        raise InvalidArgument(
            f"property {DEDUPE_KEY_PROPERTY}={key!r}: a {by_name[key].type.name} "
            f"column cannot be a dedupe key"
        )
    if key is not None and key == stamped:
        raise InvalidArgument("the dedupe key cannot be the server-stamped column")


def _location(body: dict[str, Any], table_type: str, managed_path: Path) -> str:
    given = body.get("storage_location")
    if given is not None and not isinstance(given, str):
        raise InvalidArgument("'storage_location' must be a string")
    managed = tablefiles.location_uri(managed_path.resolve())
    if table_type == "MANAGED":
        if (
            given
            and tablefiles.location_uri(tablefiles.location_path(given)) != managed
        ):
            raise InvalidArgument(
                "a MANAGED table's storage_location is chosen by the catalog; "
                "leave it out, or create an EXTERNAL table"
            )
        return managed
    if not given:
        raise InvalidArgument("an EXTERNAL table needs a storage_location")
    path = tablefiles.location_path(given)
    if path.resolve().is_relative_to(managed_path.resolve().parents[2]):
        raise InvalidArgument(
            f"storage_location {quoted(given)} lies inside the managed tables directory"
        )
    return tablefiles.location_uri(path)
