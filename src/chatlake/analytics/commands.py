"""``chatlake sql``, ``chatlake report`` and ``chatlake alerts``."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import click
import pyarrow as pa

from chatlake import logs
from chatlake.analytics import output, reports, timerange
from chatlake.analytics.connect import (
    ENV_CLIENT_ID,
    ENV_CLIENT_SECRET,
    EngineSettings,
    make_engine,
)
from chatlake.analytics.engine import SqlEngine
from chatlake.analytics.errors import AnalyticsError
from chatlake.cli_options import FiniteFloat, json_option, option_group
from chatlake.config import ENV_CATALOG_URL, ENV_DATA_DIR

log = logging.getLogger(__name__)

ENV_TIMEOUT_S = "CHATLAKE_SQL_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 300.0
# A day: longer is a mistake, and infinity would overflow the statement's timer.
MAX_TIMEOUT_S = 86400.0
# Exit status of a command stopped by Ctrl-C, as shells report SIGINT.
EXIT_INTERRUPTED = 130
SIGNAL_CHECK_S = 0.1
STOP_WAIT_S = 5.0

T = TypeVar("T")


# The options every command that reads tables shares.
connection_options = option_group(
    click.option(
        "--catalog-url",
        envvar=ENV_CATALOG_URL,
        help=f"Catalog base URL [env {ENV_CATALOG_URL}; default: the one in "
        "<data dir>/app.env when it has one, else http://127.0.0.1:8080].",
    ),
    click.option(
        "--data-dir",
        envvar=ENV_DATA_DIR,
        type=click.Path(file_okay=False),
        help="Data directory holding the local admin credentials "
        "[default: ./.chatlake].",
    ),
    click.option(
        "--client-id",
        envvar=ENV_CLIENT_ID,
        help="Principal to query as (needs SELECT) [default: local admin].",
    ),
    click.option(
        "--client-secret",
        envvar=ENV_CLIENT_SECRET,
        help=f"Secret of --client-id; better given as ${ENV_CLIENT_SECRET}.",
    ),
    click.option(
        "--timeout-s",
        envvar=ENV_TIMEOUT_S,
        type=FiniteFloat(min=0, max=MAX_TIMEOUT_S, min_open=True),
        default=DEFAULT_TIMEOUT_S,
        show_default=True,
        help=f"Stop a statement running longer than this (${ENV_TIMEOUT_S}).",
    ),
)

format_options = option_group(
    click.option(
        "--format",
        "fmt",
        type=click.Choice(output.FORMATS),
        default="table",
        show_default=True,
        help="Output format.",
    ),
    json_option("Same as --format json."),
)

rules_option = click.option(
    "--rules",
    "rules_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="The alert rules file (TOML).",
)


def _engine(catalog_url, data_dir, client_id, client_secret, timeout_s):
    settings = EngineSettings.resolve(catalog_url, data_dir, client_id, client_secret)
    return make_engine(settings, verify=True, timeout_s=timeout_s)


@contextlib.contextmanager
def stopped_by_ctrl_c() -> Iterator[None]:
    """Ctrl-C while connecting or printing: the same one line and status 130."""
    try:
        yield
    except KeyboardInterrupt:
        click.echo("Error: interrupted (Ctrl-C)", err=True)
        _leave_now()


def _leave_now() -> None:
    # Without the interpreter's teardown: it would wait for a statement's
    # timeout timer, and DuckDB may still be unwinding a query in its threads,
    # where tearing down under it can abort the process.
    sys.stdout.flush()
    os._exit(EXIT_INTERRUPTED)


def interruptible(engine: SqlEngine, work: Callable[[], T]) -> T:
    """``work()`` in a worker thread, so that Ctrl-C stops its query at once.

    DuckDB holds the main thread in native code where Python's SIGINT handler
    cannot run; waiting on a thread instead lets it run and interrupt DuckDB.
    """
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["value"] = work()
        except BaseException as error:  # handed to the main thread below
            outcome["error"] = error

    worker = threading.Thread(target=run, name="chatlake-query", daemon=True)
    worker.start()
    try:
        # A short wait, repeated: SIGINT may reach one of DuckDB's threads, and
        # then only a wait that ends lets the main thread run Python's handler.
        while worker.is_alive():
            worker.join(SIGNAL_CHECK_S)
    except KeyboardInterrupt:
        engine.interrupt()
        worker.join(timeout=STOP_WAIT_S)
        stopped = "query stopped" if not worker.is_alive() else "query did not stop"
        click.echo(f"Error: interrupted (Ctrl-C): {stopped}", err=True)
        _leave_now()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


@click.command()
@click.argument("query", required=False)
@click.option(
    "--file",
    "-f",
    "script",
    type=click.File("r", encoding="utf-8"),
    help="Read the SQL (one or more statements) from a file; - for stdin.",
)
@format_options
@connection_options
def sql(query, script, fmt, as_json, **connection):
    """Run read-only Databricks SQL over catalog tables.

    Tables are three-part names (catalog.schema.table); you need SELECT on each.
    Writes, settings and file or network functions are refused.

    \b
    chatlake sql "SELECT model, count(*) FROM main.chatbot.chat_events GROUP BY 1"
    chatlake sql --file weekly.sql --format csv
    """
    if (query is None) == (script is None):
        raise click.UsageError("give a QUERY or --file, exactly one")
    text = query if query is not None else script.read()
    with stopped_by_ctrl_c():
        with _engine(**connection) as engine:
            results = interruptible(engine, lambda: engine.run_script(text))
        output.render(results, "json" if as_json else fmt)


@click.command()
@click.argument("name", required=False)
@click.option("--last", help="Only the last span of time, e.g. 15m, 24h, 7d.")
@click.option("--since", help="Start of the range (ISO 8601; UTC if no zone).")
@click.option("--until", help="End of the range, excluded (ISO 8601).")
@click.option(
    "--chat-events-table",
    default=reports.DEFAULT_CHAT_EVENTS,
    show_default=True,
    help="The chat events table.",
)
@click.option(
    "--feedback-table",
    default=reports.DEFAULT_FEEDBACK,
    show_default=True,
    help="The feedback table.",
)
@click.option(
    "--stream-events-table",
    default=reports.DEFAULT_STREAM_EVENTS,
    show_default=True,
    help="The ingest server's stream events table.",
)
@click.option("--sql", "show_sql", is_flag=True, help="Print the report's SQL only.")
@format_options
@connection_options
def report(name, last, since, until, show_sql, fmt, as_json, **options):
    """Run a named report, or list the reports when no NAME is given.

    \b
    chatlake report
    chatlake report latency --last 24h
    chatlake report feedback_by_model --since 2026-12-01 --json
    """
    fmt = "json" if as_json else fmt
    if name is None:
        _list_reports(fmt)
        return
    tables = reports.ReportTables(
        options.pop("chat_events_table"),
        options.pop("feedback_table"),
        options.pop("stream_events_table"),
    )
    if show_sql:
        click.echo(reports.report_sql(reports.get_report(name), tables))
        return
    start, end = timerange.window(since, until, last)
    with stopped_by_ctrl_c():
        with _engine(**options) as engine:
            result = interruptible(
                engine,
                lambda: reports.run_report(
                    engine, name, tables=tables, since=start, until=end
                ),
            )
        output.render([result], fmt)


def _list_reports(fmt: str) -> None:
    found = reports.list_reports()
    listing = pa.table(
        {
            "name": [r.name for r in found],
            "title": [r.title for r in found],
            "description": [r.description for r in found],
        }
    )
    output.render([listing], fmt)


@click.group()
def alerts():
    """Evaluate alert rules: error rate, latency, thumbs-down ratio, metrics."""


def _check_delivered(monitor, webhook_url: str | None) -> None:
    if monitor.undelivered:
        raise AnalyticsError(
            f"alert webhook {webhook_url} did not accept "
            f"{len(monitor.undelivered)} notification(s) "
            f"({', '.join(monitor.undelivered)}); --once does not retry"
        )


@alerts.command("check")
@rules_option
@format_options
@connection_options
def alerts_check(rules_path, fmt, as_json, **connection):
    """Evaluate every rule once and print its value and state.

    Exits with status 1 when any rule fires, so a cron job or CI can react.
    Sends no webhook.
    """
    from chatlake.analytics import alerts as alerting

    rules = alerting.load_rules(Path(rules_path))
    with _engine(**connection) as engine:
        results = alerting.Evaluator(engine, rules).evaluate()
    output.render([alerting.results_table(results)], "json" if as_json else fmt)
    if any(result.firing for result in results):
        sys.exit(1)


@alerts.command("run")
@rules_option
@click.option("--once", is_flag=True, help="Evaluate once, notify, and exit.")
@connection_options
def alerts_run(rules_path, once, **connection):
    """Evaluate the rules on their schedule until stopped (Ctrl-C or SIGTERM).

    A rule that starts firing logs a WARNING line and, when the rules file
    names a webhook_url, POSTs JSON to it; so does a rule that resolves.
    """
    from chatlake.analytics import alerts as alerting

    logs.configure()
    rules = alerting.load_rules(Path(rules_path))
    with _engine(**connection) as engine:
        evaluator = alerting.Evaluator(engine, rules)
        monitor = alerting.Monitor(evaluator, retries=not once)
        if once:
            monitor.step()
            _check_delivered(monitor, rules.webhook_url)
            return
        alerting.run_until_signalled(monitor)
