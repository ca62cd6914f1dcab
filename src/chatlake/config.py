"""Settings shared by every chatlake component: one place for defaults and env names.

Each value is resolved as: explicit argument, then environment variable, then the
documented default below. Component-specific settings live in frozen dataclasses in
the component's own ``config`` module and use the helpers here.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from chatlake.errors import ConfigError

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


def number_problem(
    value: float,
    *,
    maximum: float,
    minimum: float = 0.0,
    above_minimum: bool = False,
) -> str | None:
    """Why ``value`` cannot be used as a setting, or None when it can.

    A range check alone lets nan through (it compares false with every bound),
    and infinity or a huge number overflows the timers and dates it ends up in,
    so every number setting has a finite maximum.
    """
    if not math.isfinite(value):
        return "must be a finite number"
    if above_minimum and value <= minimum:
        return f"must be greater than {minimum:g}"
    if value < minimum:
        return f"must be at least {minimum:g}"
    if value > maximum:
        return f"must be at most {maximum:g}"
    return None


def number_setting(
    name: str,
    raw: str,
    *,
    maximum: float,
    minimum: float = 0.0,
    above_minimum: bool = False,
) -> float:
    """The text ``raw`` of setting ``name`` as a usable number, else ConfigError."""
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    problem = number_problem(
        value, maximum=maximum, minimum=minimum, above_minimum=above_minimum
    )
    if problem:
        raise ConfigError(f"{name}={raw!r} {problem}")
    return value
