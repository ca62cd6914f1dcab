"""JSON text can spell a lone UTF-16 surrogate (``"\\ud800"``) that no UTF-8
string can hold. Wherever it sits, the SDK gets INVALID_ARGUMENT naming the
offset, record and field, nothing of the message is written, and surrogate
pairs (``json.dumps`` of an emoji) still round-trip.
"""

from __future__ import annotations

import json

import pytest
from zerobus import NonRetriableException, StreamConfigurationOptions, TableProperties

from tests.integration.ingest_support import (
    count_rows,
    create_table,
    ingest_server,
    read_rows,
    sdk,
    settle,
    writer,
)

TABLE = "main.chatbot.texts"
COLUMNS = (
    "telemetry_id STRING NOT NULL, user_message STRING, tags ARRAY<STRING>, "
    "meta STRUCT<source: STRING, labels: ARRAY<STRING>>, "
    "attrs MAP<STRING, STRING>, payload VARIANT, blob BINARY"
)
QUICK = StreamConfigurationOptions(flush_timeout_ms=20_000, recovery_backoff_ms=200)
LONE = "\ud800"


@pytest.fixture
def setup(catalog_server):
    create_table(catalog_server, TABLE, COLUMNS)
    credentials = writer(catalog_server, "texts_bot", TABLE)
    with ingest_server(catalog_server) as running:
        yield catalog_server, running, sdk(running, catalog_server), credentials


def open_stream(setup):
    _, _, client, (client_id, secret) = setup
    return client.create_stream(client_id, secret, TableProperties(TABLE), QUICK)


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"user_message": LONE}, "column 'user_message'"),
        ({"tags": ["fine", "a" + LONE]}, "column 'tags[]'"),
        ({"meta": {"source": LONE}}, "column 'meta.source'"),
        ({"meta": {"labels": [LONE]}}, "column 'meta.labels[]'"),
        ({"attrs": {"k": LONE}}, "column 'attrs.k'"),
        ({"attrs": {LONE: "v"}}, "a key in column 'attrs'"),
        ({"payload": {"x": [LONE]}}, "column 'payload.x[]'"),
        ({"blob": LONE}, "column 'blob'"),
        ({LONE: 1}, "a field name"),
    ],
)
def test_lone_surrogate_is_invalid_argument_naming_the_field(setup, fields, where):
    catalog, running, _, _ = setup
    stream = open_stream(setup)
    stream.ingest_record_offset(json.dumps({"telemetry_id": "good"}))
    stream.flush()
    records = [
        json.dumps({"telemetry_id": "j0"}),
        json.dumps({"telemetry_id": "j11", **fields}),
    ]
    with pytest.raises(NonRetriableException) as caught:
        stream.ingest_records_offset(records)
        stream.flush()
    stream.close()
    settle(running)

    message = str(caught.value)
    assert "invalid argument" in message.lower()
    expected = (
        f"offset 1: record 1: {where}: text is not valid UTF-8 (a lone surrogate)"
    )
    assert expected in message
    assert count_rows(catalog, TABLE) == 1


def test_upper_case_escape_and_low_surrogate_alone_are_refused(setup):
    stream = open_stream(setup)
    records = [
        '{"telemetry_id": "u", "tags": ["\\uD800"]}',
        '{"telemetry_id": "\\udc00"}',
    ]
    for index, record in enumerate(records):
        with pytest.raises(NonRetriableException) as caught:
            stream.ingest_records_offset([record])
            stream.flush()
        stream.close()
        column = ("tags[]", "telemetry_id")[index]
        assert f"record 0: column '{column}': text is not valid UTF-8" in str(
            caught.value
        )
        stream = open_stream(setup)
    stream.close()


def test_surrogate_pairs_and_escaped_backslashes_round_trip(setup):
    catalog, running, _, _ = setup
    texts = ["emoji \U0001f44b\U0001f3fd", "literal \\ud800 text", "\u00e9\u4e2d"]
    stream = open_stream(setup)
    offset = stream.ingest_records_offset(
        [
            json.dumps({"telemetry_id": f"t{i}", "user_message": text, "tags": [text]})
            for i, text in enumerate(texts)
        ]
    )
    stream.wait_for_offset(offset)
    stream.close()
    settle(running)

    rows = read_rows(catalog, TABLE, "telemetry_id")
    assert [(r["user_message"], r["tags"]) for r in rows] == [(t, [t]) for t in texts]
