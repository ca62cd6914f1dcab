"""Report results for the app's dashboard pages, from the app's environment.

The engine is built on first use and kept: its catalog credentials come from
``$CHATLAKE_SQL_CLIENT_ID``/``_SECRET``, else the local admin file under
``$CHATLAKE_DATA_DIR``, else the app's own ``$DATABRICKS_CLIENT_ID``/``_SECRET``
(which reads the chat tables but not ``system.ingest.stream_events``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pyarrow as pa

from chatlake.analytics import reports
from chatlake.analytics.connect import EngineSettings, make_engine
from chatlake.analytics.engine import SqlEngine
from chatlake.analytics.errors import AnalyticsError
from chatlake.errors import ChatlakeError

log = logging.getLogger(__name__)

ENV_CHAT_TABLE = "ZEROBUS_TABLE"
ENV_FEEDBACK_TABLE = "CHATLAKE_FEEDBACK_TABLE"

RANGES: dict[str, timedelta | None] = {
    "1h": timedelta(hours=1),
    "24h": timedelta(days=1),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "all": None,
}
RANGE_LABELS = {
    "1h": "last hour",
    "24h": "last 24 hours",
    "7d": "last 7 days",
    "30d": "last 30 days",
    "all": "all time",
}
DEFAULT_RANGE = "24h"
# Reports run side by side (DuckDB releases the GIL while it scans), but each
# query is itself multi-threaded: more than two at once only adds contention.
PARALLEL_QUERIES = 2
# A page's results are shared this long: viewers opening or refreshing one page
# at the same moment run its reports once, and the work started when a browser
# asks for the page (prefetch) is what the first render then shows. Shorter than
# the shortest auto-refresh (10 s), so every tick still reads fresh data.
SHARE_RESULTS_S = 5.0


@dataclass(frozen=True)
class PageResults:
    tables: dict[str, pa.Table]
    errors: dict[str, str]
    elapsed_ms: float


class PageData:
    """Runs a page's reports over a time range; failures are kept per report."""

    def __init__(self, engine: SqlEngine | None = None) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._recent: dict[tuple, tuple[float, Future]] = {}
        self._recent_lock = threading.Lock()

    def engine(self) -> SqlEngine:
        with self._lock:
            if self._engine is None:
                self._engine = make_engine(_settings_from_env())
            return self._engine

    def shared(self, names: list[str], range_key: str) -> PageResults:
        """Like run(), reusing a run of the same page started < SHARE_RESULTS_S ago."""
        future, is_new = self._claim(names, range_key)
        if is_new:
            self._fill(future, names, range_key)
        return future.result()

    def prefetch(self, names: list[str], range_key: str) -> None:
        """Start shared() in the background, so that its caller finds it done."""
        future, is_new = self._claim(names, range_key)
        if is_new:
            threading.Thread(
                target=self._fill,
                args=(future, names, range_key),
                name="page-prefetch",
                daemon=True,
            ).start()

    def _claim(self, names: list[str], range_key: str) -> tuple[Future, bool]:
        key = (tuple(names), range_key)
        now = time.monotonic()
        with self._recent_lock:
            found = self._recent.get(key)
            if found is not None and now - found[0] < SHARE_RESULTS_S:
                return found[1], False
            future: Future = Future()
            self._recent[key] = (now, future)
            return future, True

    def _fill(self, future: Future, names: list[str], range_key: str) -> None:
        try:
            future.set_result(self.run(names, range_key))
        except Exception as error:
            # Whoever waits on this run gets the error; keep it in the log too,
            # as a prefetch may have no one waiting.
            log.exception("page reports failed")
            future.set_exception(error)
        finally:
            if not future.done():
                future.cancel()  # interrupted: waiters must not hang

    def run(self, names: list[str], range_key: str) -> PageResults:
        started = time.perf_counter()
        try:
            engine = self.engine()
        except ChatlakeError as error:
            message = str(error)
            return PageResults({}, dict.fromkeys(names, message), 0.0)
        since, until = time_range(range_key)
        tables, errors = {}, {}
        with ThreadPoolExecutor(PARALLEL_QUERIES) as pool:
            futures = {
                name: pool.submit(
                    reports.run_report,
                    engine,
                    name,
                    tables=report_tables(),
                    since=since,
                    until=until,
                )
                for name in names
            }
            for name, future in futures.items():
                try:
                    tables[name] = future.result()
                except ChatlakeError as error:
                    errors[name] = str(error)
        elapsed_ms = (time.perf_counter() - started) * 1000
        return PageResults(tables, errors, elapsed_ms)


def time_range(range_key: str) -> tuple[datetime | None, datetime | None]:
    if range_key not in RANGES:
        raise AnalyticsError(f"unknown time range {range_key!r}")
    span = RANGES[range_key]
    return (None, None) if span is None else (datetime.now(UTC) - span, None)


def report_tables() -> reports.ReportTables:
    return reports.ReportTables(
        chat_events=os.environ.get(ENV_CHAT_TABLE) or reports.DEFAULT_CHAT_EVENTS,
        feedback=os.environ.get(ENV_FEEDBACK_TABLE) or reports.DEFAULT_FEEDBACK,
    )


def _settings_from_env() -> EngineSettings:
    try:
        return EngineSettings.resolve()
    except AnalyticsError:
        client_id = os.environ.get("DATABRICKS_CLIENT_ID")
        secret = os.environ.get("DATABRICKS_CLIENT_SECRET")
        if not (client_id and secret):
            raise
        return EngineSettings.resolve(client_id=client_id, client_secret=secret)


# One per process: every page and every browser shares the engine.
SHARED = PageData()
