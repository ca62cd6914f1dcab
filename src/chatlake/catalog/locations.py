"""Where an EXTERNAL table may live: a local directory no other table or the
catalog itself already uses.

An external location is trusted storage: whoever registers a table over a
directory can grant its data to anyone. So only the metastore admin registers
them (as in Unity Catalog, where external locations need their own privilege),
and a location may not equal, contain or lie inside another table's location,
the managed tables root or the data directory.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from chatlake.catalog import tablefiles
from chatlake.catalog.errors import InvalidArgument
from chatlake.names import quoted


def overlaps(first: Path, second: Path) -> bool:
    """True when the two directories are equal or one lies inside the other."""
    return first.is_relative_to(second) or second.is_relative_to(first)


def check_external(
    location: str,
    data_dir: Path,
    tables_dir: Path,
    existing: Iterable[tuple[str, str]],
) -> None:
    """Refuse ``location`` if it overlaps the catalog's own directories or one of
    the ``existing`` (table full name, storage_location) pairs."""
    path = tablefiles.location_path(location).resolve()
    reserved = (
        (data_dir.resolve(), "the chatlake data directory"),
        (tables_dir.resolve(), "the managed tables directory"),
    )
    for directory, what in reserved:
        if overlaps(path, directory):
            raise InvalidArgument(
                f"storage_location {quoted(location)} overlaps {what} {directory}"
            )
    for full_name, other in existing:
        other_path = tablefiles.location_path(other).resolve()
        if overlaps(path, other_path):
            raise InvalidArgument(
                f"storage_location {quoted(location)} overlaps the location of table "
                f"{full_name} ({other})"
            )
