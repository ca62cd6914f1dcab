"""The model and app parts of `chatlake up`.

The offline demo model starts only when no model endpoint is configured in
the environment (Databricks serving or OPENAI_BASE_URL); its settings then go
into app.env so a separately started app finds it too.
"""

from __future__ import annotations

import os

MODEL_LABEL_ENV = "CHATLAKE_MODEL_LABEL"


def model_configured(env: dict[str, str] | None = None) -> bool:
    """True when the environment already names a model endpoint."""
    env = os.environ if env is None else env
    databricks = env.get("DATABRICKS_HOST") and env.get("SERVING_ENDPOINT")
    return bool(databricks or env.get("OPENAI_BASE_URL"))


def model_env(ctx) -> dict[str, str]:
    """app.env entries pointing the app at the demo model, or none."""
    if model_configured():
        return {}
    from chatlake.app.demo_model import DEMO_MODEL_ID, DEMO_MODEL_LABEL
    from chatlake.app.settings import DEMO_API_KEY

    return {
        "OPENAI_BASE_URL": f"{ctx.url('model')}/v1",
        "OPENAI_API_KEY": DEMO_API_KEY,
        "CHATLAKE_MODEL": DEMO_MODEL_ID,
        MODEL_LABEL_ENV: DEMO_MODEL_LABEL,
    }


def model_service(ctx):
    """The demo model's Service, or None when a real endpoint is configured."""
    from chatlake.up import HOST, Service

    if model_configured():
        return None
    argv = ctx.chatlake("model", "--host", HOST, "--port", str(ctx.port("model")))
    url = ctx.url("model")
    return Service("model", argv, ready_url=f"{url}/healthz", address=f"{url}/v1")


def app_service(ctx):
    from chatlake.up import HOST, Service

    argv = ctx.chatlake(
        "app",
        "--host",
        HOST,
        "--port",
        str(ctx.port("app")),
        "--data-dir",
        str(ctx.data_dir),
    )
    url = ctx.url("app")
    # The /ingestion page scrapes the ingest server's metrics of this stack.
    env = {**ctx.app_env, "CHATLAKE_INGEST_METRICS_URL": metrics_url(ctx)}
    return Service("app", argv, ready_url=f"{url}/", env=env, address=url)


def metrics_url(ctx) -> str:
    from chatlake import config

    port = ctx.ports.get("metrics", config.DEFAULT_METRICS_PORT)
    return f"http://127.0.0.1:{port}/metrics"
