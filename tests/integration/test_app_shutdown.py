"""`chatlake app` stopped while a turn streams: the turn ends as interrupted, in
the store and as a ChatTurn in the telemetry spool, instead of vanishing."""

from __future__ import annotations

import os
import signal
import sqlite3

import httpx
import pytest

from chatlake.app.server import IDENTITY_COOKIE
from chatlake.app.testing import (
    ChildProcess,
    app_over_scripted_model,
    wait_until,
)
from chatlake.telemetry import ChatTurn
from tests.integration.test_app_callbacks import OWNER, _prop, controller_request


def spooled_turns(spool_dir) -> list[ChatTurn]:
    turns = []
    for path in sorted(spool_dir.glob("spool-*.sqlite3")):
        with sqlite3.connect(path) as db:
            rows = db.execute(
                "SELECT payload FROM events WHERE stream_key='@chat' ORDER BY id"
            )
            turns += [ChatTurn.FromString(payload) for (payload,) in rows]
    return turns


def streamed_text(store_path) -> str:
    if not store_path.exists():
        return ""
    with sqlite3.connect(store_path) as db:
        row = db.execute("SELECT assistant_message FROM turns").fetchone()
    return row[0] if row else ""


def ctrl_c(app: ChildProcess) -> int:
    """What a terminal does on Ctrl-C: SIGINT to every process of the group."""
    os.killpg(app.process.pid, signal.SIGINT)
    app.process.wait(30)
    return app.stop()


@pytest.mark.parametrize("stop", [ChildProcess.stop, ctrl_c], ids=["sigterm", "ctrl-c"])
def test_a_turn_cut_by_stopping_the_app_is_stored_and_spooled_as_interrupted(
    tmp_path, stop
):
    spool = {"CHATLAKE_SPOOL_DIR": str(tmp_path / "spool")}
    # 0.3 s per chunk: the answer takes far longer than the 3 s stop grace.
    running = app_over_scripted_model(
        tmp_path, tmp_path / "app.log", slow_chunk_s=0.3, env=spool
    )
    with running as (url, app):
        try:
            question = "[slow] How do I start chatlake?"
            body = controller_request(
                0, _prop("send", "n_clicks", 1), {"question": question}
            )
            cookies = {IDENTITY_COOKIE: OWNER}
            sent = httpx.post(
                f"{url}/_dash-update-component", json=body, cookies=cookies, timeout=10
            )
            assert sent.status_code == 200, sent.text
            turn_id = sent.json()["response"]["active-turn"]["data"]
            store_path = tmp_path / "app" / "conversations.sqlite"
            wait_until(lambda: streamed_text(store_path), 20, what="streaming")
        finally:
            assert stop(app) == 0, app.log()

    with sqlite3.connect(store_path) as db:
        stored = db.execute(
            "SELECT status, error_type, assistant_message FROM turns WHERE id=?",
            (turn_id,),
        ).fetchone()
    assert stored[:2] == ("error", "interrupted"), app.log()
    (event,) = spooled_turns(tmp_path / "spool")
    assert (event.telemetry_id, event.status) == (turn_id, "error")
    assert event.error_type == "interrupted"
    assert event.user_message == question
    assert event.assistant_message == stored[2] != ""
    assert "1 running turns ended as interrupted" in app.log()
