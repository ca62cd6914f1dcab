"""Logging set-up for chatlake's commands. Library code only ever calls getLogger."""

from __future__ import annotations

import logging
import os

ENV_LOG_LEVEL = "CHATLAKE_LOG_LEVEL"


def configure(level: str | None = None) -> None:
    """One line per event on stderr: time, level, logger, message."""
    chosen = (level or os.environ.get(ENV_LOG_LEVEL) or "INFO").upper()
    logging.basicConfig(
        level=chosen,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
