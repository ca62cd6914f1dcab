"""Three-part names (catalog.schema.table), checked before anything is created."""

from __future__ import annotations

import re
from typing import NamedTuple

from chatlake.errors import TableNameError

_PART = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
MAX_PART_LENGTH = 255


def check_part(part: str, what: str = "name") -> str:
    """Return ``part`` if it is one safe identifier, else raise TableNameError."""
    if not _PART.match(part) or len(part) > MAX_PART_LENGTH:
        raise TableNameError(
            f"invalid {what} {part!r}: use ASCII letters, digits and underscores, "
            f"starting with a letter or underscore"
        )
    return part


class TableName(NamedTuple):
    catalog: str
    schema: str
    table: str

    @property
    def full_name(self) -> str:
        return f"{self.catalog}.{self.schema}.{self.table}"

    def __str__(self) -> str:
        return self.full_name


def parse_table_name(text: str) -> TableName:
    """Parse ``catalog.schema.table``; anything else raises TableNameError."""
    parts = text.split(".")
    if len(parts) != 3:
        raise TableNameError(
            f"invalid table name {text!r}: expected catalog.schema.table "
            f"(three parts), got {len(parts)}"
        )
    for what, part in zip(("catalog", "schema", "table"), parts, strict=True):
        try:
            check_part(part, what)
        except TableNameError as error:
            raise TableNameError(f"invalid table name {text!r}: {error}") from None
    return TableName(*parts)
