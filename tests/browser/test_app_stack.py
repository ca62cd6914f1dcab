"""The whole path a user's click takes: browser -> app -> telemetry -> ingest ->
Delta tables -> SQL, against `chatlake up` in a child process.
"""

from __future__ import annotations

import re
import sqlite3

import pytest
from playwright.sync_api import expect

from chatlake.analytics.engine import SqlEngine
from chatlake.app.settings import AppSettings
from chatlake.app.store import ConversationStore
from chatlake.app.testing import Stack, wait_until
from chatlake.catalog.client import CatalogClient

QUESTION = "What does the chat_events table hold?"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("stack")
    env = {"OPENAI_BASE_URL": "", "SERVING_ENDPOINT": "", "ZEROBUS_SERVER_ENDPOINT": ""}
    with Stack(tmp / "data", tmp / "up.log", env) as running:
        yield running


def rows(stack, sql):
    with CatalogClient.local_admin(stack.url("catalog"), stack.data_dir) as client:
        return SqlEngine(client).query(sql).to_pylist()


@pytest.mark.slow
def test_turn_and_ratings_land_in_delta_tables(page, stack):
    page.goto(stack.url("app"))
    expect(page.locator("#model-label")).to_have_text("model: offline demo model")

    page.fill("#question", QUESTION)
    page.press("#question", "Enter")
    running = page.locator(".message.assistant[data-status=running]")
    expect(running).to_contain_text("Here is what")
    answer = page.locator(".message.assistant[data-status=ok]")
    expect(answer).to_contain_text("chat_events", timeout=60_000)
    answer.locator(".rate.down").click()
    expect(answer.locator(".rate-note")).to_have_text("rated not helpful")
    answer.locator(".rate.up").click()
    expect(answer.locator(".rate-note")).to_have_text("rated helpful")
    expect(page.locator("#telemetry-status")).to_have_text(
        "telemetry: delivering", timeout=30_000
    )

    page.reload()
    entry = page.locator(".conversation", has_text=QUESTION)
    expect(entry).to_have_count(1)
    entry.click()
    reopened = page.locator(".message.assistant[data-status=ok]")
    expect(reopened.locator(".rate.up")).to_have_class(re.compile(r"\bactive\b"))

    store = ConversationStore(AppSettings(stack.data_dir).store_path)
    (conversation,) = [c for c in _conversations(store) if c[1] == QUESTION]
    (turn,) = store.turns(conversation[0])

    def landed():
        chat = rows(
            stack,
            f"SELECT * FROM main.chatbot.chat_events WHERE telemetry_id = '{turn.id}'",
        )
        ratings = rows(
            stack,
            "SELECT rating, telemetry_id, session_id, ingestion_time "
            f"FROM main.chatbot.feedback WHERE telemetry_id = '{turn.id}' "
            "ORDER BY event_time",
        )
        return (chat, ratings) if chat and len(ratings) == 2 else None

    chat, ratings = wait_until(landed, 60, interval_s=0.5, what="rows in Delta tables")
    (row,) = chat
    assert row["user_message"] == QUESTION
    assert row["session_id"] == turn.conversation_id
    assert (row["status"], row["finish_reason"]) == ("ok", "stop")
    assert (row["model"], row["turn_index"]) == ("chatlake-demo", 0)
    assert row["error_type"] is None
    assert row["output_tokens"] == len(turn.assistant_message.split())
    assert 0 <= row["ttft_ms"] <= row["response_time_ms"]
    assert row["ingestion_time"] is not None
    assert [r["rating"] for r in ratings] == [-1, 1]
    assert {r["session_id"] for r in ratings} == {turn.conversation_id}


def _conversations(store):
    with sqlite3.connect(store.path) as db:
        return db.execute("SELECT id, title FROM conversations").fetchall()


@pytest.mark.slow
def test_analytics_pages_are_routed_and_read_this_stack(page, stack):
    page.goto(stack.url("app") + "/dashboard")
    expect(page.locator("#dashboard-page")).to_be_visible()
    expect(page.locator(".placeholder")).to_have_count(0)

    page.goto(stack.url("app") + "/ingestion")
    expect(page.locator("#ingestion-page")).to_be_visible()
    expect(page.locator("#ingestion-cards")).not_to_be_empty(timeout=30_000)
    expect(page.locator(".analytics-error")).to_have_count(0)
