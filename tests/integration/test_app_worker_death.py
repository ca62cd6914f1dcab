"""A gunicorn worker SIGKILLed while it streams a turn: the next poll, served by
the worker gunicorn starts in its place, ends the turn as interrupted, in the
store and as one ChatTurn, and the page gets its input back."""

from __future__ import annotations

import os
import signal
import sqlite3

import httpx

from chatlake.app.server import IDENTITY_COOKIE
from chatlake.app.testing import (
    app_over_scripted_model,
    wait_until,
)
from tests.integration.process_support import alive, child_pids
from tests.integration.test_app_callbacks import OWNER, _prop, controller_request
from tests.integration.test_app_shutdown import spooled_turns, streamed_text


def dash(url: str, body: dict) -> dict | None:
    """The controller's response, or None while no worker answers."""
    try:
        response = httpx.post(
            f"{url}/_dash-update-component",
            json=body,
            cookies={IDENTITY_COOKIE: OWNER},
            timeout=10,
        )
    except httpx.TransportError:
        return None
    return response.json()["response"] if response.status_code == 200 else None


def test_a_turn_whose_worker_is_killed_ends_interrupted_at_the_next_poll(tmp_path):
    spool = {"CHATLAKE_SPOOL_DIR": str(tmp_path / "spool")}
    running = app_over_scripted_model(
        tmp_path, tmp_path / "app.log", slow_chunk_s=0.3, env=spool
    )
    with running as (url, app):
        try:
            send = _prop("send", "n_clicks", 1)
            question = "[slow] How do I start chatlake?"
            sent = dash(url, controller_request(0, send, {"question": question}))
            turn_id = sent["active-turn"]["data"]
            conversation_id = sent["conversation-id"]["data"]
            store_path = tmp_path / "app" / "conversations.sqlite"
            wait_until(lambda: streamed_text(store_path), 20, what="streaming")
            (worker,) = child_pids(app.process.pid)

            os.kill(worker, signal.SIGKILL)
            wait_until(lambda: not alive(worker), 10, what="the worker to die")

            poll = _prop("poll", "n_intervals", 5)
            state = {"conversation": conversation_id, "active": turn_id}
            ended = wait_until(
                lambda: dash(url, controller_request(4, poll, state)),
                30,
                interval_s=0.15,
                what="a poll answered by the new worker",
            )
        finally:
            assert app.stop() == 0, app.log()

    assert "active-turn" in ended, f"the turn still shows as running: {ended}"
    assert ended["active-turn"]["data"] is None
    assert ended["poll"]["disabled"] is True
    assert ended["question"]["disabled"] is False
    assert ended["stop"]["className"] == "stop hidden"
    assert "the app stopped during this turn" in str(ended["messages"]["children"])
    with sqlite3.connect(store_path) as db:
        stored = db.execute(
            "SELECT status, error_type, assistant_message FROM turns WHERE id=?",
            (turn_id,),
        ).fetchone()
    assert stored[:2] == ("error", "interrupted")
    (event,) = spooled_turns(tmp_path / "spool")
    assert (event.telemetry_id, event.session_id) == (turn_id, conversation_id)
    assert (event.status, event.error_type) == ("error", "interrupted")
    assert event.user_message == question
    assert event.assistant_message == stored[2] != ""
    assert "running turns ended as interrupted" not in app.log()
