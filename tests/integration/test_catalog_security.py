"""Who may register storage, what owners may do, and secret rotation."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from chatlake.catalog.bootstrap import ensure_principal
from chatlake.catalog.client import CatalogClient
from chatlake.catalog.errors import CatalogError
from chatlake.cli import main
from chatlake.types import parse_columns

COLUMNS = parse_columns("a STRING")


@pytest.fixture(autouse=True)
def clients():
    """Every client a test opens, closed after it."""
    opened: list[CatalogClient] = []
    yield opened
    for client in opened:
        client.close()


def client_for(clients, catalog_server, info) -> CatalogClient:
    client = CatalogClient(catalog_server.url, info["client_id"], info["client_secret"])
    clients.append(client)
    return client


@pytest.fixture
def admin(catalog_server):
    client = catalog_server.admin_client
    client.create_catalog("main")
    client.create_schema("main", "chatbot")
    return client


@pytest.fixture
def principal(catalog_server, clients):
    def create(name, *grants):
        """A client acting as new principal ``name`` holding ``grants``."""
        admin = catalog_server.admin_client
        info = admin.create_principal(name)
        for privilege, kind, full_name in grants:
            admin.grant(privilege, kind, full_name, name)
        return client_for(clients, catalog_server, info)

    return create


CREATOR = (
    ("USE CATALOG", "catalog", "main"),
    ("USE SCHEMA", "schema", "main.chatbot"),
    ("CREATE TABLE", "schema", "main.chatbot"),
)


def test_only_the_admin_registers_external_locations(admin, principal, tmp_path):
    victim = tmp_path / "e1"
    admin.create_table("main.chatbot.e1", COLUMNS, storage_location=victim.as_uri())
    mallory = principal("mallory", *CREATOR)
    target = tmp_path / "fresh"

    for location in (victim.as_uri(), target.as_uri()):
        with pytest.raises(CatalogError) as refused:
            mallory.create_table("main.chatbot.m3", COLUMNS, storage_location=location)
        assert refused.value.status == 403
        assert "only the metastore admin registers storage" in refused.value.message

    assert not target.exists()
    assert [t["name"] for t in admin.list_tables("main", "chatbot")] == ["e1"]
    # A managed table is still hers to create.
    assert mallory.create_table("main.chatbot.m3", COLUMNS)["table_type"] == "MANAGED"


@pytest.mark.parametrize(
    "where, fragment",
    [
        ("ext/e1", "overlaps the location of table main.chatbot.e1"),
        ("ext/e1/inner", "overlaps the location of table main.chatbot.e1"),
        ("ext", "overlaps the location of table main.chatbot.e1"),
        ("", "overlaps the chatlake data directory"),
        ("data", "overlaps the chatlake data directory"),
        ("data/catalog", "overlaps the chatlake data directory"),
        ("data/tables", "lies inside the managed tables directory"),
    ],
)
def test_external_locations_may_not_overlap(
    admin, catalog_server, tmp_path, where, fragment
):
    admin.create_table(
        "main.chatbot.e1", COLUMNS, storage_location=(tmp_path / "ext/e1").as_uri()
    )
    before = sorted(p for p in tmp_path.rglob("*"))
    location = (tmp_path / where).as_uri() if where else tmp_path.as_uri()

    with pytest.raises(CatalogError) as refused:
        admin.create_table("main.chatbot.e2", COLUMNS, storage_location=location)

    assert refused.value.status == 400
    assert refused.value.error_code == "INVALID_ARGUMENT"
    assert fragment in refused.value.message
    assert sorted(p for p in tmp_path.rglob("*")) == before
    assert [t["name"] for t in admin.list_tables("main", "chatbot")] == ["e1"]


def test_cli_refuses_a_location_for_a_non_admin(
    admin, principal, catalog_server, tmp_path
):
    mallory = principal("mallory", *CREATOR)
    token_holder = mallory.client_id, mallory._secret

    result = CliRunner().invoke(
        main,
        [
            "tables",
            "create",
            "main.chatbot.m3",
            "--columns",
            "a STRING",
            "--location",
            (tmp_path / "x").as_uri(),
            "--catalog-url",
            catalog_server.url,
            "--client-id",
            token_holder[0],
            "--client-secret",
            token_holder[1],
        ],
    )

    assert result.exit_code == 1
    assert "only the metastore admin registers storage locations" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "x").exists()


def test_the_owner_holds_every_privilege_on_its_table(admin, principal):
    mallory = principal("mallory", *CREATOR)
    mallory.create_table("main.chatbot.m2", COLUMNS)
    details = [
        {
            "type": "unity_catalog_privileges",
            "object_type": "TABLE",
            "object_full_path": "main.chatbot.m2",
            "privileges": ["SELECT", "MODIFY"],
        }
    ]

    assert mallory.token(details)
    assert mallory.get_table("main.chatbot.m2")["owner"] == "mallory"
    # Owning one table gives nothing on its neighbours.
    admin.create_table("main.chatbot.other", COLUMNS)
    details[0]["object_full_path"] = "main.chatbot.other"
    with pytest.raises(CatalogError) as refused:
        mallory.token(details)
    assert refused.value.status == 403


def test_a_schema_owner_holds_every_privilege_on_its_tables(admin, principal):
    owner = principal(
        "owner",
        ("USE CATALOG", "catalog", "main"),
        ("CREATE SCHEMA", "catalog", "main"),
    )
    owner.create_schema("main", "mine")
    admin.create_table("main.mine.t", COLUMNS)
    details = [
        {
            "type": "unity_catalog_privileges",
            "object_type": "TABLE",
            "object_full_path": "main.mine.t",
            "privileges": ["SELECT", "MODIFY"],
        }
    ]

    assert owner.token(details)
    assert [t["name"] for t in owner.list_tables("main", "mine")] == ["t"]
    assert owner.get_table("main.mine.t")["owner"] == "admin"


def test_rotating_a_secret_keeps_client_id_and_grants(admin, catalog_server, clients):
    old = admin.create_principal("app")
    admin.create_table("main.chatbot.t", COLUMNS)
    admin.grant("USE CATALOG", "catalog", "main", "app")
    admin.grant("SELECT", "table", "main.chatbot.t", "app")

    new = admin.rotate_secret("app")

    assert new["client_id"] == old["client_id"]
    assert new["client_secret"] != old["client_secret"]
    stale = client_for(clients, catalog_server, old)
    with pytest.raises(CatalogError) as refused:
        stale.token()
    assert refused.value.status == 401
    fresh = client_for(clients, catalog_server, new)
    assert fresh.token()
    assigned = admin.permissions("table", "main.chatbot.t")["privilege_assignments"]
    assert assigned == [{"principal": "app", "privileges": ["SELECT"]}]


def test_bootstrap_replacing_the_app_principal_keeps_its_grants(admin):
    first = ensure_principal(admin, "app", "main", "chatbot", replace=False)
    admin.create_table("main.chatbot.t", COLUMNS)
    admin.grant("MODIFY", "table", "main.chatbot.t", "app")

    second = ensure_principal(admin, "app", "main", "chatbot", replace=True)

    assert second["client_id"] == first["client_id"]
    assert second["client_secret"] != first["client_secret"]
    assigned = admin.permissions("table", "main.chatbot.t")["privilege_assignments"]
    assert assigned == [{"principal": "app", "privileges": ["MODIFY"]}]


def test_cli_rotate_secret_and_force_flag_message(admin, catalog_server):
    admin.create_principal("app")
    connection = ["--catalog-url", catalog_server.url]
    connection += ["--data-dir", str(catalog_server.data_dir)]
    runner = CliRunner()

    rotated = runner.invoke(
        main, ["principals", "rotate-secret", "app", "--json", *connection]
    )
    admin.create_table("main.chatbot.t", COLUMNS)
    refused = runner.invoke(main, ["schemas", "drop", "main.chatbot", *connection])

    assert rotated.exit_code == 0, rotated.output
    assert json.loads(rotated.output)["name"] == "app"
    assert refused.exit_code == 1
    assert "drop them first or pass --force" in refused.output
    assert "force=true" not in refused.output
    assert admin.list_tables("main", "chatbot")[0]["name"] == "t"


def test_a_symlink_into_the_data_dir_is_refused(admin, catalog_server, tmp_path):
    link = tmp_path / "innocent"
    link.symlink_to(catalog_server.data_dir / "catalog")

    with pytest.raises(CatalogError) as refused:
        admin.create_table("main.chatbot.e3", COLUMNS, storage_location=link.as_uri())

    assert refused.value.status == 400
    assert "overlaps the chatlake data directory" in refused.value.message
    assert not (catalog_server.data_dir / "catalog" / "_delta_log").exists()
