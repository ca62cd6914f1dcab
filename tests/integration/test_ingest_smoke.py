"""First light: the official SDK streams JSON and PROTO records into a table."""

from __future__ import annotations

import json

from zerobus import TableProperties

from tests.integration.ingest_support import (
    FDP,
    create_table,
    ingest_server,
    message_class,
    read_rows,
    sdk,
    writer,
)

TABLE = "main.chatbot.chat"
COLUMNS = (
    "telemetry_id STRING NOT NULL, user_message STRING, assistant_message STRING, "
    "response_time_ms BIGINT, ingestion_time TIMESTAMP"
)
PROPS = {"chatlake.ingestion_time": "ingestion_time"}


def test_json_and_proto_records_land(catalog_server):
    create_table(catalog_server, TABLE, COLUMNS, PROPS)
    client_id, secret = writer(catalog_server, "bot", TABLE)
    Chat = message_class(
        [
            ("telemetry_id", FDP.TYPE_STRING, FDP.LABEL_REQUIRED),
            ("user_message", FDP.TYPE_STRING, FDP.LABEL_OPTIONAL),
            ("assistant_message", FDP.TYPE_STRING, FDP.LABEL_OPTIONAL),
            ("response_time_ms", FDP.TYPE_INT64, FDP.LABEL_OPTIONAL),
        ]
    )
    with ingest_server(catalog_server) as running:
        client = sdk(running, catalog_server)
        stream = client.create_stream(client_id, secret, TableProperties(TABLE))
        stream.ingest_record_offset(
            json.dumps({"telemetry_id": "j1", "response_time_ms": 5})
        )
        stream.ingest_records_offset(
            [json.dumps({"telemetry_id": f"j{i}"}) for i in (2, 3)]
        )
        stream.flush()
        stream.close()
        stream = client.create_stream(
            client_id, secret, TableProperties(TABLE, Chat.DESCRIPTOR)
        )
        record = Chat(telemetry_id="p1", user_message="hi", response_time_ms=7)
        stream.ingest_record(record).wait_for_ack()
        stream.close()

    rows = read_rows(catalog_server, TABLE, "telemetry_id")
    assert [
        (r["telemetry_id"], r["user_message"], r["response_time_ms"]) for r in rows
    ] == [("j1", None, 5), ("j2", None, None), ("j3", None, None), ("p1", "hi", 7)]
    assert all(r["ingestion_time"] is not None for r in rows)
