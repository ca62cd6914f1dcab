"""C22: the ingest process is killed with SIGKILL under load and restarted.

Every acknowledged row must be in the table and no row may be there twice.
Rows are counted in the Delta table through DuckDB, never from log lines.
Two layers: a process driving Storage directly (exactly-once from the WAL and
Delta transaction ids alone, no dedupe), and the real ``chatlake ingest``
server fed by the official SDK, whose at-least-once resends dedupe absorbs.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import duckdb
import pytest
from deltalake import DeltaTable
from zerobus import StreamConfigurationOptions, TableProperties
from zerobus.sdk.sync import ZerobusSdk

from chatlake.ingest.committer import committed_version
from chatlake.ingest.wal import WriteAheadLog
from tests.integration.ingest_support import create_table, table_location, writer

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


# -- the real `chatlake ingest` process, fed by the official SDK ---------------

SDK_TABLE = "main.chatbot.crash_turns"
SDK_COLUMNS = "telemetry_id STRING NOT NULL, turn BIGINT, ingestion_time TIMESTAMP"
SDK_PROPS = {
    "chatlake.ingestion_time": "ingestion_time",
    "chatlake.dedupe_key": "telemetry_id",
}
RECORDS_PER_CALL = 20
START_TIMEOUT_S = 60


def free_loopback_port() -> int:
    # The restarted server must listen where the SDK reconnects, so port 0
    # cannot be used; the OS still picks the number.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class IngestProcess:
    """``python -m chatlake ingest`` on a given port, ready once it says so."""

    def __init__(self, catalog, port: int) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "chatlake",
                "ingest",
                "--data-dir",
                str(catalog.data_dir),
                "--catalog-url",
                catalog.url,
                "--port",
                str(port),
                "--no-metrics",
                "--commit-interval-s",
                "0.05",
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        self.ready = threading.Event()
        self.log: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        assert self.ready.wait(START_TIMEOUT_S), "ingest did not start:\n" + "".join(
            self.log
        )

    def _read(self) -> None:
        for line in self.process.stderr:
            self.log.append(line)
            if "ingest listening on" in line:
                self.ready.set()

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        assert self._ended() == -signal.SIGKILL

    def terminate(self) -> None:
        self.process.terminate()
        assert self._ended() == 0, "".join(self.log)

    def _ended(self) -> int:
        code = self.process.wait(LINE_TIMEOUT_S)
        self._reader.join(LINE_TIMEOUT_S)
        self.process.stderr.close()
        return code


def send(stream, first_turn: int, calls: int) -> tuple[int, int]:
    """``calls`` batches of JSON records; returns (next turn, last offset)."""
    offset = -1
    for _ in range(calls):
        records = [
            json.dumps({"telemetry_id": f"turn-{turn}", "turn": turn})
            for turn in range(first_turn, first_turn + RECORDS_PER_CALL)
        ]
        offset = stream.ingest_records_offset(records)
        first_turn += RECORDS_PER_CALL
    return first_turn, offset


@pytest.mark.slow
def test_c22_sdk_stream_survives_sigkill_of_the_ingest_server(catalog_server):
    create_table(catalog_server, SDK_TABLE, SDK_COLUMNS, SDK_PROPS)
    client_id, secret = writer(catalog_server, "crash_bot", SDK_TABLE)
    port = free_loopback_port()
    server = IngestProcess(catalog_server, port)
    # Generous retries: a restart on a loaded CI machine can take many seconds.
    options = StreamConfigurationOptions(
        recovery_backoff_ms=200, recovery_retries=200, flush_timeout_ms=120_000
    )
    client = ZerobusSdk(f"http://127.0.0.1:{port}", catalog_server.url)
    stream = client.create_stream(
        client_id, secret, TableProperties(SDK_TABLE), options
    )
    turn = 0
    try:
        for _ in range(2):
            turn, offset = send(stream, turn, 100)
            stream.wait_for_offset(offset)  # acked: must survive the kill
            turn, _ = send(stream, turn, 30)  # in flight while the server dies
            server.kill()
            server = IngestProcess(catalog_server, port)
            turn, _ = send(stream, turn, 30)  # queued while the SDK reconnects
        stream.flush()
        stream.close()
    finally:
        server.terminate()

    location = table_location(catalog_server, SDK_TABLE)
    connection = duckdb.connect()
    connection.register("t", DeltaTable(location).to_pyarrow_dataset())
    query = "select count(*), count(distinct telemetry_id), min(turn), max(turn) from t"
    total, distinct, low, high = connection.execute(query).fetchall()[0]
    connection.close()
    assert (total, distinct, low, high) == (turn, turn, 0, turn - 1)
