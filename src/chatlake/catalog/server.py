"""Opening a catalog on disk and serving it with uvicorn."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy.exc
import uvicorn

from chatlake.catalog import lockfile
from chatlake.catalog.access import Access
from chatlake.catalog.api import create_app
from chatlake.catalog.config import CatalogSettings
from chatlake.catalog.errors import CatalogError
from chatlake.catalog.service import CatalogService
from chatlake.catalog.store import Store
from chatlake.catalog.tokens import TokenIssuer, TokenVerifier, ensure_keys
from chatlake.config import is_loopback
from chatlake.errors import ConfigError

logger = logging.getLogger(__name__)

STARTUP_TIMEOUT_S = 30.0
LOCK_FILE = "catalog.lock"


def open_service(settings: CatalogSettings) -> CatalogService:
    """The catalog over its data directory, created on first use."""
    try:
        return _open(settings)
    except (OSError, ValueError, sqlalchemy.exc.SQLAlchemyError) as error:
        # SQLAlchemy appends a help link on a second line: keep the cause only.
        cause = str(getattr(error, "orig", None) or error).splitlines()[0]
        message = f"cannot open the catalog in {settings.data_dir}: {cause}"
        raise ConfigError(message) from error


def _open(settings: CatalogSettings) -> CatalogService:
    settings.catalog_dir.mkdir(parents=True, exist_ok=True)
    settings.tables_dir.mkdir(parents=True, exist_ok=True)
    ensure_keys(settings.catalog_dir)
    store = Store(settings.database_path)
    issuer = TokenIssuer(settings.catalog_dir, settings.token_ttl_s)
    verifier = TokenVerifier(settings.public_key_file)
    access = Access(store, issuer, verifier)
    access.ensure_admin(settings.admin_file)
    return CatalogService(settings, store, access)


def check_bind(host: str, tls: bool) -> None:
    """Any bind other than loopback needs TLS: tokens and secrets cross the wire."""
    if not is_loopback(host) and not tls:
        raise ConfigError(
            f"refusing to listen on {host} without TLS: give --tls-cert and --tls-key, "
            f"or listen on 127.0.0.1"
        )


def serve(
    settings: CatalogSettings, tls_cert: Path | None = None, tls_key: Path | None = None
) -> None:
    """Run the catalog until interrupted (blocking)."""
    check_bind(settings.host, tls_cert is not None and tls_key is not None)
    sock = bind(settings.host, settings.port)
    lock = lock_catalog(settings)
    service = open_service(settings)
    config = uvicorn.Config(
        create_app(service),
        log_config=None,
        access_log=False,
        ssl_certfile=str(tls_cert) if tls_cert else None,
        ssl_keyfile=str(tls_key) if tls_key else None,
    )
    scheme = "https" if tls_cert else "http"
    port = sock.getsockname()[1]
    logger.info(
        "catalog serving %s at %s://%s:%d",
        settings.data_dir,
        scheme,
        settings.host,
        port,
    )
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
        service.store.close()
        lockfile.release(lock)


def lock_catalog(settings: CatalogSettings) -> int:
    """Hold ``catalog/catalog.lock`` while this process serves the data directory.

    Two catalog processes on one SQLite file would each run their
    check-then-write steps under their own in-process lock only; the second
    one stops here, in one line.
    """
    path = settings.catalog_dir / LOCK_FILE
    try:
        settings.catalog_dir.mkdir(parents=True, exist_ok=True)
        return lockfile.hold(path)
    except lockfile.LockHeld as held:
        raise ConfigError(
            f"data dir {settings.data_dir} is in use by another chatlake catalog "
            f"(pid {held.pid or 'unknown'}); stop it, or pick another --data-dir"
        ) from None
    except OSError as error:
        raise ConfigError(f"cannot lock {path}: {error.strerror}") from None


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, or a clear error if the address is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit this. uvicorn does not set it on sockets it is
    # handed, and without it each response (headers, then body) waits ~40 ms for
    # the client's delayed ACK.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as error:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    return sock


@dataclass
class RunningCatalog:
    """A catalog serving in a background thread (for tests and tools)."""

    url: str
    data_dir: Path
    service: CatalogService


@contextmanager
def serve_in_thread(settings: CatalogSettings) -> Iterator[RunningCatalog]:
    """Serve on a socket bound before start (port 0 picks a free one); stop on exit."""
    service = open_service(settings)
    sock = bind(settings.host, settings.port)
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(service), log_config=None, access_log=False, lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run,
        kwargs={"sockets": [sock]},
        name="catalog-server",
        daemon=True,
    )
    thread.start()
    try:
        _wait_started(server, thread)
        yield RunningCatalog(
            f"http://{settings.host}:{port}", settings.data_dir, service
        )
    finally:
        server.should_exit = True
        thread.join(timeout=STARTUP_TIMEOUT_S)
        sock.close()
        service.store.close()


def _wait_started(server: uvicorn.Server, thread: threading.Thread) -> None:
    started = threading.Event()
    deadline_checks = int(STARTUP_TIMEOUT_S / 0.01)
    for _ in range(deadline_checks):
        if server.started:
            return
        if not thread.is_alive():
            raise CatalogError("the catalog server thread stopped during start-up")
        started.wait(0.01)
    raise CatalogError(f"the catalog did not start within {STARTUP_TIMEOUT_S} s")
