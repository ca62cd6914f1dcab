"""Every named report against hand-computed answers on the known tables."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from chatlake.analytics import reports
from chatlake.analytics.engine import SqlEngine
from chatlake.analytics.errors import ReportError
from chatlake.analytics.resolver import StaticResolver
from chatlake.analytics.testing import chat_rows, write_known_tables, write_table
from chatlake.chat_tables import CHAT_EVENTS


def at(day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    """A moment in the known data: day 30 is 30 November 2026, 1 and 2 December."""
    month = 11 if day == 30 else 12
    return datetime(2026, month, day, hour, minute, second, tzinfo=UTC)


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> SqlEngine:
    tables = write_known_tables(tmp_path_factory.mktemp("reports"))
    return SqlEngine(
        StaticResolver(
            {
                reports.DEFAULT_CHAT_EVENTS: str(tables["chat_events"]),
                reports.DEFAULT_FEEDBACK: str(tables["feedback"]),
            }
        )
    )


def run(engine: SqlEngine, name: str, **kwargs) -> list[tuple]:
    return [
        tuple(row.values())
        for row in reports.run_report(engine, name, **kwargs).to_pylist()
    ]


def test_every_shipped_report_has_a_title_and_description() -> None:
    found = {report.name: report for report in reports.list_reports()}

    assert sorted(found) == [
        "error_rate",
        "error_types",
        "feedback_by_day",
        "feedback_by_model",
        "latency",
        "messages_per_hour",
        "messages_per_minute",
        "peak_usage",
        "recent_conversations",
        "sessions",
        "stream_activity",
        "stream_failures",
        "tokens_by_model",
        "top_questions",
    ]
    assert all(report.title and report.description for report in found.values())


def test_recent_conversations_newest_first(engine: SqlEngine) -> None:
    rows = reports.run_report(engine, "recent_conversations").to_pylist()

    assert [row["assistant_message"][-3:] for row in rows] == [
        "t10",
        "t09",
        "t08",
        "t07",
        "t06",
        "t05",
        "t04",
        "t03",
        "t02",
        "t01",
    ]
    assert rows[5]["user_message"] == "x" * 150


def test_messages_per_minute(engine: SqlEngine) -> None:
    assert run(engine, "messages_per_minute") == [
        (at(30, 9, 0), 2),
        (at(30, 9, 1), 1),
        (at(30, 10, 15), 2),
        (at(1, 14, 0), 2),
        (at(1, 14, 30), 1),
        (at(1, 23, 59), 1),
        (at(2), 1),
    ]


def test_messages_per_hour_with_distinct_users(engine: SqlEngine) -> None:
    assert run(engine, "messages_per_hour") == [
        (at(30, 9), 3, 2),
        (at(30, 10), 2, 2),
        (at(1, 14), 3, 2),
        (at(1, 23), 1, 1),
        (at(2), 1, 1),
    ]


def test_time_range_is_half_open(engine: SqlEngine) -> None:
    rows = run(engine, "messages_per_hour", since=at(1), until=at(2))

    assert rows == [(at(1, 14), 3, 2), (at(1, 23), 1, 1)]


def test_latency_percentiles_interpolate(engine: SqlEngine) -> None:
    # 100, 200, 300 ms: p95 lies 90% of the way from 200 to 300.
    assert run(engine, "latency") == [
        (at(30, 9), 3, 200.0, 290.0, 298.0, 60.0, 78.0),
        (at(30, 10), 2, 450.0, 495.0, 499.0, 110.0, 119.0),
        (at(1, 14), 3, 700.0, 790.0, 798.0, 200.0, 245.0),
        (at(1, 23), 1, 900.0, 900.0, 900.0, 300.0, 300.0),
        (at(2), 1, 1000.0, 1000.0, 1000.0, 350.0, 350.0),
    ]


def test_latency_percentiles_are_rounded_to_a_tenth_of_a_millisecond(
    tmp_path,
) -> None:
    # Interpolating between 100 and 4002 ms gives 3806.8999999999996 and 3962.98.
    rows = chat_rows()[:2]
    for row, response_ms, ttft_ms in zip(rows, (100, 4002), (10, 20), strict=True):
        row.update(response_time_ms=response_ms, ttft_ms=ttft_ms)
    write_table(tmp_path / "chat_events", CHAT_EVENTS, rows)
    engine = SqlEngine(
        StaticResolver({reports.DEFAULT_CHAT_EVENTS: str(tmp_path / "chat_events")})
    )

    assert run(engine, "latency") == [
        (at(30, 9), 2, 2051.0, 3806.9, 3963.0, 15.0, 19.5),
    ]


def test_error_rate(engine: SqlEngine) -> None:
    assert run(engine, "error_rate") == [
        (at(30, 9), 3, 0, 0.0),
        (at(30, 10), 2, 1, 0.5),
        (at(1, 14), 3, 1, 1 / 3),
        (at(1, 23), 1, 1, 1.0),
        (at(2), 1, 0, 0.0),
    ]


def test_error_types(engine: SqlEngine) -> None:
    assert run(engine, "error_types") == [
        ("timeout", 2, at(1, 23, 59, 59)),
        ("rate_limit", 1, at(1, 14, 0, 5)),
    ]


def test_feedback_by_model_counts_the_last_rating_of_a_turn(engine: SqlEngine) -> None:
    # t03 was rated up, then down: only the down counts.
    assert run(engine, "feedback_by_model") == [
        ("model-a", 2, 0, 2, 1.0),
        ("model-b", 1, 2, 3, 1 / 3),
    ]


def test_feedback_by_day(engine: SqlEngine) -> None:
    assert run(engine, "feedback_by_day") == [
        (date(2026, 11, 30), 1, 1, 2, 0.5),
        (date(2026, 12, 1), 1, 1, 2, 0.5),
        (date(2026, 12, 2), 1, 0, 1, 1.0),
    ]


def test_tokens_by_model(engine: SqlEngine) -> None:
    assert run(engine, "tokens_by_model") == [
        ("model-b", 5, 67, 112, 179, 22.4),
        ("model-a", 5, 41, 77, 118, 15.4),
    ]


def test_peak_usage_counts_weekdays_from_sunday(engine: SqlEngine) -> None:
    # 30 November 2026 is a Monday: weekday 2.
    assert run(engine, "peak_usage") == [
        (2, 9, 3),
        (2, 10, 2),
        (3, 14, 3),
        (3, 23, 1),
        (4, 0, 1),
    ]


def test_top_questions_group_the_first_hundred_characters(engine: SqlEngine) -> None:
    assert run(engine, "top_questions") == [
        ("hi", 3),
        ("help", 2),
        ("why?", 2),
        ("x" * 100, 2),
        ("日本語 ✓ مرحبا", 1),
    ]


def test_sessions_and_turns_per_session(engine: SqlEngine) -> None:
    assert run(engine, "sessions") == [
        (date(2026, 11, 30), 3, 5, 5 / 3, 2),
        (date(2026, 12, 1), 2, 4, 2.0, 2),
        (date(2026, 12, 2), 1, 1, 1.0, 1),
    ]


def test_unknown_report_lists_the_known_ones() -> None:
    with pytest.raises(
        ReportError,
        match="unknown report 'nope'; known reports: error_rate, error_types",
    ):
        reports.get_report("nope")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"since": datetime(2026, 12, 1)}, "since must carry a time zone"),
        ({"since": at(2), "until": at(1)}, "empty time range"),
        (
            {"tables": reports.ReportTables(chat_events="main.chatbot")},
            "bad chat events table: invalid table name 'main.chatbot'",
        ),
        (
            {"tables": reports.ReportTables(feedback="main.x.y; DROP TABLE a.b.c")},
            "bad feedback table",
        ),
    ],
)
def test_bad_parameters_are_refused(engine: SqlEngine, kwargs, message) -> None:
    with pytest.raises(ReportError, match=message):
        reports.run_report(engine, "feedback_by_model", **kwargs)


def test_feedback_by_day_range_keeps_the_last_rating_semantics(engine) -> None:
    # From 09:04 on 30 November: f01 (t01, 09:01:40) and f02 (t03 up, 09:03:20)
    # are out; t03's last rating f03 (down, 09:05) is in.
    rows = run(engine, "feedback_by_day", since=at(30, 9, 4))

    assert rows == [
        (date(2026, 11, 30), 0, 1, 1, 0.0),
        (date(2026, 12, 1), 1, 1, 2, 0.5),
        (date(2026, 12, 2), 1, 0, 1, 1.0),
    ]
