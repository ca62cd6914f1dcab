"""The lock file that keeps a second ``up`` or catalog off a data directory."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from chatlake.catalog import lockfile

# A second process trying the same lock: prints the pid it was told of.
TRY_LOCK = """
import sys
from pathlib import Path
from chatlake.catalog import lockfile
try:
    lockfile.hold(Path(sys.argv[1]))
except lockfile.LockHeld as held:
    print(held.pid)
else:
    print("taken")
"""


def try_in_another_process(path) -> str:
    result = subprocess.run(
        [sys.executable, "-c", TRY_LOCK, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.strip()


def test_a_held_lock_names_its_holder_to_another_process(tmp_path):
    path = tmp_path / "up.lock"
    descriptor = lockfile.hold(path)
    try:
        assert path.read_text() == f"{os.getpid()}\n"
        assert try_in_another_process(path) == str(os.getpid())
    finally:
        lockfile.release(descriptor)

    assert try_in_another_process(path) == "taken"


def test_a_second_hold_in_the_same_process_is_refused_until_released(tmp_path):
    path = tmp_path / "catalog.lock"
    first = lockfile.hold(path)

    with pytest.raises(lockfile.LockHeld) as caught:
        lockfile.hold(path)
    assert caught.value.pid == os.getpid()
    assert str(caught.value) == f"{path} is locked by pid {os.getpid()}"

    lockfile.release(first)
    lockfile.release(lockfile.hold(path))


def test_a_stale_file_without_a_holder_does_not_block(tmp_path):
    # What a holder killed by SIGKILL leaves: the file, with no lock on it.
    path = tmp_path / "up.lock"
    path.write_text("999999999\n")

    descriptor = lockfile.hold(path)
    try:
        assert path.read_text() == f"{os.getpid()}\n"
    finally:
        lockfile.release(descriptor)
