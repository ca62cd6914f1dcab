"""``chatlake up`` as a user runs it: a real process group, signals, restarts."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from chatlake import up as up_module
from chatlake.catalog.bootstrap import read_env_file

pytestmark = pytest.mark.slow
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout_s: float, what: str, process=None):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if process is not None and process.poll() is not None:
            pytest.fail(f"chatlake up exited with {process.returncode} before {what}")
        time.sleep(0.05)  # polling with a deadline, not waiting for a fixed time
    pytest.fail(f"timed out waiting for {what}")


class Up:
    """One ``chatlake up`` child with every part on a free port."""

    def __init__(self, data_dir: Path, log: Path) -> None:
        self.ports = {name: free_port() for name in up_module.PORTS}
        flags = [
            arg
            for name, port in self.ports.items()
            for arg in (f"--{name}-port", str(port))
        ]
        self.log = log
        self.log_file = log.open("w")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "chatlake",
                "up",
                "--data-dir",
                str(data_dir),
                *flags,
            ],
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, "CHATLAKE_LOG_LEVEL": "INFO"},
        )

    @property
    def catalog_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['catalog']}"

    def wait_up(self) -> str:
        return wait_for(
            lambda: "Press Ctrl-C to stop." in self.output(),
            START_TIMEOUT_S,
            "the summary",
            self.process,
        )

    def output(self) -> str:
        return self.log.read_text()

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(STOP_TIMEOUT_S)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.log_file.close()


def child_pids(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(child) for child in text.split()]


def command_line(pid: int) -> str:
    raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    return " " + raw.replace(b"\0", b" ").decode() + " "


def catalog_answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def sdk_token(url: str, env: dict[str, str]) -> httpx.Response:
    table = env["ZEROBUS_TABLE"]
    details = [
        {
            "type": "unity_catalog_privileges",
            "object_type": "CATALOG",
            "object_full_path": "main",
            "privileges": ["USE CATALOG"],
        },
        {
            "type": "unity_catalog_privileges",
            "object_type": "SCHEMA",
            "object_full_path": "main.chatbot",
            "privileges": ["USE SCHEMA"],
        },
        {
            "type": "unity_catalog_privileges",
            "object_type": "TABLE",
            "object_full_path": table,
            "privileges": ["SELECT", "MODIFY"],
        },
    ]
    form = {
        "grant_type": "client_credentials",
        "scope": "all-apis",
        "authorization_details": json.dumps(details),
    }
    auth = (env["DATABRICKS_CLIENT_ID"], env["DATABRICKS_CLIENT_SECRET"])
    return httpx.post(f"{url}/oidc/v1/token", data=form, auth=auth)


def test_up_bootstraps_stops_cleanly_restarts_and_recovers_lost_app_env(tmp_path):
    data_dir = tmp_path / "data"
    first = Up(data_dir, tmp_path / "first.log")
    try:
        first.wait_up()
        env = read_env_file(data_dir / "app.env")
        assert env["ZEROBUS_HOST"] == first.catalog_url
        assert env["CHATLAKE_CATALOG_URL"] == first.catalog_url
        assert env["ZEROBUS_TABLE"] == "main.chatbot.chat_events"
        assert env["CHATLAKE_FEEDBACK_TABLE"] == "main.chatbot.feedback"
        assert (data_dir / "app.env").stat().st_mode & 0o777 == 0o600
        assert sdk_token(first.catalog_url, env).status_code == 200
        for table in ("chat_events", "feedback"):
            assert (data_dir / f"tables/main/chatbot/{table}/_delta_log").is_dir()
        assert f"catalog    {first.catalog_url}" in first.output()

        assert first.stop() == 0
        assert not catalog_answers(first.catalog_url)
        assert "stopped catalog" in first.output()
    finally:
        first.kill()

    second = Up(data_dir, tmp_path / "second.log")
    try:
        second.wait_up()
        again = read_env_file(data_dir / "app.env")
        # The principal is kept; only the catalog's address follows the new port.
        assert again["DATABRICKS_CLIENT_ID"] == env["DATABRICKS_CLIENT_ID"]
        assert again["DATABRICKS_CLIENT_SECRET"] == env["DATABRICKS_CLIENT_SECRET"]
        assert again["ZEROBUS_HOST"] == second.catalog_url
        assert sdk_token(second.catalog_url, again).status_code == 200
        assert second.stop() == 0
    finally:
        second.kill()

    # Losing app.env means losing the secret: the app principal is made anew.
    (data_dir / "app.env").unlink()
    third = Up(data_dir, tmp_path / "third.log")
    try:
        third.wait_up()
        new = read_env_file(data_dir / "app.env")
        assert new["DATABRICKS_CLIENT_ID"] != env["DATABRICKS_CLIENT_ID"]
        assert sdk_token(third.catalog_url, new).status_code == 200
        assert sdk_token(third.catalog_url, env).status_code == 401

        # When one part dies, up stops the others and exits non-zero.
        children = child_pids(third.process.pid)
        catalog_pid = next(p for p in children if " catalog " in command_line(p))
        os.kill(catalog_pid, signal.SIGKILL)
        assert third.process.wait(STOP_TIMEOUT_S) == 1
        assert "catalog exited with code -9; stopping the rest" in third.output()
        assert [pid for pid in children if Path(f"/proc/{pid}").exists()] == []
    finally:
        third.kill()


def test_up_fails_clearly_when_the_catalog_port_is_taken(tmp_path):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "chatlake",
                "up",
                "--data-dir",
                str(tmp_path / "d"),
                "--catalog-port",
                str(port),
            ],
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_S,
        )

    assert result.returncode == 1
    assert f"Error: cannot listen on 127.0.0.1:{port}: Address already in use" in (
        result.stderr
    )
    assert "Error: catalog exited with code 1 during start-up" in result.stderr
