"""The root of every error chatlake raises on purpose.

ChatlakeError
├── ConfigError           a setting is missing or malformed
├── TypeSpecError         a column type or column list cannot be parsed
├── TableNameError        a table name is not catalog.schema.table of safe parts
└── (component errors)    each component derives its own, e.g. CatalogError

The CLI prints a ChatlakeError as one line on stderr and exits non-zero.
"""

from __future__ import annotations


class ChatlakeError(Exception):
    """An expected failure, with a message a person can act on."""


class ConfigError(ChatlakeError, ValueError):
    """A setting is missing or malformed; the message names the setting."""


class TypeSpecError(ChatlakeError, ValueError):
    """A column type or column list cannot be parsed; the message says where."""


class TableNameError(ChatlakeError, ValueError):
    """A table name is not three parts of ASCII letters, digits and underscores."""
