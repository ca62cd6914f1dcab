"""TelemetryClient with the SDK replaced by an in-memory stream factory."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from chatlake.telemetry import (
    ChatTurn,
    TelemetryClient,
    TelemetryConfig,
    new_chat_turn,
    new_feedback,
)
from chatlake.telemetry.events_pb2 import Feedback
from chatlake.telemetry.sender import SendError

TABLE = "main.chatbot.chat_events"


class FakeFactory:
    """Records every batch; can refuse to open, fail mid-stream or never ack."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.batches: list[tuple[str, list[bytes]]] = []
        self.opened: list[str] = []
        self.open_failures: list[SendError] = []
        self.acking = True
        self.streams: list[FakeStream] = []

    def open(self, table, fmt, on_ack, on_error):
        with self.lock:
            self.opened.append(table)
            if self.open_failures:
                raise self.open_failures.pop(0)
            stream = FakeStream(self, table, fmt, on_ack, on_error)
            self.streams.append(stream)
            return stream

    def payloads(self, table: str = TABLE) -> list[bytes]:
        with self.lock:
            return [p for t, batch in self.batches if t == table for p in batch]


class FakeStream:
    def __init__(self, factory, table, fmt, on_ack, on_error) -> None:
        self.factory = factory
        self.table = table
        self.fmt = fmt
        self.on_ack = on_ack
        self.on_error = on_error
        self.next_offset = 0
        self.closed = False

    def send(self, payloads):
        if self.closed:
            raise SendError("Stream is closed")
        offset = self.next_offset
        self.next_offset += 1
        with self.factory.lock:
            self.factory.batches.append((self.table, list(payloads)))
        if self.factory.acking:
            self.on_ack(offset)
        return offset

    def ack_all(self) -> None:
        self.on_ack(self.next_offset - 1)

    def fail(self, message: str) -> None:
        self.on_error(self.next_offset - 1, message)

    def close(self) -> None:
        self.closed = True


def make_config(tmp_path, **overrides) -> TelemetryConfig:
    settings = dict(
        server_endpoint="http://127.0.0.1:1",
        catalog_url="http://127.0.0.1:2",
        chat_table=TABLE,
        client_id="app",
        client_secret="secret",
        spool_dir=tmp_path / "spool",
        backoff_initial_s=0.01,
        backoff_max_s=0.05,
        flush_interval_s=0.01,
    )
    settings.update(overrides)
    return TelemetryConfig.from_env({}, **settings)


@pytest.fixture
def factory():
    return FakeFactory()


@pytest.fixture
def client(tmp_path, factory):
    client = TelemetryClient(
        make_config(tmp_path), stream_factory=factory, handle_sigterm=False
    )
    yield client
    client.close(timeout_s=2)


def ids(payloads: list[bytes]) -> list[str]:
    return [ChatTurn.FromString(p).telemetry_id for p in payloads]


def wait_until(predicate, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)


def test_every_event_is_delivered_once_in_order(client, factory):
    turns = [new_chat_turn(telemetry_id=f"t{i}") for i in range(1000)]
    for turn in turns:
        client.track(turn)
    assert client.flush(10) is True
    assert ids(factory.payloads()) == [f"t{i}" for i in range(1000)]
    metrics = client.metrics()
    assert {k: metrics[k] for k in ("tracked", "spooled", "sent", "acked")} == {
        "tracked": 1000,
        "spooled": 1000,
        "sent": 1000,
        "acked": 1000,
    }
    assert metrics["spool_depth"] == 0
    assert client.status().state == "delivering"
    assert client.status().pending == 0


def test_feedback_and_other_tables_get_their_own_streams(client, factory):
    client.track(new_feedback("t1", 1))
    client.track("main.chatbot.custom", {"n": 1, "user_message": "me@x.io"})
    client.track("main.chatbot.protos", new_chat_turn(telemetry_id="p"))
    assert client.flush(10)
    assert sorted(factory.opened) == [
        "main.chatbot.custom",
        "main.chatbot.feedback",
        "main.chatbot.protos",
    ]
    assert factory.payloads("main.chatbot.custom") == [
        b'{"n": 1, "user_message": "[EMAIL]"}'
    ]
    feedback = Feedback.FromString(factory.payloads("main.chatbot.feedback")[0])
    assert (feedback.telemetry_id, feedback.rating) == ("t1", 1)
    formats = {s.table: s.fmt.format for s in factory.streams}
    assert formats["main.chatbot.custom"] == "json"
    assert formats["main.chatbot.protos"] == "proto"


def test_track_never_raises_and_counts_what_cannot_be_sent(client, factory, caplog):
    caplog.set_level(logging.WARNING, logger="chatlake.telemetry")
    client.track(12345)
    client.track("a.b.c", object())
    client.track(None, {"x": 1})
    client.track("a.b.c", {"bad": object()})
    client.track(Feedback(telemetry_id="t"))  # required rating is missing
    client.track("chatbot.events", {"x": 1})  # two-part table name
    client.track(new_chat_turn(telemetry_id="ok"))
    assert client.flush(10)
    assert client.metrics()["invalid"] == 6
    assert ids(factory.payloads()) == ["ok"]
    assert client.metrics()["tracked"] == 7
    assert factory.opened == [TABLE]


def test_a_full_queue_drops_the_oldest_and_counts_them(tmp_path, factory, caplog):
    config = make_config(tmp_path, queue_size=100, flush_interval_s=60.0)
    client = TelemetryClient(config, stream_factory=factory, handle_sigterm=False)
    # A batch-size trigger would wake the spooler early; keep it above the queue.
    object.__setattr__(config, "batch_records", 10_000)
    for i in range(250):
        client.track(new_chat_turn(telemetry_id=f"t{i}"))
    assert client.metrics()["dropped_queue"] == 150
    caplog.set_level(logging.WARNING, logger="chatlake.telemetry")
    assert client.flush(10)
    assert ids(factory.payloads()) == [f"t{i}" for i in range(150, 250)]
    assert [r.getMessage() for r in caplog.records] == [
        "telemetry queue full (100 events): dropped the 150 oldest"
    ]
    client.close()


def test_open_failures_are_retried_with_backoff(client, factory):
    factory.open_failures = [SendError("connection refused")] * 3
    client.track(new_chat_turn(telemetry_id="late"))
    assert client.flush(10)
    assert ids(factory.payloads()) == ["late"]
    assert len(factory.opened) == 4
    assert client.metrics()["retried"] == 3


def test_terminal_error_is_logged_once_counted_and_events_kept(client, factory, caplog):
    caplog.set_level(logging.ERROR, logger="chatlake.telemetry")
    refused = SendError(
        "Permission denied: no MODIFY on main.chatbot.chat_events", True
    )
    factory.open_failures = [refused] * 4
    client.track(new_chat_turn(telemetry_id="kept"))
    wait_until(lambda: client.metrics()["terminal_errors"] == 4)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "no MODIFY on main.chatbot.chat_events" in errors[0].getMessage()
    assert client.flush(10)
    assert ids(factory.payloads()) == ["kept"]


def test_stream_failure_resends_everything_unacked(client, factory):
    factory.acking = False
    for i in range(5):
        client.track(new_chat_turn(telemetry_id=f"t{i}"))
    wait_until(lambda: len(factory.payloads()) == 5)
    assert client.status().state == "spooling"
    factory.acking = True
    factory.streams[0].fail("Stream is closed: unavailable")
    assert client.flush(10)
    assert ids(factory.payloads()) == [f"t{i}" for i in range(5)] * 2
    assert len(factory.opened) == 2
    assert client.metrics()["acked"] == 5


def test_flush_times_out_while_the_server_does_not_ack(client, factory):
    factory.acking = False
    client.track(new_chat_turn())
    started = time.monotonic()
    assert client.flush(0.3) is False
    assert 0.3 <= time.monotonic() - started < 2
    assert client.status().pending == 1


def test_close_keeps_one_deadline_and_leaves_unacked_events_spooled(tmp_path, factory):
    factory.acking = False
    config = make_config(tmp_path)
    client = TelemetryClient(config, stream_factory=factory, handle_sigterm=False)
    client.track(new_chat_turn(telemetry_id="unacked"))
    wait_until(lambda: len(factory.payloads()) == 1)
    started = time.monotonic()
    client.close(timeout_s=0.5)
    assert time.monotonic() - started < 1.5
    client.close(timeout_s=0.5)  # idempotent

    factory.acking = True
    again = TelemetryClient(config, stream_factory=factory, handle_sigterm=False)
    assert again.flush(5) is True  # nothing tracked yet: nothing started
    again.track(new_chat_turn(telemetry_id="after-restart"))
    assert again.flush(10)
    assert ids(factory.payloads())[-2:] == ["unacked", "after-restart"]
    assert again.metrics()["adopted"] == 1
    again.close()


def test_track_after_close_spools_the_event_for_the_next_start(tmp_path, factory):
    config = make_config(tmp_path)
    client = TelemetryClient(config, stream_factory=factory, handle_sigterm=False)
    client.track(new_chat_turn(telemetry_id="before-close"))
    client.close()
    client.track(new_chat_turn(telemetry_id="after-close"))
    client.track(new_feedback("after-close", 1, comment="late \ud800 rating"))
    assert ids(factory.payloads()) == ["before-close"]
    assert client.metrics()["spooled_after_close"] == 2
    assert client.metrics()["tracked"] == 3

    again = TelemetryClient(
        make_config(tmp_path, feedback_table="main.chatbot.feedback"),
        stream_factory=factory,
        handle_sigterm=False,
    )
    again.track(new_chat_turn(telemetry_id="next-start"))
    assert again.flush(10)
    assert ids(factory.payloads()) == ["before-close", "after-close", "next-start"]
    (late,) = factory.payloads("main.chatbot.feedback")
    assert Feedback.FromString(late).comment == "late \ufffd rating"
    assert again.metrics()["adopted"] == 2
    again.close()


def test_track_after_close_counts_and_logs_once_when_the_spool_is_gone(
    tmp_path, factory, caplog
):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    config = make_config(tmp_path, spool_dir=blocker / "spool")
    client = TelemetryClient(config, stream_factory=factory, handle_sigterm=False)
    client.close()
    with caplog.at_level(logging.WARNING, logger="chatlake.telemetry.client"):
        client.track(new_chat_turn())
        client.track(new_chat_turn())
    assert client.metrics()["dropped_after_close"] == 2
    late = [r for r in caplog.records if "dropped_after_close" in r.getMessage()]
    assert len(late) == 1


async def test_usable_from_asyncio(client, factory):
    for i in range(10):
        client.track(new_chat_turn(telemetry_id=f"a{i}"))
    assert await client.aflush(10)
    assert len(factory.payloads()) == 10
    await asyncio.sleep(0)


def test_track_from_many_threads(client, factory):
    def work(n: int) -> None:
        for i in range(200):
            client.track(new_chat_turn(telemetry_id=f"{n}-{i}"))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert client.flush(10)
    assert sorted(ids(factory.payloads())) == sorted(
        f"{n}-{i}" for n in range(8) for i in range(200)
    )


def test_metrics_are_exported_to_prometheus(client, factory):
    registry = CollectorRegistry()
    client.register_prometheus(registry)
    client.track(new_chat_turn())
    assert client.flush(10)
    text = generate_latest(registry).decode()
    assert "chatlake_telemetry_acked_total 1.0" in text
    assert "chatlake_telemetry_spool_depth 0.0" in text


def test_a_stream_that_stops_acking_is_reported_as_spooling(
    client, factory, monkeypatch
):
    monkeypatch.setattr("chatlake.telemetry.sender.STALL_S", 0.2)
    client.track(new_chat_turn())
    assert client.flush(10)
    assert client.status().state == "delivering"
    factory.acking = False
    client.track(new_chat_turn())
    wait_until(lambda: client.status().state == "spooling")
    assert client.status().pending == 1
    assert client.metrics()["oldest_event_age_s"] > 0.1


def test_a_bug_in_the_sdk_layer_does_not_kill_the_sender(client, factory, caplog):
    caplog.set_level(logging.ERROR, logger="chatlake.telemetry")
    original_open = factory.open

    def open_once_broken(*args):
        stream = original_open(*args)
        if len(factory.opened) == 1:
            stream.send = lambda payloads: 1 / 0
        return stream

    factory.open = open_once_broken
    client.track(new_chat_turn(telemetry_id="survives"))
    assert client.flush(10)
    assert ids(factory.payloads()) == ["survives"]
    assert "hit a bug" in caplog.records[0].getMessage()
    assert client.metrics()["terminal_errors"] == 1


def test_an_unusable_spool_directory_is_reported_and_track_still_returns(
    tmp_path, factory, caplog
):
    caplog.set_level(logging.ERROR, logger="chatlake.telemetry")
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    config = make_config(tmp_path, spool_dir=blocker / "spool", queue_size=5)
    client = TelemetryClient(config, stream_factory=factory, handle_sigterm=False)
    for _ in range(8):
        client.track(new_chat_turn())
    wait_until(lambda: caplog.records)
    assert "cannot be opened" in caplog.records[0].getMessage()
    assert client.metrics()["dropped_queue"] == 3
    assert client.flush(0.2) is False
    client.close(timeout_s=0.5)


def test_track_cleans_or_counts_invalid_text_and_never_raises(client, factory):
    other = "main.chatbot.notes"
    client.track(other, {"text": "half \ud83d pair"})
    client.track(other, {"bad \udfff key": 1})
    client.track(other, {"raw": b"\xff\xfe"})
    assert client.flush(10)
    (payload,) = factory.payloads(other)
    assert json.loads(payload) == {"text": "half \ufffd pair"}
    assert client.metrics()["invalid"] == 2
    assert client.metrics()["tracked"] == 3
