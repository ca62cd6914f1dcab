"""Named reports: one Databricks SQL file each in ``reports/``, run by name.

A report names its tables as ``${chat_events}``, ``${feedback}`` or
``${stream_events}`` (filled with checked three-part names) and its time range
as the parameter markers ``:since`` and ``:until`` (bound by DuckDB, never
pasted into the text), so the same file also runs on Databricks SQL after the
table names are filled in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from string import Template

import pyarrow as pa

from chatlake.analytics.errors import ReportError
from chatlake.chat_tables import CHAT_EVENTS, FEEDBACK
from chatlake.config import DEFAULT_CATALOG, DEFAULT_SCHEMA
from chatlake.errors import TableNameError
from chatlake.names import parse_table_name

DEFAULT_CHAT_EVENTS = f"{DEFAULT_CATALOG}.{DEFAULT_SCHEMA}.{CHAT_EVENTS.name}"
DEFAULT_FEEDBACK = f"{DEFAULT_CATALOG}.{DEFAULT_SCHEMA}.{FEEDBACK.name}"
# Written by the ingest server (chatlake.ingest.stream_events).
DEFAULT_STREAM_EVENTS = "system.ingest.stream_events"

# An open range when the caller gives no bound.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 31, tzinfo=UTC)

_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")


@dataclass(frozen=True)
class Report:
    name: str
    title: str
    description: str
    sql: str


@dataclass(frozen=True)
class ReportTables:
    """The tables reports read; defaults are the ones ``chatlake up`` creates."""

    chat_events: str = DEFAULT_CHAT_EVENTS
    feedback: str = DEFAULT_FEEDBACK
    stream_events: str = DEFAULT_STREAM_EVENTS


def list_reports() -> list[Report]:
    """Every report shipped in the package, sorted by name."""
    folder = resources.files("chatlake.analytics") / "reports"
    found = [
        _load(entry.name.removesuffix(".sql"), entry.read_text("utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    ]
    return sorted(found, key=lambda report: report.name)


def get_report(name: str) -> Report:
    """The report called ``name``; ReportError lists the known names otherwise."""
    reports = {report.name: report for report in list_reports()}
    if not _NAME.match(name) or name not in reports:
        known = ", ".join(sorted(reports))
        raise ReportError(f"unknown report {name!r}; known reports: {known}")
    return reports[name]


def report_sql(report: Report, tables: ReportTables) -> str:
    """The report's SQL with checked table names filled in."""
    names = {
        "chat_events": _checked(tables.chat_events, "chat events table"),
        "feedback": _checked(tables.feedback, "feedback table"),
        "stream_events": _checked(tables.stream_events, "stream events table"),
    }
    return Template(report.sql).substitute(names)


def run_report(
    engine,
    name: str,
    *,
    tables: ReportTables | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> pa.Table:
    """Run report ``name`` over [since, until) and return its rows."""
    report = get_report(name)
    since, until = _time_range(since, until)
    sql = report_sql(report, tables or ReportTables())
    return engine.query(sql, {"since": since, "until": until})


def _load(name: str, text: str) -> Report:
    header = [line[2:].strip() for line in text.splitlines() if line.startswith("--")]
    title = name.replace("_", " ").capitalize()
    if header and header[0].startswith("title:"):
        title = header.pop(0).removeprefix("title:").strip()
    return Report(name, title, " ".join(header), text)


def _checked(full_name: str, what: str) -> str:
    try:
        return parse_table_name(full_name).full_name
    except TableNameError as error:
        raise ReportError(f"bad {what}: {error}") from None


def _time_range(
    since: datetime | None, until: datetime | None
) -> tuple[datetime, datetime]:
    since = _aware(since or EARLIEST, "since")
    until = _aware(until or LATEST, "until")
    if until <= since:
        raise ReportError(
            f"empty time range: until ({until.isoformat()}) is not after "
            f"since ({since.isoformat()})"
        )
    return since, until


def _aware(moment: datetime, what: str) -> datetime:
    if moment.tzinfo is None:
        raise ReportError(f"{what} must carry a time zone (got {moment.isoformat()})")
    return moment
