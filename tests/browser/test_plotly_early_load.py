"""plotly.js loaded from the page's head: once, even when it arrives late.

A small Dash app in this process serves one chart page the way `chatlake app`
does (cartesian build, deferred from the head). The server holds plotly.js
back until dcc.Graph has started loading, which is the moment it decides
whether to fetch plotly.js itself.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import Counter
from pathlib import Path

import dash
import flask
import pytest
from dash import dcc, html
from playwright.sync_api import expect
from plotly.offline import get_plotlyjs_version
from werkzeug.serving import make_server

from chatlake.app import plotly_js

PLOTLY_URL = "/" + plotly_js.DASH_PLOTLY_PATH
GRAPH_CHUNK = "async-graph.js"
WAIT_S = 20


class GatedApp:
    """A chart page whose plotly.js waits for ``release``; counts what is asked."""

    def __init__(self, bundle: Path = plotly_js.BUNDLE) -> None:
        self.asked = Counter()
        self.graph_loading = threading.Event()
        self.release = threading.Event()
        app = dash.Dash(__name__)
        app.layout = html.Div(
            dcc.Graph(
                id="chart",
                figure={"data": [{"type": "bar", "x": ["a", "b"], "y": [2, 3]}]},
            )
        )
        app.server.before_request(self.gate)
        assert plotly_js.use_cartesian_build(app, bundle), "`make test` fetches it"
        plotly_js.load_early(app, ("/",))
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self.server = make_server("127.0.0.1", 0, app.server, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def gate(self) -> None:
        path = flask.request.path
        self.asked[path] += 1
        if flask.request.args.get("build") == "full":
            self.asked["full build"] += 1
        if path.endswith(GRAPH_CHUNK):
            self.graph_loading.set()
        if path == PLOTLY_URL:
            self.release.wait(WAIT_S)

    def __enter__(self) -> GatedApp:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self.server.shutdown()
        self.thread.join()


@pytest.fixture
def gated():
    with GatedApp() as app:
        yield app


def test_a_late_plotly_is_awaited_not_fetched_again(page, gated) -> None:
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    # The load event waits for the deferred plotly.js: do not wait for it.
    page.goto(gated.url + "/", wait_until="commit")
    assert gated.graph_loading.wait(WAIT_S), "dcc.Graph never started loading"
    gated.release.set()

    expect(page.locator("#chart g.trace.bars g.point")).to_have_count(2)
    assert page.evaluate("Plotly.version") == get_plotlyjs_version()
    # dcc.Graph adds a script of its own when it finds no plotly to wait on.
    scripts = f"document.querySelectorAll('script[src=\"{PLOTLY_URL}\"]').length"
    assert page.evaluate(scripts) == 1
    assert gated.asked[PLOTLY_URL] == 1
    assert errors == []


def test_the_served_plotly_is_the_cartesian_build(page, gated) -> None:
    gated.release.set()

    page.goto(gated.url + "/")

    expect(page.locator("#chart g.trace.bars g.point")).to_have_count(2)
    traces = page.evaluate("Object.keys(Plotly.PlotSchema.get().traces)")
    assert set(traces) == plotly_js.CARTESIAN_TRACES
    assert gated.asked[PLOTLY_URL] == 1


def test_a_build_that_fails_to_run_gives_way_to_the_full_one(page, tmp_path) -> None:
    # Cut, yet passing the server's checks (header and a checksum made for
    # it): the browser gets a script that dies.
    bundle = tmp_path / plotly_js.BUNDLE.name
    cut = plotly_js.BUNDLE.read_bytes()[:700_000]
    bundle.write_bytes(cut)
    checksum = bundle.with_name(bundle.name + ".sha256")
    checksum.write_text(hashlib.sha256(cut).hexdigest())
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    with GatedApp(bundle) as gated:
        gated.release.set()

        page.goto(gated.url + "/")

        expect(page.locator("#chart g.trace.bars g.point")).to_have_count(2)
        assert gated.asked["full build"] == 1

    traces = page.evaluate("Object.keys(Plotly.PlotSchema.get().traces)")
    assert "scattergeo" in traces  # Dash's full build
    # The cut script's own syntax error, and nothing after it.
    assert errors == ["Unexpected end of input"]
