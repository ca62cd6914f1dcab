"""What survives an app restart, and what the header says when telemetry cannot
deliver.
"""

from __future__ import annotations

import json
import sqlite3

from chatlake.app import liveness
from chatlake.app import store as st
from chatlake.app.model_client import ModelClient
from chatlake.app.server import IDENTITY_COOKIE, AppParts, create_app
from chatlake.app.settings import AppSettings, ModelSettings
from chatlake.app.store import ConversationStore
from chatlake.app.telemetry_sink import TelemetrySink
from chatlake.app.testing import free_port, wait_until
from chatlake.app.turns import ChatService
from chatlake.telemetry import TelemetryClient, TelemetryConfig

USER = "c" * 32
SIDEBAR = {
    "output": "conversation-list.children",
    "outputs": {"id": "conversation-list", "property": "children"},
    "inputs": [{"id": "sidebar-version", "property": "data", "value": 0}],
    "changedPropIds": ["sidebar-version.data"],
    "state": [{"id": "conversation-id", "property": "data", "value": None}],
}


def build(data_dir, telemetry=None):
    settings = AppSettings(data_dir)
    model = ModelSettings.from_env(
        {"OPENAI_BASE_URL": f"http://127.0.0.1:{free_port()}/v1", "CHATLAKE_MODEL": "m"}
    )
    store = ConversationStore(settings.store_path)
    sink = TelemetrySink(telemetry)
    return AppParts(
        settings, model, ChatService(store, ModelClient(model), sink, settings)
    )


def sidebar_titles(parts) -> list[str]:
    client = create_app(parts).server.test_client()
    client.set_cookie(IDENTITY_COOKIE, USER)
    response = client.post("/_dash-update-component", json=SIDEBAR)
    children = response.get_json()["response"]["conversation-list"]["children"]
    return [child["props"]["children"] for child in children]


def test_conversations_survive_a_restart_and_cut_turns_are_marked(tmp_path):
    first = build(tmp_path)
    turn = first.service.begin(USER, None, "a question before the restart")
    first.service.store.finish_turn(turn.id, status=st.OK, text="an answer")
    left_running = first.service.begin(USER, turn.conversation_id, "cut short")

    restarted = build(tmp_path)
    assert restarted.service.store.interrupt_running() == 1
    assert sidebar_titles(restarted) == ["a question before the restart"]
    turns = restarted.service.store.turns(turn.conversation_id)
    assert [(t.user_message, t.status) for t in turns] == [
        ("a question before the restart", st.OK),
        ("cut short", st.ERROR),
    ]
    assert turns[1].id == left_running.id
    assert turns[1].error_type == "interrupted"


def test_header_says_spooling_while_the_ingest_server_is_unreachable(tmp_path):
    config = TelemetryConfig.from_env(
        {},
        server_endpoint=f"http://127.0.0.1:{free_port()}",
        catalog_url=f"http://127.0.0.1:{free_port()}",
        chat_table="main.chatbot.chat_events",
        client_id="app",
        client_secret="secret",
        spool_dir=tmp_path / "spool",
        backoff_initial_s=0.05,
        backoff_max_s=0.2,
    )
    telemetry = TelemetryClient(config, handle_sigterm=False)
    parts = build(tmp_path, telemetry)
    try:
        done = parts.service.run(USER, parts.service.begin(USER, None, "hello"))
        assert done.status == st.ERROR  # the model is unreachable too
        app = create_app(parts).server.test_client()
        body = {
            "output": "telemetry-status.children",
            "outputs": {"id": "telemetry-status", "property": "children"},
            "inputs": [{"id": "status-poll", "property": "n_intervals", "value": 1}],
            "changedPropIds": ["status-poll.n_intervals"],
        }

        def header():
            response = app.post(
                "/_dash-update-component",
                data=json.dumps(body),
                content_type="application/json",
            )
            text = response.get_json()["response"]["telemetry-status"]["children"]
            return text if text == "telemetry: spooling 1 event" else None

        assert wait_until(header, 20, interval_s=0.1, what="the spooling status")
    finally:
        telemetry.close(timeout_s=0.5)


# The turns table as stores made before turns named their worker process.
OLD_TURNS = """
CREATE TABLE conversations (id TEXT PRIMARY KEY, user_id TEXT NOT NULL,
    title TEXT NOT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL);
CREATE TABLE turns (id TEXT PRIMARY KEY, conversation_id TEXT NOT NULL,
    turn_index INTEGER NOT NULL, user_message TEXT NOT NULL,
    assistant_message TEXT NOT NULL DEFAULT '', status TEXT NOT NULL,
    finish_reason TEXT, error_type TEXT, error_message TEXT, rating INTEGER,
    comment TEXT, stop_requested INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL, updated_at REAL NOT NULL);
INSERT INTO conversations VALUES ('c1', 'u1', 'old question', 1.0, 1.0);
INSERT INTO turns (id, conversation_id, turn_index, user_message,
    assistant_message, status, created_at, updated_at)
    VALUES ('t1', 'c1', 0, 'old question', 'old answer', 'ok', 1.0, 1.0);
"""


def test_a_store_from_before_worker_tracking_keeps_its_turns(tmp_path):
    path = AppSettings(tmp_path).store_path
    path.parent.mkdir(parents=True)
    with sqlite3.connect(path) as db:
        db.executescript(OLD_TURNS)

    service = build(tmp_path).service
    (old,) = service.turns("u1", "c1")
    new = service.begin("u1", "c1", "new question")

    assert (old.assistant_message, old.worker) == ("old answer", None)
    assert [t.id for t in service.turns("u1", "c1")] == ["t1", new.id]
    assert service.store.turn(new.id).worker == liveness.current()
