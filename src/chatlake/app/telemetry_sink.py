"""The app's side of telemetry: builds ChatTurn and Feedback events and tracks them.

Telemetry must never delay or break a turn, so every call here swallows and
logs failures, and a missing or unconfigured telemetry package leaves the app
working with the status "not configured".
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

NOT_CONFIGURED = "not configured"


@dataclass(frozen=True)
class SinkStatus:
    state: str  # "delivering", "spooling" or "not configured"
    pending: int

    def describe(self) -> str:
        if self.state == "spooling":
            noun = "event" if self.pending == 1 else "events"
            return f"telemetry: spooling {self.pending} {noun}"
        return f"telemetry: {self.state}"


def now_us() -> int:
    return time.time_ns() // 1000


class TelemetrySink:
    """Wraps a TelemetryClient, or nothing when telemetry is not configured."""

    def __init__(self, client: Any = None) -> None:
        self._client = client
        self._warned = False

    @classmethod
    def from_env(cls, handle_sigterm: bool = True) -> TelemetrySink:
        """A sink from the ZEROBUS_* / DATABRICKS_* settings of the environment.

        Under gunicorn, pass ``handle_sigterm=False``: the worker's own exit hook
        closes the sink instead.
        """
        try:
            from chatlake.telemetry import TelemetryClient, TelemetryConfig

            config = TelemetryConfig.from_env()
            client = TelemetryClient(config, handle_sigterm=handle_sigterm)
        except Exception as error:  # noqa: BLE001 - the app must start regardless
            logger.warning("telemetry disabled: %s", error)
            return cls(None)
        return cls(client)

    def track_turn(self, **fields: Any) -> None:
        self._track("ChatTurn", fields)

    def track_feedback(self, **fields: Any) -> None:
        self._track("Feedback", fields)

    def _track(self, kind: str, fields: dict[str, Any]) -> None:
        if self._client is None:
            return
        try:
            import chatlake.telemetry as telemetry

            event = getattr(telemetry, kind)(
                **{k: v for k, v in fields.items() if v is not None}
            )
            self._client.track(event)
        except Exception as error:  # noqa: BLE001 - a turn never fails for telemetry
            if not self._warned:
                logger.warning("telemetry could not track a %s: %s", kind, error)
                self._warned = True

    def status(self) -> SinkStatus:
        if self._client is None:
            return SinkStatus(NOT_CONFIGURED, 0)
        try:
            status = self._client.status()
            return SinkStatus(status.state, int(status.pending))
        except Exception as error:  # noqa: BLE001
            logger.warning("telemetry status unavailable: %s", error)
            return SinkStatus(NOT_CONFIGURED, 0)

    def flush(self, timeout_s: float) -> None:
        if self._client is not None:
            try:
                self._client.flush(timeout_s)
            except Exception as error:  # noqa: BLE001
                logger.warning("telemetry flush failed: %s", error)

    def close(self, timeout_s: float = 5.0) -> None:
        if self._client is not None:
            try:
                self._client.close(timeout_s)
            except Exception as error:  # noqa: BLE001
                logger.warning("telemetry close failed: %s", error)
