"""Privileges on catalogs, schemas and tables, inherited downwards as in Unity Catalog.

A privilege granted on a catalog covers every schema and table inside it; one on
a schema covers its tables. Reaching a table also needs USE CATALOG on its
catalog and USE SCHEMA on its schema, exactly as Unity Catalog requires.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from chatlake.catalog.errors import InvalidArgument

METASTORE = "METASTORE"
CATALOG = "CATALOG"
SCHEMA = "SCHEMA"
TABLE = "TABLE"
SECURABLE_TYPES = (CATALOG, SCHEMA, TABLE)
PARTS = {CATALOG: 1, SCHEMA: 2, TABLE: 3}

USE_CATALOG = "USE CATALOG"
USE_SCHEMA = "USE SCHEMA"
CREATE_SCHEMA = "CREATE SCHEMA"
CREATE_TABLE = "CREATE TABLE"
SELECT = "SELECT"
MODIFY = "MODIFY"
# Held only by the local admin principal; never granted, never shown by the API.
ALL_PRIVILEGES = "ALL PRIVILEGES"

# Which privileges make sense on which securable (what SQL's GRANT accepts).
GRANTABLE = {
    CATALOG: (USE_CATALOG, USE_SCHEMA, CREATE_SCHEMA, CREATE_TABLE, SELECT, MODIFY),
    SCHEMA: (USE_SCHEMA, CREATE_TABLE, SELECT, MODIFY),
    TABLE: (SELECT, MODIFY),
}


@dataclass(frozen=True)
class PrivilegeSet:
    """Privileges held on one securable (and, by inheritance, on what it contains)."""

    object_type: str
    object_full_path: str
    privileges: frozenset[str]

    def covers(self, privilege: str, full_name: str) -> bool:
        if privilege not in self.privileges and ALL_PRIVILEGES not in self.privileges:
            return False
        if self.object_type == METASTORE:
            return True
        return contains(self.object_full_path, full_name)

    def to_json(self) -> dict[str, object]:
        return {
            "object_type": self.object_type,
            "object_full_path": self.object_full_path,
            "privileges": sorted(self.privileges),
        }


ADMIN = PrivilegeSet(METASTORE, "*", frozenset({ALL_PRIVILEGES}))


def contains(outer: str, inner: str) -> bool:
    """True when ``inner`` is ``outer`` or lies inside it (``main`` has ``main.a``)."""
    outer_parts = outer.lower().split(".")
    inner_parts = inner.lower().split(".")
    return inner_parts[: len(outer_parts)] == outer_parts


def normalize_securable_type(text: str) -> str:
    """``table`` or ``TABLE`` -> ``TABLE``; anything else is refused."""
    upper = text.strip().upper()
    if upper not in SECURABLE_TYPES:
        raise InvalidArgument(
            f"unknown securable type {text!r}: use CATALOG, SCHEMA or TABLE"
        )
    return upper


def check_grantable(privilege: str, securable_type: str) -> str:
    """The canonical privilege name, if it can be granted on this securable type."""
    canonical = " ".join(privilege.replace("_", " ").upper().split())
    allowed = GRANTABLE[securable_type]
    if canonical not in allowed:
        raise InvalidArgument(
            f"privilege {privilege!r} cannot be granted on a {securable_type}: "
            f"use one of {', '.join(allowed)}"
        )
    return canonical


def holds(sets: Iterable[PrivilegeSet], privilege: str, full_name: str) -> bool:
    """True when some set grants ``privilege`` on ``full_name`` or on a parent."""
    return any(held.covers(privilege, full_name) for held in sets)


def missing_for_table(
    sets: Iterable[PrivilegeSet], privilege: str, table_full_name: str
) -> list[str]:
    """What is lacking for ``privilege`` on a table: ``['MODIFY on TABLE x']``."""
    sets = list(sets)
    catalog, schema, _ = table_full_name.lower().split(".")
    needed = [
        (USE_CATALOG, CATALOG, catalog),
        (USE_SCHEMA, SCHEMA, f"{catalog}.{schema}"),
        (privilege, TABLE, table_full_name.lower()),
    ]
    return [
        f"{name} on {kind} {path}"
        for name, kind, path in needed
        if not holds(sets, name, path)
    ]
