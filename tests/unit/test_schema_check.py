"""The stream descriptor against the table's columns: names, types, labels (C01)."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import descriptor_pb2

from chatlake.ingest.errors import StreamRefused
from chatlake.ingest.schema_check import check_descriptor
from chatlake.types import parse_columns

FDP = descriptor_pb2.FieldDescriptorProto
OPT, REQ, REP = FDP.LABEL_OPTIONAL, FDP.LABEL_REQUIRED, FDP.LABEL_REPEATED


def field(message, name, kind, label=OPT, type_name=None):
    added = message.field.add(
        name=name, number=len(message.field) + 1, type=kind, label=label
    )
    if type_name:
        added.type_name = type_name
    return added


def chat_message(metadata_ref: str) -> descriptor_pb2.DescriptorProto:
    message = descriptor_pb2.DescriptorProto(name="Chat")
    field(message, "telemetry_id", FDP.TYPE_STRING, REQ)
    field(message, "metadata", FDP.TYPE_MESSAGE, OPT, metadata_ref)
    nested = message.nested_type.add(name="Metadata")
    field(nested, "source", FDP.TYPE_STRING)
    field(nested, "tags", FDP.TYPE_STRING, REP)
    return message


COLUMNS = parse_columns(
    "telemetry_id STRING NOT NULL, "
    "metadata STRUCT<source: STRING, tags: ARRAY<STRING>>, "
    "ingestion_time TIMESTAMP"
)
STAMPED = frozenset({"ingestion_time"})


def refusal(descriptor, columns=COLUMNS) -> StreamRefused:
    with pytest.raises(StreamRefused) as caught:
        check_descriptor(descriptor.SerializeToString(), columns, STAMPED)
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    return caught.value


@pytest.mark.parametrize(
    "ref", ["Metadata", ".Chat.Metadata", ".some.pkg.Chat.Metadata", "Chat.Metadata"]
)
def test_nested_struct_resolves_by_relative_or_qualified_name(ref):
    checked = check_descriptor(chat_message(ref).SerializeToString(), COLUMNS, STAMPED)

    assert checked.message.field[1].type_name == ".chatlake_stream.Chat.Metadata"
    assert checked.full_name == "chatlake_stream.Chat"


def test_unknown_nested_reference_is_refused():
    error = refusal(chat_message(".Other"))

    assert str(error) == (
        "field 'metadata' refers to message type '.Other', which is not nested in "
        "the descriptor (nested messages are the only types a stream can carry)"
    )


def test_type_mismatch_names_column_and_both_types():
    message = chat_message("Metadata")
    message.nested_type[0].field[0].type = FDP.TYPE_INT64

    assert str(refusal(message)) == (
        "column 'metadata.source' has type STRING but field 'source' is optional int64"
    )


def test_optional_field_for_not_null_column_is_refused():
    message = chat_message("Metadata")
    message.field[0].label = OPT

    assert str(refusal(message)) == (
        "column 'telemetry_id' is NOT NULL: field 'telemetry_id' must be required, "
        "not optional"
    )


def test_required_field_for_nullable_column_is_refused():
    message = chat_message("Metadata")
    message.field[1].label = REQ

    assert "column 'metadata' is nullable: field 'metadata' must be optional" in str(
        refusal(message)
    )


def test_extra_field_and_stamped_field_are_refused():
    extra = chat_message("Metadata")
    field(extra, "mood", FDP.TYPE_STRING)
    stamped = chat_message("Metadata")
    field(stamped, "ingestion_time", FDP.TYPE_INT64)

    assert str(refusal(extra)) == (
        "field 'mood' of message 'Chat' has no column in the table"
    )
    assert str(refusal(stamped)) == (
        "field 'ingestion_time' is filled by the server at ingest; remove it from "
        "the descriptor"
    )


def test_missing_not_null_column_refused_but_missing_nullable_allowed():
    message = descriptor_pb2.DescriptorProto(name="Chat")
    field(message, "telemetry_id", FDP.TYPE_STRING, REQ)
    check_descriptor(message.SerializeToString(), COLUMNS, STAMPED)

    empty = descriptor_pb2.DescriptorProto(name="Chat")
    assert str(refusal(empty)) == (
        "column 'telemetry_id' (STRING, NOT NULL) is missing from message 'Chat'"
    )


def test_every_scalar_of_the_mapping_table_is_accepted():
    columns = parse_columns(
        "a TINYINT, b SMALLINT, c INT, d BIGINT, e FLOAT, f DOUBLE, g STRING, "
        "h BOOLEAN, i BINARY, j DATE, k TIMESTAMP, l TIMESTAMP_NTZ, m VARIANT, "
        "n ARRAY<BIGINT>, o MAP<STRING, INT>"
    )
    kinds = [
        FDP.TYPE_INT32,
        FDP.TYPE_INT32,
        FDP.TYPE_SINT32,
        FDP.TYPE_INT64,
        FDP.TYPE_FLOAT,
        FDP.TYPE_DOUBLE,
        FDP.TYPE_STRING,
        FDP.TYPE_BOOL,
        FDP.TYPE_BYTES,
        FDP.TYPE_INT32,
        FDP.TYPE_INT64,
        FDP.TYPE_INT64,
        FDP.TYPE_STRING,
    ]
    message = descriptor_pb2.DescriptorProto(name="All")
    for column, kind in zip(columns, kinds, strict=False):
        field(message, column.name, kind)
    field(message, "n", FDP.TYPE_INT64, REP)
    field(message, "o", FDP.TYPE_MESSAGE, REP, "OEntry")
    entry = message.nested_type.add(name="OEntry")
    entry.options.map_entry = True
    field(entry, "key", FDP.TYPE_STRING)
    field(entry, "value", FDP.TYPE_INT32)

    checked = check_descriptor(message.SerializeToString(), columns)

    assert [f.name for f in checked.message.field] == [c.name for c in columns]


def test_map_with_wrong_value_type_and_array_without_repeated_are_refused():
    columns = parse_columns("o MAP<STRING, INT>, n ARRAY<BIGINT>")
    message = descriptor_pb2.DescriptorProto(name="M")
    field(message, "o", FDP.TYPE_MESSAGE, REP, "OEntry")
    field(message, "n", FDP.TYPE_INT64, REP)
    entry = message.nested_type.add(name="OEntry")
    entry.options.map_entry = True
    field(entry, "key", FDP.TYPE_STRING)
    field(entry, "value", FDP.TYPE_STRING)

    assert str(refusal(message, columns)) == (
        "column 'o' has type MAP<STRING,INT> but field 'o' is map<string, string>"
    )
    entry.field[1].type = FDP.TYPE_INT32
    message.field[1].label = OPT
    assert str(refusal(message, columns)) == (
        "column 'n' has type ARRAY<BIGINT> but field 'n' is optional int64"
    )


def test_decimal_enum_and_garbage_descriptors_are_refused():
    decimal = descriptor_pb2.DescriptorProto(name="D")
    field(decimal, "price", FDP.TYPE_DOUBLE)
    enum = descriptor_pb2.DescriptorProto(name="E")
    field(enum, "price", FDP.TYPE_ENUM, OPT, "Kind")

    assert "DECIMAL has no protobuf mapping" in str(
        refusal(decimal, parse_columns("price DECIMAL(10,2)"))
    )
    assert str(refusal(enum, parse_columns("price STRING"))) == (
        "field 'price' is a proto enum; no column type maps to it"
    )
    with pytest.raises(StreamRefused, match="not a serialized DescriptorProto"):
        check_descriptor(b"\xff\xff\xff", COLUMNS)
