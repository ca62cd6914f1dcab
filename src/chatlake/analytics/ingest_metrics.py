"""The ingest server's Prometheus metrics, reduced to what the health page shows."""

from __future__ import annotations

import os
import time
from collections import defaultdict
from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families

ENV_METRICS_URL = "CHATLAKE_INGEST_METRICS_URL"
DEFAULT_METRICS_URL = "http://127.0.0.1:9464/metrics"
DEFAULT_TIMEOUT_S = 2.0

_PREFIX = "chatlake_ingest_"


@dataclass(frozen=True)
class IngestSnapshot:
    """One scrape: totals since the server started and current gauges."""

    at: float
    open_streams: float = 0.0
    records_total: float = 0.0
    wal_pending_bytes: float = 0.0
    errors_by_code: dict[str, float] = field(default_factory=dict)
    time_to_table_mean_s: float | None = None
    ack_latency_mean_s: float | None = None


def metrics_url() -> str:
    return os.environ.get(ENV_METRICS_URL) or DEFAULT_METRICS_URL


def fetch(
    url: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S
) -> IngestSnapshot:
    """Scrape ``url``; raises httpx.HTTPError when the server cannot be reached."""
    response = httpx.get(url or metrics_url(), timeout=timeout_s)
    response.raise_for_status()
    return parse(response.text, time.time())


def parse(text: str, at: float) -> IngestSnapshot:
    sums: dict[str, float] = defaultdict(float)
    errors: dict[str, float] = defaultdict(float)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            sums[sample.name] += sample.value
            if sample.name == f"{_PREFIX}errors_total":
                errors[sample.labels.get("code", "unknown")] += sample.value
    return IngestSnapshot(
        at=at,
        open_streams=sums[f"{_PREFIX}open_streams"],
        records_total=sums[f"{_PREFIX}records_total"],
        wal_pending_bytes=sums[f"{_PREFIX}wal_pending_bytes"],
        errors_by_code=dict(errors),
        time_to_table_mean_s=_mean(sums, f"{_PREFIX}time_to_table_seconds"),
        ack_latency_mean_s=_mean(sums, f"{_PREFIX}ack_latency_seconds"),
    )


def records_per_second(before: IngestSnapshot, after: IngestSnapshot) -> float | None:
    """The record rate between two scrapes; None across a server restart."""
    elapsed = after.at - before.at
    gained = after.records_total - before.records_total
    if elapsed <= 0 or gained < 0:
        return None
    return gained / elapsed


def _mean(sums: dict[str, float], histogram: str) -> float | None:
    count = sums.get(f"{histogram}_count", 0.0)
    return sums[f"{histogram}_sum"] / count if count else None
