"""Runs the Dash app under gunicorn, configured in code rather than a config file."""

from __future__ import annotations

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
        }
        self._data_dir = data_dir
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self):
        from chatlake.app.server import build_parts, create_app

        return create_app(build_parts(self._data_dir)).server
