"""Every column type of the mapping table through the SDK and back out of SQL (C01,
C03)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from zerobus import TableProperties

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

OPT, REQ, REP = FDP.LABEL_OPTIONAL, FDP.LABEL_REQUIRED, FDP.LABEL_REPEATED
TABLE = "main.chatbot.typed"
COLUMNS = (
    "id STRING NOT NULL, tiny TINYINT, small SMALLINT, n INT, big BIGINT, f FLOAT, "
    "d DOUBLE, ok BOOLEAN, raw BINARY, day DATE, at TIMESTAMP, local TIMESTAMP_NTZ, "
    "v VARIANT, tags ARRAY<STRING>, counts MAP<STRING, BIGINT>, "
    "metadata STRUCT<source: STRING, tags: ARRAY<STRING>>, ingestion_time TIMESTAMP"
)
PROPS = {"chatlake.ingestion_time": "ingestion_time"}
AT_US = 1_700_000_000_123_456  # 2023-11-14 22:13:20.123456 UTC


def typed_message(metadata_ref: str):
    return message_class(
        [
            ("id", FDP.TYPE_STRING, REQ),
            ("tiny", FDP.TYPE_INT32, OPT),
            ("small", FDP.TYPE_INT32, OPT),
            ("n", FDP.TYPE_INT32, OPT),
            ("big", FDP.TYPE_INT64, OPT),
            ("f", FDP.TYPE_FLOAT, OPT),
            ("d", FDP.TYPE_DOUBLE, OPT),
            ("ok", FDP.TYPE_BOOL, OPT),
            ("raw", FDP.TYPE_BYTES, OPT),
            ("day", FDP.TYPE_INT32, OPT),
            ("at", FDP.TYPE_INT64, OPT),
            ("local", FDP.TYPE_INT64, OPT),
            ("v", FDP.TYPE_STRING, OPT),
            ("tags", FDP.TYPE_STRING, REP),
            ("counts", FDP.TYPE_MESSAGE, REP, "CountsEntry"),
            ("metadata", FDP.TYPE_MESSAGE, OPT, metadata_ref),
        ],
        nested=[
            (
                "CountsEntry",
                [("key", FDP.TYPE_STRING, OPT), ("value", FDP.TYPE_INT64, OPT)],
                True,
            ),
            (
                "Metadata",
                [("source", FDP.TYPE_STRING, OPT), ("tags", FDP.TYPE_STRING, REP)],
                False,
            ),
        ],
    )


@pytest.fixture
def setup(catalog_server):
    create_table(catalog_server, TABLE, COLUMNS, PROPS)
    credentials = writer(catalog_server, "typed", TABLE)
    with ingest_server(catalog_server) as running:
        yield catalog_server, running, sdk(running, catalog_server), credentials


def full_record(Typed, name: str):
    record = Typed(
        id=name,
        tiny=-128,
        small=32767,
        n=-(2**31),
        big=2**63 - 1,
        f=1.5,
        d=0.1,
        ok=True,
        raw=b"\x00\xff",
        day=19_000,
        at=AT_US,
        local=86_400_000_001,
        v='{"k": [1, 2]}',
    )
    record.tags.extend(["a", "ÿ"])
    record.counts["x"] = 3
    record.metadata.source = "web"
    record.metadata.tags.extend(["t1"])
    return record


@pytest.mark.parametrize("metadata_ref", ["Metadata", ".tests.chat.Chat.Metadata"])
def test_c01_c03_every_type_round_trips_through_sql(setup, metadata_ref):
    catalog, running, client, (client_id, secret) = setup
    Typed = typed_message(metadata_ref)
    stream = client.create_stream(
        client_id, secret, TableProperties(TABLE, Typed.DESCRIPTOR)
    )
    stream.ingest_record_offset(full_record(Typed, "full"))
    stream.ingest_record_offset(Typed(id="nulls"))
    stream.flush()
    stream.close()
    settle(running)

    rows = sql(
        "SELECT id, tiny, small, n, big, f, d, ok, raw, day, "
        'epoch_us("at"), "at", epoch_us("local"), v, '
        "json_extract(v, '$.k[1]'), tags, "
        "counts, metadata.source, metadata.tags FROM t ORDER BY id",
        t=table_location(catalog, TABLE),
    )

    assert rows[0] == (
        "full",
        -128,
        32767,
        -(2**31),
        2**63 - 1,
        1.5,
        0.1,
        True,
        b"\x00\xff",
        dt.date(2022, 1, 8),
        AT_US,
        dt.datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=dt.UTC),
        86_400_000_001,
        '{"k": [1, 2]}',
        "2",
        ["a", "ÿ"],
        {"x": 3},
        "web",
        ["t1"],
    )
    assert rows[1] == ("nulls",) + (None,) * 14 + ([], {}, None, None)


def test_c03_millisecond_value_is_a_different_instant(setup):
    catalog, running, client, (client_id, secret) = setup
    stream = client.create_stream(client_id, secret, TableProperties(TABLE))
    stream.ingest_records_offset(
        [
            json.dumps({"id": "micros", "at": AT_US}),
            json.dumps({"id": "millis", "at": AT_US // 1000}),
            json.dumps(
                {
                    "id": "iso",
                    "at": "2023-11-14T22:13:20.123456+00:00",
                    "day": "2022-01-08",
                    "v": {"k": [1, 2]},
                }
            ),
        ]
    )
    stream.flush()
    stream.close()
    settle(running)

    rows = sql(
        'SELECT id, epoch_us("at"), day, v FROM t ORDER BY id',
        t=table_location(catalog, TABLE),
    )

    assert rows == [
        ("iso", AT_US, dt.date(2022, 1, 8), '{"k":[1,2]}'),
        ("micros", AT_US, None, None),
        ("millis", AT_US // 1000, None, None),
    ]
