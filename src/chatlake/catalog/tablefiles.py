"""The Delta table behind each catalog table: created empty, removed when managed."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

import deltalake
import pyarrow as pa

from chatlake.catalog.errors import FailedPrecondition, InvalidArgument
from chatlake.names import printable, quoted

logger = logging.getLogger(__name__)


def location_path(location: str) -> Path:
    """The local path of a ``file://`` URI or absolute path; refuses the rest."""
    parsed = urlparse(location)
    if parsed.scheme == "file" and parsed.netloc in ("", "localhost"):
        path = Path(unquote(parsed.path))
    elif parsed.scheme == "" and location.startswith("/"):
        path = Path(location)
    else:
        raise InvalidArgument(
            f"storage_location {quoted(location)} is not a local file:// URI "
            f"or absolute path"
        )
    if "\x00" in str(path):
        # The OS cannot take a path holding a NUL (a %00 in the URI, say).
        raise InvalidArgument(
            f"storage_location {quoted(location)} holds a NUL character"
        )
    if not path.is_absolute() or ".." in path.parts:
        raise InvalidArgument(
            f"storage_location {quoted(location)} must be an absolute path"
        )
    return path


def location_uri(path: Path) -> str:
    return path.as_uri()


def has_delta_log(path: Path) -> bool:
    return (path / "_delta_log").is_dir()


def check_empty_or_absent(path: Path, location: str) -> None:
    """Refuse a location that is a file, or a directory already holding files."""
    try:
        if not path.exists():
            return
        if not path.is_dir():
            raise FailedPrecondition(f"location {location} is a file, not a directory")
        if any(path.iterdir()):
            raise FailedPrecondition(
                f"location {location} holds files that are not a Delta table; "
                f"give an empty or new directory, or one holding a Delta table"
            )
    except OSError as error:
        raise FailedPrecondition(
            f"cannot read location {location}: {error.strerror}"
        ) from None


def create_empty(path: Path, schema: pa.Schema, name: str) -> None:
    """Create an empty Delta table with this schema at ``path``."""
    if has_delta_log(path):
        raise FailedPrecondition(f"{path} already holds a Delta table")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise FailedPrecondition(
            f"cannot create the directory {path}: {error.strerror}"
        ) from None
    try:
        deltalake.DeltaTable.create(location_uri(path), schema, mode="error", name=name)
    except Exception as error:  # deltalake raises several unrelated types here
        raise FailedPrecondition(
            f"cannot create the Delta table at {path}: {error}"
        ) from error
    logger.info("created Delta table %s at %s", name, printable(str(path)))


def existing_columns(path: Path) -> list[str]:
    """The column names of the Delta table at ``path``."""
    table = deltalake.DeltaTable(location_uri(path))
    return [field.name for field in table.schema().fields]


def remove_managed(path: Path, tables_dir: Path) -> None:
    """Delete a managed table's files; refuses anything outside the tables directory."""
    resolved = path.resolve()
    if not resolved.is_relative_to(tables_dir.resolve()):
        raise FailedPrecondition(f"refusing to delete {path}: not under {tables_dir}")
    shutil.rmtree(resolved, ignore_errors=True)
    logger.info("deleted the files of managed table at %s", resolved)
