"""Prometheus metrics of ingest storage, in the default registry.

The ingest server serves the default registry on ``/metrics``; defining the
metrics once at import keeps several Storage instances (tests) from colliding.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_LATENCY_BUCKETS_S = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
_TIME_TO_TABLE_BUCKETS_S = (
    0.05,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    1.5,
    2.0,
    3.0,
    5.0,
    10.0,
    30.0,
    60.0,
)

WAL_PENDING_BYTES = Gauge(
    "chatlake_ingest_wal_pending_bytes",
    "Bytes in the write-ahead log not yet committed to the Delta table.",
    ["table"],
)
WAL_FSYNC_SECONDS = Histogram(
    "chatlake_ingest_wal_fsync_seconds",
    "Time to write and fsync one group of WAL frames.",
    buckets=_LATENCY_BUCKETS_S,
)
WAL_GROUP_FRAMES = Histogram(
    "chatlake_ingest_wal_group_frames",
    "Appends covered by one WAL fsync (group commit size).",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 1024),
)
COMMITS = Counter(
    "chatlake_ingest_commits_total",
    "Delta commits written by the committer.",
    ["table"],
)
COMMIT_ROWS = Counter(
    "chatlake_ingest_committed_rows_total",
    "Rows written to Delta tables.",
    ["table"],
)
COMMIT_FAILURES = Counter(
    "chatlake_ingest_commit_failures_total",
    "Delta commit attempts that failed (each is retried or reported).",
    ["table"],
)
COMMIT_SECONDS = Histogram(
    "chatlake_ingest_commit_seconds",
    "Duration of one Delta commit, dedupe included.",
    ["table"],
    buckets=_LATENCY_BUCKETS_S,
)
TIME_TO_TABLE_SECONDS = Histogram(
    "chatlake_ingest_time_to_table_seconds",
    "From append() to the Delta commit that made the batch visible.",
    ["table"],
    buckets=_TIME_TO_TABLE_BUCKETS_S,
)
REJECTED_BATCHES = Counter(
    "chatlake_ingest_rejected_batches_total",
    "Batches the Delta table refused (schema or constraint); quarantined in wal mode.",
    ["table"],
)
DEDUPE_DROPPED = Counter(
    "chatlake_ingest_dedupe_dropped_rows_total",
    "Rows dropped because their dedupe key was already committed.",
    ["table"],
)
DEDUPE_EVICTED = Counter(
    "chatlake_ingest_dedupe_evicted_keys_total",
    "Dedupe keys forgotten early because the index reached its size limit.",
    ["table"],
)
MAINTENANCE_RUNS = Counter(
    "chatlake_ingest_maintenance_runs_total",
    "Maintenance passes (compact, checkpoint, vacuum) by outcome.",
    ["table", "outcome"],
)
