"""Alert rules over the chat tables and the ingest metrics, on a schedule.

The rules live in a TOML file::

    interval_s = 60
    webhook_url = "http://127.0.0.1:9000/alerts"    # optional

    [[rules]]
    name = "error rate"
    kind = "error_rate"      # error_rate, p95_latency, thumbs_down_ratio, sql, metric
    window_minutes = 15
    threshold = 0.05
    min_count = 20           # fire only when the window holds enough rows

A rule fires when its value compares true with its threshold (``op``, default
``>``). Starting to fire logs a WARNING line, resolving logs an INFO line, and
each change is POSTed as JSON to ``webhook_url`` when one is set. A POST that
fails is retried at the next evaluation.
"""

from __future__ import annotations

import logging
import math
import operator
import signal
import threading
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pyarrow as pa
from prometheus_client.parser import text_string_to_metric_families

from chatlake import config
from chatlake.analytics import guard, ingest_metrics, reports
from chatlake.analytics.errors import AlertRuleError, ReadOnlyError, SqlSyntaxError
from chatlake.errors import ChatlakeError

log = logging.getLogger(__name__)

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}

# The value (first column) and row count (second) of each built-in kind.
_KIND_SQL = {
    "error_rate": """
        SELECT CASE WHEN COUNT(*) = 0 THEN NULL
                    ELSE count_if(status = 'error') / COUNT(*) END AS value,
               COUNT(*) AS n
        FROM ${chat_events}
        WHERE event_time >= :since AND event_time < :until""",
    "p95_latency": """
        SELECT percentile(response_time_ms, 0.95) AS value,
               COUNT(response_time_ms) AS n
        FROM ${chat_events}
        WHERE event_time >= :since AND event_time < :until""",
    "thumbs_down_ratio": """
        WITH last_rating AS (
          SELECT telemetry_id, rating FROM ${feedback}
          WHERE event_time >= :since AND event_time < :until
          QUALIFY row_number() OVER (
            PARTITION BY telemetry_id ORDER BY event_time DESC, ingestion_time DESC
          ) = 1
        )
        SELECT CASE WHEN COUNT(*) = 0 THEN NULL
                    ELSE count_if(rating < 0) / COUNT(*) END AS value,
               COUNT(*) AS n
        FROM last_rating""",
}
KINDS = (*_KIND_SQL, "sql", "metric")

_RULE_KEYS = {
    "name",
    "kind",
    "threshold",
    "op",
    "window_minutes",
    "min_count",
    "sql",
    "metric",
    "labels",
    "metrics_url",
}
_TOP_KEYS = {"interval_s", "webhook_url", "webhook_timeout_s", "tables", "rules"}

# Every number in a rules file is finite and bounded: nan never compares true,
# so a nan threshold would never fire, and infinity or a huge window overflows
# the timers and dates it ends up in.
MAX_NUMBER = 1e15
_MAXIMUM = {
    "window_minutes": 366 * 24 * 60.0,  # a year, from a table's recent rows
    "interval_s": 86400.0,
    "webhook_timeout_s": 300.0,
}


@dataclass(frozen=True)
class Rule:
    name: str
    kind: str
    threshold: float
    op: str = ">"
    window_minutes: float = 15.0
    min_count: int = 1
    sql: str | None = None
    metric: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    metrics_url: str | None = None


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    interval_s: float = 60.0
    webhook_url: str | None = None
    webhook_timeout_s: float = 5.0
    tables: reports.ReportTables = field(default_factory=reports.ReportTables)


@dataclass(frozen=True)
class AlertResult:
    """One evaluation of one rule. ``error`` is set when it could not be measured."""

    rule: Rule
    at: datetime
    value: float | None = None
    count: int | None = None
    firing: bool = False
    error: str | None = None

    def payload(self) -> dict[str, Any]:
        return {
            "rule": self.rule.name,
            "kind": self.rule.kind,
            "state": "firing" if self.firing else "resolved",
            "value": self.value,
            "count": self.count,
            "threshold": self.rule.threshold,
            "op": self.rule.op,
            "window_minutes": self.rule.window_minutes,
            "at": self.at.isoformat(),
        }


# -- the rules file -------------------------------------------------------------


def load_rules(path: Path) -> RuleSet:
    """Read and check a rules file; AlertRuleError names the file, rule and key."""
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise AlertRuleError(f"alert rules file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise AlertRuleError(f"alert rules file {path}: {error}") from None
    try:
        return parse_rules(data)
    except AlertRuleError as error:
        raise AlertRuleError(f"alert rules file {path}: {error}") from None


def parse_rules(data: dict[str, Any]) -> RuleSet:
    _no_unknown_keys(data, _TOP_KEYS, "the top level")
    entries = data.get("rules")
    if not isinstance(entries, list) or not entries:
        raise AlertRuleError("no rules: add at least one [[rules]] table")
    rules = tuple(_rule(index, entry) for index, entry in enumerate(entries))
    names = [rule.name for rule in rules]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise AlertRuleError(f"rule names must be unique; repeated: {duplicates}")
    return RuleSet(
        rules=rules,
        interval_s=_positive(data.get("interval_s", 60.0), "interval_s"),
        webhook_url=_webhook_url(data.get("webhook_url")),
        webhook_timeout_s=_positive(
            data.get("webhook_timeout_s", 5.0), "webhook_timeout_s"
        ),
        tables=_tables(data.get("tables", {})),
    )


def _rule(index: int, entry: Any) -> Rule:
    where = f"rules[{index}]"
    if not isinstance(entry, dict):
        raise AlertRuleError(f"{where} must be a table")
    if isinstance(entry.get("name"), str) and entry["name"].strip():
        where = f"rules[{index}] ({entry['name']!r})"
    try:
        return _checked_rule(entry)
    except AlertRuleError as error:
        raise AlertRuleError(f"{where}: {error}") from None


def _checked_rule(entry: dict[str, Any]) -> Rule:
    _no_unknown_keys(entry, _RULE_KEYS, "this rule")
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise AlertRuleError("'name' must be a non-empty string")
    kind = entry.get("kind")
    if kind not in KINDS:
        raise AlertRuleError(f"unknown kind {kind!r}; use one of {', '.join(KINDS)}")
    op = entry.get("op", ">")
    if op not in OPERATORS:
        raise AlertRuleError(f"op {op!r} is not one of {', '.join(OPERATORS)}")
    rule = Rule(
        name=name.strip(),
        kind=kind,
        threshold=_number(entry.get("threshold"), "threshold"),
        op=op,
        window_minutes=_positive(entry.get("window_minutes", 15.0), "window_minutes"),
        min_count=int(_number(entry.get("min_count", 1), "min_count", minimum=0)),
        sql=entry.get("sql"),
        metric=entry.get("metric"),
        labels=_labels(entry.get("labels", {})),
        metrics_url=entry.get("metrics_url"),
    )
    _check_kind_fields(rule)
    return rule


def _check_kind_fields(rule: Rule) -> None:
    if rule.kind == "sql":
        if not isinstance(rule.sql, str) or not rule.sql.strip():
            raise AlertRuleError("kind 'sql' needs 'sql', a query returning a value")
        _check_query(rule.sql)
    elif rule.sql is not None:
        raise AlertRuleError(f"'sql' is only for kind 'sql', not {rule.kind!r}")
    if rule.kind == "metric":
        if not isinstance(rule.metric, str) or not rule.metric:
            raise AlertRuleError("kind 'metric' needs 'metric', a Prometheus name")
        if rule.metrics_url is not None:
            _http_url(rule.metrics_url, "metrics_url")
    elif rule.metric is not None or rule.metrics_url is not None:
        raise AlertRuleError(f"'metric' is only for kind 'metric', not {rule.kind!r}")


def _check_query(sql: str) -> None:
    try:
        statements = guard.parse(sql)
        if len(statements) != 1:
            raise AlertRuleError("'sql' must be exactly one SELECT statement")
        guard.check_read_only(statements[0])
    except (SqlSyntaxError, ReadOnlyError) as error:
        raise AlertRuleError(f"'sql': {error}") from None


def _no_unknown_keys(data: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        known = ", ".join(sorted(allowed))
        raise AlertRuleError(f"unknown key {unknown[0]!r} in {where}; known: {known}")


def _number(
    value: Any, key: str, *, minimum: float = -MAX_NUMBER, above_minimum=False
) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AlertRuleError(f"{key!r} must be a number, got {value!r}")
    problem = config.number_problem(
        float(value),
        maximum=_MAXIMUM.get(key, MAX_NUMBER),
        minimum=minimum,
        above_minimum=above_minimum,
    )
    if problem:
        raise AlertRuleError(f"{key!r} {problem}, got {value!r}")
    return float(value)


def _positive(value: Any, key: str) -> float:
    return _number(value, key, minimum=0, above_minimum=True)


def _labels(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise AlertRuleError("'labels' must be a table of strings")
    return dict(value)


def _webhook_url(value: Any) -> str | None:
    return None if value is None else _http_url(value, "webhook_url")


def _http_url(value: Any, key: str) -> str:
    if not isinstance(value, str) or urlsplit(value).scheme not in ("http", "https"):
        raise AlertRuleError(f"{key!r} must be an http:// or https:// URL")
    if not urlsplit(value).hostname:
        raise AlertRuleError(f"{key!r} has no host: {value!r}")
    return value


def _tables(value: Any) -> reports.ReportTables:
    if not isinstance(value, dict):
        raise AlertRuleError("[tables] must be a table")
    _no_unknown_keys(value, {"chat_events", "feedback", "stream_events"}, "[tables]")
    return reports.ReportTables(**value)


# -- evaluation -----------------------------------------------------------------


class Evaluator:
    """Measures each rule's value over its window, ending at ``clock()``."""

    def __init__(
        self,
        engine,
        rules: RuleSet,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        http: httpx.Client | None = None,
    ) -> None:
        self.engine = engine
        self.rules = rules
        self.clock = clock
        self._http = http or httpx.Client(timeout=rules.webhook_timeout_s)

    @property
    def http(self) -> httpx.Client:
        return self._http

    def evaluate(self) -> list[AlertResult]:
        now = self.clock()
        return [self._evaluate(rule, now) for rule in self.rules.rules]

    def _evaluate(self, rule: Rule, now: datetime) -> AlertResult:
        try:
            value, count = self._measure(rule, now)
        except (ChatlakeError, httpx.HTTPError, ValueError) as error:
            return AlertResult(rule, now, error=str(error))
        if value is not None and math.isnan(value):
            # nan compares false with everything: it would read as a quiet "ok".
            return AlertResult(rule, now, error="the measured value is nan")
        firing = (
            value is not None
            and (count is None or count >= rule.min_count)
            and OPERATORS[rule.op](value, rule.threshold)
        )
        return AlertResult(rule, now, value, count, firing)

    def _measure(self, rule: Rule, now: datetime) -> tuple[float | None, int | None]:
        if rule.kind == "metric":
            return self._metric(rule), None
        if rule.kind == "sql":
            sql = rule.sql
        else:
            sql = _fill_tables(_KIND_SQL[rule.kind], self.rules.tables)
        since = now - timedelta(minutes=rule.window_minutes)
        params = {"since": since, "until": now}
        row = _first_row(self.engine.query(sql, _used(sql, params)))
        return _value_and_count(row)

    def _metric(self, rule: Rule) -> float | None:
        url = rule.metrics_url or ingest_metrics.metrics_url()
        response = self._http.get(url)
        response.raise_for_status()
        return metric_value(response.text, rule.metric, rule.labels)


def metric_value(text: str, name: str, labels: dict[str, str]) -> float | None:
    """The sum of every sample of ``name`` whose labels include ``labels``."""
    samples = [
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    ]
    return sum(samples) if samples else None


def _fill_tables(sql: str, tables: reports.ReportTables) -> str:
    report = reports.Report("alert", "", "", sql)
    return reports.report_sql(report, tables)


def _used(sql: str, params: dict[str, Any]) -> dict[str, Any]:
    # A custom query may use :since, :until, both or neither.
    return {name: value for name, value in params.items() if f":{name}" in sql}


def _first_row(table: pa.Table) -> list[Any]:
    if table.num_rows == 0 or table.num_columns == 0:
        return []
    return list(table.slice(0, 1).to_pylist()[0].values())


def _value_and_count(row: list[Any]) -> tuple[float | None, int | None]:
    if not row or row[0] is None:
        return None, (int(row[1]) if len(row) > 1 and row[1] is not None else None)
    try:
        value = float(row[0])
    except (TypeError, ValueError):
        raise ValueError(
            f"the rule's query returned {row[0]!r}, not a number"
        ) from None
    count = int(row[1]) if len(row) > 1 and row[1] is not None else None
    return value, count


def results_table(results: list[AlertResult]) -> pa.Table:
    """Evaluation results as rows for printing."""

    def state(result: AlertResult) -> str:
        return "error" if result.error else "firing" if result.firing else "ok"

    return pa.table(
        {
            "rule": [r.rule.name for r in results],
            "kind": [r.rule.kind for r in results],
            "state": [state(r) for r in results],
            "value": pa.array([r.value for r in results], pa.float64()),
            "threshold": [f"{r.rule.op} {r.rule.threshold:g}" for r in results],
            "count": pa.array([r.count for r in results], pa.int64()),
            "detail": [r.error or "" for r in results],
        }
    )


# -- notification and schedule --------------------------------------------------


class Monitor:
    """Remembers which rules fire and announces every change once."""

    def __init__(self, evaluator: Evaluator, *, retries: bool = True) -> None:
        self.evaluator = evaluator
        # False for a single evaluation: a failed POST is then reported, not retried.
        self.retries = retries
        self._firing: dict[str, bool] = {}
        self._undelivered: dict[str, AlertResult] = {}

    def step(self) -> list[AlertResult]:
        """Evaluate all rules, log and send the changes, retry failed sends."""
        results = self.evaluator.evaluate()
        for result in results:
            self._observe(result)
        self._deliver()
        return results

    @property
    def undelivered(self) -> list[str]:
        """Rules whose last change the webhook has not accepted yet."""
        return sorted(self._undelivered)

    def run(self, stop: threading.Event) -> None:
        """Step every ``interval_s`` until ``stop`` is set."""
        interval_s = self.evaluator.rules.interval_s
        while not stop.is_set():
            self.step()
            stop.wait(interval_s)

    def _observe(self, result: AlertResult) -> None:
        name = result.rule.name
        if result.error:
            log.warning("alert %r could not be evaluated: %s", name, result.error)
            return
        if result.firing == self._firing.get(name, False):
            return
        self._firing[name] = result.firing
        if result.firing:
            log.warning(
                "alert firing: %s: %s = %s %s %g over %g min",
                name,
                result.rule.kind,
                result.value,
                result.rule.op,
                result.rule.threshold,
                result.rule.window_minutes,
            )
        else:
            log.info(
                "alert resolved: %s: %s = %s", name, result.rule.kind, result.value
            )
        self._undelivered[name] = result

    def _deliver(self) -> None:
        url = self.evaluator.rules.webhook_url
        if url is None:
            self._undelivered.clear()
            return
        for name, result in list(self._undelivered.items()):
            try:
                response = self.evaluator.http.post(url, json=result.payload())
                response.raise_for_status()
            except httpx.HTTPError as error:
                retry = ", will retry" if self.retries else ""
                log.warning("alert webhook for %r failed%s: %s", name, retry, error)
                continue
            del self._undelivered[name]


def run_until_signalled(monitor: Monitor) -> None:
    """Run the monitor in this thread until SIGINT or SIGTERM."""
    stop = threading.Event()

    def request_stop(signum, frame) -> None:
        log.info("stopping alerts on signal %d", signum)
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, request_stop)
    log.info(
        "evaluating %d alert rule(s) every %g s",
        len(monitor.evaluator.rules.rules),
        monitor.evaluator.rules.interval_s,
    )
    monitor.run(stop)
