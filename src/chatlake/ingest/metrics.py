"""Prometheus metrics of the stream side, served with storage's on ``/metrics``.

Metrics live in the default registry (as storage's do), so one HTTP endpoint
shows both halves of ingest.
"""

from __future__ import annotations

import logging
from wsgiref.simple_server import WSGIServer

from prometheus_client import Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

RECORDS = Counter(
    "chatlake_ingest_records_total", "Records accepted from streams.", ["table"]
)
BYTES = Counter(
    "chatlake_ingest_bytes_total", "Record payload bytes accepted.", ["table"]
)
MESSAGES = Counter(
    "chatlake_ingest_messages_total",
    "Ingest messages (a record or a batch, one offset each) accepted.",
    ["table"],
)
ACKS = Counter(
    "chatlake_ingest_acks_total", "Acknowledgements sent to clients.", ["table"]
)
ACK_LATENCY = Histogram(
    "chatlake_ingest_ack_latency_seconds",
    "From a message's arrival to its durability ack.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5),
)
OPEN_STREAMS = Gauge("chatlake_ingest_open_streams", "Streams open now.", ["table"])
STREAM_EVENTS = Counter(
    "chatlake_ingest_stream_events_total",
    "Stream life-cycle events: opened, rotated, closed, failed.",
    ["event"],
)
ERRORS = Counter(
    "chatlake_ingest_errors_total", "RPCs ended with an error, by gRPC code.", ["code"]
)


class MetricsServer:
    """The ``/metrics`` HTTP endpoint on a daemon thread."""

    def __init__(self, host: str, port: int) -> None:
        self._server: WSGIServer
        self._server, self._thread = start_http_server(port, addr=host)
        self.port = self._server.server_port
        log.info("metrics on http://%s:%d/metrics", host, self.port)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
