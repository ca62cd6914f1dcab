"""The clients' spool backlog in the app: GET /metrics, the /ingestion card, and
an alert rule on /metrics that fires while the ingest side holds back its acks
and resolves once the backlog drains.

Spools are written by real TelemetryClient objects through the official SDK;
the server that holds back acks is chatlake's fake Zerobus server on loopback.
"""

from __future__ import annotations

import os
import tomllib

import pytest

from chatlake.analytics import alerts
from chatlake.app import ingestion
from chatlake.app.model_client import ModelClient
from chatlake.app.server import AppParts, create_app
from chatlake.app.settings import AppSettings, ModelSettings
from chatlake.app.store import ConversationStore
from chatlake.app.telemetry_sink import TelemetrySink
from chatlake.app.testing import ChildProcess, free_port, wait_until
from chatlake.app.turns import ChatService
from chatlake.telemetry import TelemetryClient, TelemetryConfig, new_chat_turn
from chatlake.telemetry.backlog import read_backlog
from chatlake.telemetry.testing import FakeTokenEndpoint, FakeZerobusServer

TABLE = "main.chatbot.chat_events"
EVENTS = "chatlake_telemetry_backlog_events"


def unconfigured_client(spool_dir) -> TelemetryClient:
    """A client with no server: everything it tracks stays in its spool."""
    config = TelemetryConfig.from_env({}, spool_dir=spool_dir, flush_interval_s=0.05)
    return TelemetryClient(config, handle_sigterm=False)


def app_parts(data_dir, client) -> AppParts:
    settings = AppSettings(data_dir)
    model = ModelSettings.from_env(
        {"OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "CHATLAKE_MODEL": "m"}
    )
    store = ConversationStore(settings.store_path)
    service = ChatService(store, ModelClient(model), TelemetrySink(client), settings)
    return AppParts(settings, model, service)


def test_metrics_route_and_card_show_every_client_spool(tmp_path, monkeypatch):
    spool_dir = tmp_path / "spool"
    monkeypatch.setenv("CHATLAKE_SPOOL_DIR", str(spool_dir))
    mine = unconfigured_client(spool_dir)
    for i in range(3):
        mine.track(new_chat_turn(telemetry_id=f"m{i}", user_message="hi"))
    mine.flush(10)
    other = unconfigured_client(spool_dir)
    for i in range(2):
        other.track(new_chat_turn(telemetry_id=f"o{i}", user_message="hello"))
    other.close()  # its spool stays, an orphan until the next client starts

    http = create_app(app_parts(tmp_path / "data", mine)).server.test_client()
    response = http.get("/metrics")
    card = ingestion.spool_card(read_backlog(ingestion.spool_dir()))
    mine.close()

    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    assert "Set-Cookie" not in response.headers  # no Flask hook ran
    text = response.get_data(as_text=True)
    values = {
        name: alerts.metric_value(text, f"chatlake_telemetry_backlog_{name}", {})
        for name in ("clients", "orphaned_spools", "unreadable_spools", "events")
    }
    assert values == {
        "clients": 1.0,
        "orphaned_spools": 1.0,
        "unreadable_spools": 0.0,
        "events": 5.0,
    }
    value, label, summary, table = card.children
    assert (value.children, label.children) == (
        "5",
        "events waiting in 2 client spools",
    )
    assert summary.children.startswith("1 live, 1 orphaned · oldest ")
    rows = table.children.children[1].children
    cells = [[cell.children for cell in row.children][:3] for row in rows]
    assert cells == [
        [f"{os.getpid()} (this worker)", "live", "3"],
        [str(os.getpid()), "orphaned", "2"],
    ]


RULES = """
webhook_url = "{hook}"
[[rules]]
name = "telemetry backlog"
kind = "metric"
metric = "chatlake_telemetry_backlog_events"
metrics_url = "{app}/metrics"
threshold = 0
[[rules]]
name = "telemetry stuck"
kind = "metric"
metric = "chatlake_telemetry_backlog_oldest_event_age_seconds"
metrics_url = "{app}/metrics"
threshold = 3600
"""


@pytest.fixture
def app_url(tmp_path):
    port = free_port()
    env = {
        "CHATLAKE_SPOOL_DIR": str(tmp_path / "spool"),
        "ZEROBUS_SERVER_ENDPOINT": "",
    }
    app = ChildProcess(
        ["app", "--port", str(port), "--data-dir", str(tmp_path / "data")],
        tmp_path / "app.log",
        env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        app.wait_http(url + "/metrics")
        yield url
    finally:
        app.stop()


def test_alert_fires_on_unacked_events_and_resolves_when_they_drain(
    tmp_path, app_url, receiver
):
    rules = alerts.parse_rules(
        tomllib.loads(RULES.format(hook=f"{receiver.url}/hook", app=app_url))
    )
    monitor = alerts.Monitor(alerts.Evaluator(None, rules))
    with FakeTokenEndpoint() as token, FakeZerobusServer(mode="hang") as server:
        config = TelemetryConfig.from_env(
            {},
            server_endpoint=server.endpoint,
            catalog_url=token.url,
            chat_table=TABLE,
            client_id="app",
            client_secret="secret",
            spool_dir=tmp_path / "spool",
            flush_interval_s=0.05,
        )
        client = TelemetryClient(config, handle_sigterm=False)
        for i in range(4):
            client.track(new_chat_turn(telemetry_id=f"h{i}"))
        wait_until(lambda: len(server.records) == 4, 20, what="records sent")

        stuck = {r.rule.name: (r.value, r.firing) for r in monitor.step()}
        fired = receiver.next_post()
        server.mode = "ack"  # acks are cumulative: the next one releases all
        client.track(new_chat_turn(telemetry_id="h4"))
        delivered = client.flush(20)
        drained = {r.rule.name: (r.value, r.firing) for r in monitor.step()}
        resolved = receiver.next_post()
        client.close()
    monitor.evaluator.http.close()

    assert stuck["telemetry backlog"] == (4.0, True)
    assert stuck["telemetry stuck"][1] is False
    assert (fired["rule"], fired["state"], fired["value"]) == (
        "telemetry backlog",
        "firing",
        4.0,
    )
    assert delivered is True
    assert drained == {
        "telemetry backlog": (0.0, False),
        "telemetry stuck": (0.0, False),
    }
    assert (resolved["rule"], resolved["state"], resolved["value"]) == (
        "telemetry backlog",
        "resolved",
        0.0,
    )
    assert receiver.posts.empty()
