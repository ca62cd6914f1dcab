"""Three-part names (catalog.schema.table), checked before anything is created."""

from __future__ import annotations

import re
from typing import NamedTuple

from chatlake.errors import TableNameError

_PART = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
MAX_PART_LENGTH = 255
# An error message quotes at most this many characters of what it was given:
# a 5 MB name must not come back as a 5 MB error.
MAX_QUOTED_CHARS = 100


def shortened(text: str) -> str:
    """``text`` cut to its first characters, saying how long it was, if long."""
    if len(text) <= MAX_QUOTED_CHARS:
        return text
    return f"{text[:MAX_QUOTED_CHARS]}... ({len(text)} characters)"


def quoted(text: str) -> str:
    """``text`` in quotes for an error message, escaped, long ones cut short."""
    if len(text) <= MAX_QUOTED_CHARS:
        return repr(text)
    return f"{text[:MAX_QUOTED_CHARS]!r}... ({len(text)} characters)"


def printable(text: str) -> str:
    """``text`` for a log line: control characters (NUL, newlines) escaped, so a
    request cannot write raw bytes or forged lines into the log."""
    return shortened(repr(text)[1:-1])


def check_part(part: str, what: str = "name") -> str:
    """Return ``part`` if it is one safe identifier, else raise TableNameError."""
    if not _PART.match(part) or len(part) > MAX_PART_LENGTH:
        raise TableNameError(
            f"invalid {what} {quoted(part)}: use ASCII letters, digits and "
            f"underscores, starting with a letter or underscore"
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
            f"invalid table name {quoted(text)}: expected catalog.schema.table "
            f"(three parts), got {len(parts)}"
        )
    for what, part in zip(("catalog", "schema", "table"), parts, strict=True):
        try:
            check_part(part, what)
        except TableNameError as error:
            message = f"invalid table name {quoted(text)}: {error}"
            raise TableNameError(message) from None
    return TableName(*parts)
