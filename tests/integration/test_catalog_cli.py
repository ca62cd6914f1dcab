"""The catalog's commands against a real catalog, through click's test runner."""

from __future__ import annotations

import json

import click
import deltalake
import pytest
from click.testing import CliRunner

from chatlake.cli import COMMANDS, main

CATALOG_COMMANDS = ("catalogs", "schemas", "tables", "principals", "grants")


@pytest.fixture
def run(catalog_server):
    runner = CliRunner()

    def invoke(*args: str):
        connection = [
            "--catalog-url",
            catalog_server.url,
            "--data-dir",
            str(catalog_server.data_dir),
        ]
        return runner.invoke(main, [*args, *connection])

    return invoke


@pytest.fixture
def schema(run):
    assert run("catalogs", "create", "main").exit_code == 0
    assert run("schemas", "create", "main.chatbot").exit_code == 0


def ok(result) -> str:
    assert result.exit_code == 0, result.output
    return result.output


def test_create_list_describe_drop_a_table(run, schema, catalog_server):
    created = ok(
        run(
            "tables",
            "create",
            "main.chatbot.chat",
            "--columns",
            "telemetry_id STRING NOT NULL, ingestion_time TIMESTAMP, n INT",
            "--property",
            "chatlake.ingestion_time=ingestion_time",
            "--property",
            "chatlake.dedupe_key=telemetry_id",
        )
    )
    described = json.loads(ok(run("tables", "describe", "main.chatbot.chat", "--json")))
    managed = f"tables/main/chatbot/chat-{described['table_id']}"
    location = (catalog_server.data_dir / managed).as_uri()
    assert created == f"created table main.chatbot.chat at {location}\n"
    assert [c["name"] for c in described["columns"]] == [
        "telemetry_id",
        "ingestion_time",
        "n",
    ]
    assert described["properties"] == {
        "chatlake.ingestion_time": "ingestion_time",
        "chatlake.dedupe_key": "telemetry_id",
    }
    text = ok(run("tables", "describe", "main.chatbot.chat"))
    assert "telemetry_id    string     NOT NULL" in text
    assert "property chatlake.dedupe_key = telemetry_id" in text
    listed = json.loads(ok(run("tables", "list", "main.chatbot", "--json")))
    assert [t["full_name"] for t in listed] == ["main.chatbot.chat"]
    assert (
        ok(run("tables", "drop", "main.chatbot.chat"))
        == "dropped table main.chatbot.chat\n"
    )
    assert ok(run("tables", "list", "main.chatbot")) == "(none)\n"


def test_table_from_a_proto_message(run, schema, tmp_path):
    proto = tmp_path / "chat.proto"
    proto.write_text(
        'syntax = "proto2";\n'
        "package demo;\n"
        "message Chat {\n"
        "  required string telemetry_id = 1;\n"
        "  optional string user_message = 2;\n"
        "  optional string assistant_message = 3;\n"
        "  optional int64 response_time_ms = 4;\n"
        "  optional int64 event_time = 5;\n"
        "  message Meta { optional string source = 1; repeated string tags = 2; }\n"
        "  optional Meta meta = 6;\n"
        "  map<string, int32> counts = 7;\n"
        "}\n"
    )
    ok(
        run(
            "tables",
            "create",
            "main.chatbot.chat",
            "--proto",
            str(proto),
            "--message",
            "Chat",
            "--type",
            "event_time=TIMESTAMP",
        )
    )

    info = json.loads(ok(run("tables", "describe", "main.chatbot.chat", "--json")))
    assert [(c["name"], c["type_text"], c["nullable"]) for c in info["columns"]] == [
        ("telemetry_id", "string", False),
        ("user_message", "string", True),
        ("assistant_message", "string", True),
        ("response_time_ms", "bigint", True),
        ("event_time", "timestamp", True),
        ("meta", "struct<source:string,tags:array<string>>", True),
        ("counts", "map<string,int>", True),
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--message", "Nope"), "no message named 'Nope'"),
        (("--message", "Chat", "--type", "n=TIMESTAMP"), "needs a int64 field"),
        (("--message", "Chat", "--type", "zz=DATE"), "names no field of Chat"),
    ],
)
def test_bad_proto_requests_are_one_line_errors(run, schema, tmp_path, args, message):
    proto = tmp_path / "chat.proto"
    proto.write_text('syntax = "proto2";\nmessage Chat { optional int32 n = 1; }\n')

    result = run("tables", "create", "main.chatbot.t", "--proto", str(proto), *args)

    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output
    assert ok(run("tables", "list", "main.chatbot")) == "(none)\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("tables", "create", "main.chatbot", "--columns", "a INT"),
            "expected catalog.schema.table",
        ),
        (
            ("tables", "create", "main.chatbot.t t", "--columns", "a INT"),
            "invalid table",
        ),
        (
            ("tables", "create", "main.chatbot.t", "--columns", "a STRANG"),
            "unknown type 'STRANG'",
        ),
        (
            (
                "tables",
                "create",
                "main.chatbot.t",
                "--columns",
                "a INT",
                "--property",
                "chatlake.ingestion_time=a",
            ),
            "it must be TIMESTAMP",
        ),
        (("tables", "describe", "main.chatbot.missing"), "Table not found"),
        (("catalogs", "create", "main"), "Catalog already exists: main"),
        (
            ("grants", "add", "MODIFY", "ON", "TABLE", "main.chatbot.x", "TO", "ghost"),
            "Table not found",
        ),
        (("principals", "delete", "ghost"), "principal 'ghost' does not exist"),
    ],
)
def test_errors_are_one_clean_line(run, schema, args, message):
    result = run(*args)

    assert result.exit_code == 1
    assert message in result.output
    assert result.output.startswith("Error: ")
    assert result.output.count("\n") == 1


def test_principal_grants_and_its_own_credentials(run, schema, catalog_server):
    created = json.loads(ok(run("principals", "create", "app", "--json")))
    assert set(created) == {"name", "client_id", "client_secret"}

    ok(run("tables", "create", "main.chatbot.chat", "--columns", "a STRING"))
    granted = ok(
        run("grants", "add", "USE", "CATALOG", "ON", "CATALOG", "main", "TO", "app")
    )
    assert granted == "granted USE CATALOG on CATALOG main to app\n"
    ok(
        run(
            "grants",
            "add",
            "USE SCHEMA,",
            "SELECT",
            "ON",
            "SCHEMA",
            "main.chatbot",
            "TO",
            "app",
        )
    )
    ok(run("grants", "add", "MODIFY", "ON", "TABLE", "main.chatbot.chat", "TO", "app"))
    listed = json.loads(ok(run("grants", "list", "schema", "main.chatbot", "--json")))
    assert listed == [{"principal": "app", "privileges": ["SELECT", "USE SCHEMA"]}]

    as_app = CliRunner().invoke(
        main,
        [
            "tables",
            "describe",
            "main.chatbot.chat",
            "--json",
            "--catalog-url",
            catalog_server.url,
            "--client-id",
            created["client_id"],
            "--client-secret",
            created["client_secret"],
        ],
    )
    assert json.loads(ok(as_app))["full_name"] == "main.chatbot.chat"

    ok(run("grants", "revoke", "SELECT", "ON", "SCHEMA", "main.chatbot", "FROM", "app"))
    listed = json.loads(ok(run("grants", "list", "schema", "main.chatbot", "--json")))
    assert listed == [{"principal": "app", "privileges": ["USE SCHEMA"]}]
    principals = json.loads(ok(run("principals", "list", "--json")))
    assert [(p["name"], p["admin"]) for p in principals] == [
        ("admin", True),
        ("app", False),
    ]
    assert ok(run("principals", "delete", "app")) == "deleted principal app\n"


def test_bad_grant_phrases_are_usage_errors(run, schema):
    result = run("grants", "add", "MODIFY", "TABLE", "main.chatbot.chat", "TO", "app")
    assert result.exit_code == 2
    assert "expected PRIVILEGE[, ...] ON TYPE NAME TO PRINCIPAL" in result.output

    result = run("grants", "add", "MODIFY", "ON", "VOLUME", "x", "TO", "app")
    assert result.exit_code == 1
    assert "unknown securable type 'VOLUME'" in result.output


def test_tables_bootstrap_is_idempotent(run, catalog_server):
    first = json.loads(ok(run("tables", "bootstrap", "--json")))
    second = json.loads(ok(run("tables", "bootstrap", "--json")))

    assert first == {
        "created": [
            "main",
            "main.chatbot",
            "main.chatbot.chat_events",
            "main.chatbot.feedback",
        ]
    }
    assert second == {"created": []}
    info = catalog_server.admin_client.get_table("main.chatbot.chat_events")
    assert deltalake.DeltaTable(info["storage_location"]).version() == 0


def test_catalogs_and_schemas_commands(run):
    ok(run("catalogs", "create", "main", "--comment", "the main one"))
    assert "main  admin  the main one" in ok(run("catalogs", "list"))
    ok(run("schemas", "create", "main.chatbot"))
    assert json.loads(ok(run("schemas", "list", "main", "--json")))[0]["full_name"] == (
        "main.chatbot"
    )
    result = run("catalogs", "drop", "main")
    assert result.exit_code == 1 and "still has 1 schema" in result.output
    ok(run("catalogs", "drop", "main", "--force"))
    assert ok(run("catalogs", "list")) == "(none)\n"


def test_unreachable_catalog_is_a_clear_error(tmp_path, catalog_server):
    result = CliRunner().invoke(
        main,
        [
            "catalogs",
            "list",
            "--catalog-url",
            "http://127.0.0.1:9",
            "--data-dir",
            str(catalog_server.data_dir),
        ],
    )

    assert result.exit_code == 1
    assert "cannot reach the catalog at http://127.0.0.1:9" in result.output


def test_missing_admin_credentials_are_a_clear_error(tmp_path):
    result = CliRunner().invoke(main, ["catalogs", "list", "--data-dir", str(tmp_path)])

    assert result.exit_code == 1
    assert "no local admin credentials" in result.output


def _walk(command: click.Command, path: tuple[str, ...]):
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _walk(sub, (*path, name))


@pytest.mark.parametrize("name", [*CATALOG_COMMANDS, "catalog", "generate-proto", "up"])
def test_every_catalog_command_has_help(name):
    import importlib

    module, attribute = COMMANDS[name].split(":")
    command = getattr(importlib.import_module(module), attribute)
    for path, sub in _walk(command, (name,)):
        result = CliRunner().invoke(main, [*path, "--help"])
        assert result.exit_code == 0, path
        assert sub.help, f"{' '.join(path)} has no help"
        data_commands = {"list", "describe", "create", "bootstrap"}
        if path[-1] in data_commands and name != "up":
            assert "--json" in result.output, path


def test_serving_beyond_loopback_without_tls_is_refused(tmp_path):
    result = CliRunner().invoke(
        main,
        [
            "catalog",
            "--host",
            "0.0.0.0",
            "--port",
            "0",
            "--data-dir",
            str(tmp_path),
        ],
    )

    assert result.exit_code == 1
    assert "refusing to listen on 0.0.0.0 without TLS" in result.output
    assert not (tmp_path / "catalog").exists()


def test_a_location_with_a_nul_is_refused_naming_it(run, schema, tmp_path):
    location = (tmp_path / "x").as_uri() + "/a%00b"

    result = run(
        "tables",
        "create",
        "main.chatbot.tx",
        "--columns",
        "id STRING",
        "--location",
        location,
    )

    assert result.exit_code == 1
    assert result.output == (
        f"Error: storage_location {location!r} holds a NUL character\n"
    )
