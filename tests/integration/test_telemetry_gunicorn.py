"""A real gunicorn with --preload: the client is made in the master, used in workers."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import threading

import httpx

from chatlake.chat_tables import CHAT_EVENTS
from tests.integration.ingest_support import (
    create_table,
    ingest_server,
    read_rows,
    settle,
    writer,
)

CHAT = "main.chatbot.chat_events"

WSGI_APP = textwrap.dedent(
    """
    import os
    from urllib.parse import parse_qs

    from chatlake.telemetry import TelemetryClient, new_chat_turn

    telemetry = TelemetryClient()  # in the master: gunicorn --preload
    telemetry.track(new_chat_turn(telemetry_id="from-master"))

    def app(environ, start_response):
        turn_id = parse_qs(environ["QUERY_STRING"])["id"][0]
        telemetry.track(new_chat_turn(telemetry_id=turn_id, user_message="hi"))
        # Acked before answering: a loaded machine can outlast close()'s 5 s
        # at exit, and what a spool keeps then is the spool tests' subject.
        assert telemetry.flush(60)
        start_response("200 OK", [("content-type", "text/plain")])
        return [str(os.getpid()).encode()]
    """
)


def test_preloaded_client_in_forked_workers_delivers_everything(
    catalog_server, tmp_path
):
    create_table(catalog_server, CHAT, CHAT_EVENTS.columns, CHAT_EVENTS.properties)
    client_id, secret = writer(catalog_server, "chatbot", CHAT)
    (tmp_path / "wsgi_telemetry.py").write_text(WSGI_APP)
    with ingest_server(catalog_server) as running:
        env = os.environ | {
            "ZEROBUS_SERVER_ENDPOINT": running.endpoint,
            "ZEROBUS_HOST": catalog_server.url,
            "ZEROBUS_TABLE": CHAT,
            "DATABRICKS_CLIENT_ID": client_id,
            "DATABRICKS_CLIENT_SECRET": secret,
            "CHATLAKE_SPOOL_DIR": str(tmp_path / "spool"),
            "RUST_LOG": "warn",
        }
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--preload",
                "--workers",
                "2",
                "--bind",
                "127.0.0.1:0",
                "--chdir",
                str(tmp_path),
                "wsgi_telemetry:app",
            ],  # fmt: skip
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            base_url = listening_url(server)
            pids = set()
            # A worker's first answer waits for its own stream to open.
            with httpx.Client(base_url=base_url, timeout=90) as http:
                for i in range(40):
                    response = http.get("/", params={"id": f"w{i:03d}"})
                    assert response.status_code == 200
                    pids.add(int(response.text))
        finally:
            server.send_signal(signal.SIGTERM)
        assert server.wait(60) == 0
        server.stderr.close()
        settle(running)

    assert server.pid not in pids  # the requests were served by forked workers
    ids = [r["telemetry_id"] for r in read_rows(catalog_server, CHAT, "telemetry_id")]
    assert ids == ["from-master"] + [f"w{i:03d}" for i in range(40)]
    assert list((tmp_path / "spool").glob("spool-*.sqlite3")) == []


def listening_url(server: subprocess.Popen) -> str:
    """Reads gunicorn's log until it says where it listens, then drains the rest."""
    for line in server.stderr:
        match = re.search(r"Listening at: (http://127\.0\.0\.1:\d+)", line)
        if match:
            threading.Thread(target=_drain, args=(server.stderr,), daemon=True).start()
            return match.group(1)
    raise AssertionError(f"gunicorn exited before listening ({server.wait(10)})")


def _drain(stream) -> None:
    for _ in stream:
        pass
