"""Protobuf and JSON records into Arrow batches of the table's schema (C03, C11,
C14, C16)."""

from __future__ import annotations

import json

import grpc
import pyarrow as pa
import pytest
from google.protobuf import descriptor_pb2

from chatlake.ingest.decode import Decoder
from chatlake.ingest.errors import StreamRefused
from chatlake.ingest.schema_check import check_descriptor
from chatlake.types import parse_columns

FDP = descriptor_pb2.FieldDescriptorProto
OPT, REQ, REP = FDP.LABEL_OPTIONAL, FDP.LABEL_REQUIRED, FDP.LABEL_REPEATED

COLUMNS = parse_columns(
    "id STRING NOT NULL, tiny TINYINT, small SMALLINT, n INT, big BIGINT, "
    "f FLOAT, d DOUBLE, ok BOOLEAN, raw BINARY, day DATE, at TIMESTAMP, "
    "local TIMESTAMP_NTZ, v VARIANT, tags ARRAY<STRING>, "
    "counts MAP<STRING, BIGINT>, meta STRUCT<source: STRING, score: INT>, "
    "ingestion_time TIMESTAMP"
)
STAMPED = frozenset({"ingestion_time"})
KINDS = {
    "id": (FDP.TYPE_STRING, REQ),
    "tiny": (FDP.TYPE_INT32, OPT),
    "small": (FDP.TYPE_INT32, OPT),
    "n": (FDP.TYPE_INT32, OPT),
    "big": (FDP.TYPE_INT64, OPT),
    "f": (FDP.TYPE_FLOAT, OPT),
    "d": (FDP.TYPE_DOUBLE, OPT),
    "ok": (FDP.TYPE_BOOL, OPT),
    "raw": (FDP.TYPE_BYTES, OPT),
    "day": (FDP.TYPE_INT32, OPT),
    "at": (FDP.TYPE_INT64, OPT),
    "local": (FDP.TYPE_INT64, OPT),
    "v": (FDP.TYPE_STRING, OPT),
    "tags": (FDP.TYPE_STRING, REP),
}


def descriptor() -> descriptor_pb2.DescriptorProto:
    message = descriptor_pb2.DescriptorProto(name="Row")
    for number, (name, (kind, label)) in enumerate(KINDS.items(), start=1):
        message.field.add(name=name, number=number, type=kind, label=label)
    message.field.add(
        name="counts",
        number=20,
        type=FDP.TYPE_MESSAGE,
        label=REP,
        type_name="CountsEntry",
    )
    message.field.add(
        name="meta", number=21, type=FDP.TYPE_MESSAGE, label=OPT, type_name=".Row.Meta"
    )
    entry = message.nested_type.add(name="CountsEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=FDP.TYPE_STRING, label=OPT)
    entry.field.add(name="value", number=2, type=FDP.TYPE_INT64, label=OPT)
    meta = message.nested_type.add(name="Meta")
    meta.field.add(name="source", number=1, type=FDP.TYPE_STRING, label=OPT)
    meta.field.add(name="score", number=2, type=FDP.TYPE_INT32, label=OPT)
    return message


@pytest.fixture(scope="module")
def proto_decoder() -> Decoder:
    checked = check_descriptor(descriptor().SerializeToString(), COLUMNS, STAMPED)
    return Decoder(COLUMNS, STAMPED, checked)


@pytest.fixture(scope="module")
def json_decoder() -> Decoder:
    return Decoder(COLUMNS, STAMPED)


FULL = {
    "id": "t-1",
    "tiny": -128,
    "small": 32767,
    "n": -(2**31),
    "big": 2**63 - 1,
    "f": 1.5,
    "d": 0.1,
    "ok": True,
    "day": 19000,
    "at": 1_700_000_000_123_456,
    "local": 86_400_000_001,
    "v": '{"a": [1, 2]}',
    "tags": ["x", "ÿ"],
    "counts": {"a": 1},
    "meta": {"source": "web", "score": 7},
}


def encode(decoder: Decoder, values: dict) -> bytes:
    message = decoder.message_class()
    for name, value in values.items():
        if name == "counts":
            message.counts.update(value)
        elif name == "meta":
            for key, inner in value.items():
                setattr(message.meta, key, inner)
        elif name == "tags":
            message.tags.extend(value)
        else:
            setattr(message, name, value)
    return message.SerializePartialToString()


def refusal(decoder: Decoder, records) -> str:
    with pytest.raises(StreamRefused) as caught:
        decoder.decode(records, offset=7)
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    return str(caught.value)


def expected_row() -> dict:
    row = dict(FULL, raw=b"\x00\xff", counts=[("a", 1)])
    return row


def test_proto_every_type_round_trips_exactly(proto_decoder):
    values = dict(FULL, raw=b"\x00\xff")
    batch = proto_decoder.decode([encode(proto_decoder, values)], offset=0)

    row = batch.to_pylist()[0]
    stamped = row.pop("ingestion_time")
    assert batch.schema == proto_decoder.schema
    assert stamped.tzinfo is not None
    assert batch.column("at").to_pylist() == [
        pa.scalar(1_700_000_000_123_456, pa.timestamp("us", tz="UTC")).as_py()
    ]
    assert batch.column("at").cast(pa.int64()).to_pylist() == [1_700_000_000_123_456]
    assert batch.column("local").cast(pa.int64()).to_pylist() == [86_400_000_001]
    assert batch.column("day").cast(pa.int32()).to_pylist() == [19000]
    for name in (
        "id",
        "tiny",
        "small",
        "n",
        "big",
        "f",
        "d",
        "ok",
        "raw",
        "v",
        "tags",
        "counts",
        "meta",
    ):
        assert row[name] == expected_row()[name], name


def test_proto_unset_optionals_are_nulls(proto_decoder):
    batch = proto_decoder.decode([encode(proto_decoder, {"id": "only"})], offset=0)

    row = batch.to_pylist()[0]
    assert row["id"] == "only"
    assert [row[n] for n in ("tiny", "big", "v", "meta", "at")] == [None] * 5
    assert row["tags"] == [] and row["counts"] == []


def test_json_every_type_round_trips_exactly(json_decoder):
    record = dict(FULL, raw="AP8=", v={"a": [1, 2]})
    batch = json_decoder.decode([json.dumps(record)], offset=0)

    row = batch.to_pylist()[0]
    assert batch.column("at").cast(pa.int64()).to_pylist() == [1_700_000_000_123_456]
    assert row["v"] == '{"a":[1,2]}'
    for name in (
        "id",
        "tiny",
        "small",
        "n",
        "big",
        "ok",
        "raw",
        "tags",
        "counts",
        "meta",
    ):
        assert row[name] == expected_row()[name], name


def test_json_iso_times_and_dates(json_decoder):
    record = {"id": "x", "at": "2024-01-02T03:04:05.000006+00:00", "day": "1970-01-03"}
    batch = json_decoder.decode([json.dumps(record)], offset=0)

    assert batch.column("at").cast(pa.int64()).to_pylist() == [1704164645000006]
    assert batch.column("day").cast(pa.int32()).to_pylist() == [2]


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ("12345", "offset 7: record 0: expected a JSON object, got an integer"),
        ("[1, 2]", "offset 7: record 0: expected a JSON object, got an array"),
        ('"text"', "offset 7: record 0: expected a JSON object, got a string"),
        ("{", "offset 7: record 0: not valid JSON"),
        (
            '{"tiny": 1}',
            "offset 7: record 0: column 'id': NOT NULL column is missing or null",
        ),
        (
            '{"id": "a", "mood": 1}',
            "offset 7: record 0: column 'mood': unknown field in the table",
        ),
        (
            '{"id": "a", "big": "fast"}',
            "offset 7: record 0: column 'big': expected "
            "an integer (BIGINT), got a string",
        ),
        (
            '{"id": "a", "tiny": 128}',
            "offset 7: record 0: column 'tiny': value is out of range for TINYINT "
            "(-128 to 127)",
        ),
        (
            '{"id": "a", "small": -32769}',
            "offset 7: record 0: column 'small': value is out of range for SMALLINT "
            "(-32768 to 32767)",
        ),
        (
            '{"id": "a", "meta": {"x": 1}}',
            "offset 7: record 0: column 'meta.x': unknown field in 'meta'",
        ),
        (
            '{"id": "a", "ingestion_time": 1}',
            "offset 7: record 0: column 'ingestion_time': unknown field in the table",
        ),
    ],
)
def test_json_bad_records_are_refused_naming_offset_field_and_problem(
    json_decoder, record, message
):
    assert refusal(json_decoder, [record]) == message


def test_json_one_bad_record_refuses_the_whole_batch(json_decoder):
    records = ['{"id": "a"}', '{"id": "b", "ok": 1}']

    assert refusal(json_decoder, records) == (
        "offset 7: record 1: column 'ok': expected true or false (BOOLEAN), got an "
        "integer"
    )


def test_proto_random_bytes_are_refused(proto_decoder):
    message = refusal(proto_decoder, [b"\xff\xff\xff\xff\xff\xff\xff"])

    assert message == "offset 7: record 0: bytes are not a valid protobuf Row message"


def test_proto_missing_required_field_is_refused(proto_decoder):
    assert refusal(proto_decoder, [encode(proto_decoder, {"n": 1})]) == (
        "offset 7: record 0: required fields missing: id"
    )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"tiny": 200},
            "column 'tiny': value is out of range for TINYINT (-128 to 127)",
        ),
        (
            {"small": -40000},
            "column 'small': value is out of range for SMALLINT (-32768 to 32767)",
        ),
        ({"v": "not json"}, "column 'v': VARIANT value is not valid JSON"),
    ],
)
def test_proto_values_that_do_not_fit_are_refused(proto_decoder, values, message):
    record = encode(proto_decoder, {"id": "a", **values})

    assert refusal(proto_decoder, [record]) == f"offset 7: record 0: {message}"


def test_proto_invalid_utf8_string_is_refused(proto_decoder):
    # Field 1 (id), wire type 2, two bytes that are not UTF-8.
    assert refusal(proto_decoder, [b"\x0a\x02\xff\xfe"]) == (
        "offset 7: record 0: column 'id': string is not valid UTF-8"
    )


def test_unicode_text_round_trips(proto_decoder, json_decoder):
    text = "héllo 👋 你好 שלום مرحبا"
    from_proto = proto_decoder.decode([encode(proto_decoder, {"id": text})], 0)
    from_json = json_decoder.decode([json.dumps({"id": text})], 0)

    assert from_proto.column("id").to_pylist() == [text]
    assert from_json.column("id").to_pylist() == [text]
