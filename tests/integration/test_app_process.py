"""`chatlake app` as Databricks Apps runs it: the port from DATABRICKS_APP_PORT,
settings from app.yaml, and a clean stop on SIGTERM.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx

from chatlake.app.testing import ChildProcess, free_port

APP_YAML = Path(__file__).resolve().parents[2] / "app.yaml"


def test_app_listens_on_databricks_app_port_and_stops_cleanly(tmp_path):
    port = free_port()
    env = {"DATABRICKS_APP_PORT": str(port), "ZEROBUS_SERVER_ENDPOINT": ""}
    app = ChildProcess(["app", "--data-dir", str(tmp_path)], tmp_path / "app.log", env)
    try:
        app.wait_http(f"http://127.0.0.1:{port}/")
        page = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
        assert page.status_code == 200
        assert "<title>chatlake</title>" in page.text
    finally:
        assert app.stop() == 0, app.log()
    assert (tmp_path / "app" / "conversations.sqlite").is_file()


def test_app_yaml_reads_endpoints_and_secrets_through_value_from():
    text = APP_YAML.read_text()
    command = json.loads(re.search(r"^command: (\[.*\])$", text, re.M).group(1))
    assert command == ["chatlake", "app", "--host", "0.0.0.0"]
    entries = re.findall(r"- name: (\w+)\n\s+(value|valueFrom): (.+)", text)
    env = {name: (kind, value) for name, kind, value in entries}
    assert env["SERVING_ENDPOINT"] == ("valueFrom", "serving-endpoint")
    assert env["ZEROBUS_SERVER_ENDPOINT"] == ("valueFrom", "zerobus-endpoint")
    assert env["ZEROBUS_HOST"] == ("valueFrom", "workspace-url")
    assert env["ZEROBUS_TABLE"] == ("value", "main.chatbot.chat_events")
    # No literal URL, token or secret in the manifest.
    literals = [value for kind, value in env.values() if kind == "value"]
    assert not [v for v in literals if "://" in v or "secret" in v.lower()]
