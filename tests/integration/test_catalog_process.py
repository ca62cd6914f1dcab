"""``chatlake catalog`` as a process: a second one on the same data directory."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import httpx
import pytest

START_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def catalog(data_dir, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "chatlake",
        "catalog",
        "--data-dir",
        str(data_dir),
        "--port",
        str(port),
    ]


def wait_until_answering(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the first catalog exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)  # polling with a deadline
    pytest.fail("the first catalog did not answer")


def test_a_second_catalog_on_the_same_data_dir_is_refused(tmp_path):
    data_dir = tmp_path / "data"
    port = free_port()
    first = subprocess.Popen(
        catalog(data_dir, port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_until_answering(f"http://127.0.0.1:{port}", first)
        admin = (data_dir / "catalog" / "admin.json").read_bytes()

        second = subprocess.run(
            catalog(data_dir, free_port()),
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_S,
        )

        assert second.returncode == 1
        assert second.stderr == (
            f"Error: data dir {data_dir} is in use by another chatlake catalog "
            f"(pid {first.pid}); stop it, or pick another --data-dir\n"
        )
        assert (data_dir / "catalog" / "admin.json").read_bytes() == admin
    finally:
        first.terminate()
        first.wait(START_TIMEOUT_S)
