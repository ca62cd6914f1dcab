"""Fakes for testing telemetry without the real ingest server or catalog.

``FakeZerobusServer`` speaks just enough of the Zerobus wire protocol for the
official SDK: it answers ``create_stream`` and then either acknowledges every
message (``mode="ack"``) or never acknowledges anything (``mode="hang"``), the
server that accepts and then goes silent. ``FakeTokenEndpoint`` hands out an
opaque token at ``/oidc/v1/token``. Both bind 127.0.0.1 on a free port.
"""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc

from chatlake.ingest import zerobus_pb2, zerobus_pb2_grpc

FAKE_TOKEN = "fake-token-for-tests"


class FakeZerobusServer:
    """A grpc.aio Zerobus server on its own thread and event loop."""

    def __init__(self, mode: str = "ack") -> None:
        self.mode = mode
        self.records: list[bytes] = []
        self.streams_opened = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="fake-zerobus", daemon=True
        )
        self._server: grpc.aio.Server | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeZerobusServer:
        self._thread.start()
        self.port = self._run(self._start())
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._run(self._server.stop(grace=None))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def __enter__(self) -> FakeZerobusServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    async def _start(self) -> int:
        self._server = grpc.aio.server(
            options=[("grpc.max_receive_message_length", 16 * 1024 * 1024)]
        )
        zerobus_pb2_grpc.add_ZerobusServicer_to_server(_Servicer(self), self._server)
        port = self._server.add_insecure_port("127.0.0.1:0")
        await self._server.start()
        return port


class _Servicer(zerobus_pb2_grpc.ZerobusServicer):
    def __init__(self, fake: FakeZerobusServer) -> None:
        self.fake = fake

    async def EphemeralStream(self, request_iterator, context):  # noqa: N802
        await context.send_initial_metadata(())
        self.fake.streams_opened += 1
        first = True
        async for request in request_iterator:
            if first:
                first = False
                stream_id = f"fake-{self.fake.streams_opened}"
                yield _created(stream_id)
                continue
            self._keep(request)
            if self.fake.mode == "ack":
                yield _acked(_offset_of(request))

    def _keep(self, request: zerobus_pb2.EphemeralStreamRequest) -> None:
        if request.HasField("ingest_record_batch"):
            self.fake.records.extend(
                request.ingest_record_batch.proto_encoded_batch.records
            )
        else:
            self.fake.records.append(request.ingest_record.proto_encoded_record)


def _offset_of(request: zerobus_pb2.EphemeralStreamRequest) -> int:
    if request.HasField("ingest_record_batch"):
        return request.ingest_record_batch.offset_id
    return request.ingest_record.offset_id


def _created(stream_id: str) -> zerobus_pb2.EphemeralStreamResponse:
    response = zerobus_pb2.EphemeralStreamResponse()
    response.create_stream_response.stream_id = stream_id
    return response


def _acked(offset: int) -> zerobus_pb2.EphemeralStreamResponse:
    response = zerobus_pb2.EphemeralStreamResponse()
    response.ingest_record_response.durability_ack_up_to_offset = offset
    return response


class FakeTokenEndpoint:
    """Answers ``POST /oidc/v1/token`` with a fixed token, like the catalog would."""

    def __init__(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _TokenHandler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fake-token", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeTokenEndpoint:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeTokenEndpoint:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class _TokenHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("content-length", "0"))
        self.rfile.read(length)
        body = json.dumps(
            {"access_token": FAKE_TOKEN, "token_type": "Bearer", "expires_in": 3600}
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: tests read assertions, not access logs."""
