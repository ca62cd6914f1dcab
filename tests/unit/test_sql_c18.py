"""Case C18: the analytics queries Databricks chatbot guides show, run verbatim."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from chatlake.analytics.engine import SqlEngine
from chatlake.analytics.resolver import StaticResolver
from chatlake.analytics.testing import write_known_tables

RECENT = """
SELECT telemetry_id, user_message, assistant_message, response_time_ms,
       ingestion_time
FROM main.chatbot.recent_events
WHERE ingestion_time >= current_timestamp() - INTERVAL 1 DAY
ORDER BY ingestion_time DESC
LIMIT 10
"""

PER_DAY = """
SELECT
  DATE(ingestion_time) AS date,
  AVG(response_time_ms) AS avg_response_time_ms,
  MAX(response_time_ms) AS max_response_time_ms,
  COUNT(*) AS conversations
FROM main.chatbot.chat_events
GROUP BY DATE(ingestion_time)
ORDER BY date DESC
"""

PER_DAY_TRUNC = """
SELECT date_trunc('day', ingestion_time) AS day,
       avg(response_time_ms) AS avg_ms, max(response_time_ms) AS max_ms,
       count(*) AS n
FROM main.chatbot.chat_events
GROUP BY 1
ORDER BY 1
"""

TOP_PREFIXES = """
SELECT SUBSTRING(user_message, 1, 100) AS question_prefix, COUNT(*) AS count
FROM main.chatbot.chat_events
GROUP BY SUBSTRING(user_message, 1, 100)
ORDER BY count DESC
LIMIT 20
"""

TOP_PREFIXES_LEFT = """
SELECT LEFT(user_message, 100) AS q, COUNT(*) AS n
FROM main.chatbot.chat_events
GROUP BY 1
ORDER BY n DESC, q
LIMIT 20
"""


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> SqlEngine:
    root = tmp_path_factory.mktemp("c18")
    fixed = write_known_tables(root / "fixed")
    # 49 hours before now: turns t06..t10 land in the last day, t01..t05 do not.
    recent_day0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=49)
    recent = write_known_tables(root / "recent", recent_day0)
    return SqlEngine(
        StaticResolver(
            {
                "main.chatbot.chat_events": str(fixed["chat_events"]),
                "main.chatbot.recent_events": str(recent["chat_events"]),
            }
        )
    )


def test_recent_conversations_of_the_last_day(engine: SqlEngine) -> None:
    rows = engine.query(RECENT).to_pylist()

    assert [row["telemetry_id"] for row in rows] == ["t10", "t09", "t08", "t07", "t06"]
    assert rows[0]["user_message"] == "日本語 ✓ مرحبا"
    assert rows[0]["response_time_ms"] == 1000


def test_per_day_average_and_maximum(engine: SqlEngine) -> None:
    rows = engine.query(PER_DAY).to_pylist()

    # t09 happened at 23:59:59 and was ingested at midnight: it counts on 2 December.
    assert rows == [
        {
            "date": date(2026, 12, 2),
            "avg_response_time_ms": 950.0,
            "max_response_time_ms": 1000,
            "conversations": 2,
        },
        {
            "date": date(2026, 12, 1),
            "avg_response_time_ms": 700.0,
            "max_response_time_ms": 800,
            "conversations": 3,
        },
        {
            "date": date(2026, 11, 30),
            "avg_response_time_ms": 300.0,
            "max_response_time_ms": 500,
            "conversations": 5,
        },
    ]


def test_per_day_with_date_trunc(engine: SqlEngine) -> None:
    rows = engine.query(PER_DAY_TRUNC).to_pylist()

    assert [(r["day"], r["avg_ms"], r["max_ms"], r["n"]) for r in rows] == [
        (datetime(2026, 11, 30, tzinfo=UTC), 300.0, 500, 5),
        (datetime(2026, 12, 1, tzinfo=UTC), 700.0, 800, 3),
        (datetime(2026, 12, 2, tzinfo=UTC), 950.0, 1000, 2),
    ]


def test_most_frequent_prefixes_with_substring(engine: SqlEngine) -> None:
    rows = engine.query(TOP_PREFIXES).to_pylist()

    # Ties come back in any order, as on Databricks.
    counts = [row["count"] for row in rows]
    assert counts == sorted(counts, reverse=True)
    assert sorted((r["question_prefix"], r["count"]) for r in rows) == sorted(
        [("hi", 3), ("help", 2), ("why?", 2), ("x" * 100, 2), ("日本語 ✓ مرحبا", 1)]
    )


def test_most_frequent_prefixes_with_left(engine: SqlEngine) -> None:
    rows = engine.query(TOP_PREFIXES_LEFT).to_pylist()

    assert [(r["q"], r["n"]) for r in rows] == [
        ("hi", 3),
        ("help", 2),
        ("why?", 2),
        ("x" * 100, 2),
        ("日本語 ✓ مرحبا", 1),
    ]
