"""Conversations kept server-side in SQLite, per browser identity.

The store is also the buffer a streaming turn writes into and the page polls,
so any gunicorn worker can serve any request: nothing lives only in one
process's memory. A stop request is a flag in the same row, and each running
turn names the process streaming it (see liveness.py), so that when that process
dies, whoever polls the turn next can end it.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from chatlake.app.errors import NotFound

TITLE_CHARS = 60
BUSY_TIMEOUT_MS = 5000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    title TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS conversations_by_user ON conversations (user_id, updated_at);
CREATE TABLE IF NOT EXISTS turns (
    id TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations (id),
    turn_index INTEGER NOT NULL,
    user_message TEXT NOT NULL,
    assistant_message TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    finish_reason TEXT,
    error_type TEXT,
    error_message TEXT,
    rating INTEGER,
    comment TEXT,
    stop_requested INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    worker TEXT
);
CREATE INDEX IF NOT EXISTS turns_by_conversation ON turns (conversation_id, turn_index);
"""

RUNNING, OK, ERROR, STOPPED = "running", "ok", "error", "stopped"


@dataclass(frozen=True)
class Conversation:
    id: str
    user_id: str
    title: str
    updated_at: float


@dataclass(frozen=True)
class Turn:
    id: str  # also the turn's telemetry_id
    conversation_id: str
    turn_index: int
    user_message: str
    assistant_message: str
    status: str
    finish_reason: str | None
    error_type: str | None
    error_message: str | None
    rating: int | None
    comment: str | None
    created_at: float
    worker: str | None  # the process streaming it, while it runs


class ConversationStore:
    """All reads and writes of conversations and turns."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
            _add_worker_column(db)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection, inside a transaction."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = self._open()
        with db:
            yield db

    def _open(self) -> sqlite3.Connection:
        # One connection per thread, kept open: opening and closing one per call
        # checkpoints and recreates the WAL each time, which costs milliseconds.
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000)
        db.row_factory = sqlite3.Row
        # With WAL, NORMAL survives an app crash and skips the fsync per commit;
        # an OS crash may lose the last turns of the sidebar, never telemetry
        # (which has its own spool).
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    def interrupt_running(self) -> int:
        """Marks turns left running by a stopped app as failed; returns how many."""
        with self._connect() as db:
            cursor = db.execute(
                "UPDATE turns SET status=?, error_type='interrupted', "
                "error_message='the app stopped during this turn' WHERE status=?",
                (ERROR, RUNNING),
            )
            return cursor.rowcount

    def interrupt_orphan(self, turn_id: str, worker: str, message: str) -> bool:
        """Ends a turn whose worker process died; True for the one caller that did.

        Conditional, so that of several pollers noticing the same dead worker
        only one ends the turn and tracks it.
        """
        with self._connect() as db:
            cursor = db.execute(
                "UPDATE turns SET status=?, error_type='interrupted', "
                "error_message=?, updated_at=? "
                "WHERE id=? AND status=? AND worker=?",
                (ERROR, message, time.time(), turn_id, RUNNING, worker),
            )
            return cursor.rowcount == 1

    def create_conversation(self, user_id: str, first_message: str) -> Conversation:
        title = " ".join(first_message.split())[:TITLE_CHARS] or "New chat"
        now = time.time()
        conversation = Conversation(uuid.uuid4().hex, user_id, title, now)
        with self._connect() as db:
            db.execute(
                "INSERT INTO conversations VALUES (?, ?, ?, ?, ?)",
                (conversation.id, user_id, title, now, now),
            )
        return conversation

    def conversations(self, user_id: str, limit: int = 50) -> list[Conversation]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT id, user_id, title, updated_at FROM conversations "
                "WHERE user_id=? ORDER BY updated_at DESC LIMIT ?",
                (user_id, limit),
            ).fetchall()
        return [Conversation(**dict(row)) for row in rows]

    def conversation(self, conversation_id: str, user_id: str) -> Conversation:
        """The conversation if it exists and belongs to ``user_id``; else NotFound."""
        with self._connect() as db:
            row = db.execute(
                "SELECT id, user_id, title, updated_at FROM conversations "
                "WHERE id=? AND user_id=?",
                (conversation_id, user_id),
            ).fetchone()
        if row is None:
            raise NotFound(f"conversation {conversation_id!r} not found")
        return Conversation(**dict(row))

    def start_turn(
        self, conversation_id: str, user_message: str, worker: str | None = None
    ) -> Turn:
        """A running turn; ``worker`` names the process that will stream it."""
        now = time.time()
        turn_id = uuid.uuid4().hex
        with self._connect() as db:
            (count,) = db.execute(
                "SELECT count(*) FROM turns WHERE conversation_id=?", (conversation_id,)
            ).fetchone()
            db.execute(
                "INSERT INTO turns (id, conversation_id, turn_index, user_message, "
                "status, created_at, updated_at, worker) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    turn_id,
                    conversation_id,
                    count,
                    user_message,
                    RUNNING,
                    now,
                    now,
                    worker,
                ),
            )
            db.execute(
                "UPDATE conversations SET updated_at=? WHERE id=?",
                (now, conversation_id),
            )
        return self.turn(turn_id)

    def turn(self, turn_id: str) -> Turn:
        with self._connect() as db:
            row = db.execute(
                f"SELECT {_TURN_COLUMNS} FROM turns WHERE id=?", (turn_id,)
            )
            found = row.fetchone()
        if found is None:
            raise NotFound(f"turn {turn_id!r} not found")
        return Turn(**dict(found))

    def turns(self, conversation_id: str) -> list[Turn]:
        with self._connect() as db:
            rows = db.execute(
                f"SELECT {_TURN_COLUMNS} FROM turns WHERE conversation_id=? "
                "ORDER BY turn_index, created_at",
                (conversation_id,),
            ).fetchall()
        return [Turn(**dict(row)) for row in rows]

    def write_text(self, turn_id: str, text: str) -> bool:
        """Saves the answer so far; returns True when a stop was requested."""
        with self._connect() as db:
            db.execute(
                "UPDATE turns SET assistant_message=?, updated_at=? WHERE id=?",
                (text, time.time(), turn_id),
            )
            row = db.execute("SELECT stop_requested FROM turns WHERE id=?", (turn_id,))
            return bool(row.fetchone()[0])

    def finish_turn(
        self,
        turn_id: str,
        *,
        status: str,
        text: str,
        finish_reason: str | None = None,
        error_type: str | None = None,
        error_message: str | None = None,
    ) -> None:
        with self._connect() as db:
            db.execute(
                "UPDATE turns SET status=?, assistant_message=?, finish_reason=?, "
                "error_type=?, error_message=?, updated_at=? WHERE id=?",
                (
                    status,
                    text,
                    finish_reason,
                    error_type,
                    error_message,
                    time.time(),
                    turn_id,
                ),
            )

    def request_stop(self, turn_id: str) -> None:
        with self._connect() as db:
            db.execute("UPDATE turns SET stop_requested=1 WHERE id=?", (turn_id,))

    def rate(self, turn_id: str, rating: int | None, comment: str | None) -> None:
        with self._connect() as db:
            db.execute(
                "UPDATE turns SET rating=?, comment=? WHERE id=?",
                (rating, comment, turn_id),
            )

    def delete_turn(self, turn_id: str) -> None:
        with self._connect() as db:
            db.execute("DELETE FROM turns WHERE id=?", (turn_id,))


_TURN_COLUMNS = (
    "id, conversation_id, turn_index, user_message, assistant_message, status, "
    "finish_reason, error_type, error_message, rating, comment, created_at, worker"
)


def _add_worker_column(db: sqlite3.Connection) -> None:
    # Stores made before turns named their worker lack the column.
    columns = {row[1] for row in db.execute("PRAGMA table_info(turns)")}
    if "worker" in columns:
        return
    try:
        db.execute("ALTER TABLE turns ADD COLUMN worker TEXT")
    except sqlite3.OperationalError as error:
        if "duplicate column" not in str(error):  # another process added it first
            raise
