"""Stream life cycle under stress: big records (C02), rotation in flight (C06),
one stream per record (C07)."""

from __future__ import annotations

import gc
import json
import os
import threading
import time

import pytest
from zerobus import StreamConfigurationOptions, TableProperties

from tests.integration.ingest_support import (
    FDP,
    create_table,
    ingest_server,
    message_class,
    sdk,
    settle,
    sql,
    table_location,
    writer,
)

TABLE = "main.chatbot.stream_rows"
COLUMNS = "id STRING NOT NULL, seq BIGINT, body STRING, ingestion_time TIMESTAMP"
PROPS = {"chatlake.ingestion_time": "ingestion_time"}
SDK_LIMIT = 10_420_224


def prepare(catalog, table=TABLE, props=PROPS):
    create_table(catalog, table, COLUMNS, props)
    return writer(catalog, "streamer", table)


def row_counts(catalog, table=TABLE):
    return sql(
        "SELECT count(*), count(DISTINCT id), sum(length(body)) FROM t",
        t=table_location(catalog, table),
    )[0]


@pytest.mark.slow
def test_c02_five_mib_and_just_under_the_sdk_limit_land(catalog_server):
    client_id, secret = prepare(catalog_server)
    Row = message_class(
        [
            ("id", FDP.TYPE_STRING, FDP.LABEL_REQUIRED),
            ("seq", FDP.TYPE_INT64, FDP.LABEL_OPTIONAL),
            ("body", FDP.TYPE_STRING, FDP.LABEL_OPTIONAL),
        ]
    )
    five_mib = "x" * (5 * 1024 * 1024)
    near_limit = "y" * (SDK_LIMIT - 64)
    with ingest_server(catalog_server) as running:
        client = sdk(running, catalog_server)
        stream = client.create_stream(
            client_id, secret, TableProperties(TABLE, Row.DESCRIPTOR)
        )
        stream.ingest_record_offset(Row(id="five", body=five_mib))
        record = Row(id="near", body=near_limit).SerializeToString()
        assert SDK_LIMIT - 100 < len(record) <= SDK_LIMIT
        stream.ingest_record_offset(record)
        stream.flush()
        stream.close()
        json_stream = client.create_stream(client_id, secret, TableProperties(TABLE))
        json_stream.ingest_record_offset(json.dumps({"id": "json5", "body": five_mib}))
        json_stream.flush()
        json_stream.close()
        settle(running)

    assert row_counts(catalog_server) == (3, 3, 2 * len(five_mib) + len(near_limit))


@pytest.mark.slow
def test_c06_rotation_with_records_in_flight_lands_each_exactly_once(catalog_server):
    client_id, secret = prepare(catalog_server)
    total = 6000
    with ingest_server(
        catalog_server, max_stream_age_s=1.0, rotation_grace_s=0.5
    ) as running:
        client = sdk(running, catalog_server)
        options = StreamConfigurationOptions(recovery_backoff_ms=100)
        stream = client.create_stream(
            client_id, secret, TableProperties(TABLE), options
        )
        for seq in range(total):
            stream.ingest_record_offset(json.dumps({"id": f"r{seq}", "seq": seq}))
            if seq % 500 == 0:
                # Spread the load over several rotations.
                threading.Event().wait(0.25)
        stream.flush()
        stream.close()
        settle(running)
        rotations = running.server.service.rotations

    assert rotations >= 2
    assert sql(
        "SELECT count(*), count(DISTINCT seq), min(seq), max(seq) FROM t",
        t=table_location(catalog_server, TABLE),
    )[0] == (total, total, 0, total - 1)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def own_threads() -> int:
    # Executor pools grow lazily up to a fixed size; any other new thread is a leak.
    pooled = ("asyncio_", "ThreadPoolExecutor")
    return sum(1 for t in threading.enumerate() if not t.name.startswith(pooled))


@pytest.mark.slow
def test_c07_a_stream_per_record_500_times_lands_all_and_leaks_nothing(catalog_server):
    client_id, secret = prepare(catalog_server)
    with ingest_server(catalog_server) as running:
        client = sdk(running, catalog_server)

        def one_turn(seq: int) -> None:
            stream = client.create_stream(client_id, secret, TableProperties(TABLE))
            stream.ingest_record(
                json.dumps({"id": f"t{seq}", "seq": seq})
            ).wait_for_ack()
            stream.close()

        for seq in range(50):  # warm up caches, pools and the token
            one_turn(seq)
        gc.collect()
        fds, threads = open_fds(), own_threads()
        tasks = running.call(_task_count())
        for seq in range(50, 500):
            one_turn(seq)
        settle(running)

        def leaks() -> tuple:
            gc.collect()
            return (
                open_fds() - fds <= 5,
                own_threads() - threads,
                running.call(_task_count()) - tasks,
                running.server.service.open_streams,
            )

        # A closed stream's server side finishes a moment after the client's
        # close() returns: wait for the counts to settle, then judge them.
        deadline = time.monotonic() + 15
        while leaks() != (True, 0, 0, 0) and time.monotonic() < deadline:
            time.sleep(0.1)
        found = leaks()

    assert found == (True, 0, 0, 0), found
    assert sql(
        "SELECT count(*), count(DISTINCT seq) FROM t",
        t=table_location(catalog_server, TABLE),
    )[0] == (500, 500)


async def _task_count() -> int:
    import asyncio

    return len(asyncio.all_tasks())
