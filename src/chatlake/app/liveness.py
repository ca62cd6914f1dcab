"""Which process streams a turn, and whether that process still runs.

Each turn records the identity of the process running it. Any gunicorn worker
polling the turn can then tell when that process died (SIGKILL, out of memory,
a gunicorn timeout) and end the turn instead of showing it running for good.

A pid alone would not do: the kernel reuses pids, so the identity also holds
the process's start time (from /proc) and the host name, since a pid recorded
on another host or container means nothing here.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

_HOST = socket.gethostname()
_PROC = Path("/proc")
_GONE_STATES = (b"Z", b"X")  # a zombie has died and only waits to be reaped

# (pid, identity) of this process, recomputed after a fork changes the pid.
_current: tuple[int, str] | None = None


def current() -> str:
    """This process's identity: ``host/pid/start time``."""
    global _current
    pid = os.getpid()
    if _current is None or _current[0] != pid:
        _current = (pid, f"{_HOST}/{pid}/{_start_time(pid) or ''}")
    return _current[1]


def is_gone(identity: str) -> bool:
    """True only when the process named by ``identity`` surely no longer runs.

    A process of another host, or an identity that cannot be read, counts as
    running: ending someone else's live turn would be worse than waiting.
    """
    if identity == current():
        return False
    parts = identity.rsplit("/", 2)
    if len(parts) != 3 or parts[0] != _HOST or not parts[1].isdigit():
        return False
    pid, started = int(parts[1]), parts[2]
    if not started:
        return not _exists_without_proc(pid)
    return _start_time(pid) != started


def _start_time(pid: int) -> str | None:
    """Clock ticks from boot to the process's start; None once it has died."""
    try:
        stat = (_PROC / str(pid) / "stat").read_bytes()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after it.
    fields = stat[stat.rindex(b")") + 2 :].split()
    state, started = fields[0], fields[19]  # fields 3 and 22 of proc(5)
    return None if state in _GONE_STATES else started.decode()


def _exists_without_proc(pid: int) -> bool:
    # Without /proc there is no start time to compare, so a reused pid would
    # pass for the dead worker; only then is a pid check all there is.
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it runs, as another user
        return True
    return True
