"""Where a three-part table name lives, and whether the caller may read it.

The engine asks a resolver for each table a query names. ``CatalogResolver``
asks chatlake's catalog (or any Unity Catalog) with the caller's credentials;
``StaticResolver`` serves a fixed mapping for tests and offline tools.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import pyarrow as pa

from chatlake.analytics.errors import TableAccessError


@dataclass(frozen=True)
class ResolvedTable:
    """A readable table: its catalog name, Delta location and, if known, schema."""

    full_name: str
    location: str
    schema: pa.Schema | None = None


class TableResolver(Protocol):
    def resolve(self, full_name: str) -> ResolvedTable:
        """Return the table's location, or raise TableAccessError."""
        ...


class StaticResolver:
    """Tables from a fixed ``{full_name: location}`` mapping; all readable."""

    def __init__(self, locations: Mapping[str, str]) -> None:
        self._locations = {name.lower(): where for name, where in locations.items()}

    def resolve(self, full_name: str) -> ResolvedTable:
        location = self._locations.get(full_name.lower())
        if location is None:
            raise TableAccessError(f"table {full_name} does not exist")
        return ResolvedTable(full_name.lower(), location)
