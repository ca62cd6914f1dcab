"""Settings of the chatbot app and its model endpoint, resolved once from the env.

Model endpoint, first match wins:

1. Databricks Model Serving: ``DATABRICKS_HOST`` + ``SERVING_ENDPOINT``, with
   ``DATABRICKS_TOKEN``, or else the app's service principal
   (``DATABRICKS_CLIENT_ID`` / ``DATABRICKS_CLIENT_SECRET``, as Databricks Apps
   provide) traded for OAuth tokens; base URL ``{host}/serving-endpoints``.
2. Any OpenAI-compatible server: ``OPENAI_BASE_URL``, ``OPENAI_API_KEY``,
   ``CHATLAKE_MODEL``.
3. Nothing set: chatlake's offline demo model on ``127.0.0.1:8070``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from chatlake import config
from chatlake.app.demo_model import DEMO_MODEL_ID, DEMO_MODEL_LABEL
from chatlake.app.oauth import ClientCredentials
from chatlake.errors import ConfigError

ENV_MODEL = "CHATLAKE_MODEL"
ENV_MODEL_LABEL = "CHATLAKE_MODEL_LABEL"
ENV_MODEL_TIMEOUT_S = "CHATLAKE_MODEL_TIMEOUT_S"
ENV_MAX_TOKENS = "CHATLAKE_MAX_TOKENS"
ENV_SYSTEM_PROMPT = "CHATLAKE_SYSTEM_PROMPT"
ENV_APP_NAME = "CHATLAKE_APP_NAME"
ENV_APP_PORT = "DATABRICKS_APP_PORT"

DEFAULT_MODEL_TIMEOUT_S = 60.0
# An hour: a turn that may take longer looks hung to the person waiting.
MAX_MODEL_TIMEOUT_S = 3600.0
DEFAULT_MAX_TOKENS = 1024
# Far above any model's output window, and small enough for every API's integer.
MAX_MAX_TOKENS = 1_000_000
DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant. Answer in Markdown."
DEFAULT_APP_NAME = "chatlake-chatbot"
DEMO_API_KEY = "offline-demo"


@dataclass(frozen=True)
class ModelSettings:
    """Where the model lives and how long a turn may take."""

    base_url: str
    api_key: str | None
    model: str
    label: str
    timeout_s: float = DEFAULT_MODEL_TIMEOUT_S
    max_tokens: int = DEFAULT_MAX_TOKENS
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    # Set when the api key is an OAuth token fetched with these credentials.
    oauth: ClientCredentials | None = None

    @property
    def is_demo(self) -> bool:
        return self.model == DEMO_MODEL_ID

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> ModelSettings:
        env = dict(os.environ if env is None else env)
        base_url, api_key, model = _endpoint(env)
        oauth = _oauth(env) if api_key is None else None
        default_label = DEMO_MODEL_LABEL if model == DEMO_MODEL_ID else model
        return cls(
            base_url=base_url,
            api_key=api_key,
            model=model,
            label=env.get(ENV_MODEL_LABEL) or default_label,
            timeout_s=_timeout_s(env),
            max_tokens=_max_tokens(env),
            system_prompt=env.get(ENV_SYSTEM_PROMPT) or DEFAULT_SYSTEM_PROMPT,
            oauth=oauth,
        )


def demo_base_url(port: int = config.DEFAULT_MODEL_PORT) -> str:
    return f"http://{config.DEFAULT_HOST}:{port}/v1"


def _endpoint(env: dict[str, str]) -> tuple[str, str | None, str]:
    """Base URL, api key (None: use OAuth) and model name."""
    host, endpoint = env.get("DATABRICKS_HOST"), env.get("SERVING_ENDPOINT")
    if host and endpoint:
        return (
            f"{_https(host)}/serving-endpoints",
            env.get("DATABRICKS_TOKEN"),
            endpoint,
        )
    base_url = env.get("OPENAI_BASE_URL")
    if base_url:
        model = env.get(ENV_MODEL)
        if not model:
            raise ConfigError(f"OPENAI_BASE_URL is set but {ENV_MODEL} is missing")
        return base_url.rstrip("/"), env.get("OPENAI_API_KEY") or DEMO_API_KEY, model
    return demo_base_url(), DEMO_API_KEY, DEMO_MODEL_ID


def _https(host: str) -> str:
    return (host if "://" in host else f"https://{host}").rstrip("/")


def _oauth(env: dict[str, str]) -> ClientCredentials:
    client_id, secret = (
        env.get("DATABRICKS_CLIENT_ID"),
        env.get("DATABRICKS_CLIENT_SECRET"),
    )
    if not client_id or not secret:
        raise ConfigError(
            "SERVING_ENDPOINT is set but neither DATABRICKS_TOKEN nor "
            "DATABRICKS_CLIENT_ID and DATABRICKS_CLIENT_SECRET are"
        )
    token_url = f"{_https(env['DATABRICKS_HOST'])}/oidc/v1/token"
    return ClientCredentials(token_url, client_id, secret)


def _timeout_s(env: dict[str, str]) -> float:
    raw = env.get(ENV_MODEL_TIMEOUT_S)
    if raw is None or raw == "":
        return DEFAULT_MODEL_TIMEOUT_S
    return config.number_setting(
        ENV_MODEL_TIMEOUT_S, raw, maximum=MAX_MODEL_TIMEOUT_S, above_minimum=True
    )


def _max_tokens(env: dict[str, str]) -> int:
    raw = env.get(ENV_MAX_TOKENS)
    if raw is None or raw == "":
        return DEFAULT_MAX_TOKENS
    setting = f"{ENV_MAX_TOKENS}={raw!r}"
    try:
        value = int(raw)
    except ValueError:
        # 1e999 and 2.5 are numbers, just not a count of tokens.
        raise ConfigError(
            f"{setting} is not a whole number: give 1 to {MAX_MAX_TOKENS}"
        ) from None
    if value <= 0:
        raise ConfigError(f"{setting} must be greater than zero")
    if value > MAX_MAX_TOKENS:
        raise ConfigError(f"{setting} is too large: at most {MAX_MAX_TOKENS}")
    return value


@dataclass(frozen=True)
class AppSettings:
    """Where the app keeps conversations and what it calls itself in telemetry."""

    data_dir: Path
    app_name: str = DEFAULT_APP_NAME
    app_version: str = "0.1.0"

    @property
    def store_path(self) -> Path:
        return self.data_dir / "app" / "conversations.sqlite"

    @classmethod
    def from_env(cls, data_dir: str | None = None) -> AppSettings:
        from chatlake import __version__

        name = os.environ.get(ENV_APP_NAME) or DEFAULT_APP_NAME
        return cls(config.data_dir(data_dir), name, __version__)
