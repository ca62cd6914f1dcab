"""``chatlake ingest``: serve the Zerobus protocol into Delta tables."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

import click

from chatlake import config, logs
from chatlake.cli_options import listen_options
from chatlake.ingest.config import (
    DEFAULT_MAX_STREAM_AGE_S,
    DEFAULT_ROTATION_GRACE_S,
    IngestSettings,
)


@click.command()
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Data directory (default $CHATLAKE_DATA_DIR or ./.chatlake).",
)
@listen_options(
    host_help="Address to listen on; anything but loopback needs --tls.",
    port=config.DEFAULT_INGEST_PORT,
    port_help="gRPC port (0 picks a free one).",
)
@click.option(
    "--catalog-url",
    default=None,
    help="Catalog base URL (default $CHATLAKE_CATALOG_URL or local).",
)
@click.option(
    "--metrics-port",
    type=int,
    default=config.DEFAULT_METRICS_PORT,
    show_default=True,
    help="Port of the /metrics endpoint.",
)
@click.option("--no-metrics", is_flag=True, help="Do not serve /metrics.")
@click.option(
    "--tls",
    is_flag=True,
    help="Serve TLS with a CA and certificate made in <data-dir>/tls; "
    "clients trust it with SSL_CERT_FILE=<data-dir>/tls/ca.pem.",
)
@click.option(
    "--max-stream-age-s",
    type=float,
    default=DEFAULT_MAX_STREAM_AGE_S,
    show_default=True,
    help="Rotate streams older than this (close signal, then 6002).",
)
@click.option(
    "--rotation-grace-s",
    type=float,
    default=DEFAULT_ROTATION_GRACE_S,
    show_default=True,
    help="Time a rotating stream gets to finish.",
)
@click.option(
    "--durability",
    type=click.Choice(["wal", "commit"]),
    default=None,
    help="Ack after the WAL fsync (wal, default) or the Delta commit.",
)
@click.option(
    "--commit-interval-s",
    type=float,
    default=None,
    help="Seconds between Delta commits (default 1).",
)
@click.option("--log-level", default=None, help="DEBUG, INFO, WARNING, ...")
def serve(
    data_dir,
    host,
    port,
    catalog_url,
    metrics_port,
    no_metrics,
    tls,
    max_stream_age_s,
    rotation_grace_s,
    durability,
    commit_interval_s,
    log_level,
) -> None:
    """Serve the Zerobus ingest protocol (gRPC) into Delta tables.

    Streams from the official Zerobus SDK are checked against the catalog's
    tables, written to a write-ahead log, acked, and committed to Delta about
    once a second. Stops cleanly on Ctrl-C or SIGTERM.
    """
    from chatlake.ingest.storage import StorageSettings

    configure_logging(log_level)
    settings = IngestSettings(
        data_dir=config.data_dir(data_dir),
        catalog_url=config.catalog_url(catalog_url),
        host=host,
        port=port,
        metrics_port=None if no_metrics else metrics_port,
        tls=tls,
        max_stream_age_s=max_stream_age_s,
        rotation_grace_s=rotation_grace_s,
    )
    storage_settings = StorageSettings.from_env(
        durability=durability, commit_interval_s=commit_interval_s
    )
    asyncio.run(_serve(settings, storage_settings))


def configure_logging(level: str | None) -> None:
    """chatlake's log lines, without httpx's INFO line per catalog look-up.

    Every open stream asks the catalog about its table every few seconds;
    httpx would log each of those requests.
    """
    logs.configure(level)
    logging.getLogger("httpx").setLevel(logging.WARNING)


async def _serve(settings: IngestSettings, storage_settings) -> None:
    from chatlake.ingest.memory import use_fast_pool
    from chatlake.ingest.server import IngestServer
    from chatlake.ingest.storage import Storage

    use_fast_pool()
    server = IngestServer(settings, Storage(settings.data_dir, storage_settings))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await server.start()
    click.echo(f"ingest listening on {server.endpoint}", err=True)
    try:
        await stop.wait()
    finally:
        await server.stop()
