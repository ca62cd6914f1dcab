"""events.proto must describe chatlake.chat_tables column by column."""

from __future__ import annotations

import pytest
from google.protobuf.descriptor import FieldDescriptor

from chatlake.chat_tables import CHAT_EVENTS, FEEDBACK, INGESTION_TIME_PROPERTY
from chatlake.telemetry import events_pb2
from chatlake.types import parse_columns, proto_scalar

PROTO_TYPE_NAMES = {
    FieldDescriptor.TYPE_STRING: "string",
    FieldDescriptor.TYPE_INT64: "int64",
    FieldDescriptor.TYPE_INT32: "int32",
    FieldDescriptor.TYPE_BOOL: "bool",
    FieldDescriptor.TYPE_DOUBLE: "double",
    FieldDescriptor.TYPE_FLOAT: "float",
    FieldDescriptor.TYPE_BYTES: "bytes",
}


def expected_fields(spec):
    stamped = spec.properties[INGESTION_TIME_PROPERTY]
    columns = [c for c in parse_columns(spec.columns) if c.name != stamped]
    return [(c.name, proto_scalar(c.type), not c.nullable) for c in columns]


def actual_fields(descriptor):
    return [
        (f.name, PROTO_TYPE_NAMES[f.type], f.is_required) for f in descriptor.fields
    ]


@pytest.mark.parametrize(
    ("spec", "message"),
    [(CHAT_EVENTS, events_pb2.ChatTurn), (FEEDBACK, events_pb2.Feedback)],
)
def test_message_matches_table(spec, message):
    assert actual_fields(message.DESCRIPTOR) == expected_fields(spec)


def test_ingestion_time_is_left_to_the_server():
    assert "ingestion_time" not in events_pb2.ChatTurn.DESCRIPTOR.fields_by_name
    assert "ingestion_time" not in events_pb2.Feedback.DESCRIPTOR.fields_by_name


def test_chat_turn_has_twenty_fields_in_table_order():
    names = [f.name for f in events_pb2.ChatTurn.DESCRIPTOR.fields]
    assert names[:3] == ["telemetry_id", "event_time", "session_id"]
    assert len(names) == 20
