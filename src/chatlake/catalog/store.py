"""The catalog's metadata in SQLite, through SQLAlchemy Core.

Rows come back as plain dicts. Names are stored lower-case, as Unity Catalog
does, so lookups are case-insensitive. The store checks nothing but uniqueness;
``service`` holds the rules.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

logger = logging.getLogger(__name__)

metadata = sa.MetaData()


def _audit_columns() -> list[sa.Column]:
    return [
        sa.Column("comment", sa.Text),
        sa.Column("properties", sa.Text, nullable=False, default="{}"),
        sa.Column("owner", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("updated_by", sa.Text, nullable=False),
    ]


catalogs = sa.Table(
    "catalogs",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False, unique=True),
    *_audit_columns(),
)

schemas = sa.Table(
    "schemas",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("catalog_name", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    *_audit_columns(),
    sa.UniqueConstraint("catalog_name", "name"),
)

tables = sa.Table(
    "tables",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("catalog_name", sa.Text, nullable=False),
    sa.Column("schema_name", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("table_type", sa.Text, nullable=False),
    sa.Column("data_source_format", sa.Text, nullable=False),
    sa.Column("columns", sa.Text, nullable=False),
    sa.Column("storage_location", sa.Text, nullable=False),
    *_audit_columns(),
    sa.UniqueConstraint("catalog_name", "schema_name", "name"),
)

principals = sa.Table(
    "principals",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("client_id", sa.Text, nullable=False, unique=True),
    sa.Column("secret_hash", sa.Text, nullable=False),
    sa.Column("is_admin", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

grants = sa.Table(
    "grants",
    metadata,
    sa.Column("principal", sa.Text, nullable=False),
    sa.Column("securable_type", sa.Text, nullable=False),
    sa.Column("full_name", sa.Text, nullable=False),
    sa.Column("privilege", sa.Text, nullable=False),
    sa.PrimaryKeyConstraint("principal", "securable_type", "full_name", "privilege"),
)

_JSON_FIELDS = ("properties", "columns")


def now_ms() -> int:
    return int(time.time() * 1000)


def _row(row: sa.Row | None) -> dict[str, Any] | None:
    if row is None:
        return None
    result = dict(row._mapping)
    for name in _JSON_FIELDS:
        if name in result and result[name] is not None:
            result[name] = json.loads(result[name])
    return result


def _encode(values: dict[str, Any]) -> dict[str, Any]:
    encoded = dict(values)
    for name in _JSON_FIELDS:
        if name in encoded and not isinstance(encoded[name], str):
            encoded[name] = json.dumps(encoded[name], separators=(",", ":"))
    return encoded


class Store:
    """Reads and writes catalog metadata; every write is one transaction."""

    def __init__(self, database_path: Path) -> None:
        database_path.parent.mkdir(parents=True, exist_ok=True)
        self.engine = sa.create_engine(
            f"sqlite:///{database_path}", connect_args={"timeout": 30}
        )
        sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        metadata.create_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        with self.engine.begin() as connection:
            yield connection

    def insert(self, connection: Connection, table: sa.Table, values: dict) -> None:
        connection.execute(table.insert().values(**_encode(values)))

    def one(self, table: sa.Table, **where: Any) -> dict[str, Any] | None:
        with self.engine.connect() as connection:
            row = connection.execute(_select(table, where)).first()
        return _row(row)

    def many(self, table: sa.Table, **where: Any) -> list[dict[str, Any]]:
        query = _select(table, where)
        with self.engine.connect() as connection:
            return [_row(row) for row in connection.execute(query)]

    def page(
        self, table: sa.Table, after: str | None, limit: int, **where: Any
    ) -> list[dict[str, Any]]:
        """Up to ``limit`` rows ordered by name, starting after the name ``after``."""
        query = _select(table, where).order_by(table.c.name).limit(limit)
        if after is not None:
            query = query.where(table.c.name > after)
        with self.engine.connect() as connection:
            return [_row(row) for row in connection.execute(query)]

    def update(
        self, connection: Connection, table: sa.Table, values: dict, **where: Any
    ) -> int:
        statement = table.update().values(**_encode(values))
        for name, value in where.items():
            statement = statement.where(table.c[name] == value)
        return connection.execute(statement).rowcount

    def delete(self, connection: Connection, table: sa.Table, **where: Any) -> int:
        statement = table.delete()
        for name, value in where.items():
            statement = statement.where(table.c[name] == value)
        return connection.execute(statement).rowcount


def _select(table: sa.Table, where: dict[str, Any]) -> sa.Select:
    query = sa.select(table)
    for name, value in where.items():
        query = query.where(table.c[name] == value)
    return query


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers go on while a writer commits.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
