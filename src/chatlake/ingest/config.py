"""Settings of the ingest server: one frozen, validated object built by the CLI."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from chatlake import config
from chatlake.errors import ConfigError

DEFAULT_MAX_STREAM_AGE_S = 3600.0
DEFAULT_ROTATION_GRACE_S = 5.0
# The SDK sends up to 10,420,224 bytes per message; leave room for framing.
DEFAULT_MAX_RECEIVE_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_PENDING_MESSAGES = 4096
DEFAULT_TABLE_CACHE_TTL_S = 30.0
# How often an open stream asks whether its table was dropped or recreated.
DEFAULT_TABLE_CHECK_INTERVAL_S = 5.0
MIN_RECEIVE_BYTES = 16 * 1024 * 1024
# Finite maximums: infinity or a huge value would overflow the stream's timer.
MAX_STREAM_AGE_S = 7 * 86400.0
MAX_ROTATION_GRACE_S = 3600.0


@dataclass(frozen=True, kw_only=True)
class IngestSettings:
    """Where the server listens and how it treats streams."""

    data_dir: Path
    catalog_url: str
    host: str = config.DEFAULT_HOST
    port: int = config.DEFAULT_INGEST_PORT
    metrics_host: str = config.DEFAULT_HOST
    metrics_port: int | None = config.DEFAULT_METRICS_PORT
    tls: bool = False
    max_stream_age_s: float = DEFAULT_MAX_STREAM_AGE_S
    rotation_grace_s: float = DEFAULT_ROTATION_GRACE_S
    max_receive_bytes: int = DEFAULT_MAX_RECEIVE_BYTES
    max_pending_messages: int = DEFAULT_MAX_PENDING_MESSAGES
    table_cache_ttl_s: float = DEFAULT_TABLE_CACHE_TTL_S
    table_check_interval_s: float = DEFAULT_TABLE_CHECK_INTERVAL_S
    stream_events: bool = True

    def __post_init__(self) -> None:
        _check_port("port", self.port)
        if self.metrics_port is not None:
            _check_port("metrics_port", self.metrics_port)
        _check_number("max_stream_age_s", self.max_stream_age_s, MAX_STREAM_AGE_S)
        _check_number("rotation_grace_s", self.rotation_grace_s, MAX_ROTATION_GRACE_S)
        if self.max_receive_bytes < MIN_RECEIVE_BYTES:
            raise ConfigError(
                f"max_receive_bytes must be at least {MIN_RECEIVE_BYTES} (16 MiB): "
                f"the SDK sends messages of up to 10,420,224 bytes"
            )
        if self.table_check_interval_s <= 0:
            raise ConfigError("table_check_interval_s must be positive")
        if self.max_pending_messages < 1:
            raise ConfigError("max_pending_messages must be at least 1")
        if not self.tls and not config.is_loopback(self.host):
            raise ConfigError(
                f"refusing to serve plaintext on {self.host}: any bind other than "
                f"loopback needs --tls"
            )

    @property
    def tls_dir(self) -> Path:
        return self.data_dir / "tls"

    @property
    def token_public_key(self) -> Path:
        return self.data_dir / "catalog" / "token_public.pem"


def _check_port(name: str, port: int) -> None:
    if not 0 <= port <= 65535:
        raise ConfigError(f"{name} must be between 0 and 65535, not {port}")


def _check_number(name: str, value: float, maximum: float) -> None:
    above_zero = name == "max_stream_age_s"
    problem = config.number_problem(value, maximum=maximum, above_minimum=above_zero)
    if problem:
        raise ConfigError(f"{name} {problem}, got {value!r}")
