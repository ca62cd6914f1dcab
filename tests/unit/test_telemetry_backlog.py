"""read_backlog over real spool files written by other processes, live and dead.

Every test checks what matters most: reading changes no file, takes no lock a
client could trip on, and the owner goes on writing while it is read.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from chatlake.telemetry import backlog as backlog_module
from chatlake.telemetry.backlog import (
    BacklogCollector,
    SpoolBacklog,
    lock_holders,
    read_backlog,
)
from chatlake.telemetry.spool import Spool, StreamFormat

JSON = StreamFormat("json")

# A client process: spools COUNT events of SIZE bytes, then adds one event per
# "add" line on stdin, and ends at EOF without closing (the spool stays).
WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from chatlake.telemetry.spool import Spool, StreamFormat
    directory, count, size = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    spool = Spool(directory, 1_000_000)
    spool.open()
    spool.add("@chat", StreamFormat("json"), [b"x" * size] * count)
    print("written", flush=True)
    for line in sys.stdin:
        spool.add("@chat", StreamFormat("json"), [b"y" * size])
        print("added", flush=True)
    """
)


class Writer:
    def __init__(self, directory, count: int, size: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(directory), str(count), str(size)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout.readline() == "written\n"

    @property
    def pid(self) -> int:
        return self.process.pid

    def add_one(self) -> None:
        self.process.stdin.write("add\n")
        self.process.stdin.flush()
        assert self.process.stdout.readline() == "added\n"

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.stop()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
        self.process.wait(10)
        for stream in (self.process.stdin, self.process.stdout):
            if not stream.closed:
                stream.close()


@pytest.fixture
def writers():
    started: list[Writer] = []
    yield lambda *args: started.append(Writer(*args)) or started[-1]
    for writer in started:
        writer.stop()


def files(directory) -> dict[str, tuple[int, int, bytes]]:
    """Every file's size, modification time and content."""
    return {
        path.name: (path.stat().st_size, path.stat().st_mtime_ns, path.read_bytes())
        for path in sorted(directory.iterdir())
    }


def by_pid(backlog) -> dict[int, tuple]:
    return {
        s.pid: (s.state, s.alive, s.holder_pid, s.events, s.payload_bytes)
        for s in backlog.spools
    }


def test_a_live_client_and_a_dead_one(tmp_path, writers) -> None:
    live = writers(tmp_path, 3, 100)
    dead = writers(tmp_path, 2, 50)
    dead.kill()
    before = files(tmp_path)
    started = time.time()

    backlog = read_backlog(tmp_path)

    assert files(tmp_path) == before
    assert by_pid(backlog) == {
        live.pid: ("live", True, live.pid, 3, 300),
        dead.pid: ("orphaned", False, None, 2, 100),
    }
    assert (backlog.clients, backlog.orphans, backlog.unreadable) == (1, 1, 0)
    assert (backlog.events, backlog.payload_bytes) == (5, 400)
    assert 0 <= backlog.oldest_age_s < time.time() - started + 60


def test_the_owner_writes_on_and_an_orphan_is_adopted_after_reading(
    tmp_path, writers
) -> None:
    live = writers(tmp_path, 1, 10)
    dead = writers(tmp_path, 4, 10)
    dead.kill()
    read_backlog(tmp_path)

    live.add_one()
    adopter = Spool(tmp_path, 1_000_000)
    adopted = adopter.open()
    after = read_backlog(tmp_path)
    adopter.close()

    assert adopted == 4
    assert by_pid(after) == {
        live.pid: ("live", True, live.pid, 2, 20),
        os.getpid(): ("live", True, os.getpid(), 4, 40),
    }


def test_events_acked_and_spools_closed_leave_the_backlog(tmp_path) -> None:
    spool = Spool(tmp_path, 1_000_000)
    spool.open()
    spool.add("@chat", JSON, [b"a", b"bb", b"ccc"])
    last_id = spool.pending("@chat", 0, 2)[-1][0]

    spool.delete_through("@chat", last_id)
    acked = read_backlog(tmp_path)
    spool.delete_through("@chat", last_id + 1)
    spool.close()

    assert (acked.events, acked.payload_bytes, acked.clients) == (1, 3, 1)
    assert read_backlog(tmp_path).spools == ()


def test_a_closed_spool_without_a_log_is_read_without_creating_one(tmp_path) -> None:
    spool = Spool(tmp_path, 1_000_000)
    spool.open()
    spool.add("@chat", JSON, [b"kept" * 10])
    spool.close()  # not empty: the file stays, its write-ahead log is gone
    before = files(tmp_path)

    backlog = read_backlog(tmp_path)

    assert sorted(before) == [f"{spool.name}.lock", spool.path.name]
    assert files(tmp_path) == before
    assert [(s.state, s.events, s.payload_bytes) for s in backlog.spools] == [
        ("orphaned", 1, 40)
    ]


def test_missing_directory_is_an_empty_backlog(tmp_path) -> None:
    backlog = read_backlog(tmp_path / "never-made")

    assert backlog.spools == ()
    assert (backlog.clients, backlog.events, backlog.oldest_age_s) == (0, 0, None)
    assert not (tmp_path / "never-made").exists()


def test_unready_and_broken_files_are_reported_not_raised(tmp_path) -> None:
    sqlite3.connect(tmp_path / "spool-11-aa.sqlite3").close()  # tables not made yet
    (tmp_path / "spool-12-bb.sqlite3").write_bytes(b"not a database" * 100)

    backlog = read_backlog(tmp_path)

    fresh, broken = backlog.spools
    assert (fresh.pid, fresh.state, fresh.events, fresh.error) == (
        11,
        "orphaned",
        0,
        None,
    )
    assert (broken.pid, broken.state, broken.events) == (12, "unreadable", 0)
    assert "not a database" in broken.error
    assert (backlog.unreadable, backlog.orphans) == (1, 1)


def test_fifos_and_other_special_files_are_not_opened(tmp_path) -> None:
    os.mkfifo(tmp_path / "spool-21-aa.sqlite3")
    sqlite3.connect(tmp_path / "spool-22-bb.sqlite3").close()
    os.mkfifo(tmp_path / "spool-22-bb.sqlite3-wal")
    (tmp_path / "spool-23-cc.sqlite3").mkdir()
    found: list = []

    # Opening a FIFO blocks until a writer comes: read in a thread, so a
    # regression fails this test instead of hanging it.
    reader = threading.Thread(
        target=lambda: found.append(read_backlog(tmp_path)), daemon=True
    )
    reader.start()
    reader.join(10)
    try:
        assert not reader.is_alive(), "read_backlog blocked on a FIFO"
    finally:
        for fifo in ("spool-21-aa.sqlite3", "spool-22-bb.sqlite3-wal"):
            # Lets a blocked reader go; nobody is reading if the test passed.
            with contextlib.suppress(OSError):
                os.close(os.open(tmp_path / fifo, os.O_WRONLY | os.O_NONBLOCK))

    [backlog] = found
    assert [(spool.pid, spool.state) for spool in backlog.spools] == [
        (21, "unreadable"),
        (22, "unreadable"),
        (23, "unreadable"),
    ]
    assert backlog.spools[0].error == "spool-21-aa.sqlite3 is not a regular file"
    assert backlog.spools[1].error == "spool-22-bb.sqlite3-wal is not a regular file"


def test_a_spool_adopted_while_read_is_left_out(tmp_path, monkeypatch) -> None:
    kept, gone = Spool(tmp_path, 1000), Spool(tmp_path, 1000)
    kept.open()
    gone.open()
    gone.add("@chat", JSON, [b"x"])
    gone.close()  # an orphan now
    adopter = Spool(tmp_path, 1000)
    real_depth = backlog_module._depth

    def adopted_meanwhile(path):
        if path == gone.path:
            assert adopter.open() == 1
        return real_depth(path)

    monkeypatch.setattr(backlog_module, "_depth", adopted_meanwhile)
    backlog = read_backlog(tmp_path)
    kept.close()
    adopter.close()

    assert [s.name for s in backlog.spools] == [kept.path.name]
    assert not gone.path.exists()


def test_lock_holders_name_this_process_for_its_own_spool(tmp_path) -> None:
    spool = Spool(tmp_path, 1000)
    spool.open()
    lock = os.stat(tmp_path / f"{spool.name}.lock")
    key = (os.major(lock.st_dev), os.minor(lock.st_dev), lock.st_ino)

    held = lock_holders()
    spool.close()

    assert held[key] == os.getpid()
    assert key not in lock_holders()


def test_without_proc_locks_the_writer_pid_decides(
    tmp_path, writers, monkeypatch
) -> None:
    live = writers(tmp_path, 1, 10)
    dead = writers(tmp_path, 1, 10)
    dead.kill()  # and reaped: its pid no longer exists
    monkeypatch.setattr(backlog_module, "PROC_LOCKS", tmp_path / "no-such-file")

    backlog = read_backlog(tmp_path)

    assert lock_holders() is None
    assert {pid: state[:3] for pid, state in by_pid(backlog).items()} == {
        live.pid: ("live", True, live.pid),
        dead.pid: ("orphaned", False, None),
    }


@pytest.mark.parametrize(
    ("pid", "holder", "state"),
    [(7, 7, "live"), (7, 9, "adopting"), (7, None, "orphaned"), (7, 0, "live")],
)
def test_state_names_who_holds_the_lock(pid, holder, state) -> None:
    spool = SpoolBacklog("f", pid, holder is not None, holder, 0, 0, None)

    assert spool.state == state


def test_collector_gauges_sum_every_spool(tmp_path, writers) -> None:
    writers(tmp_path, 2, 30)
    writers(tmp_path, 5, 10).kill()

    families = {
        f.name: f.samples[0].value for f in BacklogCollector(tmp_path).collect()
    }

    assert families.pop("chatlake_telemetry_backlog_oldest_event_age_seconds") >= 0
    assert families == {
        "chatlake_telemetry_backlog_clients": 1,
        "chatlake_telemetry_backlog_orphaned_spools": 1,
        "chatlake_telemetry_backlog_unreadable_spools": 0,
        "chatlake_telemetry_backlog_events": 7,
        "chatlake_telemetry_backlog_bytes": 110,
    }
