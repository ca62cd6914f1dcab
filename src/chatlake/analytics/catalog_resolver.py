"""Resolving tables through the catalog, with the caller's own credentials.

For each table the resolver asks the catalog's token endpoint for a token
holding exactly USE CATALOG, USE SCHEMA and SELECT on it. The catalog refuses
when the caller lacks any of them, so the access check is the catalog's own.
Then it reads the table's info (storage location and columns).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from chatlake.analytics.errors import TableAccessError
from chatlake.analytics.resolver import ResolvedTable
from chatlake.catalog.errors import CatalogError
from chatlake.errors import TypeSpecError
from chatlake.types import arrow_schema, column_from_uc

log = logging.getLogger(__name__)

# A granted SELECT is trusted this long before the catalog is asked again, so a
# dashboard refresh does not mint a token per chart; a revoke takes this long.
SELECT_CHECK_TTL_S = 30.0


class CatalogResolver:
    """Tables that the client's principal may SELECT from, found in its catalog.

    ``client`` is a chatlake.catalog.client.CatalogClient (or anything with
    ``token(authorization_details)`` and ``get_table(full_name)``).
    """

    def __init__(self, client: Any, *, check_ttl_s: float = SELECT_CHECK_TTL_S):
        self.client = client
        self._check_ttl_s = check_ttl_s
        self._checked: dict[str, float] = {}
        self._lock = threading.Lock()

    def resolve(self, full_name: str) -> ResolvedTable:
        self._check_select(full_name)
        try:
            info = self.client.get_table(full_name)
        except CatalogError as error:
            raise TableAccessError(f"table {full_name}: {error}") from None
        location = info.get("storage_location")
        if not location:
            raise TableAccessError(f"table {full_name} has no storage location")
        return ResolvedTable(full_name, location, _schema(info, full_name))

    def close(self) -> None:
        self.client.close()

    def _check_select(self, full_name: str) -> None:
        with self._lock:
            if self._checked.get(full_name, 0.0) > time.monotonic():
                return
        try:
            self.client.token(select_details(full_name))
        except CatalogError as error:
            if getattr(error, "status", None) in (0, None) or error.status >= 500:
                raise TableAccessError(
                    f"cannot check access to table {full_name}: {error}"
                ) from None
            raise TableAccessError(
                f"no SELECT access to table {full_name}: {error}"
            ) from None
        with self._lock:
            self._checked[full_name] = time.monotonic() + self._check_ttl_s


def select_details(full_name: str) -> list[dict[str, Any]]:
    """The token request for reading one table, in Unity Catalog's format."""
    catalog, schema, _ = full_name.split(".")
    wanted = [
        ("CATALOG", catalog, "USE CATALOG"),
        ("SCHEMA", f"{catalog}.{schema}", "USE SCHEMA"),
        ("TABLE", full_name, "SELECT"),
    ]
    return [
        {
            "type": "unity_catalog_privileges",
            "object_type": kind,
            "object_full_path": path,
            "privileges": [privilege],
        }
        for kind, path, privilege in wanted
    ]


def _schema(info: dict[str, Any], full_name: str):
    try:
        return arrow_schema([column_from_uc(c) for c in info.get("columns") or []])
    except TypeSpecError as error:
        log.warning("table %s: cannot map its columns to Arrow: %s", full_name, error)
        return None
