"""The disk spool: order, acked deletes, the size limit, and orphans of dead apps."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pytest

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
