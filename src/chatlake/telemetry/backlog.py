"""The backlog of every telemetry client spooling into one directory.

Each client process keeps its own SQLite spool in the directory (see
``chatlake.telemetry.spool``). ``read_backlog(directory)`` looks at every
spool file there and tells, per file, which process wrote it, whether a live
process still holds its lock, and how many events, payload bytes and seconds
of age wait in it for the ingest server's acknowledgement; ``Backlog`` adds
them up. The app's ``/ingestion`` page and ``/metrics`` endpoint show it.

Reading never disturbs a client:

- nothing is written, checkpointed or deleted. A spool with a write-ahead log
  beside it is opened ``mode=ro&readonly_shm=1``: a WAL reader that sees the
  last commit yet opens the shared-memory index read-only, so it cannot even
  set a read mark there. One without a log holds everything in its main file
  and is opened ``immutable=1``: plain ``mode=ro`` would create ``-wal`` and
  ``-shm`` files next to it. A log without its index (deleted by hand) makes
  the spool unreadable here rather than recreated;
- no lock is taken: who holds a spool's ``flock`` is read from
  ``/proc/locks``, so neither the owner reopening its spool nor a client
  adopting an orphan ever finds the lock busy because of a reader;
- a file that vanishes (a clean close, an adoption) is left out, and one that
  cannot be read is counted as unreadable with the reason, never raised.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

log = logging.getLogger(__name__)

PROC_LOCKS = Path("/proc/locks")
# A reader waits at most this long for a spool busy with WAL recovery.
READ_TIMEOUT_S = 1.0
_NAME = re.compile(r"^spool-(\d+)-[0-9a-f]+\.sqlite3$")
_DEPTH_SQL = "SELECT count(*), coalesce(sum(size), 0), min(created_us) FROM events"
_HAS_EVENTS_SQL = "SELECT count(*) FROM sqlite_master WHERE name = 'events'"

# A file's identity as /proc/locks names it: device major, minor and inode.
FileKey = tuple[int, int, int]


@dataclass(frozen=True)
class SpoolBacklog:
    """One spool file. ``alive``: some process holds its lock right now.

    ``holder_pid`` is that process: the writer itself, or another client
    adopting the file after the writer died (``adopting``). ``error`` is set
    when the file could not be read; its counts are then zero.
    """

    name: str
    pid: int | None
    alive: bool
    holder_pid: int | None
    events: int
    payload_bytes: int
    oldest_age_s: float | None
    error: str | None = None

    @property
    def adopting(self) -> bool:
        # /proc/locks shows 0 for a holder outside this pid namespace: unknown.
        if self.pid is None or not self.holder_pid or self.holder_pid < 0:
            return False
        return self.holder_pid != self.pid

    @property
    def state(self) -> str:
        """live, adopting, orphaned (waits for the next client) or unreadable."""
        if self.error is not None:
            return "unreadable"
        if self.adopting:
            return "adopting"
        return "live" if self.alive else "orphaned"


@dataclass(frozen=True)
class Backlog:
    """Every spool file of ``directory`` and their totals."""

    directory: Path
    spools: tuple[SpoolBacklog, ...] = ()

    @property
    def clients(self) -> int:
        """Spools whose writer is alive: one per running client."""
        return sum(s.state == "live" for s in self.spools)

    @property
    def orphans(self) -> int:
        """Spools of clients that ended, waiting for (or in) adoption."""
        return sum(s.state in ("orphaned", "adopting") for s in self.spools)

    @property
    def unreadable(self) -> int:
        return sum(s.error is not None for s in self.spools)

    @property
    def events(self) -> int:
        return sum(s.events for s in self.spools)

    @property
    def payload_bytes(self) -> int:
        return sum(s.payload_bytes for s in self.spools)

    @property
    def oldest_age_s(self) -> float | None:
        ages = [s.oldest_age_s for s in self.spools if s.oldest_age_s is not None]
        return max(ages, default=None)


def read_backlog(directory: str | os.PathLike[str]) -> Backlog:
    """Reads every spool file of ``directory``; a missing directory is empty."""
    directory = Path(directory)
    try:
        paths = sorted(directory.glob("spool-*.sqlite3"))
    except OSError as error:
        log.debug("telemetry spool dir %s unreadable: %s", directory, error)
        paths = []
    holders = lock_holders()
    now_s = time.time()
    spools = tuple(_read_all(paths, holders, now_s))
    return Backlog(directory, spools)


def lock_holders() -> dict[FileKey, int] | None:
    """The pid holding each ``flock`` on this machine; None without /proc/locks."""
    try:
        text = PROC_LOCKS.read_text()
    except OSError:
        return None
    holders: dict[FileKey, int] = {}
    for line in text.splitlines():
        held = _flock_line(line.split())
        if held is not None:
            holders[held[0]] = held[1]
    return holders


def _flock_line(fields: list[str]) -> tuple[FileKey, int] | None:
    # "3: FLOCK  ADVISORY  WRITE 4242 fe:00:2238156 0 EOF"; a waiter's line
    # reads "3: -> FLOCK ..." and holds nothing.
    if len(fields) < 6 or fields[1] != "FLOCK":
        return None
    try:
        major, minor, inode = fields[5].split(":")
        return (int(major, 16), int(minor, 16), int(inode)), int(fields[4])
    except ValueError:
        return None


def _read_all(
    paths: list[Path], holders: dict[FileKey, int] | None, now_s: float
) -> Iterator[SpoolBacklog]:
    for path in paths:
        spool = _read_one(path, holders, now_s)
        if spool is not None:
            yield spool


def _read_one(
    path: Path, holders: dict[FileKey, int] | None, now_s: float
) -> SpoolBacklog | None:
    """One file's backlog, or None when it vanished while being read."""
    match = _NAME.match(path.name)
    pid = int(match.group(1)) if match else None
    holder = _holder(path.with_suffix(".lock"), pid, holders)
    live = holder is not None
    problem = _special_file(path)
    if problem is None:
        try:
            events, size, oldest_us = _depth(path)
        except sqlite3.Error as error:
            if not path.exists():
                return None
            problem = str(error)
        else:
            age_s = None if oldest_us is None else max(now_s - oldest_us / 1e6, 0.0)
            return SpoolBacklog(path.name, pid, live, holder, events, size, age_s)
    return SpoolBacklog(path.name, pid, live, holder, 0, 0, None, problem)


def _holder(
    lock_path: Path, pid: int | None, holders: dict[FileKey, int] | None
) -> int | None:
    """The pid holding the spool's lock, or None if nobody does."""
    if holders is None:
        # Without /proc/locks the writer's pid is the best evidence; a reused
        # pid can make a dead writer look alive until its file is adopted.
        return pid if pid is not None and _pid_exists(pid) else None
    try:
        info = os.stat(lock_path)
    except OSError:
        return None  # no lock file: its writer is gone or the file is being removed
    return holders.get((os.major(info.st_dev), os.minor(info.st_dev), info.st_ino))


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def _special_file(path: Path) -> str | None:
    """Which of the spool's files is there but not a plain file, if one is.

    A client's spool is a plain file, and so are its -wal and -shm: opening a
    FIFO blocks until a writer appears, which would hang every scrape.
    """
    for part in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            mode = os.lstat(part).st_mode
        except FileNotFoundError:
            continue
        if not stat.S_ISREG(mode):
            return f"{part.name} is not a regular file"
    return None


def _depth(path: Path) -> tuple[int, int, int | None]:
    """Events, payload bytes and the oldest event's time, read without writing."""
    db = sqlite3.connect(
        _read_only_uri(path),
        uri=True,
        timeout=READ_TIMEOUT_S,
        isolation_level=None,
        check_same_thread=False,
    )
    try:
        # A client that just created its file may not have made its tables yet.
        if db.execute(_HAS_EVENTS_SQL).fetchone()[0] == 0:
            return 0, 0, None
        return db.execute(_DEPTH_SQL).fetchone()
    finally:
        db.close()


def _read_only_uri(path: Path) -> str:
    has_log = Path(f"{path}-wal").exists()
    mode = "mode=ro&readonly_shm=1" if has_log else "mode=ro&immutable=1"
    return f"file:{quote(str(path.absolute()))}?{mode}"


# -- Prometheus -------------------------------------------------------------------

GAUGES = {
    "clients": ("Telemetry clients alive with a spool in the directory", "clients"),
    "orphaned_spools": ("Spools of ended clients, not yet adopted", "orphans"),
    "unreadable_spools": ("Spool files that could not be read", "unreadable"),
    "events": ("Events waiting in every spool for the server's ack", "events"),
    "bytes": ("Payload bytes waiting in every spool", "payload_bytes"),
    "oldest_event_age_seconds": (
        "Age of the oldest event waiting in any spool (0 when none waits)",
        "oldest_age_s",
    ),
}


class BacklogCollector:
    """A prometheus_client collector that reads ``directory`` on every scrape.

    Its names (``chatlake_telemetry_backlog_*``) differ from the per-process
    gauges of ``TelemetryClient.register_prometheus``, so both can be scraped
    from one endpoint.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        prefix: str = "chatlake_telemetry_backlog",
    ) -> None:
        self.directory = Path(directory)
        self.prefix = prefix

    def collect(self) -> Iterator[object]:
        from prometheus_client.core import GaugeMetricFamily

        backlog = read_backlog(self.directory)
        for name, (help_text, attribute) in GAUGES.items():
            value = getattr(backlog, attribute)
            family = GaugeMetricFamily(f"{self.prefix}_{name}", help_text)
            family.add_metric([], 0.0 if value is None else value)
            yield family
