"""Throughput and latency of ingest storage, against a baseline from the same run.

    .venv/bin/python benchmarks/storage.py [--seconds 5]

Baseline (the storage limit): the same ~1 KB chat rows appended straight to a
Delta table with deltalake, 10,000 rows per commit. Then Storage, fed by
concurrent writers as the ingest server feeds it (one writer stands for one
message in flight), in four shapes:

- wal, 1 row per append, 256 writers     (one SDK record per message)
- wal, 100 rows per append, 16 writers   (an SDK batch per message)
- wal, 1000 rows per append, 16 writers
- commit, 100 rows per append, 64 writers

Each prints rows/s and its ratio to the baseline, ack latency p50/p99 (append
call to return), time-to-table p50/p99 (append call to the Delta commit, from
the storage's own histogram) and the number of Delta commits.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake
from prometheus_client import REGISTRY

from chatlake.ingest.storage import Storage, StorageSettings, TableTarget

SCHEMA = pa.schema(
    [
        ("telemetry_id", pa.string()),
        ("event_time", pa.timestamp("us", tz="UTC")),
        ("user_message", pa.string()),
        ("assistant_message", pa.string()),
        ("response_time_ms", pa.int64()),
    ]
)
SHAPES = (("wal", 1, 256), ("wal", 100, 16), ("wal", 1000, 16), ("commit", 100, 64))


def chat_rows(first: int, count: int) -> pa.RecordBatch:
    """``count`` rows of about 1 KB each, with unique ids."""
    ids = range(first, first + count)
    return pa.record_batch(
        [
            pa.array([f"turn-{i:012d}" for i in ids]),
            pa.array(
                [1_700_000_000_000_000 + i for i in ids], pa.timestamp("us", "UTC")
            ),
            pa.array(["How do I stream chatbot turns into Delta? " * 6] * count),
            pa.array(
                ["Use the Zerobus SDK against chatlake's ingest server. " * 10] * count
            ),
            pa.array([120 + i % 50 for i in ids], pa.int64()),
        ],
        schema=SCHEMA,
    )


def baseline(root: Path, seconds: float) -> float:
    """Rows/s of direct deltalake appends of 10,000 rows per commit."""
    location = (root / "baseline").as_uri()
    batch = pa.Table.from_batches([chat_rows(0, 10_000)])
    rows, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        write_deltalake(location, batch, mode="append")
        rows += batch.num_rows
    return rows / (time.perf_counter() - started)


async def run_shape(
    root: Path, durability: str, rows_per_append: int, writers: int, seconds: float
) -> dict:
    settings = StorageSettings(durability=durability, maintenance_interval_s=0)
    name = f"bench.storage.{durability}_{rows_per_append}"
    target = TableTarget(name, (root / name).as_uri(), SCHEMA)
    storage = Storage(root / f"data_{name}", settings)
    await storage.start()
    latencies: list[float] = []
    counter = iter(range(0, 10**12, rows_per_append))
    deadline = time.perf_counter() + seconds

    async def writer() -> None:
        while time.perf_counter() < deadline:
            batch = chat_rows(next(counter), rows_per_append)
            started = time.perf_counter()
            await storage.append(target, batch)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(writer() for _ in range(writers)))
    elapsed = time.perf_counter() - started
    await storage.stop()

    rows = DeltaTable(target.location).count()
    assert rows == len(latencies) * rows_per_append, "rows lost or duplicated"
    return {
        "shape": f"{durability}, {rows_per_append} rows x {writers}",
        "rows_per_s": rows / elapsed,
        "ack_p50_ms": _percentile(latencies, 50) * 1000,
        "ack_p99_ms": _percentile(latencies, 99) * 1000,
        "ttt_p50_s": _histogram_quantile(name, 0.50),
        "ttt_p99_s": _histogram_quantile(name, 0.99),
        "commits": len(DeltaTable(target.location).history()),
    }


def _percentile(values: list[float], percent: int) -> float:
    return statistics.quantiles(values, n=100)[percent - 1] if len(values) > 1 else 0.0


def _histogram_quantile(table: str, quantile: float) -> float:
    """The upper bucket bound under which ``quantile`` of observations fall."""
    buckets = []
    for metric in REGISTRY.collect():
        if metric.name != "chatlake_ingest_time_to_table_seconds":
            continue
        for sample in metric.samples:
            if sample.name.endswith("_bucket") and sample.labels["table"] == table:
                buckets.append((float(sample.labels["le"]), sample.value))
    buckets.sort()
    total = buckets[-1][1] if buckets else 0
    for bound, count in buckets:
        if total and count >= quantile * total:
            return bound
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="chatlake-bench-") as directory:
        root = Path(directory)
        limit = baseline(root, options.seconds)
        print(f"baseline: deltalake appends of 10,000 rows: {limit:,.0f} rows/s")
        print(
            f"{'shape':<28} {'rows/s':>10} {'ratio':>6} {'ack p50':>9} {'ack p99':>9}"
            f" {'ttt p50':>8} {'ttt p99':>8} {'commits':>7}"
        )
        for durability, rows_per_append, writers in SHAPES:
            result = asyncio.run(
                run_shape(root, durability, rows_per_append, writers, options.seconds)
            )
            print(
                f"{result['shape']:<28} {result['rows_per_s']:>10,.0f}"
                f" {result['rows_per_s'] / limit:>6.2f}"
                f" {result['ack_p50_ms']:>7.1f}ms {result['ack_p99_ms']:>7.1f}ms"
                f" {result['ttt_p50_s']:>7.2f}s {result['ttt_p99_s']:>7.2f}s"
                f" {result['commits']:>7}"
            )


if __name__ == "__main__":
    main()
