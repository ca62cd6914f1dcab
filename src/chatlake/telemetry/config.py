"""Telemetry settings: keyword argument, then environment variable, then default.

A bad or missing setting never stops the app. ``TelemetryConfig.from_env``
collects every problem as one sentence naming the variable; the client logs
them once and keeps spooling events until the configuration is fixed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path

from chatlake import config as shared_config
from chatlake.errors import TableNameError
from chatlake.names import parse_table_name

ENV_ENDPOINT = "ZEROBUS_SERVER_ENDPOINT"
ENV_HOST = "ZEROBUS_HOST"
ENV_TABLE = "ZEROBUS_TABLE"
ENV_FEEDBACK_TABLE = "CHATLAKE_FEEDBACK_TABLE"
ENV_CLIENT_ID = "DATABRICKS_CLIENT_ID"
ENV_CLIENT_SECRET = "DATABRICKS_CLIENT_SECRET"
ENV_SPOOL_DIR = "CHATLAKE_SPOOL_DIR"
ENV_SPOOL_MAX_BYTES = "CHATLAKE_SPOOL_MAX_BYTES"
ENV_QUEUE_SIZE = "CHATLAKE_TELEMETRY_QUEUE_SIZE"
ENV_MESSAGE_MAX_BYTES = "CHATLAKE_MESSAGE_MAX_BYTES"
ENV_REDACTION = "CHATLAKE_REDACTION"
ENV_APP_NAME = "CHATLAKE_APP_NAME"

DEFAULT_SPOOL_MAX_BYTES = 256 * 1024 * 1024
DEFAULT_QUEUE_SIZE = 10_000
DEFAULT_MESSAGE_MAX_BYTES = 32 * 1024
DEFAULT_FEEDBACK_TABLE_NAME = "feedback"

_SWITCH_ON = {"1", "true", "yes", "on"}
_SWITCH_OFF = {"0", "false", "no", "off"}


@dataclass(frozen=True, kw_only=True)
class TelemetryConfig:
    """Everything the client needs; ``problems`` lists what is missing or wrong."""

    server_endpoint: str | None = None
    catalog_url: str | None = None
    chat_table: str | None = None
    feedback_table: str | None = None
    client_id: str | None = field(default=None, repr=False)
    client_secret: str | None = field(default=None, repr=False)
    spool_dir: Path = field(default_factory=lambda: default_spool_dir())
    spool_max_bytes: int = DEFAULT_SPOOL_MAX_BYTES
    queue_size: int = DEFAULT_QUEUE_SIZE
    message_max_bytes: int = DEFAULT_MESSAGE_MAX_BYTES
    redaction: bool = True
    extra_redaction_patterns: tuple[tuple[str, str], ...] = ()
    app_name: str | None = None
    batch_records: int = 200
    flush_interval_s: float = 0.2
    inflight_batches: int = 16
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    sdk_recovery_timeout_ms: int = 5_000
    sdk_recovery_retries: int = 2
    sdk_ack_timeout_ms: int = 30_000
    sdk_flush_timeout_ms: int = 10_000
    problems: tuple[str, ...] = ()

    @property
    def sendable(self) -> bool:
        """True when nothing is malformed and endpoint, catalog and credentials are set.

        A malformed value keeps events spooled until it is fixed, rather than
        sending with a default the operator did not choose."""
        needed = (self.server_endpoint, self.catalog_url, self.client_id)
        return not self.problems and all(needed) and self.client_secret is not None

    @classmethod
    def from_env(
        cls, environ: dict[str, str] | None = None, **overrides: object
    ) -> TelemetryConfig:
        """Builds a config from keyword overrides and then ``environ`` (os.environ)."""
        env = os.environ if environ is None else environ
        reader = _Reader(env, overrides)
        values = {
            "server_endpoint": reader.url("server_endpoint", ENV_ENDPOINT),
            "catalog_url": reader.url("catalog_url", ENV_HOST),
            "chat_table": reader.table("chat_table", ENV_TABLE, required=True),
            "client_id": reader.text("client_id", ENV_CLIENT_ID, True),
            "client_secret": reader.text("client_secret", ENV_CLIENT_SECRET, True),
            "spool_dir": reader.path("spool_dir", ENV_SPOOL_DIR),
            "spool_max_bytes": reader.integer("spool_max_bytes", ENV_SPOOL_MAX_BYTES),
            "queue_size": reader.integer("queue_size", ENV_QUEUE_SIZE),
            "message_max_bytes": reader.integer(
                "message_max_bytes", ENV_MESSAGE_MAX_BYTES
            ),
            "redaction": reader.switch("redaction", ENV_REDACTION),
            "app_name": reader.text("app_name", ENV_APP_NAME),
        }
        values["feedback_table"] = reader.table(
            "feedback_table", ENV_FEEDBACK_TABLE, required=False
        )
        if values["feedback_table"] is None and values["chat_table"]:
            values["feedback_table"] = sibling_table(
                values["chat_table"], DEFAULT_FEEDBACK_TABLE_NAME
            )
        values.update(reader.rest())
        chosen = {name: value for name, value in values.items() if value is not None}
        return cls(**chosen, problems=tuple(reader.problems))


def default_spool_dir() -> Path:
    """``<data dir>/telemetry-spool``: next to the rest of chatlake's local state."""
    return shared_config.data_dir() / "telemetry-spool"


def sibling_table(full_name: str, table: str) -> str:
    """``cat.sch.other`` -> ``cat.sch.<table>``."""
    catalog, schema, _ = full_name.split(".")
    return f"{catalog}.{schema}.{table}"


class _Reader:
    """Reads one setting at a time, noting a sentence for every problem."""

    def __init__(self, env, overrides: dict[str, object]) -> None:
        self.env = env
        self.overrides = dict(overrides)
        self.problems: list[str] = []
        known = {f.name for f in fields(TelemetryConfig)} - {"problems"}
        for name in self.overrides:
            if name not in known:
                raise TypeError(f"TelemetryConfig has no setting {name!r}")

    def raw(self, name: str, variable: str) -> tuple[object, str]:
        """The value and where it came from, for messages."""
        if name in self.overrides:
            return self.overrides.pop(name), f"argument {name}"
        return self.env.get(variable), f"${variable}"

    def text(self, name: str, variable: str, required: bool = False) -> str | None:
        value, where = self.raw(name, variable)
        if value is None or value == "":
            if required:
                self.problems.append(f"{where} is not set")
            return None
        return str(value)

    def url(self, name: str, variable: str) -> str | None:
        value, where = self.raw(name, variable)
        if value is None or value == "":
            self.problems.append(f"{where} is not set")
            return None
        text = str(value)
        if not text.startswith(("http://", "https://")) or len(text) < 9:
            self.problems.append(
                f"{where} must start with http:// or https://, got {text!r}"
            )
            return None
        return text.rstrip("/")

    def table(self, name: str, variable: str, required: bool) -> str | None:
        value, where = self.raw(name, variable)
        if value is None or value == "":
            if required:
                self.problems.append(f"{where} is not set")
            return None
        try:
            parse_table_name(str(value))
        except TableNameError as error:
            self.problems.append(f"{where}: {error}")
            return None
        return str(value)

    def path(self, name: str, variable: str) -> Path | None:
        value = self.text(name, variable)
        return None if value is None else Path(value).expanduser().resolve()

    def integer(self, name: str, variable: str) -> int | None:
        value, where = self.raw(name, variable)
        if value is None or value == "":
            return None
        number = _positive_integer(value)
        if number is None:
            self.problems.append(f"{where} must be a positive integer, got {value!r}")
        return number

    def switch(self, name: str, variable: str) -> bool | None:
        value, where = self.raw(name, variable)
        if value is None or value == "":
            return None
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _SWITCH_ON | _SWITCH_OFF:
            return text in _SWITCH_ON
        self.problems.append(f"{where} must be on or off, got {value!r}")
        return None

    def rest(self) -> dict[str, object]:
        """Keyword overrides that have no environment variable, taken as given."""
        return self.overrides


def _positive_integer(value: object) -> int | None:
    """``value`` as an int above zero, else None.

    A bool, a fraction, nan and infinity are refused rather than rounded or
    crashing ``int()``: a number that is no count is a malformed setting."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and not value.is_integer():
        return None
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if number > 0 else None
