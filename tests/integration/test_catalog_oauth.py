"""The token endpoint as the official Zerobus SDK and its generate_proto tool use it."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
from concurrent import futures

import grpc
import httpx
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from chatlake.catalog.tokens import TokenVerifier
from chatlake.types import parse_columns

TABLE = "main.chatbot.chat"
CHAT_COLUMNS = (
    "telemetry_id STRING NOT NULL, user_message STRING, assistant_message STRING, "
    "response_time_ms BIGINT"
)


def sdk_details(table: str = TABLE) -> list[dict]:
    """authorization_details exactly as zerobus-protocol.md section 6 describes them."""
    catalog, schema, _ = table.split(".")
    return [
        {
            "type": "unity_catalog_privileges",
            "object_type": "CATALOG",
            "object_full_path": catalog,
            "privileges": ["USE CATALOG"],
        },
        {
            "type": "unity_catalog_privileges",
            "object_type": "SCHEMA",
            "object_full_path": f"{catalog}.{schema}",
            "privileges": ["USE SCHEMA"],
        },
        {
            "type": "unity_catalog_privileges",
            "object_type": "TABLE",
            "object_full_path": table,
            "privileges": ["SELECT", "MODIFY"],
            "operations": ["zerobuswrite"],
        },
    ]


def sdk_form(details=None) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "scope": "all-apis",
        "resource": "api://databricks/workspaces/127/zerobusDirectWriteApi",
        "authorization_details": json.dumps(
            sdk_details() if details is None else details
        ),
    }


@pytest.fixture
def app(catalog_server):
    """Principal ``app`` with write access to the schema, and the chat table."""
    admin = catalog_server.admin_client
    admin.create_catalog("main")
    admin.create_schema("main", "chatbot")
    admin.create_table(TABLE, parse_columns(CHAT_COLUMNS))
    admin.create_table("main.chatbot.other", parse_columns(CHAT_COLUMNS))
    credentials = admin.create_principal("app")
    admin.grant("USE CATALOG", "catalog", "main", "app")
    admin.grant("USE SCHEMA", "schema", "main.chatbot", "app")
    admin.grant("MODIFY", "table", TABLE, "app")
    admin.grant("SELECT", "table", TABLE, "app")
    return credentials


def post_token(catalog_server, form, auth) -> httpx.Response:
    return httpx.post(f"{catalog_server.url}/oidc/v1/token", data=form, auth=auth)


def auth_of(credentials) -> tuple[str, str]:
    return credentials["client_id"], credentials["client_secret"]


def test_sdk_token_request_gets_a_token_with_exactly_those_privileges(
    catalog_server, app
):
    response = post_token(catalog_server, sdk_form(), auth_of(app))

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600 and isinstance(body["expires_in"], int)
    claims = TokenVerifier(catalog_server.public_key_file).verify(body["access_token"])
    assert claims.subject == app["client_id"]
    assert [p.to_json() for p in claims.privileges] == [
        {
            "object_type": "CATALOG",
            "object_full_path": "main",
            "privileges": ["USE CATALOG"],
        },
        {
            "object_type": "SCHEMA",
            "object_full_path": "main.chatbot",
            "privileges": ["USE SCHEMA"],
        },
        {
            "object_type": "TABLE",
            "object_full_path": TABLE,
            "privileges": ["MODIFY", "SELECT"],
        },
    ]
    assert claims.allows("MODIFY", TABLE)
    # C09: a token for one table does not open another.
    assert claims.missing("MODIFY", "main.chatbot.other") == [
        "MODIFY on TABLE main.chatbot.other"
    ]


def test_privileges_not_held_get_no_token(catalog_server, app):
    response = post_token(
        catalog_server, sdk_form(sdk_details("main.chatbot.other")), auth_of(app)
    )

    assert response.status_code == 403
    assert response.json() == {
        "error": "access_denied",
        "error_description": "principal 'app' does not hold: MODIFY on TABLE "
        "main.chatbot.other, SELECT on TABLE main.chatbot.other",
    }


def test_privileges_on_a_missing_table_get_no_token(catalog_server, app):
    response = post_token(
        catalog_server, sdk_form(sdk_details("main.chatbot.nope")), auth_of(app)
    )

    assert response.status_code == 403
    assert (
        "table main.chatbot.nope does not exist" in response.json()["error_description"]
    )


@pytest.mark.parametrize(
    ("auth", "description"),
    [
        (("wrong", "secret"), "unknown client id or wrong client secret"),
        (None, "send the client id and secret with HTTP Basic authentication"),
    ],
)
def test_bad_client_credentials_are_401(catalog_server, app, auth, description):
    response = post_token(catalog_server, sdk_form(), auth)

    assert response.status_code == 401
    assert response.json() == {
        "error": "invalid_client",
        "error_description": description,
    }


def test_wrong_secret_of_a_real_client_is_401(catalog_server, app):
    response = post_token(catalog_server, sdk_form(), (app["client_id"], "nope"))

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_other_grant_types_are_refused(catalog_server, app):
    form = {**sdk_form(), "grant_type": "password"}
    response = post_token(catalog_server, form, auth_of(app))

    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


@pytest.mark.parametrize(
    ("details", "fragment"),
    [
        ("not json", "not JSON"),
        ('{"a": 1}', "non-empty JSON list"),
        ("[]", "non-empty JSON list"),
        ('[{"type": "other"}]', "of type 'unity_catalog_privileges'"),
        (
            '[{"type": "unity_catalog_privileges", "object_type": "VOLUME"}]',
            "object_type must be CATALOG, SCHEMA or TABLE",
        ),
        (
            '[{"type": "unity_catalog_privileges", "object_type": "TABLE", '
            '"object_full_path": "main.chatbot", "privileges": ["MODIFY"]}]',
            "expected 3",
        ),
        (
            '[{"type": "unity_catalog_privileges", "object_type": "TABLE", '
            '"object_full_path": "main.chatbot.chat", "privileges": ["USE CATALOG"]}]',
            "'USE CATALOG' is not a privilege on a TABLE",
        ),
        (
            '[{"type": "unity_catalog_privileges", "object_type": "TABLE", '
            '"object_full_path": "main.chatbot.chat", "privileges": []}]',
            "non-empty list of strings",
        ),
    ],
)
def test_malformed_authorization_details_are_400(
    catalog_server, app, details, fragment
):
    form = {**sdk_form(), "authorization_details": details}
    response = post_token(catalog_server, form, auth_of(app))

    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_authorization_details"
    assert fragment in body["error_description"]


def test_token_without_details_carries_every_held_privilege(catalog_server, app):
    form = {"grant_type": "client_credentials", "scope": "all-apis"}
    token = post_token(catalog_server, form, auth_of(app)).json()["access_token"]
    claims = TokenVerifier(catalog_server.public_key_file).verify(token)

    assert claims.allows("MODIFY", TABLE)
    assert not claims.allows("MODIFY", "main.chatbot.other")


# -- the official SDK ------------------------------------------------------------------


class CaptureZerobus:
    """A stand-in Zerobus service that checks the stream's token and accepts it."""

    def __init__(self, verifier: TokenVerifier) -> None:
        self.verifier = verifier
        self.seen: queue.Queue = queue.Queue()

    def EphemeralStream(self, request_iterator, context):  # noqa: N802 (gRPC name)
        from chatlake.ingest import zerobus_pb2

        context.send_initial_metadata(())
        first = next(request_iterator)
        metadata = dict(context.invocation_metadata())
        token = metadata["authorization"].removeprefix("Bearer ")
        claims = self.verifier.verify(token)
        table = first.create_stream.table_name
        self.seen.put((table, claims.allows("MODIFY", table), metadata))
        yield zerobus_pb2.EphemeralStreamResponse(
            create_stream_response=zerobus_pb2.CreateIngestStreamResponse(
                stream_id="s1"
            )
        )
        for _ in request_iterator:
            pass


@pytest.fixture
def capture_server(catalog_server):
    from chatlake.ingest import zerobus_pb2_grpc

    servicer = CaptureZerobus(TokenVerifier(catalog_server.public_key_file))
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    zerobus_pb2_grpc.add_ZerobusServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"http://127.0.0.1:{port}", servicer
    server.stop(grace=None)


def chat_descriptor():
    proto = descriptor_pb2.FileDescriptorProto(name="chat_test.proto", syntax="proto2")
    message = proto.message_type.add(name="Chat")
    fields = [
        ("telemetry_id", 9, 2),
        ("user_message", 9, 1),
        ("assistant_message", 9, 1),
        ("response_time_ms", 3, 1),
    ]
    for number, (name, kind, label) in enumerate(fields, start=1):
        message.field.add(name=name, number=number, type=kind, label=label)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    descriptor = pool.FindMessageTypeByName("Chat")
    return descriptor, message_factory.GetMessageClass(descriptor)


@pytest.mark.slow
def test_official_sdk_stream_carries_a_token_that_allows_the_table(
    catalog_server, app, capture_server
):
    from zerobus.sdk.sync import StreamConfigurationOptions, TableProperties, ZerobusSdk

    endpoint, servicer = capture_server
    descriptor, _ = chat_descriptor()
    sdk = ZerobusSdk(endpoint, catalog_server.url)
    options = StreamConfigurationOptions(recovery=False)
    stream = sdk.create_stream(
        app["client_id"],
        app["client_secret"],
        TableProperties(TABLE, descriptor),
        options,
    )
    stream.close()

    table, allowed, metadata = servicer.seen.get(timeout=30)
    assert table == TABLE
    assert allowed is True
    assert metadata["x-databricks-zerobus-table-name"] == TABLE


@pytest.mark.slow
def test_official_sdk_reports_a_refused_token_request(
    catalog_server, app, capture_server
):
    from zerobus.sdk.sync import StreamConfigurationOptions, TableProperties, ZerobusSdk

    endpoint, servicer = capture_server
    descriptor, _ = chat_descriptor()
    sdk = ZerobusSdk(endpoint, catalog_server.url)
    options = StreamConfigurationOptions(recovery=False)
    with pytest.raises(Exception, match="does not hold") as caught:
        sdk.create_stream(
            app["client_id"],
            app["client_secret"],
            TableProperties("main.chatbot.other", descriptor),
            options,
        )
    assert "MODIFY on TABLE main.chatbot.other" in str(caught.value)
    assert servicer.seen.empty()


# -- C19: the official generate_proto tool ------------------------------------------

EVERY_SUPPORTED_TYPE = (
    "s STRING NOT NULL, b BIGINT, i INT, sm SMALLINT, ti TINYINT, f FLOAT, "
    "d DOUBLE, bo BOOLEAN, bi BINARY, dt DATE, ts TIMESTAMP, ntz TIMESTAMP_NTZ, "
    "v VARIANT, arr ARRAY<STRING>, m MAP<STRING,BIGINT>, "
    "meta STRUCT<source: STRING, tags: ARRAY<STRING>>, "
    "items ARRAY<STRUCT<name: STRING, qty: INT>>"
)
F = descriptor_pb2.FieldDescriptorProto


def compile_proto(path):
    from grpc_tools import protoc

    out = path.with_suffix(".pb")
    assert (
        protoc.main(
            ["protoc", f"-I{path.parent}", f"--descriptor_set_out={out}", str(path)]
        )
        == 0
    )
    return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file[0]


def test_c19_official_generate_proto_output_compiles_and_describes_the_table(
    catalog_server, app, tmp_path
):
    admin = catalog_server.admin_client
    admin.create_table("main.chatbot.every", parse_columns(EVERY_SUPPORTED_TYPE))
    admin.grant("SELECT", "table", "main.chatbot.every", "app")
    output = tmp_path / "official.proto"

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "zerobus.tools.generate_proto",
            "--uc-endpoint",
            catalog_server.url,
            "--client-id",
            app["client_id"],
            "--client-secret",
            app["client_secret"],
            "--table",
            "main.chatbot.every",
            "--proto-msg",
            "Every",
            "--output",
            str(output),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    message = compile_proto(output).message_type[0]
    fields = {f.name: (f.number, f.label, f.type, f.type_name) for f in message.field}
    assert list(fields) == [c.name for c in parse_columns(EVERY_SUPPORTED_TYPE)]
    assert fields["s"] == (1, F.LABEL_REQUIRED, F.TYPE_STRING, "")
    assert fields["b"][1:3] == (F.LABEL_OPTIONAL, F.TYPE_INT64)
    assert fields["ti"][2] == F.TYPE_INT32
    assert fields["dt"][2] == F.TYPE_INT32
    assert fields["ts"][2] == fields["ntz"][2] == F.TYPE_INT64
    assert fields["v"][2] == F.TYPE_STRING
    assert fields["arr"][1:3] == (F.LABEL_REPEATED, F.TYPE_STRING)
    assert fields["m"][1:] == (F.LABEL_REPEATED, F.TYPE_MESSAGE, ".Every.MEntry")
    assert fields["meta"][1:] == (F.LABEL_OPTIONAL, F.TYPE_MESSAGE, ".Every.Meta")
    assert fields["items"][1:] == (F.LABEL_REPEATED, F.TYPE_MESSAGE, ".Every.Items")


def test_chatlake_generate_proto_matches_the_official_tool(
    catalog_server, app, tmp_path
):
    from click.testing import CliRunner

    from chatlake.cli import main

    admin = catalog_server.admin_client
    admin.create_table("main.chatbot.every", parse_columns(EVERY_SUPPORTED_TYPE))
    admin.grant("SELECT", "table", "main.chatbot.every", "app")
    official, ours = tmp_path / "official.proto", tmp_path / "ours.proto"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "zerobus.tools.generate_proto",
            "--uc-endpoint",
            catalog_server.url,
            "--client-id",
            app["client_id"],
            "--client-secret",
            app["client_secret"],
            "--table",
            "main.chatbot.every",
            "--proto-msg",
            "Every",
            "--output",
            str(official),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )

    result = CliRunner().invoke(
        main,
        [
            "generate-proto",
            "--table",
            "main.chatbot.every",
            "--message",
            "Every",
            "--output",
            str(ours),
            "--catalog-url",
            catalog_server.url,
            "--data-dir",
            str(catalog_server.data_dir),
        ],
    )

    assert result.exit_code == 0, result.output
    official_message = compile_proto(official).message_type[0]
    our_message = compile_proto(ours).message_type[0]
    assert our_message == official_message
