"""One background thread per table: spooled events -> Zerobus stream -> acks.

The sender keeps a window of batches in flight on one stream. Acks arrive
through the SDK's ack callback; the spool is trimmed only up to an acked
batch. When the stream fails (the SDK's own recovery gave up, or the error is
terminal) the sender closes it, waits with exponential backoff and jitter,
opens a new stream and sends every event still in the spool again, from the
oldest. Resends can duplicate rows the server already made durable; the
chat tables' dedupe key removes them.

The SDK sits behind ``StreamFactory`` so the loop can be tested without it.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from chatlake.errors import ChatlakeError
from chatlake.telemetry.metrics import Counters
from chatlake.telemetry.spool import Spool, StreamFormat

log = logging.getLogger(__name__)

# A stream whose oldest batch has waited this long for an ack counts as stalled.
STALL_S = 5.0


class SendError(ChatlakeError):
    """Sending on a stream failed; ``terminal`` when retrying as is cannot help."""

    def __init__(self, message: str, terminal: bool = False) -> None:
        super().__init__(message)
        self.terminal = terminal


class Stream(Protocol):
    def send(self, payloads: list[bytes]) -> int:
        """Queues one batch; returns its offset. Raises SendError."""

    def close(self) -> None:
        """Releases the stream; may be called on a failed stream."""


class StreamFactory(Protocol):
    def open(
        self,
        table: str,
        fmt: StreamFormat,
        on_ack: Callable[[int], None],
        on_error: Callable[[int, str], None],
    ) -> Stream:
        """Opens a stream to ``table``. Raises SendError."""


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter between ``initial_s`` and ``max_s``."""

    initial_s: float
    max_s: float

    def delay_s(self, failures: int) -> float:
        ceiling = min(self.max_s, self.initial_s * 2 ** min(failures, 30))
        return random.uniform(ceiling / 2, ceiling)


@dataclass
class _Batch:
    offset: int
    last_id: int
    count: int


class TableSender:
    """Sends one stream key's spooled events to one table, on its own thread."""

    def __init__(
        self,
        key: str,
        resolve_table: Callable[[str], str | None],
        spool: Spool,
        factory: StreamFactory,
        counters: Counters,
        *,
        batch_records: int,
        inflight_batches: int,
        backoff: Backoff,
        on_progress: Callable[[], None],
    ) -> None:
        self.key = key
        self.resolve_table = resolve_table
        self.spool = spool
        self.factory = factory
        self.counters = counters
        self.batch_records = batch_records
        self.inflight_batches = inflight_batches
        self.backoff = backoff
        self.on_progress = on_progress
        self._cond = threading.Condition()
        self._stopping = False
        self._acked_offset = -1
        self._failure: SendError | None = None
        self._stream: Stream | None = None
        self._inflight: deque[_Batch] = deque()
        self._last_sent_id = 0
        self._failures = 0
        self._generation = 0
        self._terminal_messages: set[str] = set()
        self._acking = False
        self._waiting_since: float | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"chatlake-telemetry-{key}", daemon=True
        )

    @property
    def healthy(self) -> bool:
        """The stream has acked, and nothing has waited for an ack for long."""
        waiting_since = self._waiting_since
        if not self._acking or self._stream is None:
            return False
        return waiting_since is None or time.monotonic() - waiting_since < STALL_S

    def start(self) -> None:
        self._thread.start()

    def notify(self) -> None:
        """New events are in the spool."""
        with self._cond:
            self._cond.notify_all()

    def stop(self, timeout_s: float) -> bool:
        """Stops the thread; returns False if it did not end within ``timeout_s``."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.ident is not None:
            self._thread.join(max(timeout_s, 0))
        return not self._thread.is_alive()

    def _run(self) -> None:
        try:
            while not self._stopping:
                self._guarded_step()
        finally:
            self._close_stream()

    def _guarded_step(self) -> None:
        """A bug in one step is logged and retried like a failure, never fatal."""
        try:
            self._step()
        except Exception as error:
            log.exception("telemetry sender for %s hit a bug", self.key)
            self._fail(SendError(f"unexpected {type(error).__name__}", terminal=True))

    def _step(self) -> None:
        if self._stream is None and not self._open():
            return
        try:
            self._fill_window()
        except SendError as error:
            self._fail(error)
            return
        self._wait_for_news()
        self._settle_acks()
        if self._failure is not None:
            self._fail(self._failure)

    def _open(self) -> bool:
        table = self.resolve_table(self.key)
        fmt = self.spool.streams().get(self.key)
        if table is None or fmt is None:
            self._sleep(self.backoff.max_s)
            return False
        with self._cond:
            self._generation += 1
            self._acked_offset = -1
            self._failure = None
            generation = self._generation
        try:
            self._stream = self.factory.open(
                table,
                fmt,
                lambda offset: self._on_ack(generation, offset),
                lambda offset, message: self._on_error(generation, message),
            )
        except SendError as error:
            self._fail(error)
            return False
        self.counters.add("streams_opened")
        self._inflight.clear()
        self._last_sent_id = 0
        log.info("telemetry stream to %s opened", table)
        return True

    def _fill_window(self) -> None:
        while len(self._inflight) < self.inflight_batches and not self._stopping:
            rows = self.spool.pending(self.key, self._last_sent_id, self.batch_records)
            if not rows:
                return
            offset = self._stream.send([payload for _, payload in rows])
            if not self._inflight:
                self._waiting_since = time.monotonic()
            self._inflight.append(_Batch(offset, rows[-1][0], len(rows)))
            self._last_sent_id = rows[-1][0]
            self.counters.add("sent", len(rows))

    def _wait_for_news(self) -> None:
        """Sleeps until an ack, a failure, new events or stop; at most one second."""
        with self._cond:
            if self._has_news():
                return
            self._cond.wait(1.0)

    def _has_news(self) -> bool:
        if self._stopping or self._failure is not None:
            return True
        if self._inflight and self._acked_offset >= self._inflight[0].offset:
            return True
        return len(self._inflight) < self.inflight_batches and bool(
            self.spool.pending(self.key, self._last_sent_id, 1)
        )

    def _settle_acks(self) -> None:
        with self._cond:
            acked = self._acked_offset
        done: list[_Batch] = []
        while self._inflight and self._inflight[0].offset <= acked:
            done.append(self._inflight.popleft())
        if not done:
            return
        # Counted before the delete, so a flush that sees the spool empty also
        # sees the count.
        self.counters.add("acked", sum(batch.count for batch in done))
        self.spool.delete_through(self.key, done[-1].last_id)
        self._failures = 0
        self._acking = True
        self._waiting_since = time.monotonic() if self._inflight else None
        self.on_progress()

    def _fail(self, error: SendError) -> None:
        self._acking = False
        self._close_stream()
        self._failures += 1
        if error.terminal:
            self._report_terminal(error)
        else:
            self.counters.add("retried")
            log.warning(
                "telemetry stream %s failed, retrying (attempt %d): %s",
                self.key,
                self._failures,
                error,
            )
        self._sleep(self.backoff.delay_s(self._failures - 1))

    def _report_terminal(self, error: SendError) -> None:
        """Logged loudly once per distinct message; the events stay spooled."""
        self.counters.add("terminal_errors")
        message = str(error)
        if message in self._terminal_messages:
            return
        self._terminal_messages.add(message)
        log.error(
            "telemetry for %s refused by the server; events are kept in the spool "
            "and retried, fix the table or the grants: %s",
            self.key,
            message,
        )

    def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        self._inflight.clear()
        self._waiting_since = None
        self._last_sent_id = 0
        if stream is None:
            return
        try:
            stream.close()
        except SendError as error:
            log.debug("closing a failed telemetry stream: %s", error)

    def _sleep(self, seconds: float) -> None:
        """A wait that ``stop`` interrupts."""
        deadline = time.monotonic() + seconds
        with self._cond:
            while not self._stopping:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._cond.wait(remaining)

    def _on_ack(self, generation: int, offset: int) -> None:
        with self._cond:
            if generation != self._generation:
                return  # a late callback from a stream already replaced
            self._acked_offset = max(self._acked_offset, offset)
            self._cond.notify_all()

    def _on_error(self, generation: int, message: str) -> None:
        with self._cond:
            if generation != self._generation:
                return
            if self._failure is None:
                self._failure = SendError(message, terminal=is_terminal(message))
            self._cond.notify_all()


_TERMINAL_WORDS = (
    "invalid argument",
    "permission denied",
    "unauthenticated",
    "not found",
    "out of range",
    "unimplemented",
    "payload too large",
    "nonretriable",
)


def is_terminal(message: str) -> bool:
    """The SDK's error callback carries text only; these words mark terminal codes."""
    lowered = message.lower()
    return any(word in lowered for word in _TERMINAL_WORDS)
