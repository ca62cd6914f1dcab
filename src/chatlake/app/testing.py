"""Helpers for the app's tests and benchmark: servers on loopback, child processes.

Kept in the package so the tests, the browser tests and benchmarks/ share one
copy. Nothing here is used by the app itself.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import uvicorn

from chatlake.child_processes import die_with_parent

LOOPBACK = "127.0.0.1"

# Debian's chromium, headless, with every call home switched off: this machine
# reaches nothing but loopback, and a refused lookup per start slows each test.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    """A port that was free a moment ago, for children that need one up front."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def wait_until(predicate, timeout_s: float, interval_s: float = 0.05, what: str = "it"):
    """Polls ``predicate`` until it returns something truthy, or raises TimeoutError."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(interval_s)


class ServerThread:
    """An ASGI app under uvicorn on 127.0.0.1 with a port chosen by the kernel."""

    def __init__(self, app) -> None:
        config = uvicorn.Config(app, host=LOOPBACK, port=0, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def __enter__(self) -> ServerThread:
        self._thread.start()
        wait_until(lambda: self._server.started, 20, what="uvicorn to start")
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc) -> None:
        # force_exit: a deliberately hung request must not hold up the test.
        self._server.should_exit = True
        self._server.force_exit = True
        self._thread.join(10)


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code < 500
    except httpx.HTTPError:
        return False


class ChildProcess:
    """A `python -m chatlake ...` child with its output in a log file."""

    def __init__(
        self, args: list[str], log_path: Path, env: dict | None = None
    ) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "chatlake", *args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
            # A killed test run or benchmark must not leave its servers behind.
            preexec_fn=die_with_parent(),
        )

    def wait_http(self, url: str, timeout_s: float = 60) -> None:
        def ready() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"process exited early; log:\n{self.log()}")
            return _http_ok(url)

        wait_until(ready, timeout_s, interval_s=0.1, what=url)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self, timeout_s: float = 20) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        self._log.close()
        return self.process.returncode


def scripted_model(inner, hang_s: float = 30.0, slow_chunk_s: float = 0.1):
    """Wraps the demo model's ASGI app to misbehave on cue, for error-path tests.

    A last user message containing ``[fail]`` gets HTTP 500, ``[fail-once]`` gets
    500 the first time that exact text is seen, ``[hang]`` waits ``hang_s``
    before answering, ``[slow]`` waits ``slow_chunk_s`` before every streamed
    chunk. Everything else reaches the demo model unchanged.
    """
    import asyncio
    import json

    from fastapi.responses import JSONResponse

    seen: set[str] = set()

    async def app(scope, receive, send):
        if scope["type"] != "http" or not scope["path"].endswith("/chat/completions"):
            return await inner(scope, receive, send)
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        question = _last_question(json.loads(body or b"{}"))
        failing = "[fail]" in question
        if "[fail-once]" in question and question not in seen:
            seen.add(question)
            failing = True
        if failing:
            error = {"error": {"message": "scripted failure", "type": "server_error"}}
            return await JSONResponse(error, status_code=500)(scope, receive, send)
        if "[hang]" in question:
            await asyncio.sleep(hang_s)
        if "[slow]" in question:
            send = _slowed(send, slow_chunk_s)

        replayed = False

        async def replay():
            # The body once, then the real channel (which reports the disconnect).
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        return await inner(scope, replay, send)

    return app


def _slowed(send, delay_s: float):
    import asyncio

    async def slow_send(message):
        if message["type"] == "http.response.body" and message.get("body"):
            await asyncio.sleep(delay_s)
        await send(message)

    return slow_send


def _last_question(body: dict) -> str:
    users = [m for m in body.get("messages", []) if m.get("role") == "user"]
    return str(users[-1].get("content", "")) if users else ""


class Stack:
    """`chatlake up` in a child process: every part on free loopback ports."""

    PARTS = ("catalog", "ingest", "metrics", "model", "app")

    def __init__(self, data_dir: Path, log_path: Path, env: dict | None = None) -> None:
        self.data_dir = data_dir
        self.ports = {part: free_port() for part in self.PARTS}
        flags = [f"--{part}-port={port}" for part, port in self.ports.items()]
        self.process = ChildProcess(
            ["up", "--data-dir", str(data_dir), *flags], log_path, env
        )

    def url(self, part: str) -> str:
        return f"http://{LOOPBACK}:{self.ports[part]}"

    def __enter__(self) -> Stack:
        try:
            self.process.wait_http(self.url("app") + "/", timeout_s=180)
        except BaseException:
            self.process.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        code = self.process.stop(timeout_s=60)
        if code != 0 and exc[0] is None:
            raise AssertionError(
                f"chatlake up exited with {code}:\n{self.process.log()}"
            )

    def app_env(self) -> dict[str, str]:
        lines = (self.data_dir / "app.env").read_text().splitlines()
        pairs = [line.split("=", 1) for line in lines if "=" in line]
        return {key: value for key, value in pairs}


@contextlib.contextmanager
def app_over_scripted_model(
    data_dir: Path,
    log_path: Path,
    *,
    token_delay_ms: int = 1,
    first_token_delay_ms: int = 1,
    slow_chunk_s: float = 0.1,
    env: dict | None = None,
    args: tuple[str, ...] = (),
) -> Iterator[tuple[str, ChildProcess]]:
    """`chatlake app` (a child) answered by the scripted demo model (a thread).

    Yields the app's URL and process once it answers; stopping the app is the
    caller's, as tests stop it in the way they test (SIGTERM, Ctrl-C).
    """
    from chatlake.app.demo_model import DemoModelSettings, create_demo_app
    from chatlake.app.retrieval import PRIMER_PATH

    settings = DemoModelSettings(
        token_delay_ms=token_delay_ms,
        first_token_delay_ms=first_token_delay_ms,
        documents=(PRIMER_PATH,),
    )
    model_app = scripted_model(create_demo_app(settings), slow_chunk_s=slow_chunk_s)
    port = free_port()
    with ServerThread(model_app) as model:
        app_env = {
            "OPENAI_BASE_URL": f"{model.url}/v1",
            "CHATLAKE_MODEL": "chatlake-demo",
            "ZEROBUS_SERVER_ENDPOINT": "",
            **(env or {}),
        }
        command = ["app", "--port", str(port), "--data-dir", str(data_dir), *args]
        app = ChildProcess(command, log_path, app_env)
        url = f"http://{LOOPBACK}:{port}"
        try:
            app.wait_http(f"{url}/")
        except BaseException:
            app.stop()
            raise
        yield url, app
