"""Event helpers fill ids and times; the encoder redacts only message fields."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from google.protobuf import descriptor_pb2

from chatlake.telemetry import TurnTimer, new_chat_turn, new_feedback
from chatlake.telemetry.events import Encoder, file_descriptor_bytes
from chatlake.telemetry.events_pb2 import ChatTurn, Feedback
from chatlake.telemetry.redaction import Redactor


def test_new_chat_turn_fills_id_time_and_status():
    before = time.time_ns() // 1000
    turn = new_chat_turn(user_message="hi")
    assert uuid.UUID(turn.telemetry_id).version == 4
    assert before <= turn.event_time <= time.time_ns() // 1000
    assert turn.status == "ok"


def test_new_feedback_checks_the_rating():
    rating = new_feedback("turn-1", -1, comment="wrong")
    assert (rating.telemetry_id, rating.rating, rating.comment) == (
        "turn-1",
        -1,
        "wrong",
    )
    assert uuid.UUID(rating.feedback_id)
    with pytest.raises(ValueError, match="rating must be \\+1 or -1, got 5"):
        new_feedback("turn-1", 5)


def test_turn_timer_measures_response_and_first_token():
    timer = TurnTimer()
    time.sleep(0.02)  # the measured interval itself, not a wait for an event
    timer.first_token()
    time.sleep(0.02)
    turn = timer.turn(user_message="q", assistant_message="a")
    assert turn.event_time == timer.started_us
    assert 20 <= turn.ttft_ms < turn.response_time_ms
    assert turn.response_time_ms >= 40


def test_encoder_fills_missing_id_and_time_from_track():
    encoder = Encoder(None, 1000)
    decoded = ChatTurn.FromString(encoder.encode_message(ChatTurn(), tracked_us=42))
    assert decoded.event_time == 42
    assert uuid.UUID(decoded.telemetry_id)
    rating = Feedback(telemetry_id="t", rating=1)
    decoded = Feedback.FromString(encoder.encode_message(rating, tracked_us=7))
    assert (decoded.telemetry_id, decoded.event_time) == ("t", 7)
    assert uuid.UUID(decoded.feedback_id)


def test_encoder_does_not_change_the_callers_message():
    turn = ChatTurn(user_message="me@example.com")
    Encoder(Redactor(), 1000).encode_message(turn, tracked_us=1)
    assert turn.user_message == "me@example.com"
    assert not turn.HasField("telemetry_id")


def test_redaction_touches_message_fields_but_not_ids():
    encoder = Encoder(Redactor(), 1000)
    turn = new_chat_turn(
        user_id="me@example.com", user_message="mail me@example.com", model="gpt"
    )
    decoded = ChatTurn.FromString(encoder.encode_message(turn, tracked_us=1))
    assert decoded.user_message == "mail [EMAIL]"
    assert decoded.user_id == "me@example.com"
    assert decoded.model == "gpt"


def test_json_records_are_redacted_by_field_name():
    encoder = Encoder(Redactor(), 1000)
    payload = encoder.encode_json(
        {"user_message": "ip 10.1.2.3", "n": 3, "user_id": "10.1.2.3"}, tracked_us=1
    )
    assert json.loads(payload) == {
        "user_message": "ip [IP]",
        "n": 3,
        "user_id": "10.1.2.3",
    }


def test_descriptor_is_a_file_with_exactly_that_message():
    file_proto = descriptor_pb2.FileDescriptorProto.FromString(
        file_descriptor_bytes(Feedback.DESCRIPTOR)
    )
    assert [m.name for m in file_proto.message_type] == ["Feedback"]
    assert [f.name for f in file_proto.message_type[0].field][:2] == [
        "feedback_id",
        "telemetry_id",
    ]
