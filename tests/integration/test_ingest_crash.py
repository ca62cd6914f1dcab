"""C22: the ingest process is killed with SIGKILL under load and restarted.

Every acknowledged row must be in the table and no row may be there twice.
Rows are counted in the Delta table through DuckDB, never from log lines.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import duckdb
import pytest
from deltalake import DeltaTable

from chatlake.ingest.committer import committed_version
from chatlake.ingest.wal import WriteAheadLog

DRIVER = Path(__file__).with_name("ingest_crash_driver.py")
# (acks to wait for, commit interval): the middle round commits nothing before
# the kill, so its restart must replay the whole WAL.
ROUNDS = ((150, 0.05), (400, 3600.0), (50, 0.05))
LINE_TIMEOUT_S = 60


class Driver:
    """The driver process and a thread that hands its stdout lines over."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(DRIVER), *args],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line.strip())
        self.lines.put(None)

    def next_line(self) -> str:
        line = self.lines.get(timeout=LINE_TIMEOUT_S)
        assert line is not None, f"driver exited with {self.process.wait()}"
        return line

    def drain(self) -> list[str]:
        self._reader.join(LINE_TIMEOUT_S)
        lines = []
        while (line := self.lines.get_nowait()) is not None:
            lines.append(line)
        return lines

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(LINE_TIMEOUT_S)
        self.process.stdout.close()


def acked_ids(lines: list[str]) -> set[int]:
    ids: set[int] = set()
    for line in lines:
        if line.startswith("ACK "):
            first, last = map(int, line.split()[1:])
            ids.update(range(first, last + 1))
    return ids


def table_counts(location: str) -> tuple[int, int, set[int]]:
    connection = duckdb.connect()
    connection.register("t", DeltaTable(location).to_pyarrow_dataset())
    query = "select count(*), count(distinct id) from t"
    total, distinct = connection.execute(query).fetchall()[0]
    ids = {row[0] for row in connection.execute("select id from t").fetchall()}
    connection.close()
    return total, distinct, ids


def uncommitted_batches(data_dir: Path, location: str) -> int:
    """How many WAL batches the next start must replay."""
    wal_dir = data_dir / "ingest" / "wal" / "main.crash.rows"
    wal_id = json.loads((wal_dir / "target.json").read_text())["wal_id"]
    log = WriteAheadLog(wal_dir, segment_bytes=1 << 20, label="inspect")
    records = log.open(committed_seq=committed_version(location, wal_id))
    log.close_file()
    return len(records)


def run_until_killed(
    data_dir: Path, location: str, first_id: int, acks: int, interval_s: float
) -> set[int]:
    driver = Driver("load", str(data_dir), location, str(first_id), str(interval_s))
    try:
        assert driver.next_line() == "READY"
        seen = [driver.next_line() for _ in range(acks)]
        os.kill(driver.process.pid, signal.SIGKILL)
        assert driver.process.wait(LINE_TIMEOUT_S) == -signal.SIGKILL
        return acked_ids(seen + driver.drain())
    finally:
        driver.close()


@pytest.mark.slow
def test_sigkill_under_load_loses_no_acked_row_and_writes_none_twice(tmp_path):
    data_dir = tmp_path / "data"
    location = (tmp_path / "tables" / "rows").as_uri()
    acked: set[int] = set()

    replayable = []
    for number, (acks, interval_s) in enumerate(ROUNDS):
        first_id = number * 10**6
        acked |= run_until_killed(data_dir, location, first_id, acks, interval_s)
        replayable.append(uncommitted_batches(data_dir, location))

    recover = Driver("recover", str(data_dir), location)
    try:
        assert recover.next_line() == "DONE"
    finally:
        recover.close()

    total, distinct, stored = table_counts(location)
    assert len(acked) >= 10 * sum(acks for acks, _ in ROUNDS)
    assert replayable[1] >= 400
    assert acked - stored == set()
    assert total == distinct
    wal_dir = data_dir / "ingest" / "wal" / "main.crash.rows"
    assert len(list(wal_dir.glob("*.wal"))) == 1
