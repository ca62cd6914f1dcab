"""Runs the Dash app under gunicorn, configured in code rather than a config file."""

from __future__ import annotations

import signal

from gunicorn.app.base import BaseApplication


class GunicornServer(BaseApplication):
    """A gunicorn master whose workers each build the app after forking."""

    def __init__(self, bind: str, workers: int, threads: int, data_dir: str) -> None:
        self._options = {
            "bind": bind,
            "workers": workers,
            "threads": threads,
            "worker_class": "gthread",
            # Streaming answers are polled, so requests are short; a long turn
            # never holds a request open.
            "timeout": 60,
            "graceful_timeout": 10,
            "accesslog": None,
            "preload_app": False,
            # One shared control socket in $HOME would make two apps collide.
            "control_socket_disable": True,
            "worker_exit": _close_worker_parts,
        }
        self._data_dir = data_dir
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self):
        from chatlake.app.server import build_parts, create_app

        parts = build_parts(self._data_dir, handle_sigterm=False)
        _WORKER_PARTS.append(parts)
        return create_app(parts).server


# The parts this worker process built, so its exit hook can drain telemetry.
_WORKER_PARTS: list = []

# gunicorn kills a worker graceful_timeout (10 s) after asking it to stop, and
# `chatlake up` waits as long: running turns get a few seconds to finish, the
# rest end as interrupted (each tracked), then telemetry gets the remainder.
TURN_GRACE_S = 3.0
TELEMETRY_CLOSE_S = 4.0


def _close_worker_parts(server, worker) -> None:
    # Ctrl-C reaches the worker and the master, and the master then sends
    # SIGQUIT: each would end this drain half-way. The master's SIGKILL after
    # graceful_timeout still bounds it.
    for stop_signal in (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM):
        signal.signal(stop_signal, signal.SIG_IGN)
    for parts in _WORKER_PARTS:
        interrupted = parts.service.shutdown(TURN_GRACE_S)
        if interrupted:
            server.log.warning("%d running turns ended as interrupted", interrupted)
        parts.service.telemetry.close(TELEMETRY_CLOSE_S)
