"""``chatlake up``: the catalog, ingest server, model and app as one supervised group.

Each part is a child process (``python -m chatlake <part> ...``) described by a
:class:`Service`. They start in order, each waited on until it answers; after
the catalog is up, the bootstrap creates the chat tables and the ``app``
principal and writes ``<data_dir>/app.env``. Ctrl-C or SIGTERM stops the
children in reverse order. If any child dies, the rest are stopped too. One
``up`` runs per data directory: it holds ``<data_dir>/up.lock`` until it exits.

Adding a part takes three lines: its port in ``PORTS`` (which adds a
``--<name>-port`` flag), a function building its Service, and that function in
``BEFORE_BOOTSTRAP`` or ``AFTER_BOOTSTRAP``; values the app needs go into
``app_env``.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import click
import httpx

from chatlake import config, logs
from chatlake.app import up_parts
from chatlake.catalog import lockfile
from chatlake.child_processes import die_with_parent
from chatlake.cli_options import PORT, data_dir_option
from chatlake.errors import ChatlakeError
from chatlake.ingest import up_parts as ingest_parts

logger = logging.getLogger(__name__)

HOST = config.DEFAULT_HOST
APP_ENV_FILE = "app.env"
LOCK_FILE = "up.lock"
STOP_TIMEOUT_S = 10.0
POLL_INTERVAL_S = 0.1

# One --<name>-port flag per part: name -> default port.
PORTS: dict[str, int] = {
    "catalog": config.DEFAULT_CATALOG_PORT,
    "ingest": config.DEFAULT_INGEST_PORT,
    "metrics": config.DEFAULT_METRICS_PORT,
    "model": config.DEFAULT_MODEL_PORT,
    "app": config.DEFAULT_APP_PORT,
}


class UpError(ChatlakeError):
    """A part failed to start, or the bootstrap failed."""


@dataclass(frozen=True)
class Service:
    """One child process and how to tell that it is ready."""

    name: str
    argv: list[str]
    ready_url: str | None = None
    ready_port: int | None = None
    env: dict[str, str] = field(default_factory=dict)
    ready_timeout_s: float = 60.0
    # Shown in the summary, e.g. the URL a person opens.
    address: str = ""


@dataclass
class UpContext:
    """What the Service builders know: where data lives, ports, the app env."""

    data_dir: Path
    ports: dict[str, int]
    app_env: dict[str, str] = field(default_factory=dict)

    def port(self, name: str) -> int:
        return self.ports[name]

    def url(self, name: str) -> str:
        return f"http://{HOST}:{self.ports[name]}"

    def chatlake(self, *args: str) -> list[str]:
        """argv running a chatlake command with the same interpreter."""
        return [sys.executable, "-m", "chatlake", *args]


def catalog_service(ctx: UpContext) -> Service:
    argv = ctx.chatlake(
        "catalog",
        "--data-dir",
        str(ctx.data_dir),
        "--host",
        HOST,
        "--port",
        str(ctx.port("catalog")),
    )
    url = ctx.url("catalog")
    return Service("catalog", argv, ready_url=f"{url}/healthz", address=url)


# Started in this order. The bootstrap runs between the two lists.
BEFORE_BOOTSTRAP: list[Callable[[UpContext], Service]] = [catalog_service]
# A builder may return None for a part that is not needed this time.
AFTER_BOOTSTRAP: list[Callable[[UpContext], Service | None]] = [
    ingest_parts.ingest_service,
    up_parts.model_service,
    up_parts.app_service,
]


def app_env(ctx: UpContext, client_id: str, client_secret: str) -> dict[str, str]:
    """The environment a separate app process needs, written to app.env."""
    catalog_url = ctx.url("catalog")
    schema = f"{config.DEFAULT_CATALOG}.{config.DEFAULT_SCHEMA}"
    return {
        "ZEROBUS_HOST": catalog_url,
        "CHATLAKE_CATALOG_URL": catalog_url,
        "DATABRICKS_CLIENT_ID": client_id,
        "DATABRICKS_CLIENT_SECRET": client_secret,
        "ZEROBUS_TABLE": f"{schema}.chat_events",
        "CHATLAKE_FEEDBACK_TABLE": f"{schema}.feedback",
        "CHATLAKE_DATA_DIR": str(ctx.data_dir),
        **up_parts.model_env(ctx),
        **ingest_parts.ingest_env(ctx),
    }


# -- bootstrap ---------------------------------------------------------------------


def bootstrap(ctx: UpContext) -> None:
    """Chat tables, the app principal and app.env; safe to run on every start."""
    from chatlake.catalog.bootstrap import (
        ensure_chat_tables,
        ensure_principal,
        grant_schema_write,
        read_env_file,
        write_env_file,
    )
    from chatlake.catalog.client import CatalogClient

    catalog, schema = config.DEFAULT_CATALOG, config.DEFAULT_SCHEMA
    env_path = ctx.data_dir / APP_ENV_FILE
    with CatalogClient.local_admin(ctx.url("catalog"), ctx.data_dir) as client:
        for name in ensure_chat_tables(client, catalog, schema):
            logger.info("bootstrap created %s", name)
        previous = read_env_file(env_path)
        if _still_valid(client, previous):
            grant_schema_write(client, config.DEFAULT_PRINCIPAL, catalog, schema)
            client_id = previous["DATABRICKS_CLIENT_ID"]
            secret = previous["DATABRICKS_CLIENT_SECRET"]
        else:
            created = ensure_principal(
                client, config.DEFAULT_PRINCIPAL, catalog, schema, replace=True
            )
            client_id, secret = created["client_id"], created["client_secret"]
    ctx.app_env = app_env(ctx, client_id, secret)
    write_env_file(env_path, ctx.app_env)


def _still_valid(client, previous: dict[str, str]) -> bool:
    """True if app.env holds the current credentials of the app principal."""
    wanted = previous.get("DATABRICKS_CLIENT_ID")
    if not wanted or not previous.get("DATABRICKS_CLIENT_SECRET"):
        return False
    current = any(
        p["name"] == config.DEFAULT_PRINCIPAL and p["client_id"] == wanted
        for p in client.list_principals()
    )
    secret = previous["DATABRICKS_CLIENT_SECRET"]
    return current and _secret_works(client.base_url, wanted, secret)


def _secret_works(url: str, client_id: str, secret: str) -> bool:
    """False once the secret was rotated (``chatlake principals rotate-secret``)."""
    from chatlake.catalog.client import CatalogClient
    from chatlake.catalog.errors import Unauthenticated

    with CatalogClient(url, client_id, secret) as app:
        try:
            app.token()
        except Unauthenticated:
            return False
    return True


# -- supervision -------------------------------------------------------------------


class Supervisor:
    """Starts services, waits for them, and stops them all in reverse order."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.running: list[tuple[Service, subprocess.Popen]] = []
        self.stopping = threading.Event()

    def start(self, service: Service) -> None:
        logger.info("starting %s", service.name)
        # Its own process group: a terminal's Ctrl-C reaches only ``up``, which
        # then stops the children in order.
        process = subprocess.Popen(
            service.argv,
            env={**self.env, **service.env},
            process_group=0,
            preexec_fn=die_with_parent(),  # even if up is killed by SIGKILL
        )
        self.running.append((service, process))
        self._wait_ready(service, process)
        logger.info(
            "%s is ready%s",
            service.name,
            f" at {service.address}" if service.address else "",
        )

    def _wait_ready(self, service: Service, process: subprocess.Popen) -> None:
        deadline = time.monotonic() + service.ready_timeout_s
        while time.monotonic() < deadline:
            if self.stopping.is_set():
                raise UpError(f"stopped while waiting for {service.name}")
            if process.poll() is not None:
                raise UpError(
                    f"{service.name} exited with code {process.returncode} "
                    f"during start-up (see its log above)"
                )
            # Something else may hold the port; only a live child counts.
            if _answers(service) and process.poll() is None:
                return
            self.stopping.wait(POLL_INTERVAL_S)
        raise UpError(
            f"{service.name} did not become ready within "
            f"{service.ready_timeout_s:.0f} s"
        )

    def watch(self) -> int:
        """Block until a signal or a child's exit; the exit code for ``up``."""
        while not self.stopping.wait(POLL_INTERVAL_S * 5):
            for service, process in self.running:
                if process.poll() is not None:
                    logger.error(
                        "%s exited with code %s; stopping the rest",
                        service.name,
                        process.returncode,
                    )
                    return 1
        return 0

    def stop_all(self) -> None:
        for service, process in reversed(self.running):
            _stop(service, process)
        self.running.clear()


def check_ports(ports: dict[str, int]) -> None:
    """Each part needs its own port, free now; UpError names the first clash."""
    owner: dict[int, str] = {}
    for name, port in ports.items():
        if port in owner:
            raise UpError(
                f"--{owner[port]}-port and --{name}-port are both {port}; "
                f"give each part its own port"
            )
        owner[port] = name
    for name, port in ports.items():
        if not _port_free(port):
            raise UpError(
                f"port {port} is in use; is chatlake already running? Stop it, "
                f"or pick another --{name}-port"
            )


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As the servers do, so a port in TIME_WAIT after a restart counts free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def prepare_data_dir(path: Path) -> None:
    """Create the data directory; UpError in one line if it cannot be written."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UpError(f"cannot create data dir {path}: {error.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UpError(f"cannot write to data dir {path}: permission denied")


def lock_data_dir(path: Path) -> int:
    """Hold ``<data dir>/up.lock`` for the life of this process.

    A second ``up`` on the same data directory would start a second catalog
    on the same SQLite file and rewrite app.env to its own ports; it stops
    here instead, in one line, before anything is started or written.
    """
    try:
        return lockfile.hold(path / LOCK_FILE)
    except lockfile.LockHeld as held:
        raise UpError(
            f"data dir {path} is in use by another chatlake up "
            f"(pid {held.pid or 'unknown'}); stop it, or pick another --data-dir"
        ) from None
    except OSError as error:
        raise UpError(f"cannot lock data dir {path}: {error.strerror}") from None


def _needed_ports(ports: dict[str, int]) -> dict[str, int]:
    """The ports of the parts that will start (no demo model if one is set)."""
    if up_parts.model_configured():
        return {name: port for name, port in ports.items() if name != "model"}
    return dict(ports)


def _answers(service: Service) -> bool:
    if service.ready_url:
        try:
            return httpx.get(service.ready_url, timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False
    if service.ready_port:
        try:
            with socket.create_connection((HOST, service.ready_port), timeout=1.0):
                return True
        except OSError:
            return False
    return True


def _stop(service: Service, process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            logger.warning(
                "%s ignored SIGTERM for %.0f s; killing it",
                service.name,
                STOP_TIMEOUT_S,
            )
            process.kill()
            process.wait()
    logger.info("stopped %s (exit code %s)", service.name, process.returncode)


def _child_env(ctx: UpContext) -> dict[str, str]:
    env = dict(os.environ)
    env[config.ENV_DATA_DIR] = str(ctx.data_dir)
    env[config.ENV_CATALOG_URL] = ctx.url("catalog")
    # The Zerobus SDK's Rust core logs every stream at INFO unless told otherwise.
    env.setdefault("RUST_LOG", "warn")
    return env


def _summary(ctx: UpContext, services: list[Service]) -> None:
    click.echo("chatlake is up:")
    for service in services:
        click.echo(f"  {service.name:<10} {service.address}")
    click.echo(f"  data dir   {ctx.data_dir}")
    click.echo(f"  app env    {ctx.data_dir / APP_ENV_FILE}")
    click.echo("Press Ctrl-C to stop.")


def run(ctx: UpContext) -> int:
    """Start everything, bootstrap, supervise; returns the exit code."""
    supervisor = Supervisor(_child_env(ctx))
    previous = _install_signal_handlers(supervisor.stopping)
    started: list[Service] = []
    try:
        for builder in BEFORE_BOOTSTRAP:
            started.append(builder(ctx))
            supervisor.start(started[-1])
        bootstrap(ctx)
        for builder in AFTER_BOOTSTRAP:
            service = builder(ctx)
            if service is None:  # a part not needed here, e.g. the demo model
                continue
            started.append(service)
            supervisor.start(service)
        _summary(ctx, started)
        return supervisor.watch()
    except UpError:
        if not supervisor.stopping.is_set():
            raise
        # Ctrl-C while starting is a request, not a failure.
        logger.info("stopped during start-up")
        return 0
    finally:
        supervisor.stop_all()
        _restore_signal_handlers(previous)


def _install_signal_handlers(stopping: threading.Event) -> dict:
    def handle(signum, _frame):
        logger.info("received %s; stopping", signal.Signals(signum).name)
        stopping.set()

    return {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}


def _restore_signal_handlers(previous: dict) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def _port_options(function):
    for name, default in reversed(PORTS.items()):
        function = click.option(
            f"--{name}-port",
            type=PORT,
            default=default,
            show_default=True,
            help=f"Port of the {name}.",
        )(function)
    return function


@click.command("up")
@data_dir_option
@_port_options
def up(data_dir: Path | None, **ports: int) -> None:
    """Start the catalog and the other parts on this machine, and set them up.

    On first run it creates catalog main, schema chatbot, the chat tables and
    the service principal app, and writes the app's environment to
    <data dir>/app.env. Ctrl-C or SIGTERM stops everything.
    """
    logs.configure()
    # One line per poll and API call would bury the children's logs.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    ctx = UpContext(
        data_dir=config.data_dir(data_dir),
        ports={name.removesuffix("_port"): port for name, port in ports.items()},
    )
    check_ports(_needed_ports(ctx.ports))
    prepare_data_dir(ctx.data_dir)
    lock = lock_data_dir(ctx.data_dir)
    try:
        code = run(ctx)
    finally:
        lockfile.release(lock)
    if code:
        raise SystemExit(code)
