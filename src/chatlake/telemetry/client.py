"""``TelemetryClient``: what a chatbot calls on every turn.

``track()`` appends to a bounded in-memory queue and returns; it never raises
and never blocks on I/O. When the queue is full the oldest event is dropped
and counted. A spooler thread moves queued events to the disk spool in small
batches (encoding, redacting and truncating them on the way); one sender
thread per table sends spooled events with the official SDK. ``close()`` runs
at interpreter exit and on SIGTERM, and after ``fork`` the child starts its
own threads and spool on its first ``track()`` (see ``lifecycle``).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from google.protobuf.message import EncodeError, Message

from chatlake.names import parse_table_name
from chatlake.telemetry import lifecycle
from chatlake.telemetry.config import TelemetryConfig
from chatlake.telemetry.events import (
    CHAT_KEY,
    FEEDBACK_KEY,
    JSON_FORMAT,
    ChatTurn,
    Encoder,
    Feedback,
    stream_format_of,
)
from chatlake.telemetry.metrics import Counters, PrometheusCollector
from chatlake.telemetry.redaction import Redactor
from chatlake.telemetry.sender import Backoff, StreamFactory, TableSender
from chatlake.telemetry.spool import _ABANDONED, Spool, StreamFormat

log = logging.getLogger(__name__)

DEFAULT_CLOSE_TIMEOUT_S = 5.0
# The part of close()'s deadline kept for stopping threads after flushing.
STOP_RESERVE_S = 1.0
# The spooler hands the GIL over at least this often while encoding a batch,
# so track() in a request thread waits at most about this long (the
# interpreter's own switch interval is 5 ms).
GIL_YIELD_INTERVAL_S = 0.0005
_REPORTED_PROBLEMS: set[str] = set()


@dataclass(frozen=True)
class TelemetryStatus:
    """``state`` is "delivering", "spooling" or "not configured"."""

    state: str
    pending: int


class TelemetryClient:
    """Non-blocking chat telemetry; see the module docstring."""

    def __init__(
        self,
        config: TelemetryConfig | None = None,
        *,
        stream_factory: StreamFactory | None = None,
        handle_sigterm: bool = True,
    ) -> None:
        self.config = config or TelemetryConfig.from_env()
        self._factory_given = stream_factory
        self._report_problems()
        self._reset_state()
        self._install_exit_hooks(handle_sigterm)

    # ----- the request path -------------------------------------------------

    def track(self, event: object, record: object = None) -> None:
        """Queues ``event`` (ChatTurn or Feedback) or ``record`` for table ``event``.

        ``record`` may be any protobuf message (a PROTO stream) or a mapping
        (a JSON stream). Never raises, never waits on I/O.
        """
        try:
            item = (event, record, time.time_ns() // 1000)
            with self._lock:
                self._tracked += 1
                late = self._closed
                if not late:
                    queued = self._enqueue(item)
            if late:
                self._spool_late([item])
            elif queued >= self.config.batch_records:
                self._wake.set()
        except Exception:  # track() must never hurt the app
            log.exception("telemetry track() failed; the event is lost")

    def _enqueue(self, item: tuple[object, object, int]) -> int:
        """Called under ``_lock``; returns the queue length."""
        if not self._started:
            self._start()
        if len(self._queue) >= self.config.queue_size:
            self._queue.popleft()
            self._dropped_queue += 1
        self._queue.append(item)
        return len(self._queue)

    # ----- draining ------------------------------------------------------------

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Waits until every tracked event is acked; False on timeout or if unsendable.

        Without a usable configuration it waits only until events are spooled.
        """
        deadline = time.monotonic() + timeout_s
        self._wake.set()
        with self._progress:
            while True:
                if self._unspooled_count() == 0 and (
                    not self.config.sendable or self._spool_count() == 0
                ):
                    return self.config.sendable
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._progress.wait(min(remaining, 0.5))

    def close(self, timeout_s: float = DEFAULT_CLOSE_TIMEOUT_S) -> None:
        """Flushes, then stops the threads, all within one deadline. Idempotent.

        Events not acked by the deadline stay in the spool for the next start.
        """
        with self._close_lock, self._lock:
            if self._closed:
                return
            self._closed = True
        deadline = time.monotonic() + timeout_s
        if self._started:
            self.flush(timeout_s - min(STOP_RESERVE_S, timeout_s / 5))
        self._stop_threads(deadline)
        self._spool_late(self._take_stranded())

    async def aflush(self, timeout_s: float = 10.0) -> bool:
        """``flush`` for asyncio apps: waits in a worker thread, not the loop."""
        return await asyncio.to_thread(self.flush, timeout_s)

    async def aclose(self, timeout_s: float = DEFAULT_CLOSE_TIMEOUT_S) -> None:
        await asyncio.to_thread(self.close, timeout_s)

    # ----- observing -------------------------------------------------------------

    def status(self) -> TelemetryStatus:
        pending = self._unspooled_count() + self._spool_count()
        if not self.config.sendable:
            return TelemetryStatus("not configured", pending)
        senders = list(self._senders.values())
        healthy = bool(senders) and all(s.healthy for s in senders)
        state = "delivering" if pending == 0 or healthy else "spooling"
        return TelemetryStatus(state, pending)

    def metrics(self) -> dict[str, int | float]:
        """Counters and gauges; names are listed in ``chatlake.telemetry.metrics``."""
        values: dict[str, int | float] = self._counters.snapshot()
        with self._lock:
            values["tracked"] = self._tracked
            values["dropped_queue"] = self._dropped_queue
            values["queue_depth"] = len(self._queue) + self._unspooled
        depth = self._spool.depth() if self._spool_ready.is_set() else None
        values["spool_depth"] = depth.events if depth else 0
        values["spool_bytes"] = depth.payload_bytes if depth else 0
        oldest = depth.oldest_created_us if depth else None
        age_s = 0.0 if oldest is None else time.time() - oldest / 1e6
        values["oldest_event_age_s"] = max(age_s, 0.0)
        return values

    def register_prometheus(
        self, registry=None, prefix: str = "chatlake_telemetry"
    ) -> PrometheusCollector:
        """Exports ``metrics()`` to a prometheus_client registry (default: global)."""
        from prometheus_client import REGISTRY

        collector = PrometheusCollector(self.metrics, prefix)
        (registry or REGISTRY).register(collector)
        return collector

    # ----- threads -----------------------------------------------------------------

    def _reset_state(self) -> None:
        """Fresh locks, queue and threads: at construction and in a forked child."""
        self._lock = threading.Lock()
        self._close_lock = threading.Lock()
        self._progress = threading.Condition()
        self._wake = threading.Event()
        self._queue: deque[tuple[object, object, int]] = deque()
        self._unspooled = 0
        self._tracked = 0
        self._dropped_queue = 0
        self._counters = Counters()
        self._started = False
        self._closed = False
        self._stopping = False
        self._spool = Spool(self.config.spool_dir, self.config.spool_max_bytes)
        self._spool_ready = threading.Event()
        self._senders: dict[str, TableSender] = {}
        self._factory = self._factory_given or self._sdk_factory()
        redactor = (
            Redactor(self.config.extra_redaction_patterns)
            if self.config.redaction
            else None
        )
        self._encoder = Encoder(redactor, self.config.message_max_bytes)
        self._invalid_reported: set[str] = set()
        self._late_lock = threading.Lock()
        self._late_loss_reported = False
        self._write_failure_reported = -60.0
        self._queue_drops_reported = (0, -60.0)
        self._spooler = threading.Thread(
            target=self._run_spooler, name="chatlake-telemetry-spooler", daemon=True
        )

    def _sdk_factory(self) -> StreamFactory:
        from chatlake.telemetry.sdk import SdkStreamFactory

        return SdkStreamFactory(self.config)

    def _start(self) -> None:
        """Called under ``_lock`` by the first ``track()``."""
        self._started = True
        if self._closed:
            return
        self._spooler.start()

    def _run_spooler(self) -> None:
        try:
            self._open_spool()
        except (OSError, sqlite3.Error) as error:
            log.error(
                "telemetry spool in %s cannot be opened (%s); events stay in memory "
                "and the oldest are dropped when the queue is full",
                self.config.spool_dir,
                error,
            )
            return
        while True:
            self._wake.wait(self.config.flush_interval_s)
            self._wake.clear()
            moved = self._spool_queued()
            if self._stopping and not moved:
                return

    def _open_spool(self) -> None:
        adopted = self._spool.open()
        self._counters.add("adopted", adopted)
        self._spool_ready.set()
        for key in self._spool.streams():
            if self._spool.count(key):
                self._sender_for(key).notify()

    def _spool_queued(self) -> int:
        with self._lock:
            items = list(self._queue)
            self._queue.clear()
            self._unspooled = len(items)
            dropped = self._dropped_queue
        self._report_queue_drops(dropped)
        try:
            if items:
                self._write(items)
        except (OSError, sqlite3.Error) as error:
            self._counters.add("dropped_spool", len(items))
            self._report_write_failure(error)
        except Exception:
            self._counters.add("dropped_spool", len(items))
            log.exception("telemetry spooler hit a bug; %d events lost", len(items))
        finally:
            with self._lock:
                self._unspooled = 0
            with self._progress:
                self._progress.notify_all()
        return len(items)

    def _write(self, items: list[tuple[object, object, int]]) -> None:
        for key, (fmt, payloads) in self._grouped(items).items():
            dropped = self._spool.add(key, fmt, payloads)
            self._counters.add("spooled", len(payloads))
            self._counters.add("dropped_spool", dropped)
            self._sender_for(key).notify()

    def _take_stranded(self) -> list[tuple[object, object, int]]:
        """Events still queued after the spooler stopped (it may not have started)."""
        if self._spooler.is_alive():
            return []  # it still owns the queue and will spool them
        with self._lock:
            items = list(self._queue)
            self._queue.clear()
        return items

    def _spool_late(self, items: list[tuple[object, object, int]]) -> None:
        """Writes events tracked after close() straight to the spool, in the caller's
        thread: a closed client has no spooler, and the spool outlives the process,
        so the next start sends them. If even that fails, the loss is counted and
        logged once."""
        if not items:
            return
        with self._late_lock:
            try:
                self._add_to_spool(items)
            except (OSError, sqlite3.Error) as error:
                self._counters.add("dropped_after_close", len(items))
                self._report_late_loss(error)

    def _add_to_spool(self, items: list[tuple[object, object, int]]) -> None:
        reopen = not self._spool.is_open
        if reopen:
            self._spool.open()
        try:
            for key, (fmt, payloads) in self._grouped(items).items():
                self._spool.add(key, fmt, payloads)
                self._counters.add("spooled", len(payloads))
                self._counters.add("spooled_after_close", len(payloads))
        finally:
            if reopen:
                self._spool.close()

    def _report_late_loss(self, error: Exception) -> None:
        if self._late_loss_reported:
            return
        self._late_loss_reported = True
        log.warning(
            "telemetry was closed and its spool cannot be written (%s): events "
            "tracked from now on are dropped and counted as dropped_after_close",
            error,
        )

    def _grouped(
        self, items: list[tuple[object, object, int]]
    ) -> dict[str, tuple[StreamFormat, list[bytes]]]:
        """Encoded payloads by stream key; events that cannot be sent are counted."""
        grouped: dict[str, tuple[StreamFormat, list[bytes]]] = {}
        yielded = time.perf_counter()
        for event, record, tracked_us in items:
            if time.perf_counter() - yielded > GIL_YIELD_INTERVAL_S:
                time.sleep(0)  # lets a request thread waiting in track() run
                yielded = time.perf_counter()
            encoded = self._encode(event, record, tracked_us)
            if encoded is None:
                continue
            key, fmt, payload = encoded
            grouped.setdefault(key, (fmt, []))[1].append(payload)
        return grouped

    def _encode(
        self, event: object, record: object, tracked_us: int
    ) -> tuple[str, StreamFormat, bytes] | None:
        """(stream key, format, payload), or None for an event that cannot be sent."""
        try:
            key, body = _key_and_body(event, record)
            if isinstance(body, Message):
                payload = self._encoder.encode_message(body, tracked_us)
                return key, stream_format_of(body), payload
            return key, JSON_FORMAT, self._encoder.encode_json(body, tracked_us)
        except (TypeError, ValueError, EncodeError) as error:
            self._report_invalid(event, record, error)
            return None

    def _sender_for(self, key: str) -> TableSender:
        sender = self._senders.get(key)
        if sender is None:
            sender = TableSender(
                key,
                self._resolve_table,
                self._spool,
                self._factory,
                self._counters,
                batch_records=self.config.batch_records,
                inflight_batches=self.config.inflight_batches,
                backoff=Backoff(
                    self.config.backoff_initial_s, self.config.backoff_max_s
                ),
                on_progress=self._notify_progress,
            )
            self._senders[key] = sender
            if self.config.sendable and not self._stopping:
                sender.start()
        return sender

    def _resolve_table(self, key: str) -> str | None:
        if key == CHAT_KEY:
            return self.config.chat_table
        if key == FEEDBACK_KEY:
            return self.config.feedback_table
        return key

    def _notify_progress(self) -> None:
        with self._progress:
            self._progress.notify_all()

    def _stop_threads(self, deadline: float) -> None:
        self._stopping = True
        self._wake.set()
        if self._spooler.is_alive():
            self._spooler.join(max(deadline - time.monotonic(), 0))
        stopped = [
            sender.stop(deadline - time.monotonic())
            for sender in list(self._senders.values())
        ]
        if self._spool_ready.is_set() and all(stopped) and not self._spooler.is_alive():
            with self._late_lock:  # a late track() may be writing to it
                self._spool.close()
        elif self._started:
            log.warning("telemetry threads did not stop in time; spool left open")

    # ----- counting what cannot be counted elsewhere ---------------------------

    def _unspooled_count(self) -> int:
        with self._lock:
            return len(self._queue) + self._unspooled

    def _spool_count(self) -> int:
        return self._spool.count() if self._spool_ready.is_set() else 0

    def _report_invalid(self, event: object, record: object, error: Exception) -> None:
        self._counters.add("invalid")
        kind = type(record if record is not None else event).__name__
        if kind in self._invalid_reported:
            return
        self._invalid_reported.add(kind)
        log.warning(
            "telemetry discarded a %s event that cannot be sent: %s", kind, error
        )

    def _report_queue_drops(self, dropped_total: int) -> None:
        """Warns about events the full queue dropped, at most once a minute."""
        unreported = dropped_total - self._queue_drops_reported[0]
        now = time.monotonic()
        if unreported <= 0 or now - self._queue_drops_reported[1] < 60:
            return
        self._queue_drops_reported = (dropped_total, now)
        log.warning(
            "telemetry queue full (%d events): dropped the %d oldest",
            self.config.queue_size,
            unreported,
        )

    def _report_write_failure(self, error: Exception) -> None:
        """A full or broken disk: one warning a minute, every loss counted."""
        now = time.monotonic()
        if now - self._write_failure_reported < 60:
            return
        self._write_failure_reported = now
        log.warning("telemetry spool write failed, events dropped: %s", error)

    def _report_problems(self) -> None:
        for problem in self.config.problems:
            if problem not in _REPORTED_PROBLEMS:
                _REPORTED_PROBLEMS.add(problem)
                log.warning("telemetry configuration: %s; events are spooled", problem)

    # ----- process life cycle ----------------------------------------------------

    def _install_exit_hooks(self, handle_sigterm: bool) -> None:
        lifecycle.install(self, handle_sigterm)

    def _after_fork_in_child(self) -> None:
        """The parent's threads do not exist here; its spool stays the parent's."""
        if self._spool_ready.is_set():
            self._spool.abandon_after_fork()
        abandon = getattr(self._factory, "abandon", None)
        if abandon is not None:
            _ABANDONED.append(abandon())
        _ABANDONED.extend(self._senders.values())
        self._reset_state()


def _key_and_body(event: object, record: object) -> tuple[str, object]:
    if record is None:
        if isinstance(event, ChatTurn):
            return CHAT_KEY, event
        if isinstance(event, Feedback):
            return FEEDBACK_KEY, event
        raise TypeError("track(event) takes a ChatTurn or Feedback")
    if not isinstance(event, str):
        raise TypeError("track(table, record) takes the table name as a string")
    parse_table_name(event)  # a TableNameError (a ValueError) names the problem
    if isinstance(record, Message | Mapping):
        return event, record
    raise TypeError("a record is a protobuf message or a mapping")
