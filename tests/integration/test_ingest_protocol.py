"""The wire protocol with a raw gRPC client: what the SDK never sends wrong."""

from __future__ import annotations

import json
import threading
import time

import grpc
import pytest
from google.protobuf import descriptor_pb2

from chatlake.ingest import zerobus_pb2 as pb
from chatlake.ingest import zerobus_pb2_grpc
from tests.integration.ingest_support import (
    create_table,
    ingest_server,
    read_rows,
    settle,
)

TABLE = "main.chatbot.raw"


@pytest.fixture
def raw(catalog_server):
    create_table(catalog_server, TABLE, "id STRING NOT NULL, n BIGINT")
    token = catalog_server.admin_client.token()
    with ingest_server(catalog_server) as running:
        channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
        try:
            yield catalog_server, running, zerobus_pb2_grpc.ZerobusStub(channel), token
        finally:
            channel.close()


def metadata(token: str, table: str = TABLE):
    return (
        ("authorization", f"Bearer {token}"),
        ("x-databricks-zerobus-table-name", table),
    )


def create(record_type=pb.JSON, table=TABLE, descriptor=None):
    request = pb.CreateIngestStreamRequest(table_name=table, record_type=record_type)
    if descriptor is not None:
        request.descriptor_proto = descriptor
    return pb.EphemeralStreamRequest(create_stream=request)


def record(offset: int, text: str):
    return pb.EphemeralStreamRequest(
        ingest_record=pb.IngestRecordRequest(offset_id=offset, json_record=text)
    )


def batch(offset: int, texts: list[str]):
    return pb.EphemeralStreamRequest(
        ingest_record_batch=pb.IngestRecordBatchRequest(
            offset_id=offset, json_batch=pb.JsonRecordBatch(records=texts)
        )
    )


def run(stub, token, requests, table=TABLE):
    responses = []
    call = stub.EphemeralStream(iter(requests), metadata=metadata(token, table))
    try:
        for response in call:
            responses.append(response)
    except grpc.RpcError as error:
        return responses, error.code(), error.details()
    return responses, grpc.StatusCode.OK, ""


def test_headers_come_before_the_first_request(raw):
    _, _, stub, token = raw
    release = threading.Event()

    def requests():
        release.wait(10)
        yield create()

    call = stub.EphemeralStream(requests(), metadata=metadata(token))
    headers = call.initial_metadata()  # blocks until the server sends them
    release.set()
    first = next(call)
    call.cancel()

    assert headers is not None
    assert first.WhichOneof("payload") == "create_stream_response"
    assert len(first.create_stream_response.stream_id) == 32


def test_single_and_batch_messages_are_acked_cumulatively_then_ok(raw):
    catalog, running, stub, token = raw
    requests = [
        create(),
        record(0, json.dumps({"id": "a", "n": 1})),
        batch(1, [json.dumps({"id": "b"}), json.dumps({"id": "c", "n": 3})]),
        record(2, json.dumps({"id": "d"})),
    ]

    responses, code, _ = run(stub, token, requests)
    settle(running)

    acks = [r.ingest_record_response.durability_ack_up_to_offset for r in responses[1:]]
    assert code == grpc.StatusCode.OK
    assert acks[-1] == 2 and acks == sorted(acks)
    assert [(r["id"], r["n"]) for r in read_rows(catalog, TABLE, "id")] == [
        ("a", 1),
        ("b", None),
        ("c", 3),
        ("d", None),
    ]


@pytest.mark.parametrize(
    ("requests", "code", "details"),
    [
        (
            [record(0, "{}")],
            grpc.StatusCode.INVALID_ARGUMENT,
            "the first message of a stream must be create_stream, not ingest_record",
        ),
        (
            [create(pb.PROTO)],
            grpc.StatusCode.INVALID_ARGUMENT,
            "a PROTO stream needs descriptor_proto (table main.chatbot.raw)",
        ),
        (
            [create(pb.RECORD_TYPE_UNSPECIFIED)],
            grpc.StatusCode.INVALID_ARGUMENT,
            "record_type must be PROTO or JSON (table main.chatbot.raw), got 0",
        ),
        (
            [create(pb.PROTO, descriptor=b"\xff\x00garbage")],
            grpc.StatusCode.INVALID_ARGUMENT,
            "table main.chatbot.raw: descriptor_proto is not a serialized "
            "DescriptorProto",
        ),
        (
            [create(table="main.chatbot.raw.extra")],
            grpc.StatusCode.INVALID_ARGUMENT,
            "invalid table name 'main.chatbot.raw.extra': expected "
            "catalog.schema.table (three parts), got 4",
        ),
        (
            [create(), record(0, '{"id": "a"}'), record(0, '{"id": "b"}')],
            grpc.StatusCode.INVALID_ARGUMENT,
            "table main.chatbot.raw: offset 0 does not follow offset 0; offsets "
            "must increase within a stream",
        ),
        (
            [create(pb.AVRO)],
            grpc.StatusCode.UNIMPLEMENTED,
            "AVRO streams are not supported (table main.chatbot.raw); use PROTO or "
            "JSON records",
        ),
    ],
)
def test_protocol_violations_end_with_a_terminal_status(raw, requests, code, details):
    _, _, stub, token = raw

    _, got_code, got_details = run(stub, token, requests)

    assert got_code == code
    assert got_details.startswith(details)


def test_header_and_message_must_name_the_same_table(raw):
    _, _, stub, token = raw

    _, code, details = run(stub, token, [create()], table="main.chatbot.other")

    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details == (
        "header x-databricks-zerobus-table-name names table 'main.chatbot.other' "
        "but create_stream names 'main.chatbot.raw'"
    )


def test_proto_descriptor_message_name_must_be_set(raw):
    _, _, stub, token = raw
    nameless = descriptor_pb2.DescriptorProto().SerializeToString()

    _, code, details = run(stub, token, [create(pb.PROTO, descriptor=nameless)])

    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details == "table main.chatbot.raw: descriptor_proto has no message name"


def test_a_client_that_vanishes_mid_stream_leaves_the_server_healthy(raw):
    catalog, running, stub, token = raw
    release = threading.Event()

    def requests():
        yield create()
        yield record(0, json.dumps({"id": "before-cancel"}))
        release.wait(10)

    call = stub.EphemeralStream(requests(), metadata=metadata(token))
    assert next(call).WhichOneof("payload") == "create_stream_response"
    assert next(call).ingest_record_response.durability_ack_up_to_offset == 0
    call.cancel()
    release.set()
    service = running.server.service
    deadline = time.monotonic() + 10
    while service.open_streams and time.monotonic() < deadline:
        time.sleep(0.05)

    responses, code, _ = run(stub, token, [create(), record(0, '{"id": "after"}')])
    settle(running)

    assert service.open_streams == 0
    assert code == grpc.StatusCode.OK
    assert [r["id"] for r in read_rows(catalog, TABLE, "id")] == [
        "after",
        "before-cancel",
    ]


def test_undecodable_request_bytes_end_the_rpc_and_the_server_carries_on(raw):
    catalog, running, stub, token = raw
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    method = channel.stream_stream(
        "/databricks.zerobus.Zerobus/EphemeralStream",
        request_serializer=lambda raw_bytes: raw_bytes,
        response_deserializer=lambda raw_bytes: raw_bytes,
    )
    call = method(iter([b"\xff\xff\xff\xff"]), metadata=metadata(token))
    with pytest.raises(grpc.RpcError) as caught:
        list(call)
    channel.close()

    responses, code, _ = run(stub, token, [create(), record(0, '{"id": "still"}')])

    assert caught.value.code() != grpc.StatusCode.OK
    assert code == grpc.StatusCode.OK
    assert responses[-1].ingest_record_response.durability_ack_up_to_offset == 0
