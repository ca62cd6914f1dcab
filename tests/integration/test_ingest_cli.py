"""`chatlake ingest`: help, bad settings as one clean line, and a real process."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys

import pytest
from click.testing import CliRunner
from zerobus import TableProperties

from chatlake.cli import main
from chatlake.errors import ConfigError
from chatlake.ingest.config import IngestSettings
from tests.integration.ingest_support import create_table, read_rows, writer


def test_help_describes_the_command():
    result = CliRunner().invoke(main, ["ingest", "--help"])

    assert result.exit_code == 0
    assert (
        "Serve the Zerobus ingest protocol (gRPC) into Delta tables." in result.output
    )
    for option in ("--tls", "--max-stream-age-s", "--durability", "--metrics-port"):
        assert option in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--host", "0.0.0.0"],
            "Error: refusing to serve plaintext on 0.0.0.0: any bind other than "
            "loopback needs --tls",
        ),
        (["--port", "70000"], "Error: port must be between 0 and 65535, not 70000"),
        (
            ["--max-stream-age-s", "0"],
            "Error: max_stream_age_s must be greater than 0, got 0.0",
        ),
    ],
)
def test_bad_settings_are_one_clean_line(tmp_path, args, message):
    result = CliRunner().invoke(main, ["ingest", "--data-dir", str(tmp_path), *args])

    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [message]


def test_receive_limit_below_the_sdk_message_size_is_refused(tmp_path):
    with pytest.raises(
        ConfigError, match="max_receive_bytes must be at least 16777216"
    ):
        IngestSettings(
            data_dir=tmp_path,
            catalog_url="http://127.0.0.1:1",
            max_receive_bytes=4 << 20,
        )


@pytest.mark.slow
def test_a_real_ingest_process_serves_and_stops_on_sigterm(catalog_server):
    table = "main.chatbot.cli_rows"
    create_table(catalog_server, table, "id STRING NOT NULL")
    client_id, secret = writer(catalog_server, "cli", table)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "chatlake",
            "ingest",
            "--data-dir",
            str(catalog_server.data_dir),
            "--port",
            "0",
            "--catalog-url",
            catalog_server.url,
            "--metrics-port",
            "0",
            "--commit-interval-s",
            "0.2",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        endpoint = None
        for line in process.stderr:
            found = re.search(r"ingest listening on (\S+)", line)
            if found:
                endpoint = found.group(1)
                break
        assert endpoint and endpoint.startswith("http://127.0.0.1:")
        from zerobus.sdk.sync import ZerobusSdk

        stream = ZerobusSdk(endpoint, catalog_server.url).create_stream(
            client_id, secret, TableProperties(table)
        )
        stream.ingest_records_offset([json.dumps({"id": str(i)}) for i in range(10)])
        stream.flush()
        stream.close()
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[1]

    # SIGTERM commits what was acked before the process exits.
    assert process.returncode == 0, output
    assert sorted(r["id"] for r in read_rows(catalog_server, table, "id")) == sorted(
        str(i) for i in range(10)
    )
