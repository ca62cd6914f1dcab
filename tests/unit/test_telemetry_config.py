"""Configuration: environment names from the guides, problems named once, no crash."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from chatlake.telemetry import TelemetryClient, TelemetryConfig
from chatlake.telemetry.client import _REPORTED_PROBLEMS, TelemetryStatus

GOOD_ENV = {
    "ZEROBUS_SERVER_ENDPOINT": "http://127.0.0.1:50051",
    "ZEROBUS_HOST": "http://127.0.0.1:8080/",
    "ZEROBUS_TABLE": "main.chatbot.chat_events",
    "DATABRICKS_CLIENT_ID": "app",
    "DATABRICKS_CLIENT_SECRET": "s3cret",
    "CHATLAKE_SPOOL_DIR": "/tmp/chatlake-spool-test",
}


def test_reads_every_variable():
    config = TelemetryConfig.from_env(
        GOOD_ENV
        | {
            "CHATLAKE_FEEDBACK_TABLE": "main.other.ratings",
            "CHATLAKE_SPOOL_MAX_BYTES": "1000",
            "CHATLAKE_TELEMETRY_QUEUE_SIZE": "50",
            "CHATLAKE_MESSAGE_MAX_BYTES": "300",
            "CHATLAKE_REDACTION": "off",
            "CHATLAKE_APP_NAME": "bot/1.0",
        }
    )
    assert config.problems == ()
    assert config.sendable
    assert config.server_endpoint == "http://127.0.0.1:50051"
    assert config.catalog_url == "http://127.0.0.1:8080"
    assert config.chat_table == "main.chatbot.chat_events"
    assert config.feedback_table == "main.other.ratings"
    assert (config.client_id, config.client_secret) == ("app", "s3cret")
    assert config.spool_dir == Path("/tmp/chatlake-spool-test")
    assert (config.spool_max_bytes, config.queue_size) == (1000, 50)
    assert config.message_max_bytes == 300
    assert config.redaction is False
    assert config.app_name == "bot/1.0"


def test_feedback_table_defaults_to_a_sibling_of_the_chat_table():
    config = TelemetryConfig.from_env(GOOD_ENV)
    assert config.feedback_table == "main.chatbot.feedback"


def test_arguments_win_over_the_environment():
    config = TelemetryConfig.from_env(
        GOOD_ENV, chat_table="a.b.c", queue_size=7, batch_records=3
    )
    assert (config.chat_table, config.queue_size, config.batch_records) == (
        "a.b.c",
        7,
        3,
    )


def test_secret_is_not_in_the_repr():
    assert "s3cret" not in repr(TelemetryConfig.from_env(GOOD_ENV))


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        (
            "ZEROBUS_SERVER_ENDPOINT",
            "127.0.0.1:50051",
            "$ZEROBUS_SERVER_ENDPOINT must start with http:// or https://, "
            "got '127.0.0.1:50051'",
        ),
        (
            "ZEROBUS_HOST",
            "localhost:8080",
            "$ZEROBUS_HOST must start with http:// or https://, got 'localhost:8080'",
        ),
        ("ZEROBUS_SERVER_ENDPOINT", "", "$ZEROBUS_SERVER_ENDPOINT is not set"),
        ("DATABRICKS_CLIENT_SECRET", "", "$DATABRICKS_CLIENT_SECRET is not set"),
        (
            "ZEROBUS_TABLE",
            "chatbot.chat_events",
            "$ZEROBUS_TABLE: invalid table name 'chatbot.chat_events': expected "
            "catalog.schema.table (three parts), got 2",
        ),
        (
            "CHATLAKE_SPOOL_MAX_BYTES",
            "10MB",
            "$CHATLAKE_SPOOL_MAX_BYTES must be a positive integer, got '10MB'",
        ),
        (
            "CHATLAKE_REDACTION",
            "maybe",
            "$CHATLAKE_REDACTION must be on or off, got 'maybe'",
        ),
    ],
)
def test_each_problem_names_the_variable(variable, value, problem):
    config = TelemetryConfig.from_env(GOOD_ENV | {variable: value})
    assert config.problems == (problem,)


def test_empty_environment_lists_everything_missing():
    config = TelemetryConfig.from_env({})
    assert config.problems == (
        "$ZEROBUS_SERVER_ENDPOINT is not set",
        "$ZEROBUS_HOST is not set",
        "$ZEROBUS_TABLE is not set",
        "$DATABRICKS_CLIENT_ID is not set",
        "$DATABRICKS_CLIENT_SECRET is not set",
    )
    assert not config.sendable


def test_unknown_argument_is_a_programming_error():
    with pytest.raises(TypeError, match="TelemetryConfig has no setting 'queue'"):
        TelemetryConfig.from_env({}, queue=3)


def test_problems_are_logged_once_and_the_client_still_spools(tmp_path, caplog):
    _REPORTED_PROBLEMS.clear()
    env = GOOD_ENV | {"ZEROBUS_SERVER_ENDPOINT": "127.0.0.1:1"}
    config = TelemetryConfig.from_env(env, spool_dir=tmp_path)
    caplog.set_level(logging.WARNING, logger="chatlake.telemetry")
    first = TelemetryClient(config, handle_sigterm=False)
    second = TelemetryClient(config, handle_sigterm=False)
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == [
        "telemetry configuration: $ZEROBUS_SERVER_ENDPOINT must start with http:// "
        "or https://, got '127.0.0.1:1'; events are spooled"
    ]
    from chatlake.telemetry import new_chat_turn

    first.track(new_chat_turn(user_message="kept"))
    assert first.flush(5) is False
    assert first.status().state == "not configured"
    assert first.status().pending == 1
    first.close()
    second.close()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CHATLAKE_SPOOL_MAX_BYTES", "nan"),
        ("CHATLAKE_TELEMETRY_QUEUE_SIZE", "inf"),
        ("CHATLAKE_MESSAGE_MAX_BYTES", "1e999"),
        ("CHATLAKE_SPOOL_MAX_BYTES", "0"),
    ],
)
def test_a_malformed_number_leaves_the_client_not_configured(variable, value):
    config = TelemetryConfig.from_env(GOOD_ENV | {variable: value})
    assert config.problems == (
        f"${variable} must be a positive integer, got {value!r}",
    )
    assert config.sendable is False


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 2.5, True, -1])
def test_an_argument_that_is_no_positive_integer_is_a_problem(value):
    config = TelemetryConfig.from_env(GOOD_ENV, queue_size=value)
    assert config.problems == (
        f"argument queue_size must be a positive integer, got {value!r}",
    )
    assert config.queue_size == 10_000
    assert config.sendable is False


def test_a_whole_float_argument_is_taken():
    config = TelemetryConfig.from_env(GOOD_ENV, queue_size=50.0)
    assert (config.problems, config.queue_size) == ((), 50)


class RecordingFactory:
    """Stands in for the SDK: records the tables it is asked to open."""

    def __init__(self) -> None:
        self.opened: list[str] = []

    def open(self, table, fmt, on_ack, on_error):
        self.opened.append(table)
        raise AssertionError("a client with a malformed setting opened a stream")


def test_a_malformed_setting_keeps_events_in_the_spool(tmp_path, caplog):
    _REPORTED_PROBLEMS.clear()
    env = GOOD_ENV | {"CHATLAKE_SPOOL_MAX_BYTES": "nan"}
    config = TelemetryConfig.from_env(env, spool_dir=tmp_path)
    factory = RecordingFactory()
    caplog.set_level(logging.WARNING, logger="chatlake.telemetry")
    client = TelemetryClient(config, stream_factory=factory, handle_sigterm=False)
    from chatlake.telemetry import new_chat_turn

    client.track(new_chat_turn(user_message="kept"))
    assert client.flush(5) is False
    assert client.status() == TelemetryStatus("not configured", 1)
    client.close()
    assert factory.opened == []
    assert [r.getMessage() for r in caplog.records] == [
        "telemetry configuration: $CHATLAKE_SPOOL_MAX_BYTES must be a positive "
        "integer, got 'nan'; events are spooled"
    ]
