"""Which plotly.js the chart pages get, and how early they ask for it."""

from __future__ import annotations

import ast
import hashlib
import logging
from pathlib import Path

import dash
import pytest
from dash import html
from plotly.offline import get_plotlyjs_version

from chatlake.analytics import charts
from chatlake.app import plotly_js
from chatlake.errors import ConfigError

PLOTLY_URL = "/" + plotly_js.DASH_PLOTLY_PATH


def fake_bundle(tmp_path: Path, version: str) -> Path:
    """A bundle with plotly's header and its checksum file, as make writes them."""
    path = tmp_path / "plotly-cartesian.min.js"
    path.write_text(
        f"/**\n* plotly.js (cartesian - minified) v{version}\n*/\nwindow.Plotly={{}};\n"
    )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    path.with_name(path.name + ".sha256").write_text(digest + "\n")
    return path


def served(app: dash.Dash, url: str = PLOTLY_URL) -> bytes:
    with app.server.test_client().get(url) as response:
        assert response.status_code == 200
        return response.get_data()


def new_app() -> dash.Dash:
    app = dash.Dash(__name__)
    app.layout = html.Div("page")
    return app


@pytest.fixture(autouse=True)
def no_build_setting(monkeypatch):
    monkeypatch.delenv(plotly_js.ENV_BUILD, raising=False)


def test_the_bundle_version_is_read_from_its_header(tmp_path) -> None:
    assert plotly_js.bundle_version(fake_bundle(tmp_path, "4.1.1")) == "4.1.1"
    other = tmp_path / "other.js"
    other.write_text("/** plotly.js v4.1.1 */")
    assert plotly_js.bundle_version(other) is None
    assert plotly_js.bundle_version(tmp_path / "missing.js") is None


def test_the_cartesian_build_is_served_where_dcc_graph_loads_plotly(tmp_path) -> None:
    bundle = fake_bundle(tmp_path, get_plotlyjs_version())
    app = new_app()

    assert plotly_js.use_cartesian_build(app, bundle) is True

    with app.server.test_client().get(PLOTLY_URL) as response:
        assert response.mimetype == "text/javascript"
    assert served(app) == bundle.read_bytes()


def test_a_bundle_of_another_version_leaves_dashs_full_build(tmp_path, caplog) -> None:
    bundle = fake_bundle(tmp_path, "0.0.1")
    app = new_app()

    with caplog.at_level(logging.INFO, logger=plotly_js.__name__):
        assert plotly_js.use_cartesian_build(app, bundle) is False

    assert len(served(app)) > 3_000_000  # Dash's full build, not the 60-byte fake
    assert f"holds v0.0.1, the plotly package v{get_plotlyjs_version()}" in caplog.text
    assert caplog.records[-1].levelno == logging.WARNING


def test_a_missing_bundle_leaves_dashs_full_build(tmp_path, caplog) -> None:
    with caplog.at_level(logging.INFO, logger=plotly_js.__name__):
        assert plotly_js.use_cartesian_build(new_app(), tmp_path / "none.js") is False
    assert "is missing or not plotly's cartesian build" in caplog.text


def test_a_bundle_changed_since_make_leaves_dashs_full_build(tmp_path, caplog) -> None:
    bundle = fake_bundle(tmp_path, get_plotlyjs_version())
    with bundle.open("ab") as cut:
        cut.write(b"more")
    app = new_app()

    with caplog.at_level(logging.INFO, logger=plotly_js.__name__):
        assert plotly_js.use_cartesian_build(app, bundle) is False

    assert len(served(app)) > 3_000_000
    assert "plotly-cartesian.min.js does not match" in caplog.text


def test_a_bundle_without_its_checksum_is_not_served(tmp_path, caplog) -> None:
    bundle = fake_bundle(tmp_path, get_plotlyjs_version())
    bundle.with_name(bundle.name + ".sha256").unlink()

    with caplog.at_level(logging.INFO, logger=plotly_js.__name__):
        assert plotly_js.use_cartesian_build(new_app(), bundle) is False

    assert "plotly-cartesian.min.js.sha256 is missing or empty" in caplog.text


def test_a_bundle_gone_while_serving_gives_way_to_the_full_build(tmp_path, caplog):
    bundle = fake_bundle(tmp_path, get_plotlyjs_version())
    app = new_app()
    assert plotly_js.use_cartesian_build(app, bundle) is True
    bundle.unlink()

    with caplog.at_level(logging.WARNING, logger=plotly_js.__name__):
        assert len(served(app)) > 3_000_000

    assert "serving plotly's full build" in caplog.text


def test_a_bundle_changed_while_serving_is_checked_again(tmp_path, caplog) -> None:
    bundle = fake_bundle(tmp_path, get_plotlyjs_version())
    app = new_app()
    assert plotly_js.use_cartesian_build(app, bundle) is True
    bundle.write_text('throw new Error("corrupt");')

    with caplog.at_level(logging.WARNING, logger=plotly_js.__name__):
        assert len(served(app)) > 3_000_000
        assert len(served(app)) > 3_000_000

    assert caplog.text.count("is missing or not plotly's cartesian build") == 1

    fake_bundle(tmp_path, get_plotlyjs_version())  # put back, checksum and all
    assert served(app) == bundle.read_bytes()


def test_the_full_build_stays_reachable_for_the_page_fallback(tmp_path) -> None:
    bundle = fake_bundle(tmp_path, get_plotlyjs_version())
    app = new_app()
    assert plotly_js.use_cartesian_build(app, bundle) is True

    assert served(app) == bundle.read_bytes()
    assert len(served(app, PLOTLY_URL + "?build=full")) > 3_000_000


def test_the_full_build_can_be_asked_for(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(plotly_js.ENV_BUILD, " Full ")
    bundle = fake_bundle(tmp_path, get_plotlyjs_version())
    app = new_app()

    assert plotly_js.use_cartesian_build(app, bundle) is False
    assert served(app) != bundle.read_bytes()


def test_an_unknown_build_is_refused_by_name(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(plotly_js.ENV_BUILD, "basic")

    with pytest.raises(ConfigError) as refused:
        plotly_js.use_cartesian_build(new_app(), fake_bundle(tmp_path, "4.1.1"))

    assert str(refused.value) == (
        "CHATLAKE_PLOTLY_BUILD='basic': expected one of cartesian, full"
    )


def test_chart_pages_load_plotly_from_their_head() -> None:
    app = new_app()
    plotly_js.load_early(app, ("/dashboard", "/ingestion"))
    client = app.server.test_client()

    dashboard = client.get("/dashboard").get_data(as_text=True)
    chat = client.get("/").get_data(as_text=True)

    script = f'<script defer id="plotly-js" src="{PLOTLY_URL}"></script>'
    head = dashboard.split("</head>", 1)[0]
    assert head.count(script) == 1
    assert head.count("window.Plotly = waiting") == 1
    assert "plotly-js" not in chat
    assert client.get("/ingestion").get_data(as_text=True).count(script) == 1


def trace_types(source: Path) -> set[str]:
    """Trace types a module writes: trace("kind", ...) calls and {"type": "kind"}."""
    found = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "trace":
            found.add(node.args[0].value)
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if getattr(key, "value", None) == "type" and isinstance(
                    value, ast.Constant
                ):
                    found.add(value.value)
    return found


def test_the_cartesian_build_holds_every_trace_the_pages_draw() -> None:
    # Every figure of both pages comes from the charts module.
    pages = Path(plotly_js.__file__).parent
    for page in ("dashboard.py", "ingestion.py"):
        assert trace_types(pages / page) == set()

    used = trace_types(Path(charts.__file__))

    assert used == {"bar", "scatter", "heatmap"}
    assert used <= plotly_js.CARTESIAN_TRACES
