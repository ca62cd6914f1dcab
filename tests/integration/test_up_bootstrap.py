"""``chatlake up``'s bootstrap against a real catalog: what it keeps across runs."""

from __future__ import annotations

from urllib.parse import urlparse

from chatlake import up
from chatlake.catalog.bootstrap import read_env_file
from chatlake.catalog.client import CatalogClient


def context(catalog_server) -> up.UpContext:
    port = urlparse(catalog_server.url).port
    ports = {name: 1 for name in up.PORTS}
    return up.UpContext(catalog_server.data_dir, {**ports, "catalog": port})


def token_works(catalog_server, env) -> bool:
    client_id, secret = env["DATABRICKS_CLIENT_ID"], env["DATABRICKS_CLIENT_SECRET"]
    with CatalogClient(catalog_server.url, client_id, secret) as client:
        return bool(client.token())


def test_a_rotated_secret_in_app_env_is_replaced_and_grants_kept(catalog_server):
    env_file = catalog_server.data_dir / up.APP_ENV_FILE
    up.bootstrap(context(catalog_server))
    first = read_env_file(env_file)
    admin = catalog_server.admin_client
    admin.grant("CREATE SCHEMA", "catalog", "main", "app")
    rotated = admin.rotate_secret("app")  # app.env now holds a dead secret

    up.bootstrap(context(catalog_server))
    second = read_env_file(env_file)

    assert second["DATABRICKS_CLIENT_ID"] == first["DATABRICKS_CLIENT_ID"]
    secrets = {first["DATABRICKS_CLIENT_SECRET"], rotated["client_secret"]}
    assert second["DATABRICKS_CLIENT_SECRET"] not in secrets
    assert token_works(catalog_server, second)
    kept = admin.permissions("catalog", "main")["privilege_assignments"]
    assert kept == [
        {"principal": "app", "privileges": ["CREATE SCHEMA", "USE CATALOG"]}
    ]


def test_a_valid_app_env_is_kept_as_it_is(catalog_server):
    env_file = catalog_server.data_dir / up.APP_ENV_FILE
    up.bootstrap(context(catalog_server))
    first = read_env_file(env_file)

    up.bootstrap(context(catalog_server))

    assert read_env_file(env_file) == first
    assert token_works(catalog_server, first)
