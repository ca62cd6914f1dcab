"""The official Zerobus SDK behind the sender's small ``StreamFactory`` interface."""

from __future__ import annotations

import logging
from collections.abc import Callable

from chatlake.telemetry.config import TelemetryConfig
from chatlake.telemetry.sender import SendError
from chatlake.telemetry.spool import StreamFormat

log = logging.getLogger(__name__)


class SdkStreamFactory:
    """Opens one SDK stream per call; the SDK object is made on first use."""

    def __init__(self, config: TelemetryConfig) -> None:
        self.config = config
        self._sdk = None

    def open(
        self,
        table: str,
        fmt: StreamFormat,
        on_ack: Callable[[int], None],
        on_error: Callable[[int, str], None],
    ) -> SdkStream:
        import zerobus

        properties = zerobus.TableProperties(table, fmt.descriptor)
        options = zerobus.StreamConfigurationOptions(
            recovery_timeout_ms=self.config.sdk_recovery_timeout_ms,
            recovery_retries=self.config.sdk_recovery_retries,
            server_lack_of_ack_timeout_ms=self.config.sdk_ack_timeout_ms,
            flush_timeout_ms=self.config.sdk_flush_timeout_ms,
            ack_callback=_callback_class()(on_ack, on_error),
        )
        try:
            stream = self._get_sdk().create_stream(
                self.config.client_id, self.config.client_secret, properties, options
            )
        except zerobus.ZerobusException as error:
            raise _translate(error) from error
        return SdkStream(stream, text=fmt.format == "json")

    def abandon(self) -> object:
        """Forgets the SDK (after fork its runtime is unusable); returns it."""
        sdk, self._sdk = self._sdk, None
        return sdk

    def _get_sdk(self):
        if self._sdk is None:
            import zerobus

            self._sdk = zerobus.ZerobusSdk(
                self.config.server_endpoint,
                self.config.catalog_url,
                application_name=self.config.app_name or "chatlake-telemetry",
            )
        return self._sdk


class SdkStream:
    def __init__(self, stream, text: bool) -> None:
        self._stream = stream
        # A JSON stream takes str records; bytes would be JSON-encoded again.
        self._text = text

    def send(self, payloads: list[bytes]) -> int:
        import zerobus

        if self._text:
            payloads = [payload.decode("utf-8") for payload in payloads]
        try:
            return self._stream.ingest_records_offset(payloads)
        except zerobus.ZerobusException as error:
            raise _translate(error) from error

    def close(self) -> None:
        import zerobus

        try:
            self._stream.close()
        except zerobus.ZerobusException as error:
            raise _translate(error) from error


def _translate(error: Exception) -> SendError:
    import zerobus

    terminal = isinstance(error, zerobus.NonRetriableException)
    return SendError(str(error), terminal=terminal)


_CALLBACK_CLASS = None


def _callback_class():
    """AckCallback subclass, built on first use so importing stays cheap."""
    global _CALLBACK_CLASS
    if _CALLBACK_CLASS is None:
        import zerobus

        class _Callback(zerobus.AckCallback):
            def __init__(self, on_ack, on_error) -> None:
                super().__init__()
                self._ack = on_ack
                self._error = on_error

            def on_ack(self, offset: int) -> None:
                self._ack(offset)

            def on_error(self, offset: int, error_message: str) -> None:
                self._error(offset, error_message)

        _CALLBACK_CLASS = _Callback
    return _CALLBACK_CLASS
