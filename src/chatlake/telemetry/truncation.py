"""Cuts text to a byte budget without ever splitting a UTF-8 character."""

from __future__ import annotations

import re

TRUNCATION_MARKER = "…[truncated]"
_SURROGATE = re.compile("[\ud800-\udfff]")


def truncate_utf8(text: str, max_bytes: int, marker: str = TRUNCATION_MARKER) -> str:
    """``text`` if its UTF-8 form fits ``max_bytes``, else a cut prefix plus marker.

    The result, marker included, is at most ``max_bytes`` bytes of valid UTF-8.
    ``text`` must be encodable (no lone surrogates); see ``clean_text``.
    """
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text
    room = max_bytes - len(marker.encode("utf-8"))
    if room <= 0:
        return _cut(marker.encode("utf-8"), max_bytes)
    return _cut(encoded, room) + marker


def _cut(encoded: bytes, limit: int) -> str:
    """The longest whole-character prefix of ``encoded`` within ``limit`` bytes."""
    if limit >= len(encoded):
        return encoded.decode("utf-8")
    end = limit
    # Continuation bytes look like 0b10xxxxxx; step back to a character start.
    while end > 0 and (encoded[end] & 0xC0) == 0x80:
        end -= 1
    return encoded[:end].decode("utf-8")


def clean_text(text: str) -> str:
    """``text`` with lone surrogates (not valid in UTF-8) replaced by U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text
