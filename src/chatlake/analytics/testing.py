"""Small, fully known chat tables for tests and demos, written as real Delta tables.

The rows are chosen so that every report's answer can be worked out by hand;
the tests in tests/unit/test_reports*.py state those answers.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
from deltalake import write_deltalake

from chatlake.chat_tables import CHAT_EVENTS, FEEDBACK, TableSpec
from chatlake.types import arrow_schema, parse_columns

# Monday 30 November 2026, midnight UTC.
DAY0 = datetime(2026, 11, 30, tzinfo=UTC)

# (id, seconds after DAY0, session, user, model, response ms, ttft ms,
#  input tokens, output tokens, status, error type, user message)
TURNS = [
    ("t01", 9 * 3600 + 10, "s1", "u1", "model-a", 100, 40, 10, 20, "ok", None, "hi"),
    ("t02", 9 * 3600 + 50, "s1", "u1", "model-a", 200, 60, 12, 30, "ok", None, "hi"),
    ("t03", 9 * 3600 + 90, "s2", "u2", "model-b", 300, 80, 20, 40, "ok", None, "help"),
    (
        "t04",
        10 * 3600 + 900,
        "s2",
        "u2",
        "model-b",
        400,
        100,
        5,
        0,
        "error",
        "timeout",
        "help",
    ),
    (
        "t05",
        10 * 3600 + 920,
        "s3",
        "u1",
        "model-a",
        500,
        120,
        8,
        16,
        "ok",
        None,
        "x" * 150,
    ),
    (
        "t06",
        86400 + 14 * 3600,
        "s4",
        "u3",
        "model-a",
        600,
        150,
        10,
        10,
        "ok",
        None,
        "x" * 100 + "y",
    ),
    (
        "t07",
        86400 + 14 * 3600 + 5,
        "s4",
        "u3",
        "model-b",
        700,
        200,
        10,
        10,
        "error",
        "rate_limit",
        "hi",
    ),
    (
        "t08",
        86400 + 14 * 3600 + 1800,
        "s5",
        "u2",
        "model-b",
        800,
        250,
        30,
        60,
        "ok",
        None,
        "why?",
    ),
    (
        "t09",
        86400 + 86399,
        "s5",
        "u2",
        "model-a",
        900,
        300,
        1,
        1,
        "error",
        "timeout",
        "why?",
    ),
    (
        "t10",
        2 * 86400,
        "s6",
        "u4",
        "model-b",
        1000,
        350,
        2,
        2,
        "ok",
        None,
        "日本語 ✓ مرحبا",
    ),
]

# (feedback id, turn id, seconds after DAY0, rating); f03 overrides f02.
RATINGS = [
    ("f01", "t01", 9 * 3600 + 100, 1),
    ("f02", "t03", 9 * 3600 + 200, 1),
    ("f03", "t03", 9 * 3600 + 300, -1),
    ("f04", "t06", 86400 + 15 * 3600, 1),
    ("f05", "t07", 86400 + 15 * 3600, -1),
    ("f06", "t10", 2 * 86400 + 60, 1),
]


def table_schema(spec: TableSpec) -> pa.Schema:
    """The Arrow schema of one of the chat tables."""
    return arrow_schema(parse_columns(spec.columns))


def chat_rows(day0: datetime = DAY0) -> list[dict[str, Any]]:
    """The known turns as rows of chat_events; ingestion one second after the event."""
    rows = []
    for turn in TURNS:
        (
            telemetry_id,
            offset_s,
            session,
            user,
            model,
            response_ms,
            ttft_ms,
            input_tokens,
            output_tokens,
            status,
            error_type,
            message,
        ) = turn
        event_time = day0 + timedelta(seconds=offset_s)
        rows.append(
            {
                "telemetry_id": telemetry_id,
                "event_time": event_time,
                "ingestion_time": event_time + timedelta(seconds=1),
                "session_id": session,
                "user_id": user,
                "turn_index": 0,
                "app_name": "demo",
                "model": model,
                "user_message": message,
                "assistant_message": f"answer to {telemetry_id}",
                "response_time_ms": response_ms,
                "ttft_ms": ttft_ms,
                "input_tokens": input_tokens,
                "output_tokens": output_tokens,
                "status": status,
                "error_type": error_type,
            }
        )
    return rows


def feedback_rows(day0: datetime = DAY0) -> list[dict[str, Any]]:
    """The known ratings as rows of feedback."""
    return [
        {
            "feedback_id": feedback_id,
            "telemetry_id": telemetry_id,
            "event_time": day0 + timedelta(seconds=offset_s),
            "ingestion_time": day0 + timedelta(seconds=offset_s + 1),
            "rating": rating,
        }
        for feedback_id, telemetry_id, offset_s, rating in RATINGS
    ]


def write_table(location: str | Path, spec: TableSpec, rows: list[dict]) -> None:
    """Append ``rows`` to a Delta table of ``spec``'s columns (created if absent)."""
    schema = table_schema(spec)
    table = pa.Table.from_pylist(rows, schema=schema)
    write_deltalake(str(location), table, mode="append")


def write_known_tables(root: Path, day0: datetime = DAY0) -> dict[str, Path]:
    """Both chat tables under ``root``, filled with the known rows."""
    locations = {
        CHAT_EVENTS.name: root / CHAT_EVENTS.name,
        FEEDBACK.name: root / FEEDBACK.name,
    }
    write_table(locations[CHAT_EVENTS.name], CHAT_EVENTS, chat_rows(day0))
    write_table(locations[FEEDBACK.name], FEEDBACK, feedback_rows(day0))
    return locations
