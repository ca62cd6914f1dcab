"""What the sql and report commands check before answering, and how they print."""

from __future__ import annotations

import json
import socket

import pyarrow as pa
import pytest
from click.testing import CliRunner

from chatlake.analytics import output
from chatlake.cli import main

ENV_KEYS = ("CHATLAKE_CATALOG_URL", "CHATLAKE_DATA_DIR", "CHATLAKE_SQL_CLIENT_ID")


@pytest.fixture(autouse=True)
def no_outside_settings(monkeypatch) -> None:
    for key in ENV_KEYS + ("CHATLAKE_SQL_CLIENT_SECRET", "CHATLAKE_SQL_TIMEOUT_S"):
        monkeypatch.delenv(key, raising=False)


def test_wrong_credentials_fail_even_without_a_table(catalog_server) -> None:
    options = ["--catalog-url", catalog_server.url]

    result = CliRunner().invoke(
        main,
        ["sql", "SELECT 1", *options, "--client-id", "' OR 1=1 --"],
        env={"CHATLAKE_SQL_CLIENT_SECRET": "x"},
    )

    assert result.exit_code == 1
    assert result.output.startswith(
        f'Error: catalog {catalog_server.url} refused client id "\' OR 1=1 --": '
    )
    assert len(result.output.splitlines()) == 1


def test_catalog_url_comes_from_the_data_dirs_app_env(catalog_server) -> None:
    data_dir = catalog_server.data_dir
    (data_dir / "app.env").write_text(f"CHATLAKE_CATALOG_URL={catalog_server.url}\n")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"

    found = CliRunner().invoke(
        main, ["sql", "SELECT 7 AS n", "--json", "--data-dir", str(data_dir)]
    )
    overridden = CliRunner().invoke(
        main,
        ["sql", "SELECT 7 AS n", "--data-dir", str(data_dir)],
        env={"CHATLAKE_CATALOG_URL": closed},
    )

    assert found.exit_code == 0, found.output
    assert json.loads(found.output) == [{"n": 7}]
    assert overridden.exit_code == 1
    assert f"cannot reach the catalog at {closed}" in overridden.output


@pytest.mark.parametrize("command", [["sql"], ["report"], ["alerts", "check"]])
def test_catalog_url_help_names_app_env_before_the_local_default(command) -> None:
    result = CliRunner().invoke(main, [*command, "--help"])

    assert (
        " ".join(result.output.split()).count(
            "Catalog base URL [env CHATLAKE_CATALOG_URL; default: the one in "
            "<data dir>/app.env when it has one, else http://127.0.0.1:8080]."
        )
        == 1
    )


@pytest.mark.parametrize("span", ["99999999999d", "999999d", "99999999999999w"])
def test_an_overlong_last_is_one_clean_line(span: str) -> None:
    result = CliRunner().invoke(main, ["report", "latency", "--last", span])

    assert result.exit_code == 1
    assert result.output == (
        f"Error: time span {span!r} is too long: it must start after the year 1\n"
    )


def test_a_narrow_result_keeps_its_row_count_on_one_line(catalog_server) -> None:
    options = ["--catalog-url", catalog_server.url]
    options += ["--data-dir", str(catalog_server.data_dir)]

    result = CliRunner().invoke(main, ["sql", "SELECT 1", *options])

    assert result.exit_code == 0, result.output
    lines = [line.strip() for line in result.output.splitlines()]
    assert lines[-1] == "1 row"
    assert lines[-2] == "1"


def test_row_count_wording() -> None:
    counts = [output.row_count(pa.table({"a": list(range(n))})) for n in (0, 1, 2)]

    assert counts == ["0 rows", "1 row", "2 rows"]
