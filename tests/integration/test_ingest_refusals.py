"""Bad input from the official SDK gets a terminal, precise error (C09, C11, C14, C16).

Nothing of a refused message is written, and the client does not retry it.
"""

from __future__ import annotations

import json

import pytest
from zerobus import (
    HeadersProvider,
    NonRetriableException,
    StreamConfigurationOptions,
    TableProperties,
)

from tests.integration.ingest_support import (
    FDP,
    count_rows,
    create_table,
    ingest_server,
    message_class,
    read_rows,
    sdk,
    settle,
    writer,
)

TABLE = "main.chatbot.turns"
OTHER = "main.chatbot.secret"
COLUMNS = (
    "telemetry_id STRING NOT NULL, user_message STRING, response_time_ms BIGINT, "
    "tiny TINYINT, payload VARIANT, ingestion_time TIMESTAMP"
)
PROPS = {"chatlake.ingestion_time": "ingestion_time"}
FIELDS = [
    ("telemetry_id", FDP.TYPE_STRING, FDP.LABEL_REQUIRED),
    ("user_message", FDP.TYPE_STRING, FDP.LABEL_OPTIONAL),
    ("response_time_ms", FDP.TYPE_INT64, FDP.LABEL_OPTIONAL),
    ("tiny", FDP.TYPE_INT32, FDP.LABEL_OPTIONAL),
    ("payload", FDP.TYPE_STRING, FDP.LABEL_OPTIONAL),
]
# Failures must be final at once; never spend the flush timeout on them.
QUICK = StreamConfigurationOptions(flush_timeout_ms=20_000, recovery_backoff_ms=200)


@pytest.fixture
def setup(catalog_server):
    create_table(catalog_server, TABLE, COLUMNS, PROPS)
    create_table(catalog_server, OTHER, "x STRING")
    credentials = writer(catalog_server, "bot", TABLE)
    with ingest_server(catalog_server) as running:
        yield catalog_server, running, sdk(running, catalog_server), credentials


def refused_json(setup, records: list) -> str:
    catalog, running, client, (client_id, secret) = setup
    stream = client.create_stream(client_id, secret, TableProperties(TABLE), QUICK)
    stream.ingest_record_offset(json.dumps({"telemetry_id": "good"}))
    stream.flush()
    with pytest.raises(NonRetriableException) as caught:
        stream.ingest_records_offset(records)
        stream.flush()
    stream.close()
    settle(running)
    assert count_rows(catalog, TABLE) == 1  # only the good record, acked before
    return str(caught.value)


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        (["12345"], "offset 1: record 0: expected a JSON object, got an integer"),
        (["[1, 2]"], "offset 1: record 0: expected a JSON object, got an array"),
        (['"text"'], "offset 1: record 0: expected a JSON object, got a string"),
        (
            ['{"telemetry_id": "a"}', '{"user_message": "no id"}'],
            "offset 1: record 1: column 'telemetry_id': NOT NULL column is missing "
            "or null",
        ),
        (
            ['{"telemetry_id": "a", "mood": "happy"}'],
            "offset 1: record 0: column 'mood': unknown field in the table",
        ),
        (
            ['{"telemetry_id": "a", "response_time_ms": "fast"}'],
            "offset 1: record 0: column 'response_time_ms': expected an integer "
            "(BIGINT), got a string",
        ),
    ],
)
def test_c11_bad_json_records_refuse_their_message(setup, records, expected):
    message = refused_json(setup, [json.dumps(json.loads(r)) for r in records])

    # The SDK names the status "Invalid argument" or, when the refusal reaches
    # it another way, gRPC's "Client specified an invalid argument".
    assert "invalid argument" in message.lower()
    assert expected in message


def proto_refusal(setup, record: bytes) -> str:
    catalog, running, client, (client_id, secret) = setup
    Chat = message_class(FIELDS)
    props = TableProperties(TABLE, Chat.DESCRIPTOR)
    stream = client.create_stream(client_id, secret, props, QUICK)
    stream.ingest_record(Chat(telemetry_id="good").SerializeToString()).wait_for_ack()
    with pytest.raises(NonRetriableException) as caught:
        stream.ingest_record_offset(record)
        stream.flush()
    stream.close()
    settle(running)
    assert count_rows(catalog, TABLE) == 1
    return str(caught.value)


def test_c14_random_bytes_on_a_proto_stream_are_terminal(setup):
    message = proto_refusal(setup, bytes(range(255, 200, -1)))

    assert "offset 1: record 0: bytes are not a valid protobuf Chat message" in message


def test_c16_invalid_utf8_in_a_string_field_is_refused(setup):
    # Field 1 (telemetry_id), length-delimited, bytes that are not UTF-8.
    message = proto_refusal(setup, b"\x0a\x03\xc3\x28\xff")

    assert "column 'telemetry_id': string is not valid UTF-8" in message


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"payload": "{oops"}, "column 'payload': VARIANT value is not valid JSON"),
        (
            {"tiny": 300},
            "column 'tiny': value is out of range for TINYINT (-128 to 127)",
        ),
    ],
)
def test_c03_variant_that_is_not_json_and_tinyint_overflow_are_refused(
    setup, values, expected
):
    Chat = message_class(FIELDS)
    message = proto_refusal(setup, Chat(telemetry_id="v", **values).SerializeToString())

    assert f"offset 1: record 0: {expected}" in message


def test_c16_unicode_text_round_trips_exactly(setup):
    catalog, running, client, (client_id, secret) = setup
    texts = [
        "emoji 👋🏽🎉",
        "中文 日本語 한국어",
        "עברית مرحبا بالعالم",
        "a\u0301 e\u200d",
    ]
    Chat = message_class(FIELDS)
    proto = client.create_stream(
        client_id, secret, TableProperties(TABLE, Chat.DESCRIPTOR), QUICK
    )
    for i, text in enumerate(texts):
        proto.ingest_record_offset(Chat(telemetry_id=f"p{i}", user_message=text))
    proto.flush()
    proto.close()
    stream = client.create_stream(client_id, secret, TableProperties(TABLE), QUICK)
    stream.ingest_records_offset(
        [
            json.dumps({"telemetry_id": f"j{i}", "user_message": t})
            for i, t in enumerate(texts)
        ]
    )
    stream.flush()
    stream.close()
    settle(running)

    rows = read_rows(catalog, TABLE, "telemetry_id")
    assert [r["user_message"] for r in rows] == texts + texts


def test_c09_token_for_table_a_cannot_open_table_b(setup):
    _, _, client, (client_id, secret) = setup

    with pytest.raises(NonRetriableException) as caught:
        client.create_stream(client_id, secret, TableProperties(OTHER), QUICK)

    message = str(caught.value)
    assert "main.chatbot.secret" in message
    # The token asked for the other table: the catalog or the server names the gap.
    assert "MODIFY" in message or "SELECT" in message


class StaticToken(HeadersProvider):
    def __init__(self, token: str, table: str) -> None:
        super().__init__()
        self.token, self.table = token, table

    def get_headers(self):
        return [
            ("authorization", f"Bearer {self.token}"),
            ("x-databricks-zerobus-table-name", self.table),
        ]


def token_for(catalog, client_id, secret, table: str) -> str:
    from chatlake.catalog.client import CatalogClient

    cat, schema, _ = table.split(".")
    details = [
        {
            "type": "unity_catalog_privileges",
            "object_type": "CATALOG",
            "object_full_path": cat,
            "privileges": ["USE CATALOG"],
        },
        {
            "type": "unity_catalog_privileges",
            "object_type": "SCHEMA",
            "object_full_path": f"{cat}.{schema}",
            "privileges": ["USE SCHEMA"],
        },
        {
            "type": "unity_catalog_privileges",
            "object_type": "TABLE",
            "object_full_path": table,
            "privileges": ["SELECT", "MODIFY"],
        },
    ]
    with CatalogClient(catalog.url, client_id, secret) as principal:
        return principal.token(details)


def test_c09_server_refuses_a_valid_token_used_on_another_table(setup):
    catalog, running, client, (client_id, secret) = setup
    token = token_for(catalog, client_id, secret, TABLE)

    with pytest.raises(NonRetriableException) as caught:
        client.create_stream(
            table_properties=TableProperties(OTHER),
            options=QUICK,
            headers_provider=StaticToken(token, OTHER),
        )

    message = str(caught.value)
    assert (
        f"principal '{client_id}' may not write table main.chatbot.secret: the token "
        f"lacks MODIFY on TABLE main.chatbot.secret"
    ) in message


def test_custom_headers_provider_with_a_catalog_token_streams(setup):
    catalog, running, client, (client_id, secret) = setup
    token = token_for(catalog, client_id, secret, TABLE)
    stream = client.create_stream(
        table_properties=TableProperties(TABLE),
        options=QUICK,
        headers_provider=StaticToken(token, TABLE),
    )
    stream.ingest_record_offset(json.dumps({"telemetry_id": "h1"}))
    stream.flush()
    stream.close()
    settle(running)

    assert [r["telemetry_id"] for r in read_rows(catalog, TABLE, "telemetry_id")] == [
        "h1"
    ]


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("not-a-jwt", "token rejected for table main.chatbot.turns"),
        ("", "no bearer token for table main.chatbot.turns"),
    ],
)
def test_bad_tokens_are_unauthenticated(setup, token, expected):
    _, _, client, _ = setup

    with pytest.raises(NonRetriableException) as caught:
        client.create_stream(
            table_properties=TableProperties(TABLE),
            options=QUICK,
            headers_provider=StaticToken(token, TABLE),
        )

    assert expected in str(caught.value)


def test_unknown_table_is_not_found(setup):
    catalog, _, client, _ = setup
    token = catalog.admin_client.token()

    with pytest.raises(NonRetriableException) as caught:
        client.create_stream(
            table_properties=TableProperties("main.chatbot.nope"),
            options=QUICK,
            headers_provider=StaticToken(token, "main.chatbot.nope"),
        )

    assert "table main.chatbot.nope does not exist in the catalog" in str(caught.value)


def test_avro_streams_are_unimplemented(setup):
    _, _, client, (client_id, secret) = setup
    schema = json.dumps(
        {
            "type": "record",
            "name": "Chat",
            "fields": [{"name": "telemetry_id", "type": "string"}],
        }
    )

    with pytest.raises(NonRetriableException) as caught:
        client.create_stream(
            client_id, secret, TableProperties(TABLE, avro_schema=schema), QUICK
        )

    assert "AVRO streams are not supported (table main.chatbot.turns)" in str(
        caught.value
    )


def test_descriptor_that_does_not_fit_names_column_and_types(setup):
    _, _, client, (client_id, secret) = setup
    Wrong = message_class(
        [
            ("telemetry_id", FDP.TYPE_STRING, FDP.LABEL_REQUIRED),
            ("response_time_ms", FDP.TYPE_STRING, FDP.LABEL_OPTIONAL),
        ]
    )

    with pytest.raises(NonRetriableException) as caught:
        client.create_stream(
            client_id, secret, TableProperties(TABLE, Wrong.DESCRIPTOR), QUICK
        )

    assert (
        "table main.chatbot.turns: column 'response_time_ms' has type BIGINT but "
        "field 'response_time_ms' is optional string"
    ) in str(caught.value)
