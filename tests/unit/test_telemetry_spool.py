"""The disk spool: order, acked deletes, the size limit, and orphans of dead apps."""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from chatlake.telemetry.backlog import read_backlog
from chatlake.telemetry.spool import Spool, StreamFormat

PROTO = StreamFormat("proto", b"descriptor")


@pytest.fixture
def spool(tmp_path):
    spool = Spool(tmp_path, max_bytes=1_000_000)
    spool.open()
    yield spool
    spool.close()


def test_pending_returns_events_of_one_stream_in_order(spool):
    spool.add("a", PROTO, [b"a1", b"a2"])
    spool.add("b", StreamFormat("json"), [b"b1"])
    spool.add("a", PROTO, [b"a3"])
    rows = spool.pending("a", after_id=0, limit=10)
    assert [payload for _, payload in rows] == [b"a1", b"a2", b"a3"]
    after_first = spool.pending("a", after_id=rows[0][0], limit=1)
    assert [payload for _, payload in after_first] == [b"a2"]
    assert spool.streams() == {"a": PROTO, "b": StreamFormat("json", None)}


def test_delete_through_removes_only_acked_events_of_that_stream(spool):
    spool.add("a", PROTO, [b"1", b"2", b"3"])
    spool.add("b", PROTO, [b"x"])
    ids = [row_id for row_id, _ in spool.pending("a", 0, 10)]
    assert spool.delete_through("a", ids[1]) == 2
    assert [p for _, p in spool.pending("a", 0, 10)] == [b"3"]
    assert spool.count() == 2
    assert spool.depth().payload_bytes == 2


def test_full_spool_drops_the_oldest_and_counts_them(tmp_path):
    spool = Spool(tmp_path, max_bytes=100)
    spool.open()
    assert spool.add("a", PROTO, [b"x" * 10] * 10) == 0
    assert spool.add("a", PROTO, [b"y" * 10] * 3) == 3
    payloads = [p for _, p in spool.pending("a", 0, 100)]
    assert payloads == [b"x" * 10] * 7 + [b"y" * 10] * 3
    assert spool.depth().payload_bytes == 100
    spool.close()


def test_close_deletes_an_empty_spool_and_keeps_a_full_one(tmp_path):
    empty = Spool(tmp_path / "e", 1000)
    empty.open()
    empty.close()
    assert list((tmp_path / "e").iterdir()) == []
    full = Spool(tmp_path / "f", 1000)
    full.open()
    full.add("a", PROTO, [b"kept"])
    full.close()
    assert full.path.exists()


def test_a_closed_spool_is_adopted_by_the_next_one(tmp_path):
    first = Spool(tmp_path, 1000)
    first.open()
    first.add("a", PROTO, [b"1", b"2"])
    first.close()
    second = Spool(tmp_path, 1000)
    assert second.open() == 2
    assert [p for _, p in second.pending("a", 0, 10)] == [b"1", b"2"]
    assert second.streams() == {"a": PROTO}
    assert not first.path.exists()
    second.close()


def test_a_live_spool_is_not_adopted(tmp_path, spool):
    spool.add("a", PROTO, [b"mine"])
    other = Spool(tmp_path, 1000)
    assert other.open() == 0
    assert spool.count() == 1
    other.close()


WRITER = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from chatlake.telemetry.spool import Spool, StreamFormat
    spool = Spool(Path(sys.argv[1]), 10_000)
    spool.open()
    spool.add("@chat", StreamFormat("proto", b"d"), [b"before-crash"] * 3)
    print("written", flush=True)
    sys.stdin.read()
    """
)


def test_spool_of_a_sigkilled_process_is_adopted(tmp_path):
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout.readline() == "written\n"
    while_alive = Spool(tmp_path, 10_000)
    assert while_alive.open() == 0
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    child.stdin.close()
    child.stdout.close()
    after = Spool(tmp_path, 10_000)
    assert after.open() == 3
    assert [p for _, p in after.pending("@chat", 0, 10)] == [b"before-crash"] * 3
    assert sorted(p.name for p in tmp_path.glob("spool-*.sqlite3")) == sorted(
        [while_alive.path.name, after.path.name]
    )
    after.close()
    while_alive.close()


def names(directory) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def own_files(spool: Spool) -> list[str]:
    return [f"{spool.name}.lock", spool.path.name]


def test_an_empty_orphan_is_removed_with_its_companions(tmp_path, caplog):
    for suffix in (".sqlite3", ".sqlite3-wal", ".sqlite3-shm", ".lock"):
        (tmp_path / f"spool-2-empty{suffix}").write_bytes(b"")
    caplog.set_level(logging.INFO, logger="chatlake.telemetry")
    spool = Spool(tmp_path, 1000)
    assert spool.open() == 0
    assert names(tmp_path) == sorted(
        own_files(spool) + [f"{spool.path.name}-shm", f"{spool.path.name}-wal"]
    )
    assert [r.getMessage() for r in caplog.records] == [
        "telemetry spool spool-2-empty.sqlite3 removed: it held no events"
    ]
    spool.close()


def test_a_database_without_an_events_table_is_removed(tmp_path):
    other = sqlite3.connect(tmp_path / "spool-3-other.sqlite3")
    other.execute("CREATE TABLE notes (body TEXT)")
    other.commit()
    other.close()
    spool = Spool(tmp_path, 1000)
    assert spool.open() == 0
    assert not (tmp_path / "spool-3-other.sqlite3").exists()
    assert not (tmp_path / "spool-3-other.lock").exists()
    spool.close()
    assert names(tmp_path) == []


def test_a_file_that_is_no_database_is_set_aside_once(tmp_path, caplog):
    junk = tmp_path / "spool-99999-abc.sqlite3"
    junk.write_bytes(bytes(range(256)) * 8)
    caplog.set_level(logging.WARNING, logger="chatlake.telemetry")
    first = Spool(tmp_path, 1000)
    assert first.open() == 0
    second = Spool(tmp_path, 1000)
    assert second.open() == 0
    assert [r.getMessage() for r in caplog.records] == [
        f"telemetry spool {junk} is not a spool (file is not a database); "
        "moved aside to spool-99999-abc.sqlite3.unreadable"
    ]
    first.close()
    second.close()
    assert names(tmp_path) == ["spool-99999-abc.sqlite3.unreadable"]
    backlog = read_backlog(tmp_path)
    assert (backlog.orphans, backlog.unreadable, backlog.spools) == (0, 0, ())
    aside = tmp_path / "spool-99999-abc.sqlite3.unreadable"
    assert aside.read_bytes() == bytes(range(256)) * 8


def test_events_without_a_streams_table_are_set_aside(tmp_path):
    path = tmp_path / "spool-4-half.sqlite3"
    half = sqlite3.connect(path)
    half.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, payload BLOB)")
    half.execute("INSERT INTO events (payload) VALUES (x'01')")
    half.commit()
    half.close()
    spool = Spool(tmp_path, 1000)
    assert spool.open() == 0
    spool.close()
    assert names(tmp_path) == ["spool-4-half.sqlite3.unreadable"]
    aside = sqlite3.connect(tmp_path / "spool-4-half.sqlite3.unreadable")
    assert aside.execute("SELECT payload FROM events").fetchall() == [(b"\x01",)]
    aside.close()


def test_setting_aside_never_replaces_an_earlier_unreadable_file(tmp_path):
    (tmp_path / "spool-7-a.sqlite3.unreadable").write_bytes(b"earlier")
    (tmp_path / "spool-7-a.sqlite3").write_bytes(b"later, not sqlite either")
    (tmp_path / "spool-7-a.sqlite3-wal").write_bytes(b"its log")
    (tmp_path / "spool-7-a.sqlite3-shm").write_bytes(b"its index")
    spool = Spool(tmp_path, 1000)
    spool.open()
    spool.close()
    assert names(tmp_path) == [
        "spool-7-a.sqlite3.unreadable",
        "spool-7-a.sqlite3.unreadable-2",
    ]
    assert (tmp_path / "spool-7-a.sqlite3.unreadable").read_bytes() == b"earlier"


def test_an_orphan_whose_lock_is_held_is_not_touched(tmp_path):
    junk = tmp_path / "spool-5-held.sqlite3"
    junk.write_bytes(b"a live writer's file, whatever it holds")
    holder = os.open(tmp_path / "spool-5-held.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        spool = Spool(tmp_path, 1000)
        assert spool.open() == 0
        spool.close()
    finally:
        os.close(holder)
    assert names(tmp_path) == ["spool-5-held.lock", "spool-5-held.sqlite3"]


def test_directories_and_symlinks_under_a_spool_name_are_left_alone(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = Spool(elsewhere, 1000)
    target.open()
    target.add("a", PROTO, [b"not ours"])
    target.close()
    spools = tmp_path / "spools"
    spools.mkdir()
    (spools / "spool-8-dir.sqlite3").mkdir()
    (spools / "spool-9-link.sqlite3").symlink_to(target.path)
    (spools / "spool-10-dangling.sqlite3").symlink_to(tmp_path / "missing")
    spool = Spool(spools, 1000)
    assert spool.open() == 0
    spool.close()
    assert names(spools) == [
        "spool-10-dangling.sqlite3",
        "spool-8-dir.sqlite3",
        "spool-9-link.sqlite3",
    ]
    assert names(elsewhere) == own_files(target)
    assert not (tmp_path / "missing").exists()
