"""C17: the integration pattern the Databricks chatbot guides show, unchanged,
against `chatlake up` (real processes), and the rows are queryable."""

from __future__ import annotations

import importlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from deltalake.exceptions import TableNotFoundError

from chatlake.catalog.bootstrap import read_env_file
from chatlake.catalog.client import CatalogClient
from chatlake.types import parse_columns
from tests.integration.ingest_support import sql

GUIDE_PROTO = """
syntax = "proto2";

message Chat {
  optional string telemetry_id = 1;
  optional string user_message = 2;
  optional string assistant_message = 3;
  optional int64 response_time_ms = 4;
}
"""
TABLE = "main.chatbot.chat_guide"
START_TIMEOUT_S = 90


def free_port() -> int:
    # `chatlake up` takes fixed port numbers; the OS still picks them.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def compile_guide_proto(tmp_path: Path):
    from grpc_tools import protoc

    (tmp_path / "chat.proto").write_text(GUIDE_PROTO)
    assert (
        protoc.main(
            ["protoc", f"-I{tmp_path}", f"--python_out={tmp_path}", "chat.proto"]
        )
        == 0
    )
    sys.path.insert(0, str(tmp_path))
    try:
        return importlib.import_module("chat_pb2")
    finally:
        sys.path.remove(str(tmp_path))


def wait_for(check, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} did not happen within {START_TIMEOUT_S} s")


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def chatlake_up(tmp_path):
    data_dir = tmp_path / "data"
    ports = {
        name: free_port() for name in ("catalog", "ingest", "metrics", "model", "app")
    }
    argv = [sys.executable, "-m", "chatlake", "up", "--data-dir", str(data_dir)]
    for name, port in ports.items():
        argv += [f"--{name}-port", str(port)]
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENAI_", "DATABRICKS_"))
    }
    process = subprocess.Popen(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        wait_for(
            lambda: (data_dir / "app.env").exists() and listening(ports["ingest"]),
            "chatlake up start",
        )
        yield data_dir, read_env_file(data_dir / "app.env")
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            process.stderr.close()


@pytest.mark.slow
def test_c17_guide_pattern_works_unchanged_against_chatlake_up(chatlake_up, tmp_path):
    data_dir, env = chatlake_up
    catalog_url = env["ZEROBUS_HOST"]
    with CatalogClient.local_admin(catalog_url, data_dir) as admin:
        admin.create_table(
            TABLE,
            parse_columns(
                "telemetry_id STRING, user_message STRING, assistant_message STRING, "
                "response_time_ms BIGINT"
            ),
        )
    chat_pb2 = compile_guide_proto(tmp_path)

    # --- the guide's code, with chatlake's endpoints and credentials ---
    from zerobus.sdk.shared import TableProperties
    from zerobus.sdk.sync import ZerobusSdk

    sdk = ZerobusSdk(env["ZEROBUS_SERVER_ENDPOINT"], catalog_url)
    table_properties = TableProperties(TABLE, chat_pb2.Chat.DESCRIPTOR)
    stream = sdk.create_stream(
        env["DATABRICKS_CLIENT_ID"], env["DATABRICKS_CLIENT_SECRET"], table_properties
    )
    for turn in range(3):
        record = chat_pb2.Chat(
            telemetry_id=f"turn-{turn}",
            user_message=f"question {turn} ¿qué tal? 你好",
            assistant_message=f"answer {turn}",
            response_time_ms=100 + turn,
        )
        stream.ingest_record(record).wait_for_ack()
    stream.close()
    # --- end of the guide's code ---

    with CatalogClient.local_admin(catalog_url, data_dir) as admin:
        location = admin.get_table(TABLE)["storage_location"]

    def committed() -> bool:
        try:
            return sql("SELECT count(*) FROM t", t=location)[0][0] == 3
        except TableNotFoundError:  # no commit yet
            return False

    wait_for(committed, "the Delta commit")
    assert sql(
        "SELECT telemetry_id, user_message, assistant_message, response_time_ms "
        "FROM t ORDER BY telemetry_id",
        t=location,
    ) == [
        (f"turn-{i}", f"question {i} ¿qué tal? 你好", f"answer {i}", 100 + i)
        for i in range(3)
    ]
