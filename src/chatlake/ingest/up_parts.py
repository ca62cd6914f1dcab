"""The ingest part of ``chatlake up``: the server process and what app.env needs."""

from __future__ import annotations

from chatlake import config


def ingest_service(ctx):
    """The ingest server's Service; ready once its gRPC port accepts connections."""
    from chatlake.up import HOST, Service

    port = ctx.port("ingest")
    argv = ctx.chatlake(
        "ingest",
        "--data-dir",
        str(ctx.data_dir),
        "--host",
        HOST,
        "--port",
        str(port),
        "--catalog-url",
        ctx.url("catalog"),
        "--metrics-port",
        str(ctx.ports.get("metrics", config.DEFAULT_METRICS_PORT)),
    )
    return Service("ingest", argv, ready_port=port, address=ctx.url("ingest"))


def ingest_env(ctx) -> dict[str, str]:
    """app.env entries pointing the telemetry client at this ingest server."""
    return {"ZEROBUS_SERVER_ENDPOINT": ctx.url("ingest")}
