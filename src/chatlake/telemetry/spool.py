"""The disk spool: encoded events wait here until the server acknowledges them.

Each process writes its own SQLite file in WAL mode (``spool-<pid>-<id>.sqlite3``)
and holds an exclusive ``flock`` on a sibling ``.lock`` file while it lives. A
process that dies, even by SIGKILL, releases the lock; the next client to open
the directory takes the lock, moves the orphan's events into its own spool and
deletes the orphan. Copying first and deleting second means a crash in between
can only duplicate events, which the server's dedupe key removes.

An orphan with no events to give (0 bytes, or no events table) is deleted; a
file that is not a spool is renamed to ``<name>.unreadable`` with one warning,
so that no later client tries it again. Directories and symlinks under a
spool's name are not ours and are left alone.

Events are keyed by a stream key: a table name, or ``@chat`` / ``@feedback`` for
the chat tables, resolved to names from the configuration when sending.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import stat
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS streams (
    key TEXT PRIMARY KEY,
    format TEXT NOT NULL,
    descriptor BLOB
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    stream_key TEXT NOT NULL,
    payload BLOB NOT NULL,
    size INTEGER NOT NULL,
    created_us INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_stream ON events (stream_key, id);
"""

# Connections left behind in a forked child: closing them there could
# checkpoint or delete the parent's WAL, so they are kept alive, unused.
_ABANDONED: list[object] = []

DROP_REPORT_INTERVAL_S = 60.0

# SQLite's verdicts on the file itself: retrying cannot help. Busy, I/O or
# full-disk errors may pass, so those orphans are kept and tried again.
_BROKEN_FILE_CODES = {sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT}


class _NotASpool(Exception):
    """An orphan that cannot be adopted, now or later."""


@dataclass(frozen=True)
class StreamFormat:
    """How a stream's records are encoded: ``proto`` with a descriptor, or ``json``."""

    format: str
    descriptor: bytes | None = None


@dataclass(frozen=True)
class SpoolDepth:
    events: int
    payload_bytes: int
    oldest_created_us: int | None


class Spool:
    """One process's spool file, safe to use from several threads."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.name = f"spool-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.path = directory / f"{self.name}.sqlite3"
        self._lock = threading.Lock()
        self._lock_fd: int | None = None
        self._db: sqlite3.Connection | None = None
        self._bytes = 0
        self._dropped_unreported = 0
        self._last_drop_report = -DROP_REPORT_INTERVAL_S

    @property
    def is_open(self) -> bool:
        return self._db is not None

    def open(self) -> int:
        """Creates this process's file and adopts orphans; returns events adopted.

        A closed spool may be opened again (late events after ``close()``)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock_fd = _hold_lock(self.directory / f"{self.name}.lock")
        self._db = _connect(self.path)
        self._db.executescript(_SCHEMA)
        adopted = sum(self._adopt(orphan) for orphan in self._orphans())
        self._bytes = self.depth().payload_bytes
        return adopted

    def add(self, key: str, fmt: StreamFormat, payloads: list[bytes]) -> int:
        """Stores payloads for ``key``; returns how many old events were dropped."""
        now_us = time.time_ns() // 1000
        rows = [(key, p, len(p), now_us) for p in payloads]
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR IGNORE INTO streams (key, format, descriptor) "
                "VALUES (?,?,?)",
                (key, fmt.format, fmt.descriptor),
            )
            self._db.executemany(
                "INSERT INTO events (stream_key, payload, size, created_us) "
                "VALUES (?,?,?,?)",
                rows,
            )
            self._bytes += sum(len(p) for p in payloads)
            return self._drop_oldest()

    def pending(self, key: str, after_id: int, limit: int) -> list[tuple[int, bytes]]:
        """Up to ``limit`` events of ``key`` with an id above ``after_id``, in order."""
        with self._lock:
            return self._db.execute(
                "SELECT id, payload FROM events WHERE stream_key = ? AND id > ? "
                "ORDER BY id LIMIT ?",
                (key, after_id, limit),
            ).fetchall()

    def delete_through(self, key: str, last_id: int) -> int:
        """Deletes every event of ``key`` up to ``last_id`` (acked); returns count."""
        with self._lock, self._db:
            sizes = self._db.execute(
                "DELETE FROM events WHERE stream_key = ? AND id <= ? RETURNING size",
                (key, last_id),
            ).fetchall()
            self._bytes -= sum(size for (size,) in sizes)
            return len(sizes)

    def streams(self) -> dict[str, StreamFormat]:
        with self._lock:
            rows = self._db.execute("SELECT key, format, descriptor FROM streams")
            return {key: StreamFormat(fmt, desc) for key, fmt, desc in rows}

    def count(self, key: str | None = None) -> int:
        with self._lock:
            if self._db is None:
                return 0  # closed
            if key is None:
                return self._db.execute("SELECT count(*) FROM events").fetchone()[0]
            return self._db.execute(
                "SELECT count(*) FROM events WHERE stream_key = ?", (key,)
            ).fetchone()[0]

    def depth(self) -> SpoolDepth:
        with self._lock:
            if self._db is None:
                return SpoolDepth(0, 0, None)  # closed
            count, size, oldest = self._db.execute(
                "SELECT count(*), coalesce(sum(size), 0), min(created_us) FROM events"
            ).fetchone()
        return SpoolDepth(count, size, oldest)

    def close(self) -> None:
        """Closes the file; an empty spool is deleted, a non-empty one stays."""
        with self._lock:
            if self._db is None:
                return
            empty = self._db.execute("SELECT count(*) FROM events").fetchone()[0] == 0
            self._db.close()
            self._db = None
            if empty:
                _remove_spool_files(self.path)
            os.close(self._lock_fd)
            self._lock_fd = None

    def abandon_after_fork(self) -> None:
        """In a forked child: forget the parent's file without touching it."""
        _ABANDONED.append(self._db)
        if self._lock_fd is not None:
            # Closing our copy leaves the parent's flock in place.
            os.close(self._lock_fd)
        self._db = None
        self._lock_fd = None

    def _drop_oldest(self) -> int:
        """Enforces ``max_bytes`` by deleting the oldest events of any stream."""
        excess = self._bytes - self.max_bytes
        if excess <= 0:
            return 0
        freed, dropped, last_id = 0, 0, None
        for row_id, size in self._db.execute("SELECT id, size FROM events ORDER BY id"):
            freed, dropped, last_id = freed + size, dropped + 1, row_id
            if freed >= excess:
                break
        self._db.execute("DELETE FROM events WHERE id <= ?", (last_id,))
        self._bytes -= freed
        self._report_drop(dropped)
        return dropped

    def _report_drop(self, dropped: int) -> None:
        """One warning a minute at most, so an overload does not flood the log."""
        self._dropped_unreported += dropped
        now = time.monotonic()
        if now - self._last_drop_report < DROP_REPORT_INTERVAL_S:
            return
        log.warning(
            "telemetry spool full (%d bytes): dropped the %d oldest events",
            self.max_bytes,
            self._dropped_unreported,
        )
        self._dropped_unreported = 0
        self._last_drop_report = now

    def _orphans(self) -> list[Path]:
        mine = self.path.name
        return sorted(
            p for p in self.directory.glob("spool-*.sqlite3") if p.name != mine
        )

    def _adopt(self, orphan: Path) -> int:
        """Moves an orphan's events here if no live process holds its lock."""
        if not _is_regular_file(orphan):
            return 0  # a directory or symlink: not a file we wrote
        try:
            fd = _hold_lock(orphan.with_suffix(".lock"))
        except BlockingIOError:
            return 0  # a live process owns it
        except OSError as error:
            log.warning("telemetry spool %s could not be locked: %s", orphan, error)
            return 0
        try:
            return self._take_over(orphan)
        except OSError as error:
            log.warning("telemetry spool %s could not be adopted: %s", orphan, error)
            return 0
        finally:
            os.close(fd)

    def _take_over(self, orphan: Path) -> int:
        """With the orphan's lock held: adopt, delete or set it aside."""
        if not _is_regular_file(orphan):
            # Adopted or set aside by another client before we took the lock.
            orphan.with_suffix(".lock").unlink(missing_ok=True)
            return 0
        try:
            return self._move_from(orphan)
        except _NotASpool as error:
            _set_aside(orphan, str(error))
        except sqlite3.Error as error:
            if _breaks_the_file(error):
                _set_aside(orphan, str(error))
            else:
                log.warning(
                    "telemetry spool %s could not be adopted: %s", orphan, error
                )
        return 0

    def _move_from(self, orphan: Path) -> int:
        uri = f"file:{orphan}?mode=rw"
        self._db.execute("ATTACH DATABASE ? AS orphan", (uri,))
        try:
            moved = self._copy_attached()
        finally:
            self._db.execute("DETACH DATABASE orphan")
        _remove_spool_files(orphan)
        if moved is None:
            log.info("telemetry spool %s removed: it held no events", orphan.name)
            return 0
        log.info("telemetry spool adopted %d events from %s", moved, orphan.name)
        return moved

    def _copy_attached(self) -> int | None:
        """Copies the attached orphan's events; None if it has no events table."""
        tables = {
            name
            for (name,) in self._db.execute(
                "SELECT name FROM orphan.sqlite_master WHERE type = 'table'"
            )
        }
        if "events" not in tables:
            return None  # 0 bytes, or a process that died before its schema
        if "streams" not in tables:
            raise _NotASpool("events without a streams table")
        with self._db:
            self._db.execute(
                "INSERT OR IGNORE INTO streams SELECT * FROM orphan.streams"
            )
            return self._db.execute(
                "INSERT INTO events (stream_key, payload, size, created_us) "
                "SELECT stream_key, payload, size, created_us FROM orphan.events "
                "ORDER BY id"
            ).rowcount


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    db.isolation_level = "DEFERRED"
    db.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode: a commit survives the app crashing, not the OS.
    db.execute("PRAGMA synchronous=NORMAL")
    return db


def _hold_lock(path: Path) -> int:
    """Opens ``path`` and takes an exclusive flock; raises BlockingIOError if held."""
    flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
    fd = os.open(path, flags, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise
    return fd


def _remove_spool_files(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.with_suffix(".lock").unlink(missing_ok=True)


def _breaks_the_file(error: sqlite3.Error) -> bool:
    """True when SQLite says the file itself is no database or is corrupt."""
    code = getattr(error, "sqlite_errorcode", None) or 0
    return code & 0xFF in _BROKEN_FILE_CODES  # extended codes keep the primary low


def _is_regular_file(path: Path) -> bool:
    """True for a regular file; False for a directory, a symlink or nothing."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def _set_aside(orphan: Path, reason: str) -> None:
    """Renames a file out of the ``spool-*.sqlite3`` glob: kept, never retried.

    Its bytes stay for a person to look at; no client counts or opens it again."""
    aside = _unused_name(orphan.with_name(f"{orphan.name}.unreadable"))
    # No -wal or -shm is left to move: SQLite deletes them beside a file it
    # cannot read, and checkpoints the log of one it could attach.
    os.rename(orphan, aside)
    orphan.with_suffix(".lock").unlink(missing_ok=True)
    log.warning(
        "telemetry spool %s is not a spool (%s); moved aside to %s",
        orphan,
        reason,
        aside.name,
    )


def _unused_name(path: Path) -> Path:
    """``path``, or ``path-2``, ``path-3``...: an earlier file is never replaced."""
    candidate, number = path, 1
    while candidate.exists() or candidate.is_symlink():
        number += 1
        candidate = path.with_name(f"{path.name}-{number}")
    return candidate
