"""Errors of chatlake.analytics, all under one root.

AnalyticsError
├── SqlSyntaxError        the text is not SQL that the Databricks dialect parses
├── ReadOnlyError         the statement would write or reach outside catalog tables
├── TableAccessError      a table is unknown or the caller lacks SELECT on it
├── QueryError            DuckDB refused or failed the translated query
│   ├── QueryTimeoutError     the statement ran past its timeout
│   └── QueryInterruptedError the statement was interrupted (Ctrl-C)
├── ReportError           no such report, or a bad report parameter
└── AlertRuleError        the alert rules file is missing or malformed
"""

from __future__ import annotations

from chatlake.errors import ChatlakeError


class AnalyticsError(ChatlakeError):
    """An expected failure of SQL, reports or alerts."""


class SqlSyntaxError(AnalyticsError, ValueError):
    """The query does not parse; the message says where."""


class ReadOnlyError(AnalyticsError, PermissionError):
    """The query would change something or read outside the catalog's tables."""


class TableAccessError(AnalyticsError, PermissionError):
    """A table is unknown, has no storage, or the caller may not SELECT from it."""


class QueryError(AnalyticsError, RuntimeError):
    """DuckDB failed the translated query (wrong column, bad cast, ...)."""


class QueryTimeoutError(QueryError):
    """A statement ran longer than the engine's timeout and was stopped."""


class QueryInterruptedError(QueryError):
    """A statement was stopped by SqlEngine.interrupt() (Ctrl-C in the CLI)."""


class ReportError(AnalyticsError, ValueError):
    """An unknown report name or a bad report parameter."""


class AlertRuleError(AnalyticsError, ValueError):
    """The alert rules file is missing, unreadable or has a bad rule."""
