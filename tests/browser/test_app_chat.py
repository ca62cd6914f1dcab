"""The chat page in a real browser, against `chatlake app` under gunicorn and the
demo model (wrapped to fail or hang on cue). Telemetry is not configured here;
test_app_stack.py covers the path into the Delta tables.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from chatlake.app.demo_model import DemoModelSettings, create_demo_app
from chatlake.app.retrieval import PRIMER_PATH
from chatlake.app.testing import ChildProcess, ServerThread, free_port, scripted_model


@pytest.fixture(scope="module")
def chat_url(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("app")
    # The primer only: the repository's docs change, the expected answers must not.
    # 30 ms a token: a loaded machine must still see an answer while it streams.
    settings = DemoModelSettings(
        token_delay_ms=30, first_token_delay_ms=50, documents=(PRIMER_PATH,)
    )
    with ServerThread(scripted_model(create_demo_app(settings))) as model:
        port = free_port()
        env = {
            "OPENAI_BASE_URL": f"{model.url}/v1",
            "CHATLAKE_MODEL": "chatlake-demo",
            "CHATLAKE_MODEL_TIMEOUT_S": "1.5",
            "ZEROBUS_SERVER_ENDPOINT": "",
        }
        app = ChildProcess(
            # Two workers: a turn runs in one, polls and stops may reach the other.
            [
                "app",
                "--port",
                str(port),
                "--data-dir",
                str(tmp / "data"),
                "--workers",
                "2",
            ],
            tmp / "app.log",
            env,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            app.wait_http(url + "/")
            yield url
        finally:
            assert app.stop() == 0, app.log()


def ask(page, question: str) -> None:
    page.fill("#question", question)
    page.press("#question", "Enter")


def test_answer_streams_renders_markdown_and_survives_reload(page, chat_url):
    page.goto(chat_url)
    # The first page of the run: a cold browser and worker, on a loaded machine.
    expect(page.locator("#model-label")).to_have_text(
        "model: offline demo model", timeout=20_000
    )
    expect(page.locator("#telemetry-status")).to_have_text("telemetry: not configured")

    page.click("text=How do I start chatlake?")
    running = page.locator(".message.assistant[data-status=running]")
    expect(running).to_contain_text("Here is what")  # part of the answer, still running
    expect(page.locator("#question")).to_be_disabled()
    expect(page.locator("#stop")).to_be_visible()

    done = page.locator(".message.assistant[data-status=ok]")
    expect(done).to_contain_text("make up", timeout=30_000)
    expect(done.locator("strong").first).to_have_text("Starting everything")
    expect(done.locator("code").first).to_have_text("make up")
    expect(page.locator("#question")).to_be_enabled()
    expect(page.locator("#stop")).to_be_hidden()

    done.locator(".rate.down").click()
    expect(done.locator(".rate-note")).to_have_text("rated not helpful")
    done.locator(".rate.up").click()
    expect(done.locator(".rate-note")).to_have_text("rated helpful")
    expect(done.locator(".rate.up")).to_have_class(re.compile(r"\bactive\b"))
    comment = done.locator(".comment input")
    expect(comment).to_have_attribute("maxlength", "2000")
    expect(comment).to_have_attribute(
        "placeholder", "Optional comment (up to 2000 characters)"
    )
    done.locator(".comment input").fill("clear and short")
    done.locator(".comment-send").click()
    expect(done.locator(".rate-note")).to_have_text("rated helpful with a comment")

    page.reload()
    expect(page.locator(".welcome")).to_be_visible()
    entry = page.locator(".conversation", has_text="How do I start chatlake?")
    expect(entry).to_have_count(1)
    entry.click()
    expect(page.locator(".message.user")).to_have_text(["How do I start chatlake?"])
    reopened = page.locator(".message.assistant[data-status=ok]")
    expect(reopened.locator(".rate.up")).to_have_class(re.compile(r"\bactive\b"))


def test_second_turn_sends_history_and_new_chat_resets(page, chat_url):
    page.goto(chat_url)
    ask(page, "What does the chat_events table hold?")
    expect(page.locator(".message.assistant[data-status=ok]")).to_have_count(1)
    ask(page, "How do I query the tables with SQL?")
    expect(page.locator(".message.assistant[data-status=ok]")).to_have_count(2)
    expect(page.locator(".message.user")).to_have_count(2)
    code_block = page.locator(".message.assistant").nth(1).locator("pre code")
    expect(code_block).to_contain_text("FROM main.chatbot.chat_events")

    page.click("#new-chat")
    expect(page.locator(".welcome")).to_be_visible()
    # Each test has a fresh browser context, so a fresh identity: one conversation.
    expect(page.locator(".conversation")).to_have_count(1)


def test_stop_button_ends_the_turn_early(page, chat_url):
    page.goto(chat_url)
    ask(page, "[slow] How does telemetry reach Delta Lake?")
    expect(page.locator(".message.assistant[data-status=running]")).to_contain_text(
        "Here"
    )
    page.click("#stop")
    stopped = page.locator(".message.assistant[data-status=stopped]")
    expect(stopped.locator(".note")).to_have_text("stopped")
    expect(page.locator("#question")).to_be_enabled()


def test_failing_endpoint_shows_error_bubble_and_retry_recovers(page, chat_url):
    page.goto(chat_url)
    ask(page, "[fail-once] How do I start chatlake?")
    bubble = page.locator(".message.assistant.error")
    expect(bubble.locator(".title")).to_have_text(
        "The model endpoint failed (server_error)."
    )
    expect(bubble.locator(".detail")).to_contain_text("HTTP 500: scripted failure")
    bubble.locator(".retry").click()
    expect(page.locator(".message.assistant[data-status=ok]")).to_contain_text(
        "make up"
    )
    expect(page.locator(".message.assistant.error")).to_have_count(0)
    expect(page.locator(".message.user")).to_have_count(1)


def test_hanging_endpoint_times_out_into_a_bubble(page, chat_url):
    page.goto(chat_url)
    ask(page, "[hang] anything")
    bubble = page.locator(".message.assistant.error")
    expect(bubble.locator(".title")).to_have_text(
        "The model endpoint failed (timeout)."
    )
    expect(page.locator("#question")).to_be_enabled()
