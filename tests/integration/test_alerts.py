"""Alert rules firing and resolving against a local webhook receiver."""

from __future__ import annotations

import json
import queue
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from chatlake.analytics import alerts
from chatlake.analytics.engine import SqlEngine
from chatlake.analytics.errors import AlertRuleError
from chatlake.analytics.testing import DAY0, chat_rows, feedback_rows, write_table
from chatlake.catalog.bootstrap import ensure_chat_tables
from chatlake.chat_tables import CHAT_EVENTS, FEEDBACK
from chatlake.cli import main

METRICS = """\
# HELP chatlake_ingest_wal_pending_bytes Bytes not yet committed.
# TYPE chatlake_ingest_wal_pending_bytes gauge
chatlake_ingest_wal_pending_bytes{table="main.chatbot.chat_events"} 700.0
chatlake_ingest_wal_pending_bytes{table="main.chatbot.feedback"} 500.0
"""


class Receiver:
    """A webhook endpoint and a /metrics page on 127.0.0.1:<free port>."""

    def __init__(self) -> None:
        self.posts: queue.Queue[dict] = queue.Queue()
        self.failures_left = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if receiver.failures_left:
                    receiver.failures_left -= 1
                    self.send_response(500)
                else:
                    receiver.posts.put(body)
                    self.send_response(204)
                self.end_headers()

            def do_GET(self) -> None:
                payload = METRICS.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def next_post(self, timeout_s: float = 10.0) -> dict:
        return self.posts.get(timeout=timeout_s)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def tables(catalog_server):
    """Both chat tables in the real catalog, filled with the known rows."""
    admin = catalog_server.admin_client
    ensure_chat_tables(admin, "main", "chatbot")
    locations = {
        spec.name: admin.get_table(f"main.chatbot.{spec.name}")["storage_location"]
        for spec in (CHAT_EVENTS, FEEDBACK)
    }
    write_table(locations["chat_events"], CHAT_EVENTS, chat_rows())
    write_table(locations["feedback"], FEEDBACK, feedback_rows())
    return locations


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def monitor_for(catalog_server, rules_text: str, clock: Clock) -> alerts.Monitor:
    rules = alerts.parse_rules(_toml(rules_text))
    evaluator = alerts.Evaluator(
        SqlEngine(catalog_server.admin_client), rules, clock=clock
    )
    return alerts.Monitor(evaluator)


def _toml(text: str) -> dict:
    import tomllib

    return tomllib.loads(text)


ERROR_RATE = """
webhook_url = "{url}/hook"
interval_s = 0.05
[[rules]]
name = "error rate"
kind = "error_rate"
window_minutes = 60
threshold = 0.3
min_count = 2
"""


def ok_turn(telemetry_id: str, at: datetime) -> dict:
    row = chat_rows()[0]
    row.update(telemetry_id=telemetry_id, event_time=at, ingestion_time=at)
    return row


def test_rule_fires_once_then_resolves(catalog_server, tables, receiver, caplog):
    # 09:30-10:30 holds t04 (error) and t05 (ok): an error rate of 0.5.
    clock = Clock(DAY0 + timedelta(hours=10, minutes=30))
    monitor = monitor_for(catalog_server, ERROR_RATE.format(url=receiver.url), clock)

    monitor.step()
    fired = receiver.next_post()
    monitor.step()
    write_table(
        tables["chat_events"],
        CHAT_EVENTS,
        [ok_turn(f"ok{i}", DAY0 + timedelta(hours=10, minutes=20)) for i in range(3)],
    )
    monitor.step()
    resolved = receiver.next_post()

    assert fired == {
        "rule": "error rate",
        "kind": "error_rate",
        "state": "firing",
        "value": 0.5,
        "count": 2,
        "threshold": 0.3,
        "op": ">",
        "window_minutes": 60.0,
        "at": "2026-11-30T10:30:00+00:00",
    }
    assert (resolved["state"], resolved["value"], resolved["count"]) == (
        "resolved",
        0.2,
        5,
    )
    assert receiver.posts.empty()
    assert "alert firing: error rate: error_rate = 0.5 > 0.3 over 60 min" in caplog.text


def test_scheduler_runs_until_stopped(catalog_server, tables, receiver) -> None:
    clock = Clock(DAY0 + timedelta(hours=10, minutes=30))
    monitor = monitor_for(catalog_server, ERROR_RATE.format(url=receiver.url), clock)
    stop = threading.Event()
    worker = threading.Thread(target=monitor.run, args=(stop,))
    worker.start()
    try:
        fired = receiver.next_post()
        # An hour later the window holds no turns: below min_count, so resolved.
        clock.now += timedelta(hours=3)
        resolved = receiver.next_post()
    finally:
        stop.set()
        worker.join(timeout=10)

    assert (fired["state"], resolved["state"]) == ("firing", "resolved")
    assert resolved["count"] == 0
    assert not worker.is_alive()


def test_failed_webhook_is_retried_next_time(catalog_server, tables, receiver):
    clock = Clock(DAY0 + timedelta(hours=10, minutes=30))
    monitor = monitor_for(catalog_server, ERROR_RATE.format(url=receiver.url), clock)
    receiver.failures_left = 1

    monitor.step()
    nothing_yet = receiver.posts.empty()
    monitor.step()

    assert nothing_yet
    assert receiver.next_post()["state"] == "firing"


RULE_KINDS = """
[[rules]]
name = "slow"
kind = "p95_latency"
window_minutes = 1440
threshold = 750
[[rules]]
name = "unhappy"
kind = "thumbs_down_ratio"
window_minutes = 1440
threshold = 0.5
op = ">="
[[rules]]
name = "custom"
kind = "sql"
sql = '''SELECT count(*) FROM main.chatbot.chat_events
         WHERE model = 'model-b' AND event_time < :until'''
threshold = 3
[[rules]]
name = "backlog"
kind = "metric"
metric = "chatlake_ingest_wal_pending_bytes"
metrics_url = "{url}/metrics"
threshold = 1000
[[rules]]
name = "backlog of feedback"
kind = "metric"
metric = "chatlake_ingest_wal_pending_bytes"
labels = {{ table = "main.chatbot.feedback" }}
metrics_url = "{url}/metrics"
threshold = 1000
"""


def test_every_kind_measures_the_right_value(catalog_server, tables, receiver):
    # Window: the whole of 1 December.
    clock = Clock(DAY0 + timedelta(days=2))
    rules = alerts.parse_rules(_toml(RULE_KINDS.format(url=receiver.url)))
    evaluator = alerts.Evaluator(
        SqlEngine(catalog_server.admin_client), rules, clock=clock
    )

    results = {r.rule.name: (r.value, r.count, r.firing) for r in evaluator.evaluate()}

    # 1 December: 600, 700, 800, 900 ms -> p95 = 885; ratings t06 up, t07 down;
    # model-b before midnight of 2 December (t10 is exactly at it): t03 t04 t07 t08.
    assert results == {
        "slow": (885.0, 4, True),
        "unhappy": (0.5, 2, True),
        "custom": (4.0, None, True),
        "backlog": (1200.0, None, True),
        "backlog of feedback": (500.0, None, False),
    }


def test_unreachable_metrics_is_an_error_not_a_firing(catalog_server, tables):
    rules = alerts.parse_rules(
        _toml(
            '[[rules]]\nname = "m"\nkind = "metric"\nmetric = "x"\n'
            'metrics_url = "http://127.0.0.1:9/metrics"\nthreshold = 1\n'
        )
    )
    evaluator = alerts.Evaluator(SqlEngine(catalog_server.admin_client), rules)

    [result] = evaluator.evaluate()

    assert not result.firing
    assert result.error


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no rules"),
        (
            '[[rules]]\nname = "a"\nkind = "nope"\nthreshold = 1',
            "rules[0] ('a'): unknown kind 'nope'",
        ),
        (
            '[[rules]]\nname = "a"\nkind = "error_rate"',
            "rules[0] ('a'): 'threshold' must be a number, got None",
        ),
        (
            '[[rules]]\nname = "a"\nkind = "error_rate"\nthreshold = 1\ncolour = 2',
            "unknown key 'colour' in this rule",
        ),
        (
            '[[rules]]\nname = "a"\nkind = "error_rate"\nthreshold = 1\nop = "=="',
            "op '==' is not one of",
        ),
        (
            '[[rules]]\nname = "a"\nkind = "error_rate"\nthreshold = 1\n'
            "window_minutes = 0",
            "'window_minutes' must be greater than 0",
        ),
        (
            'webhook_url = "ftp://x"\n[[rules]]\nname = "a"\nkind = "error_rate"\n'
            "threshold = 1",
            "'webhook_url' must be an http:// or https:// URL",
        ),
        (
            '[[rules]]\nname = "a"\nkind = "sql"\nthreshold = 1\n'
            'sql = "DELETE FROM main.a.b"',
            "refused DELETE",
        ),
        (
            '[[rules]]\nname = "a"\nkind = "sql"\nthreshold = 1',
            "kind 'sql' needs 'sql'",
        ),
        (
            '[[rules]]\nname = "a"\nkind = "metric"\nthreshold = 1',
            "kind 'metric' needs 'metric'",
        ),
        (
            '[[rules]]\nname = "a"\nkind = "error_rate"\nthreshold = 1\n'
            '[[rules]]\nname = "a"\nkind = "error_rate"\nthreshold = 2',
            "repeated: ['a']",
        ),
    ],
)
def test_bad_rules_files_are_refused_with_the_place(tmp_path: Path, text, message):
    path = tmp_path / "rules.toml"
    path.write_text(text)

    with pytest.raises(AlertRuleError) as caught:
        alerts.load_rules(path)

    assert str(caught.value).startswith(f"alert rules file {path}: ")
    assert message in str(caught.value)


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[[rules]\n")

    with pytest.raises(AlertRuleError, match="does not exist"):
        alerts.load_rules(tmp_path / "absent.toml")
    with pytest.raises(AlertRuleError, match="broken.toml: "):
        alerts.load_rules(broken)


def test_alerts_check_command_exits_1_when_a_rule_fires(catalog_server, tmp_path):
    admin = catalog_server.admin_client
    ensure_chat_tables(admin, "main", "chatbot")
    location = admin.get_table("main.chatbot.chat_events")["storage_location"]
    # t04 (error) and t05 (ok) happened about five minutes ago.
    write_table(
        location,
        CHAT_EVENTS,
        chat_rows(datetime.now(UTC) - timedelta(hours=10, minutes=20)),
    )
    rules = tmp_path / "rules.toml"
    rules.write_text(
        '[[rules]]\nname = "errors"\nkind = "error_rate"\nwindow_minutes = 15\n'
        'threshold = 0.3\n[[rules]]\nname = "latency"\nkind = "p95_latency"\n'
        "window_minutes = 15\nthreshold = 1000\n"
    )
    options = [
        "--rules",
        str(rules),
        "--catalog-url",
        catalog_server.url,
        "--data-dir",
        str(catalog_server.data_dir),
        "--json",
    ]

    result = CliRunner().invoke(main, ["alerts", "check", *options])

    assert result.exit_code == 1, result.output
    rows = json.loads(result.output)
    assert [(r["rule"], r["state"], r["value"], r["count"]) for r in rows] == [
        ("errors", "firing", 0.5, 2),
        ("latency", "ok", 495.0, 2),
    ]


ALWAYS_FIRING = """
webhook_url = "{url}"
[[rules]]
name = "any turns"
kind = "sql"
sql = "SELECT count(*) FROM main.chatbot.chat_events"
threshold = 3
"""


@pytest.mark.parametrize("webhook_up", [True, False])
def test_alerts_run_once_fails_when_the_webhook_refuses(
    catalog_server, tables, receiver, tmp_path, webhook_up, caplog
):
    url = f"{receiver.url}/hook"
    if not webhook_up:
        receiver.failures_left = 1
    rules = tmp_path / "rules.toml"
    rules.write_text(ALWAYS_FIRING.format(url=url))
    options = ["--catalog-url", catalog_server.url]
    options += ["--data-dir", str(catalog_server.data_dir)]

    result = CliRunner().invoke(
        main, ["alerts", "run", "--once", "--rules", str(rules), *options]
    )

    if webhook_up:
        assert result.exit_code == 0, result.output
        assert receiver.next_post()["state"] == "firing"
    else:
        assert result.exit_code == 1
        assert result.output.splitlines()[-1] == (
            f"Error: alert webhook {url} did not accept 1 notification(s) "
            f"(any turns); --once does not retry"
        )
        # The log says only what is true: a single run retries nothing.
        [failed] = [r for r in caplog.records if "webhook for" in r.getMessage()]
        assert failed.getMessage().startswith(
            "alert webhook for 'any turns' failed: Server error '500"
        )


NAN_LATER = """
[[rules]]
name = "odd"
kind = "sql"
sql = "SELECT CASE WHEN :until > TIMESTAMP '2030-01-01' THEN 'nan'::double ELSE 5 END"
threshold = 1
"""


def test_a_nan_value_cannot_be_measured_and_keeps_the_state(
    catalog_server, tables, caplog
):
    clock = Clock(datetime(2029, 6, 1, tzinfo=UTC))
    monitor = monitor_for(catalog_server, NAN_LATER, clock)
    [before] = monitor.step()
    clock.now = datetime(2030, 6, 1, tzinfo=UTC)

    [after] = monitor.step()

    assert (before.value, before.firing, before.error) == (5.0, True, None)
    assert (after.value, after.firing, after.error) == (
        None,
        False,
        "the measured value is nan",
    )
    assert "alert 'odd' could not be evaluated: the measured value is nan" in (
        caplog.text
    )
    assert "alert resolved" not in caplog.text
    assert alerts.results_table([after]).column("state").to_pylist() == ["error"]
