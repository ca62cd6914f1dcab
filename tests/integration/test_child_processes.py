"""A child started with die_with_parent() ends when its parent is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.process_support import alive

DEATH_TIMEOUT_S = 10.0

# A parent that starts one child waiting for a signal, prints the child's pid,
# then waits too. With "plain" the child is started without die_with_parent.
PARENT = """
import signal, subprocess, sys
from chatlake.child_processes import die_with_parent

arrange = None if sys.argv[1] == "plain" else die_with_parent()
child = subprocess.Popen(
    [sys.executable, "-c", "import signal; signal.pause()"],
    stdout=subprocess.DEVNULL,
    preexec_fn=arrange,
)
print(child.pid, flush=True)
signal.pause()
"""


def start_family(mode: str) -> tuple[subprocess.Popen, int]:
    """The parent process and the pid of its child."""
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, mode], stdout=subprocess.PIPE, text=True
    )
    child_pid = int(parent.stdout.readline())
    parent.stdout.close()
    return parent, child_pid


def parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def kill_if_alive(pid: int) -> None:
    if alive(pid):
        os.kill(pid, signal.SIGKILL)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux prctl")
def test_the_child_dies_when_its_parent_is_killed_by_sigkill():
    parent, child_pid = start_family("die-with-parent")
    try:
        assert parent_of(child_pid) == parent.pid
        assert alive(child_pid)

        parent.kill()
        parent.wait()

        deadline = time.monotonic() + DEATH_TIMEOUT_S
        while alive(child_pid) and time.monotonic() < deadline:
            time.sleep(0.02)  # polling with a deadline
        assert not alive(child_pid), "the child outlived its killed parent"
    finally:
        parent.kill()
        parent.wait()
        kill_if_alive(child_pid)


def test_without_it_the_child_outlives_its_parent():
    # What die_with_parent() prevents: the same family, killed the same way.
    parent, child_pid = start_family("plain")
    try:
        parent.kill()
        parent.wait()

        assert alive(child_pid)
        assert parent_of(child_pid) != parent.pid
    finally:
        parent.kill()
        parent.wait()
        kill_if_alive(child_pid)
