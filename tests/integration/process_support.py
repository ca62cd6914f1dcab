"""Helpers for tests that watch processes through /proc."""

from __future__ import annotations

from pathlib import Path


def alive(pid: int) -> bool:
    """True for a running process (a zombie no one reaps has stopped running)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def child_pids(pid: int) -> list[int]:
    """The pids of a process's children (of its main thread)."""
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(child) for child in text.split()]
