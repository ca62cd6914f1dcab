"""The Dash application: header, router and the browser identity cookie.

``create_app()`` builds everything from the environment; tests pass their own
parts. Under gunicorn each worker calls it once, after forking, so every
worker has its own telemetry client and model client.
"""

from __future__ import annotations

import importlib
import logging
import re
import uuid
from dataclasses import dataclass

import dash
import flask
from dash import Input, Output, dcc, html

from chatlake.app import callbacks, ingestion, layout, plotly_js
from chatlake.app.model_client import ModelClient
from chatlake.app.settings import AppSettings, ModelSettings
from chatlake.app.store import ConversationStore
from chatlake.app.telemetry_sink import TelemetrySink
from chatlake.app.turns import ChatService

logger = logging.getLogger(__name__)

IDENTITY_COOKIE = "chatlake_uid"
IDENTITY_MAX_AGE_S = 400 * 24 * 3600
MAX_REQUEST_BYTES = 2 * 1024 * 1024
_IDENTITY = re.compile(r"^[0-9a-f]{32}$")

# route -> (page title, module written by the analytics engineer)
ANALYTICS_PAGES = {
    "/dashboard": ("Dashboard", "chatlake.app.dashboard"),
    "/ingestion": ("Ingestion", "chatlake.app.ingestion"),
}


@dataclass(frozen=True)
class AppParts:
    settings: AppSettings
    model: ModelSettings
    service: ChatService


def build_parts(data_dir: str | None = None, handle_sigterm: bool = True) -> AppParts:
    """Settings, store, model client and telemetry, all from the environment."""
    settings = AppSettings.from_env(data_dir)
    model = ModelSettings.from_env()
    store = ConversationStore(settings.store_path)
    telemetry = TelemetrySink.from_env(handle_sigterm)
    service = ChatService(store, ModelClient(model), telemetry, settings)
    return AppParts(settings, model, service)


def current_user() -> str:
    """The browser identity of the request being served."""
    return flask.g.chatlake_user


def create_app(parts: AppParts | None = None) -> dash.Dash:
    parts = parts or build_parts()
    app = dash.Dash(
        __name__,
        title="chatlake",
        update_title=None,
        suppress_callback_exceptions=True,
    )
    _install_identity(app.server)
    # GET /metrics: the telemetry spool backlog, for Prometheus and alert rules.
    ingestion.serve_metrics(app.server)
    # Callback requests carry a question and a few ids; refuse anything huge.
    app.server.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    plotly_js.use_cartesian_build(app)
    pages = _analytics_pages(app)
    plotly_js.load_early(app, tuple(pages))
    app.layout = html.Div(
        [
            dcc.Location(id="url"),
            layout.header(parts.model.label, parts.model.is_demo),
            html.Div(id="page"),
        ]
    )

    @app.callback(Output("page", "children"), Input("url", "pathname"))
    def route(pathname):
        if pathname in pages:
            return pages[pathname]()
        return layout.chat_page()

    @app.callback(
        Output("telemetry-status", "children"), Input("status-poll", "n_intervals")
    )
    def telemetry_status(_tick):
        return parts.service.telemetry.status().describe()

    callbacks.register(app, parts.service, current_user)
    app.server.extensions["chatlake_parts"] = parts
    return app


def _install_identity(server: flask.Flask) -> None:
    # An opaque random id per browser, so the sidebar shows only its own
    # conversations; it is not a login.
    @server.before_request
    def read_identity():
        value = flask.request.cookies.get(IDENTITY_COOKIE, "")
        flask.g.chatlake_new_user = not _IDENTITY.match(value)
        flask.g.chatlake_user = uuid.uuid4().hex if flask.g.chatlake_new_user else value

    @server.after_request
    def write_identity(response):
        if getattr(flask.g, "chatlake_new_user", False):
            response.set_cookie(
                IDENTITY_COOKIE,
                flask.g.chatlake_user,
                max_age=IDENTITY_MAX_AGE_S,
                httponly=True,
                samesite="Lax",
            )
        return response


def _analytics_pages(app: dash.Dash) -> dict:
    """Page factories of the analytics routes; a placeholder for a missing module."""
    pages = {}
    for route, (title, module_name) in ANALYTICS_PAGES.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name != module_name:
                raise
            logger.info("%s not installed; %s shows a placeholder", module_name, route)
            pages[route] = lambda t=title, m=module_name: layout.placeholder(t, m)
            continue
        module.register_callbacks(app)
        pages[route] = module.layout
    return pages
