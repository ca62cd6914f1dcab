"""A lock file that says one process owns a directory for as long as it lives.

``chatlake up`` and ``chatlake catalog`` each hold one, so a second copy started
on the same data directory stops in one line instead of sharing (and
rewriting) the first one's files. The lock is an exclusive ``flock``: the
kernel drops it when the holder exits, even by SIGKILL, so a stale file never
blocks a restart. The file holds the holder's pid, for the error message.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from chatlake.errors import ChatlakeError


class LockHeld(ChatlakeError):
    """Another process holds the lock; ``pid`` is its pid, if it wrote one."""

    def __init__(self, path: Path, pid: int | None) -> None:
        self.path = path
        self.pid = pid
        super().__init__(f"{path} is locked by pid {pid if pid else 'unknown'}")


def hold(path: Path) -> int:
    """Take the lock at ``path`` without waiting; the open descriptor keeps it.

    Raises LockHeld at once if another process holds it. The descriptor is
    not inherited by child processes (Python opens files close-on-exec), so
    only this process's life decides how long the lock lasts.
    """
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = _read_pid(descriptor)
        os.close(descriptor)
        raise LockHeld(path, pid) from None
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
    return descriptor


def release(descriptor: int) -> None:
    """Let go of a lock taken by :func:`hold`."""
    os.close(descriptor)


def _read_pid(descriptor: int) -> int | None:
    # The holder writes its pid just after locking: a racing reader may see
    # an empty file, and then the message says the pid is unknown.
    text = os.pread(descriptor, 32, 0).decode(errors="replace").strip()
    return int(text) if text.isdigit() else None
