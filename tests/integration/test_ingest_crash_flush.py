"""SIGKILL right after fire-and-forget records were acknowledged.

Measured with the server's own ack log: the SDK's ``flush()`` after
``ingest_record_nowait`` can return before the server acked the last records
(it had sent acks only up to offset 977..1997 of 1999 in five runs), and
nowait records take offsets in an order other than the calls'. What the SDK
does guarantee is ``wait_for_offset(n)``: offset n and all before it are
acked. Once the last offset is acked every record must be in the table
exactly once after the ingest process is killed and restarted, with or
without the table's dedupe key. Rows are counted with DuckDB.
"""

from __future__ import annotations

import duckdb
import pytest
from deltalake import DeltaTable
from zerobus import StreamConfigurationOptions, TableProperties
from zerobus.sdk.sync import ZerobusSdk

from tests.integration.ingest_support import (
    FDP,
    create_table,
    message_class,
    table_location,
    writer,
)
from tests.integration.test_ingest_crash import IngestProcess, free_loopback_port

RECORDS = 2000
COLUMNS = "telemetry_id STRING NOT NULL, user_message STRING"
FIELDS = [
    ("telemetry_id", FDP.TYPE_STRING, FDP.LABEL_REQUIRED),
    ("user_message", FDP.TYPE_STRING, FDP.LABEL_OPTIONAL),
]


def stored(location: str) -> tuple[int, int, int]:
    connection = duckdb.connect()
    connection.register("t", DeltaTable(location).to_pyarrow_dataset())
    query = (
        "select count(*), count(distinct telemetry_id), "
        "count(*) filter (where telemetry_id like 'crash-%') from t"
    )
    result = connection.execute(query).fetchall()[0]
    connection.close()
    return result


@pytest.mark.slow
@pytest.mark.parametrize("dedupe", [False, True], ids=["plain", "dedupe"])
def test_flushed_nowait_records_survive_sigkill(catalog_server, dedupe):
    name = f"main.crash.flushed_{'dedupe' if dedupe else 'plain'}"
    props = {"chatlake.dedupe_key": "telemetry_id"} if dedupe else None
    create_table(catalog_server, name, COLUMNS, props)
    client_id, secret = writer(catalog_server, "flush_bot", name)
    chat = message_class(FIELDS)
    port = free_loopback_port()
    server = IngestProcess(catalog_server, port)
    options = StreamConfigurationOptions(recovery_backoff_ms=200, recovery_retries=50)
    client = ZerobusSdk(f"http://127.0.0.1:{port}", catalog_server.url)
    stream = client.create_stream(
        client_id, secret, TableProperties(name, chat.DESCRIPTOR), options
    )
    try:
        for i in range(RECORDS):
            stream.ingest_record_nowait(
                chat(telemetry_id=f"crash-{i}", user_message="x" * 200)
            )
        stream.flush()
        stream.wait_for_offset(RECORDS - 1)  # flush() alone is not enough
        server.kill()
        server = IngestProcess(catalog_server, port)
    finally:
        server.terminate()

    location = table_location(catalog_server, name)
    assert stored(location) == (RECORDS, RECORDS, RECORDS)
