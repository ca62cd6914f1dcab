"""The dashboard's first view: drawn into the layout, started early, shared."""

from __future__ import annotations

import threading

import dash
import pytest

from chatlake.analytics import page_data
from chatlake.analytics.engine import SqlEngine
from chatlake.analytics.resolver import StaticResolver
from chatlake.analytics.testing import write_known_tables
from chatlake.app import dashboard


class CountingResolver(StaticResolver):
    """Counts table look-ups: one per table per query the engine runs."""

    def __init__(self, locations) -> None:
        super().__init__(locations)
        self.lookups = 0
        self._lock = threading.Lock()  # a page's reports run side by side

    def resolve(self, full_name):
        with self._lock:
            self.lookups += 1
        return super().resolve(full_name)


@pytest.fixture
def resolver(tmp_path, monkeypatch) -> CountingResolver:
    tables = write_known_tables(tmp_path)
    counting = CountingResolver(
        {
            "main.chatbot.chat_events": str(tables["chat_events"]),
            "main.chatbot.feedback": str(tables["feedback"]),
        }
    )
    monkeypatch.setattr(page_data, "SHARED", page_data.PageData(SqlEngine(counting)))
    monkeypatch.setattr(page_data, "DEFAULT_RANGE", "all")
    monkeypatch.delenv(page_data.ENV_CHAT_TABLE, raising=False)
    monkeypatch.delenv(page_data.ENV_FEEDBACK_TABLE, raising=False)
    return counting


def test_a_page_run_is_shared_while_fresh(resolver, monkeypatch) -> None:
    first = page_data.SHARED.shared(["tokens_by_model", "latency"], "all")
    again = page_data.SHARED.shared(["tokens_by_model", "latency"], "all")

    assert again is first
    assert resolver.lookups == 2
    assert first.tables["tokens_by_model"].column("turns").to_pylist() == [5, 5]

    monkeypatch.setattr(page_data, "SHARE_RESULTS_S", 0.0)
    later = page_data.SHARED.shared(["tokens_by_model", "latency"], "all")
    assert later is not first
    assert resolver.lookups == 4


def test_other_ranges_and_pages_are_not_shared(resolver) -> None:
    page_data.SHARED.shared(["tokens_by_model"], "all")
    page_data.SHARED.shared(["tokens_by_model"], "7d")
    page_data.SHARED.shared(["latency"], "all")

    assert resolver.lookups == 3


def test_the_layout_holds_the_default_range_drawn(resolver) -> None:
    page = dashboard.layout()

    graphs = {
        graph.id: graph.figure
        for graph in page.children[2].children
        if isinstance(graph, dash.dcc.Graph)
    }
    assert list(graphs) == [graph_id for graph_id, _, _ in dashboard.CHARTS]
    assert graphs["chart-messages"]["data"][0]["y"] == [3, 2, 3, 1, 1]
    status = page.children[1].children
    assert "updated" in status.children[0].children
    # Every report of the page ran once; feedback_by_model reads two tables.
    assert resolver.lookups == len(dashboard.REPORT_NAMES) + 1


def test_asking_for_the_page_starts_its_reports(resolver) -> None:
    app = dash.Dash(__name__, suppress_callback_exceptions=True)
    app.layout = dashboard.layout
    dashboard.register_callbacks(app)
    client = app.server.test_client()

    assert client.get("/dashboard").status_code == 200
    # The layout request finds the prefetched run instead of starting another.
    assert client.get("/_dash-layout").status_code == 200
    assert resolver.lookups == len(dashboard.REPORT_NAMES) + 1
