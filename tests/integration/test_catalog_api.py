"""The UC REST subset against a real catalog: shapes, Delta tables, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import deltalake
import httpx
import pyarrow as pa
import pytest

from chatlake.catalog import store
from chatlake.catalog.tablefiles import location_path
from chatlake.types import parse_columns

UC = "/api/2.1/unity-catalog"
ALL_TYPES = (
    "s STRING NOT NULL, b BIGINT, i INT, sm SMALLINT, ti TINYINT, f FLOAT, "
    "d DOUBLE, bo BOOLEAN, bi BINARY, dt DATE, ts TIMESTAMP, ntz TIMESTAMP_NTZ, "
    "v VARIANT, dec DECIMAL(10,2), arr ARRAY<STRING>, m MAP<STRING,BIGINT>, "
    "st STRUCT<source: STRING, tags: ARRAY<STRING>>"
)


@pytest.fixture
def api(catalog_server):
    token = catalog_server.admin_client.token()
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=catalog_server.url, headers=headers) as client:
        yield client


@pytest.fixture
def schema(api):
    assert api.post(f"{UC}/catalogs", json={"name": "main"}).status_code == 200
    body = {"name": "chatbot", "catalog_name": "main"}
    assert api.post(f"{UC}/schemas", json=body).status_code == 200
    return "main.chatbot"


def table_body(name="t", columns="id STRING NOT NULL, n INT", **extra):
    infos = [c.to_uc(i) for i, c in enumerate(parse_columns(columns))]
    return {
        "catalog_name": "main",
        "schema_name": "chatbot",
        "name": name,
        "table_type": "MANAGED",
        "data_source_format": "DELTA",
        "columns": infos,
        **extra,
    }


def assert_error(response, status, code, *fragments):
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error_code"] == code
    for fragment in fragments:
        assert fragment in body["message"]


def test_catalog_round_trip(api):
    created = api.post(f"{UC}/catalogs", json={"name": "Main", "comment": "c"}).json()
    fetched = api.get(f"{UC}/catalogs/main").json()

    assert created == fetched
    assert fetched["name"] == "main"
    assert fetched["comment"] == "c"
    assert fetched["owner"] == "admin"
    assert isinstance(fetched["created_at"], int) and fetched["id"]
    assert api.get(f"{UC}/catalogs").json() == {"catalogs": [fetched]}
    assert api.delete(f"{UC}/catalogs/main").json() == {}
    assert_error(
        api.get(f"{UC}/catalogs/main"), 404, "NOT_FOUND", "Catalog not found: main"
    )


def test_schema_round_trip(api, schema):
    fetched = api.get(f"{UC}/schemas/main.chatbot").json()

    assert fetched["full_name"] == "main.chatbot"
    assert fetched["catalog_name"] == "main"
    assert fetched["schema_id"]
    listed = api.get(f"{UC}/schemas", params={"catalog_name": "main"}).json()
    assert listed == {"schemas": [fetched]}


def test_table_with_every_type_gets_its_delta_table(api, schema, catalog_server):
    body = table_body("every", ALL_TYPES, properties={"k": "v"}, comment="all")
    created = api.post(f"{UC}/tables", json=body)

    assert created.status_code == 200, created.text
    info = created.json()
    assert info == api.get(f"{UC}/tables/main.chatbot.every").json()
    managed = f"tables/main/chatbot/every-{info['table_id']}"
    assert info["storage_location"] == (catalog_server.data_dir / managed).as_uri()
    assert info["table_type"] == "MANAGED" and info["data_source_format"] == "DELTA"
    assert info["properties"] == {"k": "v"} and info["comment"] == "all"
    assert [c["position"] for c in info["columns"]] == list(range(17))
    by_name = {c["name"]: c for c in info["columns"]}
    assert by_name["st"]["type_text"] == "struct<source:string,tags:array<string>>"
    assert by_name["b"]["type_name"] == "LONG"
    assert by_name["dec"]["type_precision"] == 10 and by_name["dec"]["type_scale"] == 2
    assert by_name["s"]["nullable"] is False
    assert json.loads(by_name["m"]["type_json"])["type"]["type"] == "map"

    delta = deltalake.DeltaTable(info["storage_location"])
    schema_fields = pa.schema(delta.schema().to_arrow())
    assert schema_fields.names == [c["name"] for c in info["columns"]]
    assert schema_fields.field("ts").type == pa.timestamp("us", tz="UTC")
    assert schema_fields.field("ntz").type == pa.timestamp("us")
    assert schema_fields.field("dt").type == pa.date32()
    assert schema_fields.field("dec").type == pa.decimal128(10, 2)
    assert schema_fields.field("s").nullable is False
    assert delta.version() == 0


def test_dropping_a_managed_table_deletes_its_files(api, schema, catalog_server):
    info = api.post(f"{UC}/tables", json=table_body()).json()
    path = catalog_server.data_dir / f"tables/main/chatbot/t-{info['table_id']}"
    assert (path / "_delta_log").is_dir()

    assert api.delete(f"{UC}/tables/main.chatbot.t").json() == {}

    assert not path.exists()
    assert list((catalog_server.data_dir / "tables/main/chatbot").iterdir()) == []
    assert_error(api.get(f"{UC}/tables/{info['full_name']}"), 404, "NOT_FOUND")
    # The name is free again, and a new table starts empty at version 0.
    again = api.post(f"{UC}/tables", json=table_body()).json()
    assert deltalake.DeltaTable(again["storage_location"]).version() == 0


def test_external_location_holding_other_files_is_refused(api, schema, tmp_path):
    # As file:///etc did: a Delta log written there would claim those files.
    directory = tmp_path / "etc"
    directory.mkdir()
    (directory / "passwd").write_text("root:x:0:0\n")
    location = directory.as_uri()
    body = table_body(table_type="EXTERNAL", storage_location=location)

    assert_error(
        api.post(f"{UC}/tables", json=body),
        400,
        "FAILED_PRECONDITION",
        f"location {location} holds files that are not a Delta table",
    )
    assert sorted(p.name for p in directory.iterdir()) == ["passwd"]
    assert (directory / "passwd").read_text() == "root:x:0:0\n"
    listed = api.get(
        f"{UC}/tables", params={"catalog_name": "main", "schema_name": "chatbot"}
    ).json()
    assert listed == {"tables": []}


def test_external_location_that_is_a_file_is_refused(api, schema, tmp_path):
    file = tmp_path / "notes.txt"
    file.write_text("keep")
    body = table_body(table_type="EXTERNAL", storage_location=file.as_uri())

    assert_error(
        api.post(f"{UC}/tables", json=body),
        400,
        "FAILED_PRECONDITION",
        "is a file, not a directory",
    )
    assert file.read_text() == "keep"


def test_external_table_in_an_existing_empty_directory(api, schema, tmp_path):
    directory = tmp_path / "empty"
    directory.mkdir()
    body = table_body(table_type="EXTERNAL", storage_location=directory.as_uri())

    created = api.post(f"{UC}/tables", json=body)

    assert created.status_code == 200, created.text
    assert deltalake.DeltaTable(directory.as_uri()).version() == 0


def test_external_table_keeps_its_files(api, schema, tmp_path):
    location = (tmp_path / "ext" / "t").as_uri()
    body = table_body(table_type="EXTERNAL", storage_location=location)
    info = api.post(f"{UC}/tables", json=body).json()

    assert info["table_type"] == "EXTERNAL"
    assert info["storage_location"] == location
    api.delete(f"{UC}/tables/main.chatbot.t")
    assert (tmp_path / "ext" / "t" / "_delta_log").is_dir()
    # Registering it again finds the same columns and adopts the table.
    assert api.post(f"{UC}/tables", json=body).status_code == 200


def test_pagination_walks_every_table_once(api, schema):
    for index in range(7):
        api.post(f"{UC}/tables", json=table_body(f"t{index}"))
    seen, token, pages = [], None, 0
    while True:
        params = {"catalog_name": "main", "schema_name": "chatbot", "max_results": 3}
        if token:
            params["page_token"] = token
        page = api.get(f"{UC}/tables", params=params).json()
        seen += [t["name"] for t in page["tables"]]
        pages += 1
        token = page.get("next_page_token")
        if not token:
            break

    assert seen == [f"t{i}" for i in range(7)]
    assert pages == 3


def test_chat_table_properties_are_kept(api, schema):
    columns = "telemetry_id STRING NOT NULL, ingestion_time TIMESTAMP"
    properties = {
        "chatlake.ingestion_time": "ingestion_time",
        "chatlake.dedupe_key": "telemetry_id",
    }
    info = api.post(
        f"{UC}/tables", json=table_body("c", columns, properties=properties)
    )

    assert info.json()["properties"] == properties


# -- bad input ---------------------------------------------------------------------


def test_duplicates_are_409_already_exists(api, schema):
    api.post(f"{UC}/tables", json=table_body())

    assert_error(
        api.post(f"{UC}/catalogs", json={"name": "MAIN"}),
        409,
        "ALREADY_EXISTS",
        "Catalog already exists: main",
    )
    assert_error(
        api.post(f"{UC}/schemas", json={"name": "chatbot", "catalog_name": "main"}),
        409,
        "ALREADY_EXISTS",
        "main.chatbot",
    )
    assert_error(
        api.post(f"{UC}/tables", json=table_body()),
        409,
        "ALREADY_EXISTS",
        "Table already exists: main.chatbot.t",
    )


def test_unknown_parents_are_404(api, schema):
    assert_error(
        api.get(f"{UC}/tables/main.nope.t"),
        404,
        "NOT_FOUND",
        "Schema not found: main.nope",
    )
    assert_error(
        api.get(f"{UC}/tables/nope.chatbot.t"),
        404,
        "NOT_FOUND",
        "Catalog not found: nope",
    )
    body = {**table_body(), "schema_name": "nope"}
    assert_error(api.post(f"{UC}/tables", json=body), 404, "NOT_FOUND", "main.nope")
    assert_error(api.get("/api/2.1/unity-catalog/volumes"), 404, "NOT_FOUND")


@pytest.mark.parametrize(
    "raw", [b"{", b"[1, 2]", b"\xff\xfe", b"", b"null", b"[" * 100_000]
)
def test_malformed_json_is_400_and_changes_nothing(api, raw):
    response = api.post(
        f"{UC}/catalogs", content=raw, headers={"Content-Type": "application/json"}
    )

    assert_error(response, 400, "INVALID_ARGUMENT")
    assert api.get(f"{UC}/catalogs").json() == {"catalogs": []}


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("main.chatbot", "expected 3"),
        ("a.b.c.d", "expected 3"),
        ('main.chatbot."quoted"', "invalid name"),
        ("main.chatbot.with space", "invalid name"),
        ("main.chatbot.caf\u00e9", "invalid name"),
        ("main.chatbot.dash-ed", "invalid name"),
        ("main.chatbot.", "invalid name"),
    ],
)
def test_c25_bad_table_names_are_refused_before_anything_is_created(
    api, schema, catalog_server, name, fragment
):
    response = api.get(f"{UC}/tables/{name}")
    assert_error(response, 400, "INVALID_ARGUMENT", fragment)

    parts = name.split(".")
    body = table_body()
    body["name"] = ".".join(parts[2:]) if len(parts) > 2 else ""
    response = api.post(f"{UC}/tables", json=body)
    assert response.status_code == 400
    tables = api.get(
        f"{UC}/tables", params={"catalog_name": "main", "schema_name": "chatbot"}
    ).json()
    assert tables == {"tables": []}
    assert list((catalog_server.data_dir / "tables").rglob("_delta_log")) == []


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ({"columns": []}, "non-empty list"),
        ({"columns": [{"name": "x", "type_text": "strang"}]}, "unknown type 'strang'"),
        ({"columns": [{"name": "x"}]}, "lacks 'type_text'"),
        ({"columns": ["x"]}, "column 0 must be an object"),
        ({"columns": [{"name": 1.5, "type_text": "int"}]}, "'name' must be a str"),
        (
            {"columns": [{"name": "a", "type_text": {"x": 1}}]},
            "'type_text' must be a str",
        ),
        (
            {"columns": [{"name": "a", "type_text": "int", "nullable": "no"}]},
            "'nullable' must be a bool",
        ),
        (
            {"columns": [{"name": "bad name", "type_text": "int"}]},
            "invalid column name",
        ),
        (
            {
                "columns": [
                    {"name": "a", "type_text": "int"},
                    {"name": "A", "type_text": "int"},
                ]
            },
            "duplicate column 'A'",
        ),
        (
            {"columns": [{"name": "s", "type_text": "struct<`a b`:int>"}]},
            "invalid struct field of s name",
        ),
        ({"table_type": "VIEW"}, "table_type 'VIEW' is not supported"),
        ({"data_source_format": "CSV"}, "data_source_format 'CSV' is not supported"),
        ({"properties": {"k": 1}}, "string values"),
        ({"properties": {"chatlake.ingestion_time": "nope"}}, "names no column"),
        ({"properties": {"chatlake.ingestion_time": "n"}}, "it must be TIMESTAMP"),
        ({"properties": {"chatlake.dedupe_kee": "id"}}, "unknown table property"),
        ({"storage_location": "/tmp/elsewhere/t"}, "chosen by the catalog"),
        ({"table_type": "EXTERNAL"}, "needs a storage_location"),
        (
            {"table_type": "EXTERNAL", "storage_location": "s3://bucket/t"},
            "not a local file:// URI",
        ),
        (
            {"table_type": "EXTERNAL", "storage_location": "relative/path"},
            "not a local file:// URI",
        ),
    ],
)
def test_bad_table_requests_are_400_naming_the_problem(
    api, schema, catalog_server, override, fragment
):
    response = api.post(f"{UC}/tables", json={**table_body(), **override})

    assert_error(response, 400, "INVALID_ARGUMENT", fragment)
    assert list((catalog_server.data_dir / "tables").rglob("_delta_log")) == []


def test_external_location_inside_managed_area_is_refused(api, schema, catalog_server):
    inside = (catalog_server.data_dir / "tables" / "x" / "y").as_uri()
    body = table_body(table_type="EXTERNAL", storage_location=inside)

    assert_error(
        api.post(f"{UC}/tables", json=body),
        400,
        "INVALID_ARGUMENT",
        "inside the managed tables directory",
    )


def test_bad_paging_parameters_are_400(api, schema):
    base = {"catalog_name": "main", "schema_name": "chatbot"}
    assert_error(
        api.get(f"{UC}/tables", params={**base, "max_results": -1}),
        400,
        "INVALID_ARGUMENT",
        "max_results",
    )
    assert_error(
        api.get(f"{UC}/tables", params={**base, "max_results": "many"}),
        400,
        "INVALID_ARGUMENT",
        "max_results",
    )
    assert_error(
        api.get(f"{UC}/tables", params={**base, "page_token": "%%%"}),
        400,
        "INVALID_ARGUMENT",
        "page_token",
    )
    assert_error(
        api.get(f"{UC}/tables", params={"catalog_name": "main"}),
        400,
        "INVALID_ARGUMENT",
        "schema_name",
    )


def test_non_empty_parents_need_force(api, schema, catalog_server):
    api.post(f"{UC}/tables", json=table_body())

    assert_error(
        api.delete(f"{UC}/schemas/main.chatbot"),
        400,
        "FAILED_PRECONDITION",
        "still has 1 table",
    )
    assert_error(
        api.delete(f"{UC}/catalogs/main"),
        400,
        "FAILED_PRECONDITION",
        "still has 1 schema",
    )
    assert api.delete(f"{UC}/catalogs/main", params={"force": "true"}).json() == {}
    assert api.get(f"{UC}/catalogs").json() == {"catalogs": []}
    assert list((catalog_server.data_dir / "tables/main/chatbot").iterdir()) == []


def test_leftovers_of_a_dropped_table_do_not_block_a_new_one(
    api, schema, catalog_server
):
    # As an ingest stream still open at the drop leaves them: its last acked
    # rows are committed where the dropped table was.
    old = api.post(f"{UC}/tables", json=table_body()).json()
    api.delete(f"{UC}/tables/main.chatbot.t")
    leftover = location_path(old["storage_location"])
    assert leftover.name == f"t-{old['table_id']}"
    leftover.mkdir(parents=True)
    (leftover / "part-0.parquet").write_bytes(b"old")

    created = api.post(f"{UC}/tables", json=table_body())

    assert created.status_code == 200, created.text
    new = created.json()
    assert new["table_id"] != old["table_id"]
    assert new["storage_location"] != old["storage_location"]
    assert deltalake.DeltaTable(new["storage_location"]).version() == 0
    assert (leftover / "part-0.parquet").read_bytes() == b"old"


def test_tables_of_an_older_data_dir_keep_their_stored_location(
    api, schema, catalog_server
):
    # Data dirs from before table ids in managed paths hold tables at
    # tables/<catalog>/<schema>/<name>: the location stored per table rules.
    info = api.post(f"{UC}/tables", json=table_body()).json()
    old_style = catalog_server.data_dir / "tables/main/chatbot/t"
    location_path(info["storage_location"]).rename(old_style)
    with catalog_server.service.store.transaction() as connection:
        connection.execute(
            store.tables.update()
            .where(store.tables.c.id == info["table_id"])
            .values(storage_location=old_style.as_uri())
        )

    fetched = api.get(f"{UC}/tables/main.chatbot.t").json()
    assert fetched["storage_location"] == old_style.as_uri()
    assert deltalake.DeltaTable(fetched["storage_location"]).version() == 0
    api.delete(f"{UC}/tables/main.chatbot.t")
    assert not old_style.exists()
    again = api.post(f"{UC}/tables", json=table_body()).json()
    assert again["storage_location"].endswith(f"/t-{again['table_id']}")


# -- authentication and authorization -------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Bearer not-a-token", "Basic !!!", "Token abc"],
)
def test_requests_without_valid_credentials_are_401(catalog_server, header):
    headers = {"Authorization": header} if header else {}
    response = httpx.get(f"{catalog_server.url}{UC}/catalogs", headers=headers)

    assert_error(response, 401, "UNAUTHENTICATED")
    assert response.headers["www-authenticate"] == "Bearer"


def test_admin_basic_credentials_work_on_loopback(catalog_server):
    admin = json.loads((catalog_server.data_dir / "catalog/admin.json").read_text())
    auth = (admin["client_id"], admin["client_secret"])
    response = httpx.get(f"{catalog_server.url}{UC}/catalogs", auth=auth)

    assert response.status_code == 200
    assert response.json() == {"catalogs": []}
    wrong = httpx.get(f"{catalog_server.url}{UC}/catalogs", auth=(auth[0], "wrong"))
    assert_error(wrong, 401, "UNAUTHENTICATED", "wrong client secret")


def test_principal_sees_only_what_it_was_granted(catalog_server, schema, api):
    admin = catalog_server.admin_client
    api.post(f"{UC}/tables", json=table_body("granted"))
    api.post(f"{UC}/tables", json=table_body("hidden"))
    app = admin.create_principal("app")
    headers = {"Authorization": f"Bearer {_token(catalog_server, app)}"}

    with httpx.Client(base_url=catalog_server.url, headers=headers) as as_app:
        assert_error(
            as_app.get(f"{UC}/tables/main.chatbot.granted"),
            403,
            "PERMISSION_DENIED",
            "USE CATALOG on main",
        )
        admin.grant("USE CATALOG", "catalog", "main", "app")
        admin.grant("USE SCHEMA", "schema", "main.chatbot", "app")
        admin.grant("SELECT", "table", "main.chatbot.granted", "app")

    # Tokens are snapshots: a fresh one carries the new grants.
    headers = {"Authorization": f"Bearer {_token(catalog_server, app)}"}
    with httpx.Client(base_url=catalog_server.url, headers=headers) as as_app:
        assert as_app.get(f"{UC}/tables/main.chatbot.granted").status_code == 200
        assert_error(
            as_app.get(f"{UC}/tables/main.chatbot.hidden"),
            403,
            "PERMISSION_DENIED",
            "SELECT or MODIFY on main.chatbot.hidden",
        )
        listed = as_app.get(
            f"{UC}/tables", params={"catalog_name": "main", "schema_name": "chatbot"}
        ).json()
        assert [t["name"] for t in listed["tables"]] == ["granted"]
        assert_error(
            as_app.post(f"{UC}/catalogs", json={"name": "mine"}),
            403,
            "PERMISSION_DENIED",
            "only the admin",
        )
        assert_error(
            as_app.delete(f"{UC}/tables/main.chatbot.granted"),
            403,
            "PERMISSION_DENIED",
            "only the owner or the admin",
        )
        assert_error(
            as_app.get("/api/2.1/chatlake/principals"), 403, "PERMISSION_DENIED"
        )


def test_deleted_principal_token_stops_working(catalog_server):
    admin = catalog_server.admin_client
    app = admin.create_principal("app")
    token = _token(catalog_server, app)
    admin.delete_principal("app")

    response = httpx.get(
        f"{catalog_server.url}{UC}/catalogs",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert_error(response, 401, "UNAUTHENTICATED", "no longer exists")


def test_grants_api_shapes_and_errors(api, schema, catalog_server):
    catalog_server.admin_client.create_principal("app")
    path = f"{UC}/permissions/schema/main.chatbot"
    change = {
        "changes": [{"principal": "app", "add": ["USE SCHEMA", "MODIFY"], "remove": []}]
    }

    assert api.patch(path, json=change).json() == {
        "privilege_assignments": [
            {"principal": "app", "privileges": ["MODIFY", "USE SCHEMA"]}
        ]
    }
    remove = {"changes": [{"principal": "app", "add": [], "remove": ["MODIFY"]}]}
    assert api.patch(path, json=remove).json()["privilege_assignments"][0][
        "privileges"
    ] == ["USE SCHEMA"]
    bad_privilege = {"changes": [{"principal": "app", "add": ["USE CATALOG"]}]}
    assert_error(
        api.patch(path, json=bad_privilege),
        400,
        "INVALID_ARGUMENT",
        "cannot be granted on a SCHEMA",
    )
    ghost = {"changes": [{"principal": "ghost", "add": ["SELECT"]}]}
    assert_error(api.patch(path, json=ghost), 404, "NOT_FOUND", "principal 'ghost'")
    assert_error(api.get(f"{UC}/permissions/volume/x"), 400, "INVALID_ARGUMENT")
    assert_error(api.get(f"{UC}/permissions/table/main.chatbot.none"), 404, "NOT_FOUND")


def _token(catalog_server, credentials) -> str:
    response = httpx.post(
        f"{catalog_server.url}/oidc/v1/token",
        data={"grant_type": "client_credentials", "scope": "all-apis"},
        auth=(credentials["client_id"], credentials["client_secret"]),
    )
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def test_server_survives_garbage(catalog_server):
    with httpx.Client(base_url=catalog_server.url) as raw:
        garbage = raw.post("/oidc/v1/token", content=b"\x00\xff" * 1000)
        assert garbage.status_code == 400
        assert garbage.json()["error"] == "invalid_request"
        assert raw.request("PUT", f"{UC}/catalogs").status_code == 405
        assert raw.get("/healthz").json() == {"status": "ok"}


def test_path_fixture_is_a_real_directory(catalog_server):
    assert isinstance(catalog_server.data_dir, Path)
    assert (catalog_server.data_dir / "catalog" / "token_public.pem").is_file()


def test_concurrent_creates_of_one_table_make_exactly_one(api, schema, catalog_server):
    from concurrent.futures import ThreadPoolExecutor

    def create(_):
        return api.post(f"{UC}/tables", json=table_body("race")).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = sorted(pool.map(create, range(8)))

    assert statuses == [200] + [409] * 7
    assert len(list((catalog_server.data_dir / "tables").rglob("_delta_log"))) == 1


def test_expired_token_is_401_naming_the_reason(catalog_server):
    import time

    import jwt

    private = (catalog_server.data_dir / "catalog" / "token_private.pem").read_bytes()
    admin = json.loads((catalog_server.data_dir / "catalog/admin.json").read_text())
    now = int(time.time())
    payload = {
        "iss": "chatlake",
        "aud": "chatlake",
        "sub": admin["client_id"],
        "iat": now - 7200,
        "exp": now - 3600,
        "jti": "old",
        "privileges": [],
    }
    token = jwt.encode(payload, private, algorithm="EdDSA")

    response = httpx.get(
        f"{catalog_server.url}{UC}/catalogs",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert_error(
        response, 401, "UNAUTHENTICATED", "invalid token: the token has expired"
    )


def test_a_nul_in_a_location_is_400_naming_it(api, schema, tmp_path, caplog):
    location = (tmp_path / "x").as_uri() + "/a%00b"
    body = table_body(table_type="EXTERNAL", storage_location=location)

    response = api.post(f"{UC}/tables", json=body)

    assert_error(
        response,
        400,
        "INVALID_ARGUMENT",
        f"storage_location {location!r} holds a NUL character",
    )
    assert not (tmp_path / "x").exists()
    assert "unexpected error" not in caplog.text


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": "main", "comment": "a\x00b"}, "comment 'a\\x00b' holds a NUL"),
        ({"name": "m\x00"}, "name 'm\\x00' holds a NUL"),
        ({"name": "m", "properties": {"k\x00": "v"}}, "key in properties 'k\\x00'"),
    ],
)
def test_any_string_with_a_nul_is_refused(api, body, message):
    assert_error(
        api.post(f"{UC}/catalogs", json=body), 400, "INVALID_ARGUMENT", message
    )
    assert api.get(f"{UC}/catalogs").json() == {"catalogs": []}


def test_log_lines_escape_what_the_request_path_holds(api, caplog):
    caplog.set_level("INFO", logger="chatlake.catalog.api")

    response = api.get(f"{UC}/catalogs/a%00b%01c")

    assert response.status_code == 400
    lines = [r.getMessage() for r in caplog.records if r.name == "chatlake.catalog.api"]
    assert lines == [f"GET {UC}/catalogs/a\\x00b\\x01c -> 400 INVALID_ARGUMENT"]


def test_errors_quote_a_huge_name_briefly(api):
    response = api.post(f"{UC}/catalogs", json={"name": "a" * 5_000_000})

    start = repr("a" * 100)
    assert_error(
        response,
        400,
        "INVALID_ARGUMENT",
        f"invalid name {start}... (5000000 characters): invalid catalog name part "
        f"{start}... (5000000 characters): use ASCII letters",
    )
    assert len(response.content) < 600
