"""C17: the integration pattern of the Databricks chatbot guides, unchanged,
against `chatlake up` (what `make up` runs).

The guides compile a four-field ``Chat`` message, open one stream with
``ZerobusSdk(server_endpoint, workspace_url)`` and ``sdk.create_stream(client_id,
client_secret, TableProperties(table_name, Chat.DESCRIPTOR))``, then call
``stream.ingest_record(record).wait_for_ack()`` once per chatbot turn. Here the
workspace URL is chatlake's catalog and the credentials are those of app.env.
"""

from __future__ import annotations

import importlib.util
import uuid

import pytest
from grpc_tools import protoc

from chatlake.analytics.engine import SqlEngine
from chatlake.app.testing import Stack, wait_until
from chatlake.catalog.client import CatalogClient
from chatlake.types import parse_columns

TABLE = "main.chatbot.chat"

CHAT_PROTO = """
syntax = "proto2";

message Chat {
  optional string telemetry_id = 1;
  optional string user_message = 2;
  optional string assistant_message = 3;
  optional int64 response_time_ms = 4;
}
"""


@pytest.fixture(scope="module")
def chat_pb2(tmp_path_factory):
    """The guide's chat_pb2, compiled by protoc as the guides tell users to."""
    out = tmp_path_factory.mktemp("proto")
    (out / "chat.proto").write_text(CHAT_PROTO)
    assert protoc.main(["protoc", f"-I{out}", f"--python_out={out}", "chat.proto"]) == 0
    spec = importlib.util.spec_from_file_location("chat_pb2", out / "chat_pb2.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("c17")
    with Stack(tmp / "data", tmp / "up.log") as running:
        with CatalogClient.local_admin(
            running.url("catalog"), running.data_dir
        ) as admin:
            columns = parse_columns(
                "telemetry_id STRING, user_message STRING, "
                "assistant_message STRING, response_time_ms BIGINT"
            )
            admin.create_table(TABLE, columns, comment="the guides' chat table")
        yield running


@pytest.mark.slow
def test_guide_pattern_lands_queryable_rows(stack, chat_pb2):
    from zerobus.sdk.shared import TableProperties
    from zerobus.sdk.sync import ZerobusSdk

    env = stack.app_env()
    sdk = ZerobusSdk(env["ZEROBUS_SERVER_ENDPOINT"], env["ZEROBUS_HOST"])
    table_properties = TableProperties(TABLE, chat_pb2.Chat.DESCRIPTOR)
    stream = sdk.create_stream(
        env["DATABRICKS_CLIENT_ID"], env["DATABRICKS_CLIENT_SECRET"], table_properties
    )
    sent = []
    for turn in range(3):
        record = chat_pb2.Chat(
            telemetry_id=str(uuid.uuid4()),
            user_message=f"question {turn}: ¿qué tal? 🚀",
            assistant_message=f"answer {turn}",
            response_time_ms=100 + turn,
        )
        stream.ingest_record(record).wait_for_ack()
        sent.append(record)
    stream.close()

    def landed():
        with CatalogClient.local_admin(stack.url("catalog"), stack.data_dir) as admin:
            found = SqlEngine(admin).query(
                "SELECT telemetry_id, user_message, assistant_message, "
                f"response_time_ms FROM {TABLE} ORDER BY response_time_ms"
            )
        return found.to_pylist() if found.num_rows == 3 else None

    rows = wait_until(landed, 60, interval_s=0.5, what="the guide's rows")
    assert rows == [
        {
            "telemetry_id": r.telemetry_id,
            "user_message": r.user_message,
            "assistant_message": r.assistant_message,
            "response_time_ms": r.response_time_ms,
        }
        for r in sent
    ]
