"""Redaction: each kind of personal data or secret, and what must stay untouched."""

from __future__ import annotations

import pytest

from chatlake.telemetry.redaction import Redactor, luhn_valid


@pytest.fixture(scope="module")
def redact():
    return Redactor().redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to jane.doe+bot@mail.example.co.uk now", "write to [EMAIL] now"),
        ("call +1 415 555 2671 today", "call [PHONE] today"),
        ("or +44 20 7946 0958", "or [PHONE]"),
        ("or +33 1 42 68 53 00", "or [PHONE]"),
        ("or +49-30-901820", "or [PHONE]"),
        ("or (415) 555-2671", "or [PHONE]"),
        ("or 415-555-2671", "or [PHONE]"),
        ("card 4111 1111 1111 1111 ok", "card [CARD] ok"),
        ("card 5500-0000-0000-0004", "card [CARD]"),
        ("amex 378282246310005", "amex [CARD]"),
        ("host 192.168.1.20 down", "host [IP] down"),
        ("v6 2001:db8::8a2e:370:7334 up", "v6 [IP] up"),
        ("loopback ::1", "loopback [IP]"),
        ("Authorization: Bearer abc.DEF-123_456~xyz", "Authorization: Bearer [TOKEN]"),
        (
            "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJlX3BhcnQ",
            "jwt [TOKEN]",
        ),
        ("key sk-proj-abcdefghijklmnop1234", "key [SECRET]"),
        ("gh ghp_abcdefghijklmnopqrstuvwxyz123456", "gh [SECRET]"),
        ("aws AKIAABCDEFGHIJKLMNOP", "aws [SECRET]"),
        ("dbx dapi0123456789abcdef0123456789abcdef", "dbx [SECRET]"),
        ("api_key=hunter2hunter2", "api_key=[SECRET]"),
        ('password: "s3cr3t-pass"', "password: [SECRET]"),
    ],
)
def test_replaces_with_typed_placeholder(redact, text, expected):
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "on 2024-01-15 at 12:30:45 UTC",
        "released 2026/12/04, 04.12.2026",
        "version 1.2.3, v1.2.3.4, build 10.0.19041.1, python 3.11.7",
        "pi is 3.14159 and a million is 1,000,000 or 1000000",
        "order 123456789 costs 1234.56 EUR",
        "timestamp 1733312345678901 us",
        "uuid 550e8400-e29b-41d4-a716-446655440000",
        "C++ std::vector and a::b",
        "ratio 16:9, time 9:30",
        "card-like 4111 1111 1111 1112 fails Luhn",
        "call me at extension 4471",
    ],
)
def test_leaves_ordinary_text_alone(redact, text):
    assert redact(text) == text


def test_several_kinds_in_one_message(redact):
    text = "I'm bob@example.com, +1 415 555 2671, server 10.0.0.7"
    assert redact(text) == "I'm [EMAIL], [PHONE], server [IP]"


def test_extra_patterns_are_applied_with_their_own_placeholder():
    redactor = Redactor([("order", r"\bORD-\d{6}\b")])
    assert (
        redactor.redact("ticket ORD-123456 for a@b.io") == "ticket [ORDER] for [EMAIL]"
    )


def test_luhn():
    assert luhn_valid("4111 1111 1111 1111")
    assert not luhn_valid("4111 1111 1111 1112")
