"""Run a real ingest server in a background thread (for tests and tools).

with serve_in_thread(settings, storage_settings) as running:
    sdk = ZerobusSdk(running.endpoint, catalog_url)
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass

from chatlake.ingest.config import IngestSettings
from chatlake.ingest.errors import IngestError
from chatlake.ingest.server import IngestServer
from chatlake.ingest.storage import Storage, StorageSettings

START_TIMEOUT_S = 30.0


@dataclass
class RunningIngest:
    server: IngestServer
    loop: asyncio.AbstractEventLoop

    @property
    def endpoint(self) -> str:
        return self.server.endpoint

    @property
    def port(self) -> int:
        return self.server.port

    def call(self, coroutine, timeout_s: float = 60.0):
        """Run a coroutine on the server's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout_s)


@contextlib.contextmanager
def serve_in_thread(
    settings: IngestSettings, storage_settings: StorageSettings | None = None
) -> Iterator[RunningIngest]:
    """Start an IngestServer on its own event loop; stop it on exit."""
    loop = asyncio.new_event_loop()
    server = IngestServer(settings, Storage(settings.data_dir, storage_settings))
    stopped = threading.Event()
    started: Future = Future()

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(server.start())
        except BaseException as error:  # handed to the starting thread
            started.set_exception(error)
            return
        started.set_result(None)
        loop.run_forever()
        loop.run_until_complete(server.stop())
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        stopped.set()

    thread = threading.Thread(target=run, name="ingest-server", daemon=True)
    thread.start()
    started.result(START_TIMEOUT_S)
    try:
        yield RunningIngest(server, loop)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(START_TIMEOUT_S)
        if not stopped.is_set():
            raise IngestError("the ingest server did not stop in time")
