"""Number settings, flags and rules-file numbers refuse nan, infinity and overflow.

A range check alone lets nan through (it compares false with every bound), and
infinity or 1e308 overflows the timers and dates a setting ends up in; each
must be one clean line naming the setting, never a traceback or a setting that
silently never works.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from chatlake import config
from chatlake.analytics import alerts
from chatlake.analytics.engine import SqlEngine
from chatlake.analytics.errors import AlertRuleError
from chatlake.app.demo_model import DemoModelSettings
from chatlake.app.settings import ModelSettings
from chatlake.cli import main
from chatlake.errors import ConfigError
from chatlake.ingest.config import IngestSettings
from chatlake.ingest.storage import StorageSettings

BAD_NUMBERS = ["nan", "inf", "-inf", "1e308"]


@pytest.mark.parametrize(
    "value, problem",
    [
        (float("nan"), "must be a finite number"),
        (float("inf"), "must be a finite number"),
        (float("-inf"), "must be a finite number"),
        (1e308, "must be at most 10"),
        (0.0, "must be greater than 0"),
        (-1.0, "must be greater than 0"),
        (10.0, None),
        (0.5, None),
    ],
)
def test_number_problem_names_what_is_wrong(value, problem):
    assert config.number_problem(value, maximum=10, above_minimum=True) == problem


def test_number_setting_names_the_setting_and_its_text():
    with pytest.raises(ConfigError) as caught:
        config.number_setting("X_S", "nan", maximum=10)

    assert str(caught.value) == "X_S='nan' must be a finite number"
    assert config.number_setting("X_S", "2.5", maximum=10) == 2.5


@pytest.mark.parametrize("value", BAD_NUMBERS)
def test_sql_timeout_flag_is_one_clean_line(value):
    result = CliRunner().invoke(main, ["sql", "SELECT 1", "--timeout-s", value])

    assert result.exit_code == 2
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.output.splitlines()[-1].startswith(
        "Error: Invalid value for '--timeout-s': "
    )


def test_sql_timeout_env_nan_is_refused_before_any_query():
    result = CliRunner().invoke(
        main, ["sql", "SELECT 1"], env={"CHATLAKE_SQL_TIMEOUT_S": "nan"}
    )

    assert result.exit_code == 2
    assert result.output.splitlines()[-1] == (
        "Error: Invalid value for '--timeout-s': 'nan' is not a finite number"
    )


def test_sql_timeout_help_gives_the_range():
    result = CliRunner().invoke(main, ["sql", "--help"])

    assert "0<x<=86400" in result.output


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 1e308, 0.0])
def test_sql_engine_refuses_an_unusable_timeout(value):
    with pytest.raises(ConfigError, match="SQL timeout_s must be"):
        SqlEngine(None, timeout_s=value)


RULE = '[[rules]]\nname = "a"\nkind = "error_rate"\nthreshold = 0.1\n'


@pytest.mark.parametrize(
    "extra, message",
    [
        ("threshold = nan", "'threshold' must be a finite number, got nan"),
        ("threshold = inf", "'threshold' must be a finite number, got inf"),
        ("window_minutes = inf", "'window_minutes' must be a finite number"),
        ("window_minutes = 1e12", "'window_minutes' must be at most 527040"),
        ("min_count = inf", "'min_count' must be a finite number"),
        ("min_count = nan", "'min_count' must be a finite number"),
        ("min_count = -1", "'min_count' must be at least 0"),
    ],
)
def test_rule_numbers_must_be_finite_and_bounded(tmp_path, extra, message):
    # TOML allows a key once, so the override replaces the rule's threshold.
    text = RULE.replace("threshold = 0.1\n", "") if "threshold" in extra else RULE
    path = tmp_path / "rules.toml"
    path.write_text(f"{text}{extra}\n")

    with pytest.raises(AlertRuleError) as caught:
        alerts.load_rules(path)

    assert f"rules[0] ('a'): {message}" in str(caught.value)


@pytest.mark.parametrize(
    "top, message",
    [
        ("interval_s = inf", "'interval_s' must be a finite number"),
        ("interval_s = 1e9", "'interval_s' must be at most 86400"),
        ("webhook_timeout_s = nan", "'webhook_timeout_s' must be a finite number"),
    ],
)
def test_rules_file_timings_must_be_finite_and_bounded(tmp_path, top, message):
    path = tmp_path / "rules.toml"
    path.write_text(f"{top}\n{RULE}")

    with pytest.raises(AlertRuleError, match=message):
        alerts.load_rules(path)


def test_alerts_check_refuses_an_infinite_window_in_one_line(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text(f"{RULE}window_minutes = inf\n")

    result = CliRunner().invoke(main, ["alerts", "check", "--rules", str(path)])

    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"Error: alert rules file {path}: rules[0] ('a'): "
        "'window_minutes' must be a finite number, got inf"
    ]


@pytest.mark.parametrize("value", BAD_NUMBERS + ["0", "7200"])
def test_model_timeout_must_be_finite_and_bounded(value):
    env = {"CHATLAKE_MODEL_TIMEOUT_S": value}

    with pytest.raises(ConfigError, match=f"CHATLAKE_MODEL_TIMEOUT_S='{value}' "):
        ModelSettings.from_env(env)


@pytest.mark.parametrize(
    "variable, value",
    [
        ("CHATLAKE_COMMIT_INTERVAL_S", "inf"),
        ("CHATLAKE_COMMIT_INTERVAL_S", "nan"),
        ("CHATLAKE_COMMIT_INTERVAL_S", "1e12"),
        ("CHATLAKE_DEDUPE_WINDOW_S", "inf"),
        ("CHATLAKE_MAINTENANCE_INTERVAL_S", "inf"),
        ("CHATLAKE_MAINTENANCE_INTERVAL_S", "nan"),
        ("CHATLAKE_VACUUM_RETENTION_HOURS", "1e308"),
    ],
)
def test_storage_number_settings_must_be_finite_and_bounded(variable, value):
    with pytest.raises(ConfigError) as caught:
        StorageSettings.from_env({variable: value})

    assert str(caught.value).endswith(f"(env {variable})")


def test_storage_commit_interval_names_its_maximum():
    with pytest.raises(ConfigError) as caught:
        StorageSettings.from_env({}, commit_interval_s=float("inf"))

    assert str(caught.value) == (
        "storage setting commit_interval_s must be a finite number, got inf "
        "(env CHATLAKE_COMMIT_INTERVAL_S)"
    )


def test_storage_zero_still_turns_maintenance_off():
    settings = StorageSettings.from_env({"CHATLAKE_MAINTENANCE_INTERVAL_S": "0"})

    assert settings.maintenance_interval_s == 0


@pytest.mark.parametrize("name", ["token_delay_ms", "first_token_delay_ms"])
@pytest.mark.parametrize("value", [float("inf"), float("nan"), 1e308, -1.0])
def test_demo_model_delays_must_be_finite_and_bounded(name, value):
    with pytest.raises(ConfigError, match=f"demo model {name} must be"):
        DemoModelSettings(**{name: value})


def test_model_command_refuses_an_infinite_token_delay(monkeypatch):
    served = []
    monkeypatch.setattr("uvicorn.run", lambda *args, **kwargs: served.append(args))

    result = CliRunner().invoke(main, ["model", "--token-delay-ms", "inf"])

    assert served == []
    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == (
        "Error: demo model token_delay_ms must be a finite number, got inf"
    )


@pytest.mark.parametrize(
    "value, problem",
    [
        ("inf", "inf is not in the range 0<=x<=87600.0."),
        ("1e308", "1e+308 is not in the range 0<=x<=87600.0."),
        ("nan", "'nan' is not a finite number"),
    ],
)
def test_optimize_refuses_an_unusable_retention(value, problem):
    result = CliRunner().invoke(
        main, ["tables", "optimize", "main.a.b", "--retention-hours", value]
    )

    assert result.exit_code == 2
    assert result.output.splitlines()[-1] == (
        f"Error: Invalid value for '--retention-hours': {problem}"
    )


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("max_stream_age_s", float("nan"), "max_stream_age_s must be a finite number"),
        ("max_stream_age_s", 1e308, "max_stream_age_s must be at most 604800"),
        ("rotation_grace_s", float("inf"), "rotation_grace_s must be a finite number"),
        ("rotation_grace_s", -1.0, "rotation_grace_s must be at least 0"),
    ],
)
def test_ingest_stream_timings_must_be_finite_and_bounded(
    tmp_path, name, value, message
):
    # The ingest command builds these settings from its flags before it serves.
    with pytest.raises(ConfigError) as caught:
        IngestSettings(
            data_dir=tmp_path, catalog_url="http://127.0.0.1:1", **{name: value}
        )

    assert str(caught.value) == f"{message}, got {value!r}"
