"""The telemetry client against the real catalog and ingest server, official SDK.

Every test asserts the exact set of rows that lands in the Delta tables.
"""

from __future__ import annotations

import socket
import time

import pytest

from chatlake.chat_tables import CHAT_EVENTS, FEEDBACK
from chatlake.telemetry import (
    TelemetryClient,
    TelemetryConfig,
    new_chat_turn,
    new_feedback,
)
from tests.integration.ingest_support import (
    create_table,
    ingest_server,
    read_rows,
    settle,
    writer,
)

CHAT = "main.chatbot.chat_events"
RATINGS = "main.chatbot.feedback"
MIXED = "Grüße 👋🏽 from 東京, שלום עולם, مرحبا"


@pytest.fixture
def chat_tables(catalog_server):
    for spec, name in ((CHAT_EVENTS, CHAT), (FEEDBACK, RATINGS)):
        create_table(catalog_server, name, spec.columns, spec.properties)
    return writer(catalog_server, "chatbot", CHAT, RATINGS)


def client_config(catalog_server, credentials, endpoint, spool_dir, **overrides):
    client_id, secret = credentials
    settings = dict(
        server_endpoint=endpoint,
        catalog_url=catalog_server.url,
        chat_table=CHAT,
        client_id=client_id,
        client_secret=secret,
        spool_dir=spool_dir,
        flush_interval_s=0.05,
        backoff_initial_s=0.2,
        backoff_max_s=1.0,
        sdk_recovery_timeout_ms=2000,
        sdk_recovery_retries=1,
    )
    settings.update(overrides)
    return TelemetryConfig.from_env({}, **settings)


def free_port() -> int:
    """A port nothing listens on (yet): the server comes up there later."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def chat_ids(catalog_server) -> list[str]:
    return [r["telemetry_id"] for r in read_rows(catalog_server, CHAT, "telemetry_id")]


def wait_until(predicate, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def test_turns_and_ratings_land_once_with_text_intact(
    catalog_server, chat_tables, tmp_path
):
    with ingest_server(catalog_server) as running:
        config = client_config(
            catalog_server, chat_tables, running.endpoint, tmp_path / "spool"
        )
        client = TelemetryClient(config, handle_sigterm=False)
        for i in range(300):
            client.track(
                new_chat_turn(
                    telemetry_id=f"t{i:04d}",
                    user_message=f"{MIXED} #{i} mail me at bob@example.com",
                    assistant_message="日本語で答えます 🙂",
                    response_time_ms=i,
                )
            )
        assert client.flush(30) is True
        # Rated after the turns landed, as a user would. (Opening both streams at
        # once also trips a race in ingest's TableDirectory.client(): see report.)
        client.track(new_feedback("t0007", -1, feedback_id="f1", comment="wrong"))
        assert client.flush(30) is True
        client.close()
        settle(running)

    rows = read_rows(catalog_server, CHAT, "telemetry_id")
    assert [r["telemetry_id"] for r in rows] == [f"t{i:04d}" for i in range(300)]
    assert rows[5]["user_message"] == f"{MIXED} #5 mail me at [EMAIL]"
    assert rows[5]["assistant_message"] == "日本語で答えます 🙂"
    assert rows[5]["response_time_ms"] == 5
    assert all(r["ingestion_time"] is not None for r in rows)
    ratings = read_rows(catalog_server, RATINGS, "feedback_id")
    assert [(r["feedback_id"], r["telemetry_id"], r["rating"]) for r in ratings] == [
        ("f1", "t0007", -1)
    ]


def test_server_down_then_up_delivers_everything_once(
    catalog_server, chat_tables, tmp_path
):
    port = free_port()
    config = client_config(
        catalog_server, chat_tables, f"http://127.0.0.1:{port}", tmp_path / "spool"
    )
    client = TelemetryClient(config, handle_sigterm=False)
    for i in range(100):
        client.track(new_chat_turn(telemetry_id=f"down{i:03d}"))
    wait_until(lambda: client.metrics()["spooled"] == 100)
    assert client.status().state == "spooling"
    assert client.flush(0.5) is False

    with ingest_server(catalog_server, port=port) as running:
        for i in range(100):
            client.track(new_chat_turn(telemetry_id=f"up{i:03d}"))
        assert client.flush(60) is True
        assert client.status().state == "delivering"
        client.close()
        settle(running)

    expected = sorted(
        [f"down{i:03d}" for i in range(100)] + [f"up{i:03d}" for i in range(100)]
    )
    assert chat_ids(catalog_server) == expected
    assert client.metrics()["acked"] == 200


def test_server_restarted_mid_traffic_loses_nothing(
    catalog_server, chat_tables, tmp_path
):
    port = free_port()
    config = client_config(
        catalog_server, chat_tables, f"http://127.0.0.1:{port}", tmp_path / "spool"
    )
    client = TelemetryClient(config, handle_sigterm=False)
    with ingest_server(catalog_server, port=port) as running:
        for i in range(50):
            client.track(new_chat_turn(telemetry_id=f"a{i:03d}"))
        assert client.flush(30)
        settle(running)
    for i in range(50):
        client.track(new_chat_turn(telemetry_id=f"b{i:03d}"))
    wait_until(lambda: client.metrics()["spooled"] == 100)
    with ingest_server(catalog_server, port=port) as running:
        assert client.flush(60) is True
        client.close()
        settle(running)
    expected = sorted(
        [f"a{i:03d}" for i in range(50)] + [f"b{i:03d}" for i in range(50)]
    )
    assert chat_ids(catalog_server) == expected


def test_overload_beyond_the_spool_limit_drops_only_the_oldest(
    catalog_server, chat_tables, tmp_path
):
    port = free_port()
    sample = new_chat_turn(telemetry_id="x00000", event_time=1, user_message="y" * 100)
    size = len(sample.SerializeToString())
    capacity = 40
    config = client_config(
        catalog_server,
        chat_tables,
        f"http://127.0.0.1:{port}",
        tmp_path / "spool",
        spool_max_bytes=size * capacity,
    )
    client = TelemetryClient(config, handle_sigterm=False)
    for i in range(100):
        client.track(
            new_chat_turn(
                telemetry_id=f"x{i:05d}", event_time=1, user_message="y" * 100
            )
        )
    wait_until(lambda: client.metrics()["spooled"] == 100)
    metrics = client.metrics()
    assert metrics["dropped_spool"] == 100 - capacity
    assert metrics["spool_depth"] == capacity
    assert metrics["spool_bytes"] == size * capacity

    with ingest_server(catalog_server, port=port) as running:
        assert client.flush(60) is True
        client.close()
        settle(running)
    assert chat_ids(catalog_server) == [f"x{i:05d}" for i in range(100 - capacity, 100)]


@pytest.mark.slow
def test_steady_traffic_through_stream_rotations_lands_once(
    catalog_server, chat_tables, tmp_path
):
    with ingest_server(
        catalog_server, max_stream_age_s=3.0, rotation_grace_s=1.0
    ) as running:
        config = client_config(
            catalog_server, chat_tables, running.endpoint, tmp_path / "spool"
        )
        client = TelemetryClient(config, handle_sigterm=False)
        sent = 0
        ends = time.monotonic() + 20
        while time.monotonic() < ends:
            for _ in range(20):
                client.track(new_chat_turn(telemetry_id=f"r{sent:06d}"))
                sent += 1
            time.sleep(0.02)  # paces the traffic: about 1,000 events a second
        assert client.flush(60) is True
        client.close()
        settle(running)
        rotations = running.server.service.rotations

    assert chat_ids(catalog_server) == [f"r{i:06d}" for i in range(sent)]
    assert sent > 5000
    assert rotations >= 4


def test_any_table_takes_json_records(catalog_server, chat_tables, tmp_path):
    notes = "main.chatbot.notes"
    create_table(catalog_server, notes, "note_id STRING NOT NULL, body STRING, n INT")
    credentials = writer(catalog_server, "notes_writer", notes)
    with ingest_server(catalog_server) as running:
        config = client_config(
            catalog_server, credentials, running.endpoint, tmp_path / "spool"
        )
        client = TelemetryClient(config, handle_sigterm=False)
        for i in range(3):
            client.track(notes, {"note_id": f"n{i}", "body": "日本 🙂", "n": i})
        assert client.flush(30) is True
        client.close()
        settle(running)
    rows = read_rows(catalog_server, notes, "note_id")
    assert [(r["note_id"], r["body"], r["n"]) for r in rows] == [
        ("n0", "日本 🙂", 0),
        ("n1", "日本 🙂", 1),
        ("n2", "日本 🙂", 2),
    ]


def test_refused_stream_is_counted_once_and_events_wait_for_the_grant(
    catalog_server, chat_tables, tmp_path, caplog
):
    admin = catalog_server.admin_client
    reader = admin.create_principal("reader_only")
    admin.grant("USE CATALOG", "catalog", "main", "reader_only")
    admin.grant("USE SCHEMA", "schema", "main.chatbot", "reader_only")
    admin.grant("SELECT", "table", CHAT, "reader_only")
    credentials = (reader["client_id"], reader["client_secret"])
    caplog.set_level("ERROR", logger="chatlake.telemetry")
    with ingest_server(catalog_server) as running:
        config = client_config(
            catalog_server, credentials, running.endpoint, tmp_path / "spool"
        )
        client = TelemetryClient(config, handle_sigterm=False)
        client.track(new_chat_turn(telemetry_id="waits"))
        wait_until(lambda: client.metrics()["terminal_errors"] >= 2)
        assert client.status().state == "spooling"
        assert client.metrics()["spool_depth"] == 1
        refusals = [r.getMessage() for r in caplog.records]
        assert len(refusals) == 1
        assert "MODIFY" in refusals[0]

        admin.grant("MODIFY", "table", CHAT, "reader_only")
        assert client.flush(60) is True
        client.close()
        settle(running)
    assert chat_ids(catalog_server) == ["waits"]
