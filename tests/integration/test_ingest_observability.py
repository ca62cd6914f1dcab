"""/metrics, one log line per stream event, and system.ingest.stream_events."""

from __future__ import annotations

import json
import logging

import httpx
from zerobus import TableProperties

from tests.integration.ingest_support import (
    create_table,
    ingest_server,
    sdk,
    sql,
    table_location,
    writer,
)

TABLE = "main.chatbot.observed"
SECRET_TEXT = "my card is 4111 1111 1111 1111"


def metric(text: str, name: str, labels: str = "") -> float:
    prefix = f"{name}{{{labels}}} " if labels else f"{name} "
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line.split()[-1])
    raise AssertionError(f"{prefix!r} not in /metrics")


def test_metrics_logs_and_stream_events(catalog_server, caplog):
    create_table(catalog_server, TABLE, "id STRING NOT NULL, note STRING")
    client_id, secret = writer(catalog_server, "observer", TABLE)
    labels = f'table="{TABLE}"'
    caplog.set_level(logging.INFO, logger="chatlake.ingest")
    with ingest_server(catalog_server, metrics_port=0, stream_events=True) as running:
        url = f"http://127.0.0.1:{running.server.metrics.port}/metrics"
        before = httpx.get(url).text
        stream = sdk(running, catalog_server).create_stream(
            client_id, secret, TableProperties(TABLE)
        )
        stream.ingest_record_offset(json.dumps({"id": "1", "note": SECRET_TEXT}))
        stream.ingest_records_offset([json.dumps({"id": str(i)}) for i in (2, 3)])
        stream.flush()
        during = httpx.get(url).text
        stream.close()

    assert metric(during, "chatlake_ingest_records_total", labels) == 3
    assert metric(during, "chatlake_ingest_messages_total", labels) == 2
    assert metric(during, "chatlake_ingest_open_streams", labels) == 1
    assert metric(during, "chatlake_ingest_ack_latency_seconds_count") >= 2
    assert "chatlake_ingest_records_total" in before

    lines = [
        r.getMessage() for r in caplog.records if r.name.startswith("chatlake.ingest")
    ]
    opened = [line for line in lines if line.startswith("stream opened")]
    closed = [line for line in lines if line.startswith("stream closed")]
    assert len(opened) == 1 and f"table={TABLE}" in opened[0]
    assert len(closed) == 1 and "status=OK messages=2 records=3" in closed[0]
    assert not any(
        "4111" in line or "Bearer" in line for line in caplog.text.splitlines()
    )

    events = sql(
        "SELECT event, table_name, records, messages, status FROM e "
        "WHERE table_name = 'main.chatbot.observed' ORDER BY event_time, event DESC",
        e=table_location(catalog_server, "system.ingest.stream_events"),
    )
    assert events == [
        ("opened", TABLE, None, None, None),
        ("closed", TABLE, 3, 2, "OK"),
    ]
