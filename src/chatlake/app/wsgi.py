"""Runs the Dash app under gunicorn, configured in code rather than a config file."""

from __future__ import annotations

import logging
import signal
import sys

from gunicorn.app.base import BaseApplication

logger = logging.getLogger(__name__)


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
            "post_worker_init": _install_quit_handler,
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


def _install_quit_handler(worker) -> None:
    """Replaces the worker's SIGINT/SIGQUIT handler with one that takes no lock.

    Ctrl-C sends SIGINT to the worker and the master, and the master then sends
    SIGQUIT. gunicorn's own handler shuts its thread pool down, taking a lock; a
    second signal arriving inside it runs the handler again on the same thread,
    which waits for that lock forever, until the master's SIGKILL: the exit hook
    never runs and running turns vanish.
    """

    def quit_now(signum, frame) -> None:
        worker.alive = False
        _ignore_stop_signals()
        sys.exit(0)  # unwinds to gunicorn, which then runs the exit hook

    for stop_signal in (signal.SIGINT, signal.SIGQUIT):
        signal.signal(stop_signal, quit_now)


def _ignore_stop_signals() -> None:
    """While the worker drains, further stop signals are ignored.

    The master's SIGKILL after graceful_timeout still bounds the drain. A no-op
    handler, not SIG_IGN: a signal already caught but not yet handled would
    then raise OSError ("ignored due to race condition") inside the drain.
    """
    for stop_signal in (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM):
        signal.signal(stop_signal, _ignore)


def _ignore(signum, frame) -> None:
    logger.debug("signal %d ignored while the worker drains", signum)


def _close_worker_parts(server, worker) -> None:
    _ignore_stop_signals()
    for parts in _WORKER_PARTS:
        logger.info("worker %d stopping: settling turns, then telemetry", worker.pid)
        interrupted = parts.service.shutdown(TURN_GRACE_S)
        if interrupted:
            logger.warning("%d running turns ended as interrupted", interrupted)
        parts.service.telemetry.close(TELEMETRY_CLOSE_S)
        logger.info("worker %d stopped", worker.pid)
