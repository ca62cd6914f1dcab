"""A runaway query stops at its timeout, on interrupt(), and on Ctrl-C (exit 130)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from click.testing import CliRunner

from chatlake.analytics.engine import SqlEngine
from chatlake.analytics.errors import QueryInterruptedError, QueryTimeoutError
from chatlake.analytics.resolver import StaticResolver
from chatlake.cli import main

FOREVER = (
    "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) "
    "SELECT count(*) FROM r"
)


def test_a_statement_past_its_timeout_is_stopped() -> None:
    with SqlEngine(StaticResolver({}), timeout_s=0.2) as engine:
        started = time.monotonic()
        with pytest.raises(QueryTimeoutError) as stopped:
            engine.query(FOREVER)
        elapsed_s = time.monotonic() - started
        after = engine.query("SELECT 41 + 1 AS n").to_pylist()

    assert str(stopped.value) == "query stopped after the 0.2 s timeout"
    assert elapsed_s < 10
    assert after == [{"n": 42}]


def test_interrupt_stops_a_running_statement_and_any_later_one() -> None:
    engine = SqlEngine(StaticResolver({}))
    failures: list[BaseException] = []

    def run() -> None:
        try:
            engine.query(FOREVER)
        except BaseException as error:
            failures.append(error)

    worker = threading.Thread(target=run)
    worker.start()
    _wait_until(lambda: engine._running, "the statement to start")
    engine.interrupt()
    worker.join(timeout=10)

    assert not worker.is_alive()
    assert [str(f) for f in failures] == ["query interrupted"]
    assert isinstance(failures[0], QueryInterruptedError)
    with pytest.raises(QueryInterruptedError):
        engine.query("SELECT 1")
    engine.close()


def test_sql_command_timeout_option_and_env(catalog_server) -> None:
    options = [
        "--catalog-url",
        catalog_server.url,
        "--data-dir",
        str(catalog_server.data_dir),
    ]
    runner = CliRunner()

    by_option = runner.invoke(main, ["sql", FOREVER, "--timeout-s", "0.2", *options])
    by_env = runner.invoke(
        main, ["sql", FOREVER, *options], env={"CHATLAKE_SQL_TIMEOUT_S": "0.3"}
    )
    refused = runner.invoke(main, ["sql", "SELECT 1", "--timeout-s", "0", *options])

    assert (by_option.exit_code, by_option.output) == (
        1,
        "Error: query stopped after the 0.2 s timeout\n",
    )
    assert (by_env.exit_code, by_env.output) == (
        1,
        "Error: query stopped after the 0.3 s timeout\n",
    )
    assert refused.exit_code == 2
    assert "'--timeout-s': 0.0 is not in the range 0<x<=86400.0." in refused.output


@pytest.mark.slow
def test_ctrl_c_stops_the_sql_command_with_status_130(catalog_server) -> None:
    command = [
        sys.executable,
        "-m",
        "chatlake",
        "sql",
        FOREVER,
        "--catalog-url",
        catalog_server.url,
        "--data-dir",
        str(catalog_server.data_dir),
    ]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # As from a terminal: a suite started in the background of a
        # non-interactive shell hands its children SIGINT ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        # A query thread, a timer and DuckDB's workers: some 6 to 14 threads.
        _wait_until(lambda: _threads(process.pid) >= 6, "the query to start")
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert process.returncode == 130, stderr
    assert stdout == ""
    assert stderr == "Error: interrupted (Ctrl-C): query stopped\n"


def _threads(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except FileNotFoundError:
        return 0


def _wait_until(condition, what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)
