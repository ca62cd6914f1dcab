"""`chatlake app`, `model` and `demo`: settings resolution and refusals of bad input."""

from __future__ import annotations

import json
import os
import sqlite3

import pytest
from click.testing import CliRunner

from chatlake.app.demo_model import DemoModelSettings, create_demo_app
from chatlake.app.retrieval import PRIMER_PATH
from chatlake.app.settings import AppSettings, ModelSettings
from chatlake.app.store import ConversationStore
from chatlake.app.testing import ServerThread, free_port
from chatlake.app.up_parts import model_configured
from chatlake.cli import main
from chatlake.errors import ConfigError


def test_databricks_serving_wins_over_openai_settings():
    settings = ModelSettings.from_env(
        {
            "DATABRICKS_HOST": "adb-1.azuredatabricks.net/",
            "DATABRICKS_TOKEN": "dapi-x",
            "SERVING_ENDPOINT": "my-endpoint",
            "OPENAI_BASE_URL": "http://127.0.0.1:1/v1",
        }
    )
    assert settings.base_url == "https://adb-1.azuredatabricks.net/serving-endpoints"
    assert (settings.api_key, settings.model, settings.label) == (
        "dapi-x",
        "my-endpoint",
        "my-endpoint",
    )
    assert not settings.is_demo


def test_openai_compatible_endpoint_and_limits():
    settings = ModelSettings.from_env(
        {
            "OPENAI_BASE_URL": "http://127.0.0.1:11434/v1/",
            "CHATLAKE_MODEL": "llama3",
            "CHATLAKE_MODEL_TIMEOUT_S": "2.5",
            "CHATLAKE_MAX_TOKENS": "64",
        }
    )
    assert (settings.base_url, settings.model) == (
        "http://127.0.0.1:11434/v1",
        "llama3",
    )
    assert (settings.timeout_s, settings.max_tokens) == (2.5, 64)


def test_nothing_configured_means_the_demo_model_on_loopback():
    settings = ModelSettings.from_env({})
    assert settings.base_url == "http://127.0.0.1:8070/v1"
    assert (settings.label, settings.is_demo) == ("offline demo model", True)
    assert not model_configured({})
    assert model_configured({"OPENAI_BASE_URL": "http://127.0.0.1:1/v1"})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"DATABRICKS_HOST": "h", "SERVING_ENDPOINT": "e"},
            "SERVING_ENDPOINT is set but neither DATABRICKS_TOKEN nor",
        ),
        ({"OPENAI_BASE_URL": "http://x"}, "OPENAI_BASE_URL is set but CHATLAKE_MODEL"),
        (
            {"CHATLAKE_MODEL_TIMEOUT_S": "soon"},
            "CHATLAKE_MODEL_TIMEOUT_S='soon' is not",
        ),
        ({"CHATLAKE_MAX_TOKENS": "-3"}, "CHATLAKE_MAX_TOKENS='-3' must be greater"),
        (
            {"CHATLAKE_MAX_TOKENS": "1e999"},
            "CHATLAKE_MAX_TOKENS='1e999' is not a whole number: give 1 to 1000000",
        ),
        (
            {"CHATLAKE_MAX_TOKENS": "1000001"},
            "CHATLAKE_MAX_TOKENS='1000001' is too large: at most 1000000",
        ),
    ],
)
def test_bad_model_settings_name_the_variable(env, message):
    with pytest.raises(ConfigError, match=message):
        ModelSettings.from_env(env)


def test_app_refuses_a_public_bind_outside_databricks_apps(monkeypatch):
    monkeypatch.delenv("DATABRICKS_APP_PORT", raising=False)
    result = CliRunner().invoke(main, ["app", "--host", "0.0.0.0"])
    assert result.exit_code == 1
    assert "--host 0.0.0.0 is not loopback" in result.output


def test_app_refuses_an_unknown_plotly_build_before_starting(monkeypatch, tmp_path):
    monkeypatch.setenv("CHATLAKE_PLOTLY_BUILD", "bogus")
    result = CliRunner().invoke(main, ["app", "--data-dir", str(tmp_path / "d")])
    assert result.exit_code == 1
    assert result.output == (
        "Error: CHATLAKE_PLOTLY_BUILD='bogus': expected one of cartesian, full\n"
    )
    assert not (tmp_path / "d" / "app").exists()  # no store opened


def test_app_refuses_a_malformed_databricks_app_port(monkeypatch):
    monkeypatch.setenv("DATABRICKS_APP_PORT", "eighty")
    result = CliRunner().invoke(main, ["app"])
    assert result.exit_code == 1
    assert "DATABRICKS_APP_PORT='eighty' is not a port number" in result.output


def test_app_refuses_a_malformed_env_file_and_changes_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("CHATLAKE_TEST_GOOD", raising=False)
    env_file = tmp_path / "app.env"
    env_file.write_text("# comment\nCHATLAKE_TEST_GOOD=1\nnot a pair\n")
    result = CliRunner().invoke(main, ["app", "--env-file", str(env_file)])
    assert result.exit_code == 1
    assert f"{env_file}:3: expected KEY=VALUE" in result.output
    assert "CHATLAKE_TEST_GOOD" not in os.environ


def test_app_names_an_unreadable_env_file(tmp_path):
    env_file = tmp_path / "app.env"
    env_file.write_bytes(b"KEY=\xff\xfe\n")
    result = CliRunner().invoke(main, ["app", "--env-file", str(env_file)])
    assert result.exit_code == 1
    assert f"cannot read env file {env_file}: 'utf-8' codec" in result.output


def test_model_refuses_a_public_bind():
    result = CliRunner().invoke(main, ["model", "--host", "0.0.0.0"])
    assert result.exit_code == 1
    assert "not loopback; the demo model has no auth" in result.output


def test_demo_drives_users_through_the_backend(tmp_path, monkeypatch):
    settings = DemoModelSettings(
        token_delay_ms=0, first_token_delay_ms=0, documents=(PRIMER_PATH,)
    )
    with ServerThread(create_demo_app(settings)) as model:
        monkeypatch.setenv("OPENAI_BASE_URL", f"{model.url}/v1")
        monkeypatch.setenv("CHATLAKE_MODEL", "chatlake-demo")
        monkeypatch.delenv("ZEROBUS_SERVER_ENDPOINT", raising=False)
        monkeypatch.delenv("CHATLAKE_SPOOL_DIR", raising=False)
        # Restored afterwards: --data-dir sets it for the telemetry spool.
        monkeypatch.setenv("CHATLAKE_DATA_DIR", str(tmp_path / "elsewhere"))
        data_dir = tmp_path / "data"
        args = ["demo", "--users", "3", "--turns", "2", "--seed", "7", "--json"]
        result = CliRunner().invoke(main, [*args, "--data-dir", str(data_dir)])

    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["turns"] == 6 and summary["failed"] == 0
    assert summary["telemetry"] == "not configured"
    assert (data_dir / "telemetry-spool").is_dir()
    assert not (tmp_path / "elsewhere").exists()
    store = ConversationStore(AppSettings(data_dir).store_path)
    with sqlite3.connect(store.path) as db:
        users = [
            row[0] for row in db.execute("SELECT DISTINCT user_id FROM conversations")
        ]
    assert len(users) == 3
    rated = 0
    for user in users:
        (conversation,) = store.conversations(user)
        turns = store.turns(conversation.id)
        assert [t.turn_index for t in turns] == [0, 1]
        rated += sum(t.rating is not None for t in turns)
    assert rated == summary["ratings"]


def demo_env(monkeypatch, tmp_path, base_url):
    monkeypatch.setenv("OPENAI_BASE_URL", base_url)
    monkeypatch.setenv("CHATLAKE_MODEL", "chatlake-demo")
    monkeypatch.delenv("ZEROBUS_SERVER_ENDPOINT", raising=False)
    monkeypatch.delenv("CHATLAKE_SPOOL_DIR", raising=False)
    monkeypatch.setenv("CHATLAKE_DATA_DIR", str(tmp_path / "elsewhere"))
    return ["demo", "--data-dir", str(tmp_path / "data"), "--seed", "7"]


@pytest.mark.parametrize(
    ("turns", "rate", "summary"),
    [
        ("1", "1", "1 turn (0 failed), 1 rating; telemetry: not configured"),
        ("2", "0", "2 turns (0 failed), 0 ratings; telemetry: not configured"),
    ],
)
def test_demo_counts_in_the_singular_and_the_plural(
    tmp_path, monkeypatch, turns, rate, summary
):
    settings = DemoModelSettings(
        token_delay_ms=0, first_token_delay_ms=0, documents=(PRIMER_PATH,)
    )
    with ServerThread(create_demo_app(settings)) as model:
        args = demo_env(monkeypatch, tmp_path, f"{model.url}/v1")
        more = ["--users", "1", "--turns", turns, "--feedback-rate", rate]
        result = CliRunner().invoke(main, [*args, *more])

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == summary  # after the progress bar


def test_demo_fails_when_every_turn_failed(tmp_path, monkeypatch):
    args = demo_env(monkeypatch, tmp_path, f"http://127.0.0.1:{free_port()}/v1")
    result = CliRunner().invoke(main, [*args, "--users", "1", "--turns", "1"])

    assert result.exit_code == 1
    last_line = result.stdout.splitlines()[-1]
    assert last_line == "1 turn (1 failed), 0 ratings; telemetry: not configured"
    assert result.stderr == "Error: every turn failed (connection_error: 1)\n"

    result = CliRunner().invoke(main, [*args, "--users", "2", "--turns", "1", "--json"])
    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    assert (summary["turns"], summary["failed"]) == (2, 2)
    assert summary["errors"] == {"connection_error": 2}
    assert result.stderr == "Error: every turn failed (connection_error: 2)\n"


@pytest.mark.parametrize("rate", ["nan", "inf", "-0.1", "1.01"])
def test_demo_refuses_a_feedback_rate_outside_0_to_1(tmp_path, rate):
    data_dir = tmp_path / "data"
    args = ["demo", "--data-dir", str(data_dir), "--feedback-rate", rate]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert f"Invalid value for '--feedback-rate': {float(rate)} is not a number " in (
        result.output
    )
    assert not data_dir.exists()


def test_demo_and_app_keep_the_sdk_at_warnings_unless_rust_log_is_set(monkeypatch):
    from chatlake.app import commands

    monkeypatch.delenv("RUST_LOG", raising=False)
    commands._quiet_sdk_logs()
    assert os.environ["RUST_LOG"] == "warn"
    monkeypatch.setenv("RUST_LOG", "debug")
    commands._quiet_sdk_logs()
    assert os.environ["RUST_LOG"] == "debug"


@pytest.mark.parametrize("command", ["app", "model"])
def test_ports_outside_the_valid_range_are_refused(command):
    result = CliRunner().invoke(main, [command, "--port", "70000"])
    assert result.exit_code == 2
    assert "70000 is not in the range 1<=x<=65535" in result.output


@pytest.mark.parametrize(
    ("command", "summary"),
    [
        ("app", "Serve the chatbot (Dash under gunicorn)"),
        ("model", "Serve the offline demo model"),
        ("demo", "Drive simulated users through the app's backend"),
    ],
)
def test_every_app_command_has_help(command, summary):
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0
    assert result.output.startswith(f"Usage: main {command} [OPTIONS]\n\n  {summary}")


def test_up_starts_the_demo_model_only_when_no_endpoint_is_configured(
    tmp_path, monkeypatch
):
    from chatlake.app import up_parts
    from chatlake.up import UpContext

    ports = {"catalog": 1, "ingest": 2, "metrics": 3, "model": 4, "app": 5}
    ctx = UpContext(data_dir=tmp_path, ports=ports, app_env={"ZEROBUS_TABLE": "t"})
    for name in ("OPENAI_BASE_URL", "SERVING_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    assert up_parts.model_service(ctx).argv[-4:] == [
        "--host",
        "127.0.0.1",
        "--port",
        "4",
    ]
    assert up_parts.model_env(ctx)["OPENAI_BASE_URL"] == "http://127.0.0.1:4/v1"
    app = up_parts.app_service(ctx)
    assert app.env == {
        "ZEROBUS_TABLE": "t",
        "CHATLAKE_INGEST_METRICS_URL": "http://127.0.0.1:3/metrics",
    }
    assert app.ready_url == "http://127.0.0.1:5/"

    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1")
    assert up_parts.model_service(ctx) is None
    assert up_parts.model_env(ctx) == {}


def test_up_children_keep_the_sdk_at_warnings_unless_rust_log_is_set(
    tmp_path, monkeypatch
):
    from chatlake.up import UpContext, _child_env

    ctx = UpContext(tmp_path, {"catalog": 1})
    monkeypatch.delenv("RUST_LOG", raising=False)
    assert _child_env(ctx)["RUST_LOG"] == "warn"
    monkeypatch.setenv("RUST_LOG", "info")
    assert _child_env(ctx)["RUST_LOG"] == "info"
