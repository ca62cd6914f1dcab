"""Command-line options that several chatlake commands share, declared once.

Each name here is a click decorator adding one option or a named group of
options: flag, environment variable, type, default and help text. A command
still receives one keyword argument per option, as with ``click.option``.

Only click and :mod:`chatlake.config` are imported: every command module
imports this one, and ``cli.py`` loads command modules lazily so that one
command does not pay for another's gRPC, Dash or DuckDB.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from chatlake import config

F = TypeVar("F", bound=Callable[..., Any])

# Ports a user picks; the servers that accept 0 (pick a free one) use int.
PORT = click.IntRange(1, 65535)


class FiniteFloat(click.FloatRange):
    """A number flag within its range, refusing nan and infinity.

    click's FloatRange lets nan through, since nan compares false with every
    bound; give a ``max`` too, as infinity or a huge value overflows timers.
    """

    def convert(self, value: Any, param, ctx) -> float:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


def option_group(*options: Callable[[F], F]) -> Callable[[F], F]:
    """One decorator adding ``options`` as if stacked in this order, top first."""

    def apply(function: F) -> F:
        # click lists options in the order their decorators are written, which
        # is the reverse of the order they are applied in.
        for option in reversed(options):
            function = option(function)
        return function

    return apply


data_dir_option = click.option(
    "--data-dir",
    envvar=config.ENV_DATA_DIR,
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help=f"Data directory [env {config.ENV_DATA_DIR}; default ./.chatlake].",
)

# Whom a catalog command acts as: the local admin whose credentials the catalog
# wrote into --data-dir, unless a principal's id and secret are given.
catalog_login_options = option_group(
    click.option(
        "--catalog-url",
        envvar=config.ENV_CATALOG_URL,
        default=None,
        help=f"Catalog URL [env {config.ENV_CATALOG_URL}; "
        "default http://127.0.0.1:8080].",
    ),
    data_dir_option,
    click.option("--client-id", default=None, help="Act as this principal."),
    click.option("--client-secret", default=None, help="Secret of --client-id."),
)


def json_option(help: str = "Print JSON.") -> Callable[[F], F]:
    """``--json``, passed to the command as ``as_json``."""
    return click.option("--json", "as_json", is_flag=True, help=help)


def listen_options(
    *, host_help: str, port: int | None, port_help: str, port_type=int
) -> Callable[[F], F]:
    """``--host`` (loopback unless given) and ``--port`` of a server command."""
    return option_group(
        click.option(
            "--host", default=config.DEFAULT_HOST, show_default=True, help=host_help
        ),
        click.option(
            "--port", type=port_type, default=port, show_default=True, help=port_help
        ),
    )


def env_file_option(help: str) -> Callable[[F], F]:
    """``--env-file``: a KEY=VALUE file the command loads into its environment."""
    return click.option(
        "--env-file",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help=help,
    )
