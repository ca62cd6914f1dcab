"""A table dropped (and maybe created again) while a stream is open on it.

The open stream notices within ``table_check_interval_s`` and ends with a
status naming the table and the last acked offset, instead of acking rows the
new table refuses (they used to end in the WAL's rejected/ directory). Rows
acked between the drop and the check still go where the old table was.
"""

from __future__ import annotations

import json
import logging
import time

import deltalake
import pytest
from zerobus import (
    HeadersProvider,
    NonRetriableException,
    StreamConfigurationOptions,
    TableProperties,
    ZerobusException,
)

from chatlake.catalog.tablefiles import location_path
from chatlake.types import parse_columns
from tests.integration.ingest_support import (
    count_rows,
    create_table,
    ingest_server,
    sdk,
    settle,
    writer,
)

TABLE = "main.chatbot.dropped"
COLUMNS = "telemetry_id STRING NOT NULL, user_message STRING"
CHECK_S = 0.2
DEADLINE_S = 30.0
QUICK = StreamConfigurationOptions(
    recovery=False, flush_timeout_ms=20_000, server_lack_of_ack_timeout_ms=20_000
)


def send_until_refused(stream) -> str:
    deadline = time.monotonic() + DEADLINE_S
    turn = 0
    while time.monotonic() < deadline:
        try:
            offset = stream.ingest_record_offset(
                json.dumps({"telemetry_id": f"t{turn}", "user_message": "hi"})
            )
            stream.wait_for_offset(offset)
        except ZerobusException as error:
            return str(error)
        turn += 1
        time.sleep(0.02)  # a gentle client; the server checks every CHECK_S
    raise AssertionError("the stream kept acking after its table was dropped")


@pytest.mark.parametrize("recreate", [False, True], ids=["dropped", "recreated"])
def test_open_stream_ends_when_its_table_is_dropped(catalog_server, recreate, caplog):
    caplog.set_level(logging.INFO, logger="chatlake.ingest.service")
    create_table(catalog_server, TABLE, COLUMNS)
    client_id, secret = writer(catalog_server, "drop_bot", TABLE)
    with ingest_server(catalog_server, table_check_interval_s=CHECK_S) as running:
        client = sdk(running, catalog_server)
        stream = client.create_stream(client_id, secret, TableProperties(TABLE), QUICK)
        offset = stream.ingest_record_offset(json.dumps({"telemetry_id": "before"}))
        stream.wait_for_offset(offset)
        admin = catalog_server.admin_client
        admin.delete_table(TABLE)
        if recreate:
            admin.create_table(TABLE, parse_columns("turn BIGINT"))
        send_until_refused(stream)  # the SDK often says only "Stream closed"
        try:
            stream.close()
        except ZerobusException:
            pass  # already failed; close only releases it

    logged = [r.getMessage() for r in caplog.records]
    [ended] = [line for line in logged if line.startswith("stream failed")]
    if recreate:
        assert "status=ABORTED" in ended
        assert f"table {TABLE} was dropped and created again while this" in ended
        assert "open a new stream for the new table" in ended
    else:
        assert "status=NOT_FOUND" in ended
        assert f"table {TABLE} was dropped while this stream was open" in ended
    assert "were not acked" in ended


class KeptToken(HeadersProvider):
    """A token taken before the drop, as a reconnecting SDK still holds one.

    The catalog would refuse a new token for a table that no longer exists,
    so only a client holding an earlier token reaches the ingest server.
    """

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token

    def get_headers(self):
        return [
            ("authorization", f"Bearer {self.token}"),
            ("x-databricks-zerobus-table-name", TABLE),
        ]


def open_stream(client, token: str):
    return client.create_stream(
        table_properties=TableProperties(TABLE),
        options=QUICK,
        headers_provider=KeptToken(token),
    )


def ingest(stream, telemetry_id: str) -> None:
    stream.wait_for_offset(
        stream.ingest_record_offset(json.dumps({"telemetry_id": telemetry_id}))
    )


def test_a_dropped_table_takes_no_new_stream(catalog_server):
    create_table(catalog_server, TABLE, COLUMNS)
    admin = catalog_server.admin_client
    token = admin.token()
    # The default settings: table info cached 30 s, open streams checked every 5 s.
    with ingest_server(catalog_server) as running:
        client = sdk(running, catalog_server)
        stream = open_stream(client, token)
        ingest(stream, "before")
        stream.close()
        admin.delete_table(TABLE)

        # Asked at once: the look-up the first stream cached must not count.
        with pytest.raises(NonRetriableException) as caught:
            open_stream(client, token)

    assert f"table {TABLE} does not exist in the catalog" in str(caught.value)


def test_a_table_created_again_after_a_drop_starts_empty(catalog_server):
    old = create_table(catalog_server, TABLE, COLUMNS)
    admin = catalog_server.admin_client
    with ingest_server(catalog_server) as running:
        stream = open_stream(sdk(running, catalog_server), admin.token())
        ingest(stream, "before")
        admin.delete_table(TABLE)
        # Acked before the stream's next table check (5 s) notices the drop.
        ingest(stream, "after the drop")
        settle(running)

        # Those rows went where the dropped table was, not into any table...
        old_path = location_path(old["storage_location"])
        leftover = deltalake.DeltaTable(old_path.as_uri()).to_pyarrow_table()
        assert "after the drop" in leftover.column("telemetry_id").to_pylist()
        # ...and the name can be used again, for a table of its own.
        new = admin.create_table(TABLE, parse_columns(COLUMNS))
        assert new["storage_location"] != old["storage_location"]
        assert count_rows(catalog_server, TABLE) == 0
        try:
            stream.close()
        except ZerobusException:
            pass  # ended by its table check meanwhile; close only releases it
