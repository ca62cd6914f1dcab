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
from chatlake.catalog.client import CatalogClient
from tests.integration.process_support import alive, child_pids

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
            # Its own process group, like a shell job, for a terminal's Ctrl-C.
            start_new_session=True,
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

    def interrupt(self) -> int:
        """Ctrl-C as a terminal sends it: SIGINT to the whole foreground group."""
        os.killpg(self.process.pid, signal.SIGINT)
        return self.process.wait(STOP_TIMEOUT_S)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.log_file.close()


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
        managed = data_dir / "tables/main/chatbot"
        for table in ("chat_events", "feedback"):
            assert len(list(managed.glob(f"{table}-*/_delta_log"))) == 1
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
        with CatalogClient.local_admin(second.catalog_url, data_dir) as admin:
            admin.grant("CREATE SCHEMA", "catalog", "main", "app")
        assert second.interrupt() == 0
        assert "Aborted!" not in second.output()
        assert "stopped catalog" in second.output()
    finally:
        second.kill()

    # Losing app.env means losing the secret: the app principal gets a new one
    # and keeps its client id and every grant.
    (data_dir / "app.env").unlink()
    third = Up(data_dir, tmp_path / "third.log")
    try:
        third.wait_up()
        new = read_env_file(data_dir / "app.env")
        assert new["DATABRICKS_CLIENT_ID"] == env["DATABRICKS_CLIENT_ID"]
        assert new["DATABRICKS_CLIENT_SECRET"] != env["DATABRICKS_CLIENT_SECRET"]
        assert sdk_token(third.catalog_url, new).status_code == 200
        assert sdk_token(third.catalog_url, env).status_code == 401
        with CatalogClient.local_admin(third.catalog_url, data_dir) as admin:
            kept = admin.permissions("catalog", "main")["privilege_assignments"]
        assert kept == [
            {"principal": "app", "privileges": ["CREATE SCHEMA", "USE CATALOG"]}
        ]

        # When one part dies, up stops the others and exits non-zero.
        children = child_pids(third.process.pid)
        catalog_pid = next(p for p in children if " catalog " in command_line(p))
        os.kill(catalog_pid, signal.SIGKILL)
        assert third.process.wait(STOP_TIMEOUT_S) == 1
        assert "catalog exited with code -9; stopping the rest" in third.output()
        assert [pid for pid in children if Path(f"/proc/{pid}").exists()] == []
    finally:
        third.kill()


def run_up(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "chatlake", "up", *args],
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_S,
    )


def test_up_fails_clearly_when_the_catalog_port_is_taken(tmp_path):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        result = run_up("--data-dir", str(tmp_path / "d"), "--catalog-port", str(port))

    assert result.returncode == 1
    assert result.stderr == (
        f"Error: port {port} is in use; is chatlake already running? Stop it, "
        f"or pick another --catalog-port\n"
    )
    assert not (tmp_path / "d").exists()


def test_up_refuses_one_port_for_two_parts(tmp_path):
    port = str(free_port())
    result = run_up(
        "--data-dir", str(tmp_path / "d"), "--catalog-port", port, "--ingest-port", port
    )

    assert result.returncode == 1
    assert result.stderr == (
        f"Error: --catalog-port and --ingest-port are both {port}; "
        f"give each part its own port\n"
    )
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize(
    "data_dir, reason",
    [("/proc/nope", "No such file or directory"), ("/dev/null/x", "Not a directory")],
)
def test_up_names_a_data_dir_it_cannot_create(data_dir, reason):
    flags = [
        a for name in up_module.PORTS for a in (f"--{name}-port", str(free_port()))
    ]
    result = run_up("--data-dir", data_dir, *flags)

    assert result.returncode == 1
    assert result.stderr == f"Error: cannot create data dir {data_dir}: {reason}\n"


def test_ctrl_c_while_starting_stops_cleanly(tmp_path):
    starting = Up(tmp_path / "data", tmp_path / "up.log")
    try:
        wait_for(
            lambda: "starting catalog" in starting.output(),
            START_TIMEOUT_S,
            "the catalog to start",
            starting.process,
        )
        children = child_pids(starting.process.pid)

        assert starting.interrupt() == 0
        assert "Aborted!" not in starting.output()
        assert "Error" not in starting.output()
        assert [pid for pid in children if alive(pid)] == []
    finally:
        starting.kill()


def test_a_second_up_is_refused_and_children_die_with_up(tmp_path):
    data_dir = tmp_path / "data"
    first = Up(data_dir, tmp_path / "first.log")
    try:
        first.wait_up()
        app_env = (data_dir / "app.env").read_bytes()
        flags = [a for n, p in first.ports.items() for a in (f"--{n}-port", str(p))]

        second = run_up("--data-dir", str(data_dir), *flags)

        assert second.returncode == 1
        assert "is in use; is chatlake already running?" in second.stderr
        assert len(second.stderr.splitlines()) == 1
        assert (data_dir / "app.env").read_bytes() == app_env

        # On free ports of its own it stops at the data dir's lock instead,
        # before starting a catalog on the same SQLite file or writing app.env.
        other = {name: free_port() for name in up_module.PORTS}
        flags = [a for n, p in other.items() for a in (f"--{n}-port", str(p))]
        third = run_up("--data-dir", str(data_dir), *flags)

        assert third.returncode == 1
        assert third.stderr == (
            f"Error: data dir {data_dir} is in use by another chatlake up "
            f"(pid {first.process.pid}); stop it, or pick another --data-dir\n"
        )
        assert (data_dir / "app.env").read_bytes() == app_env
        assert not catalog_answers(f"http://127.0.0.1:{other['catalog']}")
        assert catalog_answers(first.catalog_url)

        children = child_pids(first.process.pid)
        assert len(children) >= 3  # catalog, ingest, app (and the demo model)
        first.process.kill()  # no chance to stop its children itself
        first.process.wait()
        wait_for(
            lambda: not [pid for pid in children if alive(pid)],
            STOP_TIMEOUT_S,
            "the children to die with chatlake up",
        )
        assert not catalog_answers(first.catalog_url)
    finally:
        first.kill()
