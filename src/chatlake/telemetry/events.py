"""Chat events: helpers that fill ids and times, and the encoding for the wire.

``ChatTurn`` and ``Feedback`` are the protobuf messages of ``events.proto``.
``TurnTimer`` measures a turn as the app hands it over: start, first token,
end. ``Encoder`` turns any tracked record into spool bytes, after cleaning,
redacting and truncating its text fields.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from chatlake.telemetry.events_pb2 import ChatTurn, Feedback
from chatlake.telemetry.redaction import Redactor
from chatlake.telemetry.spool import StreamFormat
from chatlake.telemetry.truncation import clean_text, truncate_utf8

CHAT_KEY = "@chat"
FEEDBACK_KEY = "@feedback"

REDACTED_FIELDS = frozenset(
    {"user_message", "assistant_message", "error_message", "comment"}
)
_ID_FIELDS = ("telemetry_id", "feedback_id")

__all__ = ["ChatTurn", "Feedback", "TurnTimer", "new_chat_turn", "new_feedback"]


def now_us() -> int:
    return time.time_ns() // 1000


def new_chat_turn(**fields: object) -> ChatTurn:
    """A ChatTurn with a fresh ``telemetry_id`` and ``event_time`` unless given."""
    fields.setdefault("telemetry_id", str(uuid.uuid4()))
    fields.setdefault("event_time", now_us())
    fields.setdefault("status", "ok")
    return ChatTurn(**_cleaned(fields))


def new_feedback(telemetry_id: str, rating: int, **fields: object) -> Feedback:
    """A rating (+1 or -1) of the turn ``telemetry_id``."""
    if rating not in (1, -1):
        raise ValueError(f"rating must be +1 or -1, got {rating!r}")
    fields.setdefault("feedback_id", str(uuid.uuid4()))
    fields.setdefault("event_time", now_us())
    fields = _cleaned({"telemetry_id": telemetry_id, **fields})
    return Feedback(rating=rating, **fields)


def _cleaned(fields: dict[str, object]) -> dict[str, object]:
    """Lone surrogates (text a browser may send) become U+FFFD: protobuf refuses
    them, and these helpers must not raise on what a user typed."""
    return {
        key: clean_text(value) if isinstance(value, str) else value
        for key, value in fields.items()
    }


class TurnTimer:
    """Measures one turn: created when the request starts.

    Call ``first_token()`` when streaming output begins and ``turn(...)`` at the
    end; it fills ``event_time`` (the start), ``response_time_ms`` and ``ttft_ms``.
    """

    def __init__(self) -> None:
        self.started_us = now_us()
        self._started = time.perf_counter()
        self._first_token: float | None = None

    def first_token(self) -> None:
        if self._first_token is None:
            self._first_token = time.perf_counter()

    def turn(self, **fields: object) -> ChatTurn:
        ended = time.perf_counter()
        fields.setdefault("event_time", self.started_us)
        fields.setdefault("response_time_ms", round((ended - self._started) * 1000))
        if self._first_token is not None:
            ttft_ms = round((self._first_token - self._started) * 1000)
            fields.setdefault("ttft_ms", ttft_ms)
        return new_chat_turn(**fields)


def stream_format_of(message: Message) -> StreamFormat:
    """The ``proto`` format with a one-message FileDescriptorProto, as the SDK wants."""
    return StreamFormat("proto", file_descriptor_bytes(message.DESCRIPTOR))


def file_descriptor_bytes(descriptor: Descriptor) -> bytes:
    message_proto = descriptor_pb2.DescriptorProto()
    descriptor.CopyToProto(message_proto)
    file_proto = descriptor_pb2.FileDescriptorProto(
        name=f"{descriptor.name.lower()}.proto",
        syntax="proto2",
        message_type=[message_proto],
    )
    return file_proto.SerializeToString()


JSON_FORMAT = StreamFormat("json")


@dataclass(frozen=True)
class Encoder:
    """Cleans, redacts and truncates text, then encodes a record for the spool."""

    redactor: Redactor | None
    max_text_bytes: int

    def encode_message(self, message: Message, tracked_us: int) -> bytes:
        copy = type(message)()
        copy.CopyFrom(message)
        self._fill_defaults(copy, tracked_us)
        for field, value in copy.ListFields():
            if field.type == FieldDescriptor.TYPE_STRING and _is_scalar(field):
                setattr(copy, field.name, self.text(field.name, value))
        return copy.SerializeToString()

    def encode_json(self, record: Mapping[str, object], tracked_us: int) -> bytes:
        cleaned = {
            key: self.text(key, value) if isinstance(value, str) else value
            for key, value in record.items()
        }
        return json.dumps(cleaned, ensure_ascii=False).encode("utf-8")

    def text(self, field_name: str, value: str) -> str:
        value = clean_text(value)
        if self.redactor is not None and field_name in REDACTED_FIELDS:
            value = self.redactor.redact(value)
        return truncate_utf8(value, self.max_text_bytes)

    def _fill_defaults(self, message: Message, tracked_us: int) -> None:
        fields = message.DESCRIPTOR.fields_by_name
        if "event_time" in fields and not message.HasField("event_time"):
            message.event_time = tracked_us
        own_id = _ID_FIELDS[1] if "feedback_id" in fields else _ID_FIELDS[0]
        if own_id in fields and not message.HasField(own_id):
            setattr(message, own_id, str(uuid.uuid4()))


def _is_scalar(field: FieldDescriptor) -> bool:
    return not field.message_type and not field.is_repeated
