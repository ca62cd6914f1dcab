"""A time axis with one bucket is labelled with that bucket, not milliseconds."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pyarrow as pa

from chatlake.analytics import charts

HOUR = datetime(2026, 12, 4, 16, tzinfo=UTC)


def test_one_hourly_bucket_gets_an_hour_wide_axis() -> None:
    table = pa.table({"hour": [HOUR], "messages": [3], "users": [1]})

    axis = charts.messages(table)["layout"]["xaxis"]

    assert axis["range"] == ["2026-12-04T15:30:00+00:00", "2026-12-04T16:30:00+00:00"]
    assert axis["tickvals"] == ["2026-12-04T16:00:00+00:00"]
    assert axis["tickformat"] == "%Y-%m-%d %H:%M"


def test_one_day_gets_a_day_wide_axis() -> None:
    table = pa.table(
        {"day": [date(2026, 12, 4)], "sessions": [2], "avg_turns_per_session": [1.5]}
    )

    axis = charts.sessions(table)["layout"]["xaxis"]

    assert axis["range"] == ["2026-12-03T12:00:00", "2026-12-04T12:00:00"]
    assert axis["tickvals"] == ["2026-12-04T00:00:00"]
    assert axis["tickformat"] == "%Y-%m-%d"


def test_several_buckets_keep_plotlys_own_axis() -> None:
    later = HOUR.replace(hour=17)
    table = pa.table({"hour": [HOUR, later], "messages": [3, 4], "users": [1, 2]})

    figure = charts.messages(table)

    assert "range" not in figure["layout"]["xaxis"]
    assert "tickvals" not in figure["layout"]["xaxis"]
    json.dumps(figure["layout"])  # the axis stays plain JSON


def test_one_hour_of_messages_draws_a_bar_most_of_an_hour_wide() -> None:
    table = pa.table({"hour": [HOUR], "messages": [3], "users": [1]})

    bar, users = charts.messages(table)["data"]

    assert bar["width"] == 0.8 * 3_600_000  # milliseconds on a date axis
    assert users["mode"] == "lines+markers"  # one point shows as a marker


def test_one_day_of_sessions_draws_a_bar_and_room_for_the_right_axis() -> None:
    table = pa.table(
        {"day": [date(2026, 12, 4)], "sessions": [2], "avg_turns_per_session": [4.52]}
    )

    figure = charts.sessions(table)

    assert figure["data"][0]["width"] == 0.8 * 86_400_000
    assert figure["data"][1]["mode"] == "lines+markers"
    assert figure["layout"]["yaxis2"]["side"] == "right"
    assert figure["layout"]["margin"]["r"] == 60


def test_stream_events_bars_are_an_hour_bucket_wide() -> None:
    table = pa.table(
        {"hour": [HOUR, HOUR], "event": ["open", "close"], "events": [2, 1]}
    )

    figure = charts.stream_activity(table)

    assert [bar["width"] for bar in figure["data"]] == [2_880_000.0, 2_880_000.0]


def test_sessions_per_day_has_whole_number_ticks_on_both_axes() -> None:
    days = [date(2026, 12, 3), date(2026, 12, 4)]
    table = pa.table(
        {"day": days, "sessions": [2, 3], "avg_turns_per_session": [2.0, 3.9]}
    )

    layout = charts.sessions(table)["layout"]

    ticks = ("tickmode", "tick0", "dtick", "tickformat", "rangemode")
    assert [layout["yaxis"][key] for key in ticks] == ["linear", 0, 1, ",d", "tozero"]
    assert [layout["yaxis2"][key] for key in ticks] == ["linear", 0, 1, ",d", "tozero"]


def test_stacked_counts_step_by_the_height_of_the_stack() -> None:
    later = HOUR.replace(hour=17)
    table = pa.table(
        {
            "hour": [HOUR, HOUR, later],
            "event": ["open", "close", "open"],
            "events": [8, 5, 1],
        }
    )

    axis = charts.stream_activity(table)["layout"]["yaxis"]

    assert (axis["dtick"], axis["tickformat"]) == (5, ",d")  # 13 / 5 <= 6 ticks


def test_count_steps_are_whole_and_few() -> None:
    tops = [0, 1, 6, 7, 12, 13, 30, 31, 60, 61, 4_000_000]
    steps = [charts.count_step(top) for top in tops]

    assert steps == [1, 1, 1, 2, 2, 5, 5, 10, 10, 20, 1_000_000]
