"""The official Unity Catalog Python client (unitycatalog-client) against chatlake."""

from __future__ import annotations

import deltalake
import pytest
from unitycatalog.client import (
    ApiClient,
    CatalogsApi,
    Configuration,
    GrantsApi,
    SchemasApi,
    TablesApi,
)
from unitycatalog.client.exceptions import ApiException
from unitycatalog.client.models import (
    ColumnInfo,
    ColumnTypeName,
    CreateCatalog,
    CreateSchema,
    CreateTable,
    DataSourceFormat,
    PermissionsChange,
    Privilege,
    SecurableType,
    TableType,
    UpdatePermissions,
)

from chatlake.types import parse_columns


@pytest.fixture
async def uc(catalog_server):
    configuration = Configuration(host=f"{catalog_server.url}/api/2.1/unity-catalog")
    token = catalog_server.admin_client.token()
    async with ApiClient(configuration, "Authorization", f"Bearer {token}") as client:
        yield client


def uc_columns(spec: str) -> list[ColumnInfo]:
    return [ColumnInfo.from_dict(c.to_uc(i)) for i, c in enumerate(parse_columns(spec))]


async def test_catalog_schema_and_table_round_trip(uc, catalog_server, tmp_path):
    catalog = await CatalogsApi(uc).create_catalog(
        CreateCatalog(name="main", comment="from the UC client")
    )
    schema = await SchemasApi(uc).create_schema(
        CreateSchema(name="chatbot", catalog_name="main")
    )
    location = (tmp_path / "external" / "chat").as_uri()
    columns = uc_columns(
        "telemetry_id STRING NOT NULL, response_time_ms BIGINT, "
        "tags ARRAY<STRING>, meta STRUCT<source: STRING>"
    )
    created = await TablesApi(uc).create_table(
        CreateTable(
            name="chat",
            catalog_name="main",
            schema_name="chatbot",
            table_type=TableType.EXTERNAL,
            data_source_format=DataSourceFormat.DELTA,
            columns=columns,
            storage_location=location,
            properties={"k": "v"},
        )
    )

    assert catalog.name == "main" and catalog.comment == "from the UC client"
    assert schema.full_name == "main.chatbot"
    fetched = await TablesApi(uc).get_table("main.chatbot.chat")
    assert fetched == created
    assert fetched.storage_location == location
    assert fetched.table_type == TableType.EXTERNAL
    assert [c.name for c in fetched.columns] == [
        "telemetry_id",
        "response_time_ms",
        "tags",
        "meta",
    ]
    assert fetched.columns[0].nullable is False
    assert fetched.columns[1].type_name == ColumnTypeName.LONG
    assert fetched.columns[3].type_text == "struct<source:string>"
    assert fetched.properties == {"k": "v"}
    assert deltalake.DeltaTable(location).version() == 0

    listed = await TablesApi(uc).list_tables("main", "chatbot")
    assert [t.name for t in listed.tables] == ["chat"]
    assert listed.next_page_token is None
    catalogs = await CatalogsApi(uc).list_catalogs()
    assert [c.name for c in catalogs.catalogs] == ["main"]
    schemas = await SchemasApi(uc).list_schemas("main")
    assert [s.full_name for s in schemas.schemas] == ["main.chatbot"]


async def test_uc_client_grants_and_deletes(uc, catalog_server):
    catalog_server.admin_client.create_principal("app")
    await CatalogsApi(uc).create_catalog(CreateCatalog(name="main"))

    change = PermissionsChange(principal="app", add=[Privilege.USE_CATALOG], remove=[])
    updated = await GrantsApi(uc).update(
        SecurableType.CATALOG, "main", UpdatePermissions(changes=[change])
    )
    fetched = await GrantsApi(uc).get(SecurableType.CATALOG, "main")

    assert updated == fetched
    assert fetched.privilege_assignments[0].principal == "app"
    assert fetched.privilege_assignments[0].privileges == [Privilege.USE_CATALOG]
    await CatalogsApi(uc).delete_catalog("main")
    assert (await CatalogsApi(uc).list_catalogs()).catalogs == []


async def test_uc_client_sees_uc_errors(uc):
    with pytest.raises(ApiException) as caught:
        await CatalogsApi(uc).get_catalog("missing")

    assert caught.value.status == 404
    assert '"error_code":"NOT_FOUND"' in caught.value.body.replace(" ", "")

    await CatalogsApi(uc).create_catalog(CreateCatalog(name="main"))
    with pytest.raises(ApiException) as duplicate:
        await CatalogsApi(uc).create_catalog(CreateCatalog(name="main"))
    assert duplicate.value.status == 409
