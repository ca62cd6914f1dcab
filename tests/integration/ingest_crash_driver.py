"""A process that appends to Storage until it is killed, printing what was acked.

    python ingest_crash_driver.py load DATA_DIR LOCATION FIRST_ID COMMIT_INTERVAL_S
    python ingest_crash_driver.py recover DATA_DIR LOCATION

``load`` starts Storage (replaying whatever an earlier run left), prints
``READY``, then appends batches of ten rows with increasing integer ids from
several concurrent writers and prints ``ACK <first> <last>`` after each append
returns. ``recover`` starts and stops Storage once and prints ``DONE``.
"""

from __future__ import annotations

import asyncio
import itertools
import sys

import pyarrow as pa

from chatlake.ingest.storage import Storage, StorageSettings, TableTarget

SCHEMA = pa.schema([pa.field("id", pa.int64(), nullable=False), ("body", pa.string())])
ROWS_PER_BATCH = 10
WRITERS = 8


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def writer(storage: Storage, target: TableTarget, ids) -> None:
    while True:
        first = next(ids)
        batch_ids = list(range(first, first + ROWS_PER_BATCH))
        batch = pa.record_batch(
            [
                pa.array(batch_ids, pa.int64()),
                pa.array([f"row {i}" for i in batch_ids]),
            ],
            schema=SCHEMA,
        )
        await storage.append(target, batch)
        say(f"ACK {batch_ids[0]} {batch_ids[-1]}")


async def main(
    mode: str, data_dir: str, location: str, first_id: int, interval_s: float
):
    settings = StorageSettings(
        commit_interval_s=interval_s,
        wal_segment_bytes=16 * 1024,
        maintenance_interval_s=0,
    )
    storage = Storage(data_dir, settings)
    target = TableTarget("main.crash.rows", location, SCHEMA)
    await storage.start()
    if mode == "recover":
        await storage.stop()
        say("DONE")
        return
    say("READY")
    ids = itertools.count(first_id, ROWS_PER_BATCH)
    await asyncio.gather(*(writer(storage, target, ids) for _ in range(WRITERS)))


if __name__ == "__main__":
    mode, data_dir, location = sys.argv[1:4]
    first = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    interval_s = float(sys.argv[5]) if len(sys.argv) > 5 else 1.0
    asyncio.run(main(mode, data_dir, location, first, interval_s))
