"""Model Serving with the app's service principal: OAuth tokens from chatlake's
catalog (the same /oidc/v1/token shape as a Databricks workspace) sent as the
bearer of every chat completions call.
"""

from __future__ import annotations

import pytest

from chatlake.app.demo_model import DEMO_MODEL_ID, DemoModelSettings, create_demo_app
from chatlake.app.errors import ModelError
from chatlake.app.model_client import Delta, Finish, ModelClient
from chatlake.app.oauth import ClientCredentials
from chatlake.app.settings import ModelSettings
from chatlake.app.testing import ServerThread
from chatlake.catalog.tokens import TokenError, TokenVerifier
from chatlake.errors import ConfigError


def serving_endpoint(inner, verifier: TokenVerifier, seen: list[str]):
    """Databricks-style /serving-endpoints/chat/completions that demands a valid JWT."""
    from fastapi.responses import JSONResponse

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return await inner(scope, receive, send)
        headers = dict(scope["headers"])
        token = headers.get(b"authorization", b"").decode().removeprefix("Bearer ")
        try:
            claims = verifier.verify(token)
        except TokenError:
            body = {"error": {"message": "invalid token", "type": "auth"}}
            return await JSONResponse(body, status_code=401)(scope, receive, send)
        seen.append(claims.subject)
        path = scope["path"].replace("/serving-endpoints/", "/v1/")
        return await inner({**scope, "path": path}, receive, send)

    return app


@pytest.fixture
def principal(catalog_server):
    return catalog_server.admin_client.create_principal("chatbot_app")


def model_settings(endpoint_url, catalog_url, client_id, secret):
    return ModelSettings(
        base_url=f"{endpoint_url}/serving-endpoints",
        api_key=None,
        model=DEMO_MODEL_ID,
        label=DEMO_MODEL_ID,
        oauth=ClientCredentials(f"{catalog_url}/oidc/v1/token", client_id, secret),
    )


def test_tokens_are_fetched_once_and_sent_as_bearer(catalog_server, principal):
    verifier = TokenVerifier(catalog_server.public_key_file)
    seen: list[str] = []
    demo = create_demo_app(DemoModelSettings(token_delay_ms=0, first_token_delay_ms=0))
    with ServerThread(serving_endpoint(demo, verifier, seen)) as endpoint:
        settings = model_settings(
            endpoint.url,
            catalog_server.url,
            principal["client_id"],
            principal["client_secret"],
        )
        client = ModelClient(settings)
        for _ in range(2):
            events = list(client.stream([{"role": "user", "content": "How to start?"}]))
            assert isinstance(events[0], Delta) and isinstance(events[-1], Finish)
        source = client._tokens
        first = source.token()
        assert source.token() == first  # cached, not fetched again
    assert seen == [principal["client_id"]] * 2


def test_refused_credentials_are_an_auth_error(catalog_server, principal):
    settings = model_settings(
        "http://127.0.0.1:9", catalog_server.url, principal["client_id"], "wrong"
    )
    with pytest.raises(
        ModelError, match="refused the app's credentials: HTTP 401"
    ) as error:
        list(ModelClient(settings).stream([{"role": "user", "content": "hi"}]))
    assert error.value.error_type == "auth_error"


def test_databricks_apps_environment_selects_oauth():
    settings = ModelSettings.from_env(
        {
            "DATABRICKS_HOST": "my-workspace.cloud.databricks.com",
            "SERVING_ENDPOINT": "databricks-meta-llama",
            "DATABRICKS_CLIENT_ID": "sp-id",
            "DATABRICKS_CLIENT_SECRET": "sp-secret",
        }
    )
    assert settings.api_key is None
    assert settings.oauth == ClientCredentials(
        "https://my-workspace.cloud.databricks.com/oidc/v1/token", "sp-id", "sp-secret"
    )
    assert "sp-secret" not in repr(settings)


def test_serving_without_any_credentials_is_refused():
    with pytest.raises(ConfigError, match="neither DATABRICKS_TOKEN nor"):
        ModelSettings.from_env({"DATABRICKS_HOST": "h", "SERVING_ENDPOINT": "e"})
