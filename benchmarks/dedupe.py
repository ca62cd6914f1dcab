"""What the dedupe index costs ingest, against baselines from the same run.

    .venv/bin/python benchmarks/dedupe.py [--batches 200] [--rows 2000000] [--repeats 3]

1. The index alone: ``filter()`` then ``remember()`` of 5,000-key batches of
   new keys against an index already full at its default bound (1M keys, so
   it keeps forgetting old ones), as CPU nanoseconds per key, for a fast
   stream (all keys in one time bucket) and a slow one (1M keys spread over
   11 of the window's 12 buckets). The baseline is the least a per-key
   Python loop costs: the same keys turned into Python strings, hashed and
   looked up in a 1M-key dict.
2. Through Storage (wal mode, 25,000-row appends of ~500-byte chat rows, as
   ``analytics.py`` feeds it): rows/s with the table's dedupe key set, against
   the same rows into a table without one, and the process's CPU time per
   row in each; medians of alternated runs.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from chatlake.ingest.dedupe import DedupeIndex
from chatlake.ingest.storage import Storage, StorageSettings, TableTarget

BATCH_KEYS = 5_000
INDEX_KEYS = 1_000_000
APPEND_ROWS = 25_000
# A fast stream (a million keys a second, as in a bulk load) keeps every key
# in one time bucket, which the index trims to forget old keys. A slow one
# (1M keys over 55 minutes) spreads them over 11 of the 12 buckets.
FAST_S_PER_BATCH = BATCH_KEYS / 1_000_000
SLOW_S_PER_BATCH = 3300 * BATCH_KEYS / INDEX_KEYS

SCHEMA = pa.schema(
    [
        ("telemetry_id", pa.string()),
        ("session_id", pa.string()),
        ("user_message", pa.string()),
        ("assistant_message", pa.string()),
        ("response_time_ms", pa.int64()),
    ]
)


def key_batch(number: int) -> pa.Table:
    """The ``number``-th batch of 5,000 distinct keys, like telemetry ids."""
    first = number * BATCH_KEYS
    ids = pc.cast(pa.array(range(first, first + BATCH_KEYS)), pa.string())
    return pa.table({"telemetry_id": pc.binary_join_element_wise("turn-", ids, "")})


def index_ns_per_key(batches: int, seconds_per_batch: float) -> float:
    """CPU ns per key of filter() and remember() on a full 1M-key index."""
    index = DedupeIndex(window_s=3600, max_keys=INDEX_KEYS)
    filled = INDEX_KEYS // BATCH_KEYS
    for number in range(filled):
        index.remember(key_batch(number).column(0), now_s=number * seconds_per_batch)
    work = [key_batch(filled + n) for n in range(batches)]

    started = time.process_time()
    for number, batch in enumerate(work, start=filled):
        now_s = number * seconds_per_batch
        result = index.filter(batch, "telemetry_id", now_s=now_s)
        index.remember_kept(result, now_s=now_s)  # as the committer does
    took = time.process_time() - started

    assert result.table.num_rows == BATCH_KEYS and len(index) <= INDEX_KEYS
    return took / (batches * BATCH_KEYS) * 1e9


def python_loop_ns_per_key(batches: int) -> float:
    """CPU ns per key of the least a Python loop over the keys does."""
    seen = dict.fromkeys(range(-INDEX_KEYS, 0), 0)
    work = [key_batch(n) for n in range(batches)]

    started = time.process_time()
    for batch in work:
        for key in batch.column(0).to_pylist():
            if hash(key) in seen:
                raise AssertionError("a new key was found")
    took = time.process_time() - started
    return took / (batches * BATCH_KEYS) * 1e9


def chat_rows(first: int, count: int) -> pa.RecordBatch:
    """``count`` chat rows of about 500 bytes, with unique telemetry ids."""
    ids = pc.cast(pa.array(range(first, first + count)), pa.string())
    sessions = pc.cast(pa.array(range(first // 4, first // 4 + count)), pa.string())
    return pa.record_batch(
        [
            pc.binary_join_element_wise("turn-", ids, ""),
            pc.binary_join_element_wise("session-", sessions, ""),
            pa.array(["How do I stream chatbot turns into Delta tables?"] * count),
            pa.array(["Use the Zerobus SDK against the ingest server. " * 9] * count),
            pa.array(range(count), pa.int64()),
        ],
        schema=SCHEMA,
    )


async def through_storage(
    root: Path, rows: int, dedupe_key: str | None
) -> tuple[float, float]:
    """Rows/s of appends through Storage (time in append() and the last flush),
    and the process's CPU microseconds per row over the whole run."""
    name = f"bench.dedupe.{dedupe_key or 'none'}"
    target = TableTarget(name, (root / name).as_uri(), SCHEMA, dedupe_key)
    storage = Storage(root / f"data-{name}", StorageSettings(maintenance_interval_s=0))
    cpu_started = time.process_time()
    await storage.start()
    took = 0.0
    for first in range(0, rows, APPEND_ROWS):
        # Made outside the timing, while the committer may be committing.
        batch = chat_rows(first, APPEND_ROWS)
        started = time.perf_counter()
        await storage.append(target, batch)
        took += time.perf_counter() - started

    started = time.perf_counter()
    if not await storage.flush():
        raise SystemExit(f"{name}: a Delta commit failed")
    took += time.perf_counter() - started
    await storage.stop()
    cpu_s = time.process_time() - cpu_started

    stored = DeltaTable(target.location).count()
    expected = -(-rows // APPEND_ROWS) * APPEND_ROWS
    assert stored == expected, f"{name}: {stored} rows stored, not {expected}"
    return stored / took, cpu_s / stored * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    options = parser.parse_args()
    # Past 1M keys the committer warns at every commit; the figures say enough.
    logging.getLogger("chatlake.ingest.committer").setLevel(logging.ERROR)

    loop = python_loop_ns_per_key(options.batches)
    print(f"python loop baseline (hash, lookup):     {loop:6.0f} ns/key")
    for stream, seconds_per_batch in (
        ("fast", FAST_S_PER_BATCH),
        ("slow", SLOW_S_PER_BATCH),
    ):
        index = index_ns_per_key(options.batches, seconds_per_batch)
        # What the index costs a stream of this rate, as a share of one core.
        share = index * 1e-9 * BATCH_KEYS / seconds_per_batch
        print(
            f"index filter + remember, {stream} stream:  {index:6.0f} ns/key"
            f"  ({index / loop:.2f}x the loop; {share:.2%} of a core at its rate)"
        )

    plain, deduped = [], []
    for _ in range(options.repeats):
        # Alternated, so that a busy spell of the machine hits both sides.
        with tempfile.TemporaryDirectory(prefix="chatlake-bench-") as directory:
            root = Path(directory)
            plain.append(asyncio.run(through_storage(root, options.rows, None)))
            deduped.append(
                asyncio.run(through_storage(root, options.rows, "telemetry_id"))
            )
    # CPU per row moves less than rows/s when other work shares the machine.
    rate, cpu = (statistics.median(run) for run in zip(*plain, strict=True))
    rate_deduped, cpu_deduped = (
        statistics.median(run) for run in zip(*deduped, strict=True)
    )
    print(
        f"storage without dedupe key: {rate:10,.0f} rows/s, {cpu:5.2f} us CPU/row"
        " (medians)"
    )
    print(
        f"storage with dedupe key:    {rate_deduped:10,.0f} rows/s, "
        f"{cpu_deduped:5.2f} us CPU/row  ({rate_deduped / rate:.2f}x the rows/s, "
        f"{cpu_deduped / cpu:.2f}x the CPU)"
    )


if __name__ == "__main__":
    main()
