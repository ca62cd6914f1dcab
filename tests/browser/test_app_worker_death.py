"""The chat page when the gunicorn workers die mid-answer (SIGKILL): gunicorn
starts new ones, and the page shows the turn interrupted and takes questions
again, instead of streaming for good."""

from __future__ import annotations

import os
import signal

from playwright.sync_api import expect

from chatlake.app.testing import (
    app_over_scripted_model,
    wait_until,
)
from tests.integration.process_support import alive, child_pids


def test_a_turn_cut_by_killed_workers_ends_interrupted_on_the_page(page, tmp_path):
    running = app_over_scripted_model(
        tmp_path / "data",
        tmp_path / "app.log",
        token_delay_ms=30,
        first_token_delay_ms=50,
        args=("--workers", "2"),
    )
    with running as (url, app):
        try:
            page.goto(url)
            page.fill("#question", "[slow] How does telemetry reach Delta Lake?")
            page.press("#question", "Enter")
            running = page.locator(".message.assistant[data-status=running]")
            expect(running).to_contain_text("Here")

            workers = child_pids(app.process.pid)
            for worker in workers:
                os.kill(worker, signal.SIGKILL)
            wait_until(lambda: not any(map(alive, workers)), 10, what="the workers")

            # Within the time gunicorn takes to start and load new workers.
            bubble = page.locator(".message.assistant.error")
            expect(bubble.locator(".detail")).to_have_text(
                "the app stopped during this turn", timeout=30_000
            )
            expect(bubble.locator(".title")).to_have_text(
                "The app stopped during this turn."
            )
            expect(page.locator("#question")).to_be_enabled()
            expect(page.locator("#stop")).to_be_hidden()
            expect(running).to_have_count(0)

            page.fill("#question", "How do I start chatlake?")
            page.press("#question", "Enter")
            answered = page.locator(".message.assistant[data-status=ok]")
            expect(answered).to_contain_text("make up", timeout=30_000)
        finally:
            assert app.stop() == 0, app.log()
