"""Counters the client keeps, readable from Python and exportable to Prometheus.

Counters only grow: tracked, dropped_queue (queue full, oldest dropped),
invalid (could not be encoded), spooled, dropped_spool (spool full, oldest
dropped), adopted (taken over from a dead process's spool), sent, acked,
retried (stream failures followed by a retry), terminal_errors, streams_opened,
spooled_after_close and dropped_after_close (events tracked after ``close()``).
Gauges are read when asked: queue_depth, spool_depth, spool_bytes,
oldest_event_age_s.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

COUNTERS = (
    "tracked",
    "dropped_queue",
    "invalid",
    "spooled",
    "dropped_spool",
    "adopted",
    "sent",
    "acked",
    "retried",
    "terminal_errors",
    "streams_opened",
    "spooled_after_close",
    "dropped_after_close",
)

COUNTER_HELP = {
    "tracked": "Events handed to track()",
    "dropped_queue": "Events dropped because the in-memory queue was full",
    "invalid": "Events that could not be encoded and were discarded",
    "spooled": "Events written to the disk spool",
    "dropped_spool": "Spooled events dropped (oldest first) because the spool was full",
    "adopted": "Events taken over from the spool of a process that died",
    "sent": "Events handed to the Zerobus SDK",
    "acked": "Events acknowledged by the server and removed from the spool",
    "retried": "Stream failures after which the sender retried",
    "terminal_errors": "Stream failures the SDK reported as not retriable",
    "streams_opened": "Zerobus streams opened",
    "spooled_after_close": "Events tracked after close(), written to the spool",
    "dropped_after_close": "Events tracked after close() that could not be spooled",
}

GAUGE_HELP = {
    "queue_depth": "Events in the in-memory queue",
    "spool_depth": "Events in the disk spool",
    "spool_bytes": "Payload bytes in the disk spool",
    "oldest_event_age_s": "Age of the oldest spooled event in seconds",
}


class Counters:
    """Thread-safe monotonically increasing counters."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = dict.fromkeys(COUNTERS, 0)

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._values[name] += amount

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._values)


class PrometheusCollector:
    """A prometheus_client collector reading a client's ``metrics()`` on scrape."""

    def __init__(self, read: Callable[[], dict[str, int | float]], prefix: str) -> None:
        self.read = read
        self.prefix = prefix

    def collect(self) -> Iterator[object]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        values = self.read()
        for name, help_text in COUNTER_HELP.items():
            family = CounterMetricFamily(f"{self.prefix}_{name}", help_text)
            family.add_metric([], values[name])
            yield family
        for name, help_text in GAUGE_HELP.items():
            family = GaugeMetricFamily(f"{self.prefix}_{name}", help_text)
            family.add_metric([], values[name])
            yield family
