"""The ingest server: gRPC (grpc.aio) in front of Storage, plus ``/metrics``.

server = IngestServer(settings, storage)
await server.start()        # binds; server.port is the bound port
...
await server.stop()         # ends streams, flushes events, stops storage
"""

from __future__ import annotations

import logging

import grpc

from chatlake.ingest import zerobus_pb2_grpc
from chatlake.ingest.auth import Authorizer
from chatlake.ingest.config import IngestSettings
from chatlake.ingest.errors import IngestError
from chatlake.ingest.metrics import MetricsServer
from chatlake.ingest.service import ZerobusService
from chatlake.ingest.storage import Storage
from chatlake.ingest.stream_events import StreamEventLog
from chatlake.ingest.tables import TableDirectory
from chatlake.ingest.tls import ensure_certificates

log = logging.getLogger(__name__)

STOP_GRACE_S = 5.0


class IngestServer:
    """One ingest process: the Zerobus service, its storage and its metrics."""

    def __init__(
        self,
        settings: IngestSettings,
        storage: Storage,
        *,
        tables: TableDirectory | None = None,
        authorizer: Authorizer | None = None,
    ) -> None:
        self.settings = settings
        self.storage = storage
        self.tables = tables or TableDirectory(
            settings.catalog_url, settings.data_dir, settings.table_cache_ttl_s
        )
        self.authorizer = authorizer or Authorizer(settings.token_public_key)
        self.events = (
            StreamEventLog(storage, self.tables) if settings.stream_events else None
        )
        self.service = ZerobusService(
            settings, storage, self.tables, self.authorizer, self.events
        )
        self.port = 0
        self.metrics: MetricsServer | None = None
        self._server: grpc.aio.Server | None = None

    @property
    def endpoint(self) -> str:
        """What to give ZerobusSdk as its host."""
        if self.settings.tls:
            return f"https://localhost:{self.port}"
        host = self.settings.host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    async def start(self) -> None:
        await self.storage.start()
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", self.settings.max_receive_bytes),
                ("grpc.max_send_message_length", self.settings.max_receive_bytes),
            ]
        )
        zerobus_pb2_grpc.add_ZerobusServicer_to_server(self.service, server)
        self.port = self._bind(server)
        await server.start()
        self._server = server
        if self.events is not None:
            self.events.start()
        if self.settings.metrics_port is not None:
            self.metrics = MetricsServer(
                self.settings.metrics_host, self.settings.metrics_port
            )
        log.info("ingest serving on %s", self.endpoint)

    def _bind(self, server: grpc.aio.Server) -> int:
        host = self.settings.host
        address = (
            f"[{host}]:{self.settings.port}"
            if ":" in host
            else (f"{host}:{self.settings.port}")
        )
        try:
            if self.settings.tls:
                files = ensure_certificates(self.settings.tls_dir)
                port = server.add_secure_port(address, files.server_credentials())
            else:
                port = server.add_insecure_port(address)
        except RuntimeError as error:
            raise IngestError(f"cannot listen on {address}: {error}") from None
        if not port:
            raise IngestError(f"cannot listen on {address}")
        return port

    async def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """Stop accepting, end open streams, flush events, stop storage."""
        if self._server is not None:
            await self._server.stop(grace_s)
            self._server = None
        if self.events is not None:
            await self.events.stop()
        if self.metrics is not None:
            self.metrics.stop()
            self.metrics = None
        await self.storage.stop()
        self.tables.close()

    async def wait(self) -> None:
        if self._server is not None:
            await self._server.wait_for_termination()
