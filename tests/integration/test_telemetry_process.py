"""The app as a real process: hung server then SIGKILL and restart (C12), SIGTERM,
fork. The app is a small script run with the test's Python; servers are real
except the hung one, a fake that accepts streams and never acknowledges.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from chatlake.chat_tables import CHAT_EVENTS
from chatlake.telemetry.testing import FakeZerobusServer
from tests.integration.ingest_support import (
    create_table,
    ingest_server,
    read_rows,
    settle,
    writer,
)

CHAT = "main.chatbot.chat_events"

APP = textwrap.dedent(
    """
    import json, os, sys, time
    from chatlake.telemetry import TelemetryClient, TelemetryConfig, new_chat_turn

    settings = json.loads(sys.argv[1])
    if settings.pop("previous_handler", False):
        import signal

        def previous(signum, frame):
            print("REPORT " + json.dumps({"previous_handler_ran": True}), flush=True)
            sys.exit(7)

        signal.signal(signal.SIGTERM, previous)
    mode, prefix = settings.pop("mode"), settings.pop("prefix")
    count = settings.pop("count")
    client = TelemetryClient(TelemetryConfig.from_env({}, **settings))

    def say(**fields):
        print("REPORT " + json.dumps(fields), flush=True)

    def wait_for(predicate):
        deadline = time.monotonic() + 30
        while not predicate() and time.monotonic() < deadline:
            time.sleep(0.01)
        return predicate()

    def track_all(tag):
        started = time.perf_counter()
        for i in range(count):
            client.track(new_chat_turn(telemetry_id=f"{tag}{i:04d}", user_message="hi"))
        return time.perf_counter() - started

    if mode == "spool-then-wait":
        took = track_all(prefix)
        spooled = wait_for(lambda: client.metrics()["sent"] >= count)
        say(track_s=took, spooled=spooled, state=client.status().state)
        sys.stdin.read()
    elif mode == "flush":
        track_all(prefix)
        say(flushed=client.flush(60), adopted=client.metrics()["adopted"])
        client.close()
    elif mode == "sigterm":
        track_all(prefix)
        say(tracked=True)
        sys.stdin.read()
    elif mode == "fork":
        track_all(prefix + "parent")
        client.flush(30)
        pid = os.fork()
        if pid == 0:
            track_all(prefix + "child")
            ok = client.flush(60)
            client.close()
            os._exit(0 if ok else 3)
        track_all(prefix + "after")
        _, status = os.waitpid(pid, 0)
        say(child_status=status, flushed=client.flush(60))
        client.close()
    """
)


@pytest.fixture
def chat_table(catalog_server):
    create_table(catalog_server, CHAT, CHAT_EVENTS.columns, CHAT_EVENTS.properties)
    return writer(catalog_server, "chatbot", CHAT)


def app_settings(catalog_server, credentials, endpoint, spool_dir, **extra) -> dict:
    return dict(
        server_endpoint=endpoint,
        catalog_url=catalog_server.url,
        chat_table=CHAT,
        client_id=credentials[0],
        client_secret=credentials[1],
        spool_dir=str(spool_dir),
        flush_interval_s=0.05,
        backoff_initial_s=0.2,
        backoff_max_s=1.0,
        sdk_recovery_timeout_ms=2000,
        sdk_recovery_retries=1,
        **extra,
    )


def start_app(settings: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", APP, json.dumps(settings)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def read_line(app: subprocess.Popen) -> dict:
    """The app's next report; the SDK's own log lines on stdout are skipped."""
    for line in app.stdout:
        if line.startswith("REPORT "):
            return json.loads(line.removeprefix("REPORT "))
    raise AssertionError(f"the app ended without a report (exit {app.wait(10)})")


def finish(app: subprocess.Popen, timeout_s: float = 60) -> int:
    code = app.wait(timeout_s)
    for pipe in (app.stdin, app.stdout):
        if pipe:
            pipe.close()
    return code


def wait_until(predicate, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def chat_ids(catalog_server) -> list[str]:
    return [r["telemetry_id"] for r in read_rows(catalog_server, CHAT, "telemetry_id")]


def test_hung_server_then_app_killed_and_restarted_delivers_everything(
    catalog_server, chat_table, tmp_path
):
    spool = tmp_path / "spool"
    with FakeZerobusServer(mode="hang") as hung:
        first = start_app(
            app_settings(
                catalog_server,
                chat_table,
                hung.endpoint,
                spool,
                mode="spool-then-wait",
                prefix="before",
                count=300,
            )
        )
        report = read_line(first)
        # The app did not wait on the silent server: 300 calls well under a second.
        assert report["track_s"] < 1.0
        assert report["spooled"] is True
        assert report["state"] == "spooling"
        wait_until(lambda: len(hung.records) >= 300)
        assert len(hung.records) == 300  # received, never acknowledged
        first.send_signal(signal.SIGKILL)
        assert finish(first) == -signal.SIGKILL

    with ingest_server(catalog_server) as running:
        second = start_app(
            app_settings(
                catalog_server,
                chat_table,
                running.endpoint,
                spool,
                mode="flush",
                prefix="after",
                count=50,
            )
        )
        report = read_line(second)
        assert finish(second) == 0
        assert report == {"flushed": True, "adopted": 300}
        settle(running)

    expected = [f"after{i:04d}" for i in range(50)] + [
        f"before{i:04d}" for i in range(300)
    ]
    assert chat_ids(catalog_server) == expected
    assert list(spool.glob("spool-*.sqlite3")) == []


def test_sigterm_closes_the_client_and_delivers_first(
    catalog_server, chat_table, tmp_path
):
    with ingest_server(catalog_server) as running:
        app = start_app(
            app_settings(
                catalog_server,
                chat_table,
                running.endpoint,
                tmp_path / "spool",
                mode="sigterm",
                prefix="term",
                count=100,
            )
        )
        assert read_line(app) == {"tracked": True}
        app.send_signal(signal.SIGTERM)
        assert finish(app) == -signal.SIGTERM
        settle(running)
    assert chat_ids(catalog_server) == [f"term{i:04d}" for i in range(100)]


def test_sigterm_closes_first_then_calls_the_apps_own_handler(
    catalog_server, chat_table, tmp_path
):
    with ingest_server(catalog_server) as running:
        app = start_app(
            app_settings(
                catalog_server,
                chat_table,
                running.endpoint,
                tmp_path / "spool",
                mode="sigterm",
                prefix="chain",
                count=30,
                previous_handler=True,
            )
        )
        assert read_line(app) == {"tracked": True}
        app.send_signal(signal.SIGTERM)
        assert read_line(app) == {"previous_handler_ran": True}
        assert finish(app) == 7
        settle(running)
    assert chat_ids(catalog_server) == [f"chain{i:04d}" for i in range(30)]


def test_forked_worker_gets_its_own_sender_and_spool(
    catalog_server, chat_table, tmp_path
):
    with ingest_server(catalog_server) as running:
        app = start_app(
            app_settings(
                catalog_server,
                chat_table,
                running.endpoint,
                tmp_path / "spool",
                mode="fork",
                prefix="",
                count=20,
            )
        )
        report = read_line(app)
        assert finish(app) == 0
        assert report == {"child_status": 0, "flushed": True}
        settle(running)
    expected = sorted(
        f"{tag}{i:04d}" for tag in ("parent", "child", "after") for i in range(20)
    )
    assert chat_ids(catalog_server) == expected
