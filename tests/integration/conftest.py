"""Fixtures shared by the integration tests."""

from __future__ import annotations

import pytest

from tests.integration.test_alerts import Receiver


@pytest.fixture
def receiver():
    """A webhook receiver and /metrics page on loopback, for alert tests."""
    running = Receiver()
    yield running
    running.stop()
