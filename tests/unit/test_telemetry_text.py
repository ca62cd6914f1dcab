"""C16 on the client side: multi-byte text survives; cuts never split a character."""

from __future__ import annotations

import pytest

from chatlake.telemetry.events import Encoder, new_chat_turn
from chatlake.telemetry.events_pb2 import ChatTurn
from chatlake.telemetry.redaction import Redactor
from chatlake.telemetry.truncation import TRUNCATION_MARKER, clean_text, truncate_utf8

MIXED = "Grüße 👋🏽 from 東京 and שלום עולם and مرحبا 🇯🇵"


def test_text_under_the_limit_is_unchanged():
    assert truncate_utf8(MIXED, 1000) == MIXED


@pytest.mark.parametrize("limit", range(0, len(MIXED.encode()) + 1))
def test_every_cut_is_valid_utf8_within_the_limit(limit):
    cut = truncate_utf8(MIXED, limit)
    encoded = cut.encode("utf-8")
    assert len(encoded) <= limit
    if cut != MIXED and limit >= len(TRUNCATION_MARKER.encode()):
        assert cut.endswith(TRUNCATION_MARKER)
        assert MIXED.startswith(cut[: -len(TRUNCATION_MARKER)])


def test_cut_in_the_middle_of_an_emoji_drops_the_whole_emoji():
    text = "ab😀" + "c" * 50  # the emoji is bytes 2..5
    marker_size = len(TRUNCATION_MARKER.encode())
    assert truncate_utf8(text, 2 + 3 + marker_size) == "ab" + TRUNCATION_MARKER
    assert truncate_utf8(text, 2 + 4 + marker_size) == "ab😀" + TRUNCATION_MARKER


def test_lone_surrogates_become_replacement_characters():
    assert clean_text("ok\ud83dbad") == "ok\ufffdbad"
    assert clean_text(MIXED) == MIXED


def test_encoded_turn_round_trips_mixed_scripts_exactly():
    encoder = Encoder(Redactor(), max_text_bytes=32 * 1024)
    turn = new_chat_turn(user_message=MIXED, assistant_message="日本語で答えます 🙂")
    decoded = ChatTurn.FromString(encoder.encode_message(turn, tracked_us=1))
    assert decoded.user_message == MIXED
    assert decoded.assistant_message == "日本語で答えます 🙂"


def test_encoder_truncates_before_sending():
    encoder = Encoder(None, max_text_bytes=20)
    turn = new_chat_turn(user_message="😀" * 10)
    decoded = ChatTurn.FromString(encoder.encode_message(turn, tracked_us=1))
    assert decoded.user_message == "😀" + TRUNCATION_MARKER


def test_json_records_with_lone_surrogates_are_cleaned_not_refused():
    encoder = Encoder(None, max_text_bytes=100)
    payload = encoder.encode_json({"user_message": "bad\udc80"}, tracked_us=1)
    assert payload.decode("utf-8") == '{"user_message": "bad\ufffd"}'
