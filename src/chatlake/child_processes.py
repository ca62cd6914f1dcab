"""Child processes that end when the process that started them dies.

A parent killed by SIGKILL runs no cleanup of its own, so the servers it
started would live on as orphans holding their ports and files. On Linux the
kernel can signal a child when its parent dies (``PR_SET_PDEATHSIG``)::

    subprocess.Popen(argv, preexec_fn=die_with_parent())

Elsewhere ``die_with_parent()`` is None, which Popen takes as "nothing to do".
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` giving the child SIGTERM when this process dies.

    The kernel sends it when the *thread* that started the child ends, so
    start children from a thread that lives as long as the process.
    """
    if _LIBC is None:
        return None
    parent_pid = os.getpid()

    def arrange() -> None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        # The parent may have died before prctl took effect.
        if os.getppid() != parent_pid:
            os.kill(os.getpid(), signal.SIGTERM)

    return arrange


def _load_libc():
    if not sys.platform.startswith("linux"):
        return None
    # Loaded here, not in the forked child, where dlopen is unsafe.
    return ctypes.CDLL(None, use_errno=True)


_LIBC = _load_libc()
