"""`chatlake demo` against `chatlake up`: simulated users' turns and ratings land
in the Delta tables, read back with SQL.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from chatlake.analytics.engine import SqlEngine
from chatlake.app.testing import Stack, wait_until
from chatlake.catalog.client import CatalogClient


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("demo")
    with Stack(tmp / "data", tmp / "up.log", {"OPENAI_BASE_URL": ""}) as running:
        yield running


def count(stack, sql) -> int:
    with CatalogClient.local_admin(stack.url("catalog"), stack.data_dir) as admin:
        return SqlEngine(admin).query(sql).column(0)[0].as_py()


@pytest.mark.slow
def test_demo_users_fill_both_tables(stack):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "chatlake",
            "demo",
            "--users",
            "3",
            "--turns",
            "2",
            "--seed",
            "11",
            "--json",
            "--data-dir",
            str(stack.data_dir),
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["turns"], summary["failed"]) == (6, 0)
    assert summary["telemetry"] == "delivering"

    def landed():
        turns = count(
            stack,
            "SELECT count(*) FROM main.chatbot.chat_events "
            "WHERE user_id LIKE 'demo-%' AND status = 'ok'",
        )
        ratings = count(
            stack,
            "SELECT count(*) FROM main.chatbot.feedback WHERE user_id LIKE 'demo-%'",
        )
        return (
            (turns, ratings) if turns == 6 and ratings == summary["ratings"] else None
        )

    assert wait_until(landed, 60, interval_s=0.5, what="the demo's rows")
    sessions = count(
        stack,
        "SELECT count(DISTINCT session_id) FROM "
        "main.chatbot.chat_events WHERE user_id LIKE 'demo-%'",
    )
    assert sessions == 3
