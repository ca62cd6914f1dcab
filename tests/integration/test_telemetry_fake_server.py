"""The real SDK against the fake server: a server that goes silent, then answers."""

from __future__ import annotations

import time

from chatlake.telemetry import (
    ChatTurn,
    TelemetryClient,
    TelemetryConfig,
    new_chat_turn,
)
from chatlake.telemetry.testing import FakeTokenEndpoint, FakeZerobusServer

TABLE = "main.chatbot.chat_events"


def wait_until(predicate, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def test_silent_server_keeps_events_until_it_answers(tmp_path):
    with FakeTokenEndpoint() as token, FakeZerobusServer(mode="hang") as server:
        config = TelemetryConfig.from_env(
            {},
            server_endpoint=server.endpoint,
            catalog_url=token.url,
            chat_table=TABLE,
            client_id="app",
            client_secret="secret",
            spool_dir=tmp_path,
            flush_interval_s=0.05,
        )
        client = TelemetryClient(config, handle_sigterm=False)
        for i in range(100):
            client.track(new_chat_turn(telemetry_id=f"h{i:03d}"))
        wait_until(lambda: len(server.records) == 100)
        assert client.flush(0.5) is False
        assert client.status().state == "spooling"
        assert client.status().pending == 100
        assert client.metrics()["acked"] == 0

        server.mode = "ack"  # acks are cumulative: the next one releases all
        client.track(new_chat_turn(telemetry_id="h100"))
        assert client.flush(20) is True
        assert client.status().state == "delivering"
        metrics = client.metrics()
        client.close()

    assert (metrics["acked"], metrics["spool_depth"], metrics["retried"]) == (101, 0, 0)
    ids = [ChatTurn.FromString(r).telemetry_id for r in server.records]
    assert ids == [f"h{i:03d}" for i in range(101)]
