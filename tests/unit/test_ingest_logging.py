"""The ingest server's log set-up: no httpx line per catalog look-up."""

from __future__ import annotations

import logging

from chatlake.ingest.commands import configure_logging


def test_httpx_logs_only_warnings_in_the_ingest_server():
    httpx_logger = logging.getLogger("httpx")
    before = httpx_logger.level
    try:
        httpx_logger.setLevel(logging.NOTSET)
        configure_logging("INFO")

        # Every open stream looks its table up every few seconds.
        assert httpx_logger.getEffectiveLevel() == logging.WARNING
        assert not httpx_logger.isEnabledFor(logging.INFO)
        assert httpx_logger.isEnabledFor(logging.WARNING)
    finally:
        httpx_logger.setLevel(before)
