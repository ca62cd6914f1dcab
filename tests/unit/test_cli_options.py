"""The options commands share: same flags and env vars everywhere, flag before env."""

from __future__ import annotations

import importlib
import socket
import subprocess
import sys
from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from chatlake.cli import COMMANDS, main
from chatlake.cli_options import json_option, option_group

LOGIN = ("--catalog-url", "--data-dir", "--client-id", "--client-secret")
CATALOG_LOGIN = {
    "--catalog-url": "CHATLAKE_CATALOG_URL",
    "--data-dir": "CHATLAKE_DATA_DIR",
    "--client-id": None,
    "--client-secret": None,
}
SQL_LOGIN = {
    **CATALOG_LOGIN,
    "--client-id": "CHATLAKE_SQL_CLIENT_ID",
    "--client-secret": "CHATLAKE_SQL_CLIENT_SECRET",
}
# Commands whose login options differ from CATALOG_LOGIN, and how.
OTHER_LOGINS = {
    "up": {"--data-dir": "CHATLAKE_DATA_DIR"},
    "catalog": {"--data-dir": "CHATLAKE_DATA_DIR"},
    "ingest": {"--data-dir": None, "--catalog-url": None},
    "app": {"--data-dir": None},
    "demo": {"--data-dir": None},
    "model": {},
    "sql": SQL_LOGIN,
    "report": SQL_LOGIN,
    "alerts check": SQL_LOGIN,
    "alerts run": SQL_LOGIN,
}


@pytest.fixture(autouse=True)
def no_outside_settings(monkeypatch) -> None:
    for key in ("CHATLAKE_CATALOG_URL", "CHATLAKE_DATA_DIR"):
        monkeypatch.delenv(key, raising=False)


@pytest.fixture
def closed_url() -> Iterator[str]:
    """A loopback URL nothing listens on: the port is bound but never listened on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{probe.getsockname()[1]}"


def _leaf_commands():
    for name in sorted(COMMANDS):
        module, attribute = COMMANDS[name].split(":")
        command = getattr(importlib.import_module(module), attribute)
        if isinstance(command, click.Group):
            for sub_name in sorted(command.commands):
                yield f"{name} {sub_name}", command.commands[sub_name]
        else:
            yield name, command


def test_every_command_reads_its_login_options_from_the_same_env_vars():
    seen = {}
    for path, command in _leaf_commands():
        options = {p.opts[0]: p for p in command.params if isinstance(p, click.Option)}
        seen[path] = {flag: options[flag].envvar for flag in LOGIN if flag in options}

    expected = {path: OTHER_LOGINS.get(path, CATALOG_LOGIN) for path in seen}
    assert seen == expected
    assert len(seen) == 30


def test_option_group_lists_its_options_in_the_order_written():
    @click.command()
    @option_group(
        click.option("--first"), json_option("Print it."), click.option("--last")
    )
    def command(first, as_json, last) -> None:
        click.echo(f"{first} {as_json} {last}")

    result = CliRunner().invoke(command, ["--last", "z", "--json", "--first", "a"])

    assert [p.opts[0] for p in command.params] == ["--first", "--json", "--last"]
    assert result.output == "a True z\n"


def test_catalog_url_flag_wins_over_its_env_var(catalog_server, closed_url):
    data_dir = ["--data-dir", str(catalog_server.data_dir)]

    flag_wins = CliRunner().invoke(
        main,
        ["catalogs", "list", "--catalog-url", catalog_server.url, *data_dir],
        env={"CHATLAKE_CATALOG_URL": closed_url},
    )
    env_loses = CliRunner().invoke(
        main,
        ["catalogs", "list", "--catalog-url", closed_url, *data_dir],
        env={"CHATLAKE_CATALOG_URL": catalog_server.url},
    )

    assert (flag_wins.exit_code, flag_wins.output) == (0, "(none)\n")
    assert env_loses.exit_code == 1
    assert env_loses.output.startswith(
        f"Error: cannot reach the catalog at {closed_url}: "
    )


def test_catalog_url_and_data_dir_come_from_the_env(catalog_server):
    env = {
        "CHATLAKE_CATALOG_URL": catalog_server.url,
        "CHATLAKE_DATA_DIR": str(catalog_server.data_dir),
    }

    result = CliRunner().invoke(main, ["principals", "list", "--json"], env=env)

    assert result.exit_code == 0, result.output
    assert '"name": "admin"' in result.output


def test_a_client_id_without_its_secret_is_a_usage_error():
    result = CliRunner().invoke(
        main, ["tables", "optimize", "m.s.t", "--client-id", "x"]
    )

    assert result.exit_code == 2
    assert result.output.endswith(
        "Error: give both --client-id and --client-secret, or neither\n"
    )


def test_the_shared_options_load_no_heavy_module():
    probe = (
        "import sys, chatlake.cli_options; "
        "heavy = {'chatlake', 'httpx', 'grpc', 'dash', 'deltalake', 'duckdb', "
        "'pyarrow'}; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))"
    )

    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )

    assert loaded.stdout == (
        "['chatlake', 'chatlake.cli_options', 'chatlake.config', 'chatlake.errors']\n"
    )
