"""Settings shared by every chatlake component: one place for defaults and env names.

Each value is resolved as: explicit argument, then environment variable, then the
documented default below. Component-specific settings live in frozen dataclasses in
the component's own ``config`` module and use the helpers here.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_DATA_DIR = ".chatlake"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_CATALOG_PORT = 8080
DEFAULT_INGEST_PORT = 50051
DEFAULT_METRICS_PORT = 9464
DEFAULT_APP_PORT = 8050
DEFAULT_MODEL_PORT = 8070

DEFAULT_CATALOG = "main"
DEFAULT_SCHEMA = "chatbot"
DEFAULT_PRINCIPAL = "app"

ENV_DATA_DIR = "CHATLAKE_DATA_DIR"
ENV_CATALOG_URL = "CHATLAKE_CATALOG_URL"


def data_dir(value: str | os.PathLike[str] | None = None) -> Path:
    """The data directory: argument, else ``$CHATLAKE_DATA_DIR``, else ``.chatlake``."""
    chosen = value or os.environ.get(ENV_DATA_DIR) or DEFAULT_DATA_DIR
    return Path(chosen).expanduser().resolve()


def catalog_url(value: str | None = None) -> str:
    """The catalog's URL: argument, else ``$CHATLAKE_CATALOG_URL``, else local."""
    chosen = value or os.environ.get(ENV_CATALOG_URL)
    if not chosen:
        chosen = f"http://{DEFAULT_HOST}:{DEFAULT_CATALOG_PORT}"
    return chosen.rstrip("/")


def is_loopback(host: str) -> bool:
    """True for addresses that only this machine can reach."""
    return host in {"localhost", "::1", "[::1]"} or host.startswith("127.")
