"""Catalogs, schemas and tables: the rules behind the REST API.

Every method takes the authenticated Caller, checks its privileges, validates
the request completely before changing anything, and returns Unity Catalog
JSON dicts.
"""

from __future__ import annotations

import base64
import logging
import threading
import uuid
from typing import Any

from chatlake.catalog import locations, tablefiles
from chatlake.catalog import privileges as p
from chatlake.catalog.access import Access, Caller, check_full_name
from chatlake.catalog.config import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, CatalogSettings
from chatlake.catalog.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from chatlake.catalog.store import Store, catalogs, now_ms, schemas, tables
from chatlake.catalog.tabledefs import TableDefinition, parse_table_request
from chatlake.names import quoted

logger = logging.getLogger(__name__)


class CatalogService:
    """The catalog's operations, shared by the REST API and the tests."""

    def __init__(self, settings: CatalogSettings, store: Store, access: Access):
        self.settings = settings
        self.store = store
        self.access = access
        # Metadata changes are rare; one lock keeps check-then-write simple.
        self._lock = threading.Lock()

    # -- catalogs ----------------------------------------------------------------

    def create_catalog(self, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
        name = check_full_name(_required_str(body, "name"), p.CATALOG)
        if not caller.is_admin:
            raise PermissionDenied("only the admin principal can create catalogs")
        row = _new_row(caller, name, body)
        with self._lock, self.store.transaction() as connection:
            if self.store.one(catalogs, name=name):
                raise AlreadyExists(f"Catalog already exists: {name}")
            self.store.insert(connection, catalogs, row)
        logger.info("created catalog %s", name)
        return _catalog_info(row)

    def get_catalog(self, caller: Caller, name: str) -> dict[str, Any]:
        row = self._catalog(name)
        _require(caller, row, (p.USE_CATALOG, row["name"]))
        return _catalog_info(row)

    def list_catalogs(self, caller, max_results, page_token) -> dict[str, Any]:
        rows, token = self._page(catalogs, max_results, page_token)
        visible = [r for r in rows if _may(caller, r, (p.USE_CATALOG, r["name"]))]
        return _listing("catalogs", [_catalog_info(r) for r in visible], token)

    def delete_catalog(self, caller: Caller, name: str, force: bool) -> None:
        row = self._catalog(name)
        _require_owner(caller, row, f"catalog {row['name']}")
        children = self.store.many(schemas, catalog_name=row["name"])
        if children and not force:
            raise FailedPrecondition(
                f"catalog {row['name']} still has {len(children)} schema(s); "
                f"drop them first or pass force=true"
            )
        with self._lock:
            for child in children:
                self._drop_schema(row["name"], child["name"])
            with self.store.transaction() as connection:
                self.store.delete(connection, catalogs, name=row["name"])
                self.access.drop_grants_under(connection, row["name"])
        logger.info("deleted catalog %s", row["name"])

    # -- schemas -----------------------------------------------------------------

    def create_schema(self, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
        catalog = check_full_name(_required_str(body, "catalog_name"), p.CATALOG)
        name = check_full_name(_required_str(body, "name"), p.CATALOG)
        self._catalog(catalog)
        _require(caller, None, (p.USE_CATALOG, catalog), (p.CREATE_SCHEMA, catalog))
        row = {**_new_row(caller, name, body), "catalog_name": catalog}
        with self._lock, self.store.transaction() as connection:
            if self.store.one(schemas, catalog_name=catalog, name=name):
                raise AlreadyExists(f"Schema already exists: {catalog}.{name}")
            self.store.insert(connection, schemas, row)
        logger.info("created schema %s.%s", catalog, name)
        return _schema_info(row)

    def get_schema(self, caller: Caller, full_name: str) -> dict[str, Any]:
        row = self._schema(full_name)
        catalog = row["catalog_name"]
        _require(caller, row, (p.USE_CATALOG, catalog), (p.USE_SCHEMA, _full(row)))
        return _schema_info(row)

    def list_schemas(self, caller, catalog, max_results, page_token) -> dict[str, Any]:
        catalog = self._catalog(catalog)["name"]
        _require(caller, None, (p.USE_CATALOG, catalog))
        rows, token = self._page(schemas, max_results, page_token, catalog_name=catalog)
        visible = [r for r in rows if _may(caller, r, (p.USE_SCHEMA, _full(r)))]
        return _listing("schemas", [_schema_info(r) for r in visible], token)

    def delete_schema(self, caller: Caller, full_name: str, force: bool) -> None:
        row = self._schema(full_name)
        _require_owner(caller, row, f"schema {_full(row)}")
        children = self.store.many(
            tables, catalog_name=row["catalog_name"], schema_name=row["name"]
        )
        if children and not force:
            raise FailedPrecondition(
                f"schema {_full(row)} still has {len(children)} table(s); "
                f"drop them first or pass force=true"
            )
        with self._lock:
            self._drop_schema(row["catalog_name"], row["name"])
        logger.info("deleted schema %s", _full(row))

    def _drop_schema(self, catalog: str, schema: str) -> None:
        for table in self.store.many(tables, catalog_name=catalog, schema_name=schema):
            self._drop_table(table)
        with self.store.transaction() as connection:
            self.store.delete(connection, schemas, catalog_name=catalog, name=schema)
            self.access.drop_grants_under(connection, f"{catalog}.{schema}")

    # -- tables ------------------------------------------------------------------

    def create_table(self, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
        table_id = str(uuid.uuid4())
        definition = parse_table_request(body, self.settings.tables_dir, table_id)
        catalog, schema = definition.catalog, definition.schema
        self._schema(f"{catalog}.{schema}")
        _require(
            caller,
            None,
            (p.USE_CATALOG, catalog),
            (p.USE_SCHEMA, f"{catalog}.{schema}"),
            (p.CREATE_TABLE, f"{catalog}.{schema}"),
        )
        if definition.table_type == "EXTERNAL" and not caller.is_admin:
            raise PermissionDenied(
                f"principal {caller.name!r} may not create EXTERNAL table "
                f"{definition.full_name}: only the metastore admin registers "
                f"storage locations; leave the location out for a MANAGED table"
            )
        with self._lock:
            if self.store.one(tables, **definition.key()):
                raise AlreadyExists(f"Table already exists: {definition.full_name}")
            if definition.table_type == "EXTERNAL":
                self._check_location(definition)
            self._prepare_files(definition)
            row = {
                **_new_row(caller, definition.name, body),
                "id": table_id,
                **definition.row(),
            }
            with self.store.transaction() as connection:
                self.store.insert(connection, tables, row)
        logger.info("created %s table %s", definition.table_type, definition.full_name)
        return _table_info(row)

    def _check_location(self, definition: TableDefinition) -> None:
        existing = [
            (_table_full(row), row["storage_location"])
            for row in self.store.many(tables)
        ]
        locations.check_external(
            definition.storage_location,
            self.settings.data_dir,
            self.settings.tables_dir,
            existing,
        )

    def _prepare_files(self, definition: TableDefinition) -> None:
        path = definition.path
        if definition.table_type == "MANAGED":
            if path.exists() and any(path.iterdir()):
                raise FailedPrecondition(
                    f"the managed location {path} already holds files (left from an "
                    f"earlier table?); move them away before creating "
                    f"{definition.full_name}"
                )
            tablefiles.create_empty(path, definition.arrow_schema(), definition.name)
            return
        if tablefiles.has_delta_log(path):
            definition.check_existing(tablefiles.existing_columns(path))
            return
        # A Delta log written into a directory of other files would claim them.
        tablefiles.check_empty_or_absent(path, definition.storage_location)
        tablefiles.create_empty(path, definition.arrow_schema(), definition.name)

    def get_table(self, caller: Caller, full_name: str) -> dict[str, Any]:
        row = self._table(full_name)
        _require_table_access(caller, row)
        return _table_info(row)

    def list_tables(
        self, caller, catalog, schema, max_results, page_token
    ) -> dict[str, Any]:
        schema_row = self._schema(f"{catalog}.{schema}")
        catalog, schema = schema_row["catalog_name"], schema_row["name"]
        _require(
            caller, None, (p.USE_CATALOG, catalog), (p.USE_SCHEMA, _full(schema_row))
        )
        rows, token = self._page(
            tables, max_results, page_token, catalog_name=catalog, schema_name=schema
        )
        visible = [r for r in rows if _may_read_table(caller, r)]
        return _listing("tables", [_table_info(r) for r in visible], token)

    def delete_table(self, caller: Caller, full_name: str) -> None:
        row = self._table(full_name)
        _require_owner(caller, row, f"table {_table_full(row)}")
        with self._lock:
            self._drop_table(row)
        logger.info("deleted table %s", _table_full(row))

    def _drop_table(self, row: dict[str, Any]) -> None:
        with self.store.transaction() as connection:
            self.store.delete(connection, tables, id=row["id"])
            self.access.drop_grants_under(connection, _table_full(row))
        if row["table_type"] == "MANAGED":
            path = tablefiles.location_path(row["storage_location"])
            tablefiles.remove_managed(path, self.settings.tables_dir)

    # -- permissions -------------------------------------------------------------

    def securable(self, securable_type: str, full_name: str) -> tuple[str, dict]:
        """The canonical full name and row of a securable; NotFound if absent."""
        securable_type = p.normalize_securable_type(securable_type)
        full_name = check_full_name(full_name, securable_type)
        finder = {
            p.CATALOG: self._catalog,
            p.SCHEMA: self._schema,
            p.TABLE: self._table,
        }
        return full_name, finder[securable_type](full_name)

    def get_permissions(self, caller, securable_type, full_name, principal=None):
        kind = p.normalize_securable_type(securable_type)
        full_name, row = self.securable(kind, full_name)
        _require_owner(caller, row, f"{kind.lower()} {full_name}")
        return self.access.permissions(kind, full_name, principal)

    def update_permissions(self, caller, securable_type, full_name, body):
        kind = p.normalize_securable_type(securable_type)
        full_name, row = self.securable(kind, full_name)
        _require_owner(caller, row, f"{kind.lower()} {full_name}")
        changes = body.get("changes")
        if not isinstance(changes, list):
            raise InvalidArgument(
                "the body needs 'changes': a list of permission changes"
            )
        self.access.update_permissions(kind, full_name, changes)
        logger.info("updated permissions on %s %s", kind, full_name)
        return self.access.permissions(kind, full_name)

    # -- lookups -----------------------------------------------------------------

    def _catalog(self, name: str) -> dict[str, Any]:
        name = check_full_name(name, p.CATALOG)
        row = self.store.one(catalogs, name=name)
        if row is None:
            raise NotFound(f"Catalog not found: {name}")
        return row

    def _schema(self, full_name: str) -> dict[str, Any]:
        catalog, name = check_full_name(full_name, p.SCHEMA).split(".")
        self._catalog(catalog)
        row = self.store.one(schemas, catalog_name=catalog, name=name)
        if row is None:
            raise NotFound(f"Schema not found: {catalog}.{name}")
        return row

    def _table(self, full_name: str) -> dict[str, Any]:
        catalog, schema, name = check_full_name(full_name, p.TABLE).split(".")
        self._schema(f"{catalog}.{schema}")
        row = self.store.one(
            tables, catalog_name=catalog, schema_name=schema, name=name
        )
        if row is None:
            raise NotFound(f"Table not found: {catalog}.{schema}.{name}")
        return row

    def exists(self, securable_type: str, full_name: str) -> bool:
        try:
            self.securable(securable_type, full_name)
        except NotFound:
            return False
        return True

    def _page(self, table, max_results, page_token, **where):
        limit = _page_size(max_results)
        after = _decode_token(page_token)
        rows = self.store.page(table, after, limit + 1, **where)
        if len(rows) <= limit:
            return rows, None
        return rows[:limit], _encode_token(rows[limit - 1]["name"])


# -- helpers ---------------------------------------------------------------------


def _required_str(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidArgument(f"the request needs {key!r} as a non-empty string")
    return value


def _properties(body: dict[str, Any]) -> dict[str, str]:
    value = body.get("properties") or {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise InvalidArgument("'properties' must be an object of string values")
    return value


def _comment(body: dict[str, Any]) -> str | None:
    value = body.get("comment")
    if value is not None and not isinstance(value, str):
        raise InvalidArgument("'comment' must be a string")
    return value


def _new_row(caller: Caller, name: str, body: dict[str, Any]) -> dict[str, Any]:
    now = now_ms()
    return {
        "id": str(uuid.uuid4()),
        "name": name,
        "comment": _comment(body),
        "properties": _properties(body),
        "owner": caller.name,
        "created_at": now,
        "created_by": caller.name,
        "updated_at": now,
        "updated_by": caller.name,
    }


_AUDIT = (
    "comment",
    "properties",
    "owner",
    "created_at",
    "created_by",
    "updated_at",
    "updated_by",
)


def _audit(row: dict[str, Any]) -> dict[str, Any]:
    return {key: row[key] for key in _AUDIT if row.get(key) is not None}


def _catalog_info(row: dict[str, Any]) -> dict[str, Any]:
    return {"name": row["name"], **_audit(row), "id": row["id"]}


def _full(schema_row: dict[str, Any]) -> str:
    return f"{schema_row['catalog_name']}.{schema_row['name']}"


def _schema_info(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": row["name"],
        "catalog_name": row["catalog_name"],
        "full_name": _full(row),
        **_audit(row),
        "schema_id": row["id"],
    }


def _table_full(row: dict[str, Any]) -> str:
    return f"{row['catalog_name']}.{row['schema_name']}.{row['name']}"


def _table_info(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": row["name"],
        "catalog_name": row["catalog_name"],
        "schema_name": row["schema_name"],
        "full_name": _table_full(row),
        "table_type": row["table_type"],
        "data_source_format": row["data_source_format"],
        "columns": row["columns"],
        "storage_location": row["storage_location"],
        **_audit(row),
        "table_id": row["id"],
    }


def _listing(key: str, items: list[dict], token: str | None) -> dict[str, Any]:
    result: dict[str, Any] = {key: items}
    if token:
        result["next_page_token"] = token
    return result


def _page_size(max_results: int | None) -> int:
    if max_results is None or max_results == 0:
        return DEFAULT_PAGE_SIZE
    if max_results < 0:
        raise InvalidArgument(f"max_results must be 0 or more, got {max_results}")
    return min(max_results, MAX_PAGE_SIZE)


_TOKEN_PREFIX = "after:"


def _encode_token(name: str) -> str:
    return base64.urlsafe_b64encode(f"{_TOKEN_PREFIX}{name}".encode()).decode()


def _decode_token(token: str | None) -> str | None:
    if not token:
        return None
    try:
        text = base64.b64decode(token.encode(), altchars=b"-_", validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        text = ""
    if not text.startswith(_TOKEN_PREFIX):
        message = f"page_token {quoted(token)} is not one this server issued"
        raise InvalidArgument(message)
    return text.removeprefix(_TOKEN_PREFIX)


def _may(caller: Caller, row: dict | None, *needed: tuple[str, str]) -> bool:
    if row is not None and row.get("owner") == caller.name:
        return True
    return all(caller.holds(privilege, name) for privilege, name in needed)


def _require(caller: Caller, row: dict | None, *needed: tuple[str, str]) -> None:
    if _may(caller, row, *needed):
        return
    lacking = [
        f"{priv} on {name}" for priv, name in needed if not caller.holds(priv, name)
    ]
    raise PermissionDenied(f"principal {caller.name!r} lacks {', '.join(lacking)}")


def _require_owner(caller: Caller, row: dict, what: str) -> None:
    if not caller.is_admin and row.get("owner") != caller.name:
        raise PermissionDenied(f"only the owner or the admin may change {what}")


def _may_read_table(caller: Caller, row: dict) -> bool:
    full = _table_full(row)
    if row.get("owner") == caller.name:
        return True
    return caller.holds(p.SELECT, full) or caller.holds(p.MODIFY, full)


def _require_table_access(caller: Caller, row: dict) -> None:
    catalog, schema = row["catalog_name"], f"{row['catalog_name']}.{row['schema_name']}"
    _require(caller, row, (p.USE_CATALOG, catalog), (p.USE_SCHEMA, schema))
    if not _may_read_table(caller, row):
        raise PermissionDenied(
            f"principal {caller.name!r} lacks SELECT or MODIFY on {_table_full(row)}"
        )
