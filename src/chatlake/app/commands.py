"""`chatlake app`, `chatlake model` and `chatlake demo`."""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

import click

from chatlake import config, logs
from chatlake.cli_options import PORT, env_file_option, json_option, listen_options
from chatlake.errors import ChatlakeError, ConfigError

logger = logging.getLogger(__name__)

# The Zerobus SDK's Rust core logs every stream open and flush at INFO, in
# colour, on stderr; chatlake's own processes keep it to warnings unless the
# user set RUST_LOG.
SDK_LOG_LEVEL = "warn"


def _quiet_sdk_logs(level: str = SDK_LOG_LEVEL) -> None:
    os.environ.setdefault("RUST_LOG", level)


def _share(ctx, param, value: float) -> float:
    """A click callback: a finite number from 0 to 1 (FloatRange lets nan pass)."""
    if not math.isfinite(value) or not 0 <= value <= 1:
        raise click.BadParameter(f"{value} is not a number from 0 to 1")
    return value


def _check_bind(host: str) -> None:
    # Only loopback is safe without TLS and login. Databricks Apps sets
    # DATABRICKS_APP_PORT and puts its own authenticating proxy in front.
    if not config.is_loopback(host) and not os.environ.get("DATABRICKS_APP_PORT"):
        raise ConfigError(
            f"--host {host} is not loopback; the app has no login of its own, so it "
            "binds elsewhere only behind Databricks Apps (DATABRICKS_APP_PORT set)"
        )


def _app_port(port: int | None) -> int:
    if port is not None:
        return port
    raw = os.environ.get("DATABRICKS_APP_PORT")
    if not raw:
        return config.DEFAULT_APP_PORT
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ConfigError(f"DATABRICKS_APP_PORT={raw!r} is not a port number")
    return int(raw)


@click.command()
@listen_options(
    host_help="Address to bind.",
    port=None,
    port_help="Port (default: $DATABRICKS_APP_PORT, else 8050).",
    port_type=PORT,
)
@click.option(
    "--data-dir", default=None, help="Data directory (conversations live here)."
)
@click.option(
    "--workers",
    type=click.IntRange(1, 32),
    default=1,
    show_default=True,
    help="gunicorn worker processes.",
)
@click.option(
    "--threads",
    type=click.IntRange(1, 256),
    default=16,
    show_default=True,
    help="Threads per worker.",
)
@env_file_option("KEY=VALUE file to load first (for example <data dir>/app.env).")
def serve(host, port, data_dir, workers, threads, env_file) -> None:
    """Serve the chatbot (Dash under gunicorn) on http://HOST:PORT/."""
    logs.configure()
    _quiet_sdk_logs()
    if env_file is not None:
        load_env_file(env_file)
    _use_data_dir(data_dir)
    _check_bind(host)
    port = _app_port(port)

    from chatlake.app import plotly_js
    from chatlake.app.settings import AppSettings, ModelSettings
    from chatlake.app.store import ConversationStore
    from chatlake.app.wsgi import GunicornServer

    model = ModelSettings.from_env()  # fail here, once, on bad model settings
    plotly_js.wanted_build()  # and on a bad CHATLAKE_PLOTLY_BUILD
    settings = AppSettings.from_env(data_dir)
    interrupted = ConversationStore(settings.store_path).interrupt_running()
    if interrupted:
        logger.warning("%d turns were cut short by the last shutdown", interrupted)
    logger.info("app on http://%s:%d/ with model %s", host, port, model.label)
    GunicornServer(f"{host}:{port}", workers, threads, str(settings.data_dir)).run()


@click.command()
@listen_options(
    host_help="Address to bind (loopback only).",
    port=config.DEFAULT_MODEL_PORT,
    port_help="Port to listen on.",
    port_type=PORT,
)
@click.option(
    "--token-delay-ms",
    type=click.FloatRange(0),
    default=20.0,
    show_default=True,
    help="Delay between streamed tokens.",
)
@click.option(
    "--first-token-delay-ms",
    type=click.FloatRange(0),
    default=150.0,
    show_default=True,
    help="Delay before the first token.",
)
@click.option(
    "--docs",
    "documents",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Markdown file to answer from (repeatable; default: README and docs).",
)
def model(host, port, token_delay_ms, first_token_delay_ms, documents) -> None:
    """Serve the offline demo model: an OpenAI-compatible endpoint on loopback."""
    logs.configure()
    if not config.is_loopback(host):
        raise ConfigError(f"--host {host} is not loopback; the demo model has no auth")

    import uvicorn

    from chatlake.app.demo_model import DemoModelSettings, create_demo_app

    settings = DemoModelSettings(
        token_delay_ms=token_delay_ms,
        first_token_delay_ms=first_token_delay_ms,
        documents=tuple(documents),
    )
    uvicorn.run(create_demo_app(settings), host=host, port=port, log_level="warning")


@click.command()
@click.option(
    "--users",
    type=click.IntRange(1, 1000),
    default=5,
    show_default=True,
    help="Simulated users, each with one conversation.",
)
@click.option(
    "--turns",
    type=click.IntRange(1, 1000),
    default=3,
    show_default=True,
    help="Turns per user.",
)
@click.option("--data-dir", default=None, help="Data directory.")
@env_file_option(
    "KEY=VALUE file to load first (default: <data dir>/app.env if present)."
)
@click.option(
    "--feedback-rate",
    type=float,
    callback=_share,
    default=0.4,
    show_default=True,
    help="Share of answers that get a rating, from 0 to 1.",
)
@click.option(
    "--seed", type=int, default=None, help="Random seed, for repeatable runs."
)
@json_option("Print the summary as JSON.")
def demo(users, turns, data_dir, env_file, feedback_rate, seed, as_json) -> None:
    """Drive simulated users through the app's backend so the tables get data."""
    logs.configure(os.environ.get(logs.ENV_LOG_LEVEL) or "WARNING")
    # With --json, stdout is for the JSON alone, and the SDK may log there.
    _quiet_sdk_logs("error" if as_json else SDK_LOG_LEVEL)
    default_env = config.data_dir(data_dir) / "app.env"
    if env_file is not None or default_env.is_file():
        load_env_file(env_file or default_env)
    _use_data_dir(data_dir)

    from chatlake.app.simulate import run_demo

    summary = run_demo(
        users, turns, data_dir, feedback_rate, seed, progress=not as_json
    )
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo(
            f"{_count(summary['turns'], 'turn')} ({summary['failed']} failed), "
            f"{_count(summary['ratings'], 'rating')}; "
            f"telemetry: {summary['telemetry']}"
        )
    if summary["failed"] == summary["turns"]:
        # Nothing but error turns: the tables got no answers, so the run failed.
        raise ChatlakeError(f"every turn failed ({_by_type(summary['errors'])})")


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _by_type(errors: dict[str, int]) -> str:
    """``{"server_error": 1, "timeout": 2}`` as "timeout: 2, server_error: 1"."""
    ranked = sorted(errors.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{error_type}: {count}" for error_type, count in ranked)


def _use_data_dir(data_dir: str | None) -> None:
    # The telemetry spool lives in the data dir too: a --data-dir must move it.
    if data_dir is not None:
        os.environ[config.ENV_DATA_DIR] = str(config.data_dir(data_dir))


def load_env_file(path: Path) -> None:
    """Sets KEY=VALUE lines (comments and blanks skipped) unless already in the env.

    The whole file is checked first: a malformed line changes nothing.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise ConfigError(f"cannot read env file {path}: {reason}") from None
    pairs = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{path}:{number}: expected KEY=VALUE")
        pairs.append((key.strip(), value.strip()))
    for key, value in pairs:
        os.environ.setdefault(key, value)
