"""The backend path of one chat turn, shared by the Dash app, `chatlake demo` and
the overhead benchmark.

``ChatService.begin`` records the question and returns at once; ``run`` streams
the answer into the store (which the page polls), then records the ChatTurn
event. Ratings record a Feedback event tied to the turn's telemetry_id.
``turns`` is what the page polls: it also ends, as interrupted, a turn whose
worker process died, since that process can no longer do it.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from chatlake.app import liveness
from chatlake.app import store as st
from chatlake.app.errors import AppError, ModelError, NotFound
from chatlake.app.model_client import Delta, ModelClient
from chatlake.app.settings import AppSettings
from chatlake.app.store import ConversationStore, Turn
from chatlake.app.telemetry_sink import TelemetrySink, now_us

logger = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 8000
MAX_COMMENT_CHARS = 2000
MAX_CONCURRENT_TURNS = 16
WRITE_INTERVAL_S = 0.05  # how stale the polled answer may be
# After the grace of shutdown(), how long a turn told to stop gets to end itself
# (a model stream notices between chunks) before it is settled for it.
INTERRUPT_WAIT_S = 1.0
INTERRUPTED = ModelError("the app stopped during this turn", "interrupted")


@dataclass
class _Progress:
    started_us: int  # wall clock, for event_time
    started_s: float  # perf_counter, for durations
    text: str = ""
    first_token_s: float | None = None
    last_write_s: float = 0.0
    stop_requested: bool = False
    interrupted: bool = False


@dataclass
class _Active:
    """A submitted turn until it is settled (finished in the store and tracked)."""

    user_id: str
    turn: Turn
    future: Future | None = None
    progress: _Progress | None = None

    @property
    def may_still_run(self) -> bool:
        return self.future is None or not self.future.cancelled()


class ChatService:
    """Starts, runs, stops, retries and rates turns for one browser identity."""

    def __init__(
        self,
        store: ConversationStore,
        model: ModelClient,
        telemetry: TelemetrySink,
        settings: AppSettings,
    ) -> None:
        self.store = store
        self.model = model
        self.telemetry = telemetry
        self.settings = settings
        self._pool = ThreadPoolExecutor(MAX_CONCURRENT_TURNS, thread_name_prefix="turn")
        self._changed = threading.Condition()
        self._active: dict[str, _Active] = {}
        self._settled_elsewhere: set[str] = set()
        self._settling: set[str] = set()

    def close(self, wait: bool = True) -> None:
        """Stops taking turns; ``wait`` lets running turns finish and be tracked."""
        self._pool.shutdown(wait=wait, cancel_futures=not wait)

    def shutdown(self, grace_s: float) -> int:
        """Stops taking turns and settles every unfinished one; returns how many
        were interrupted.

        Running turns get ``grace_s`` to finish normally. Then the rest are told
        to stop and, finished by themselves or not, end as errors of type
        "interrupted" and are tracked as such: no turn leaves without its
        ChatTurn, so telemetry can be closed right after this returns.
        """
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._wait_for_turns(grace_s)
        with self._changed:
            for active in self._active.values():
                if active.progress is not None:
                    active.progress.interrupted = True
        interrupted = self._wait_for_turns(INTERRUPT_WAIT_S, count_ended=True)
        with self._changed:
            leftovers = [
                a for a in self._active.values() if a.turn.id not in self._settling
            ]
            for active in leftovers:
                del self._active[active.turn.id]
                self._settled_elsewhere.add(active.turn.id)
        for active in leftovers:
            self._settle_interrupted(active)
        self._wait_for_turns(INTERRUPT_WAIT_S)  # those tracking their end right now
        return interrupted + len(leftovers)

    def _wait_for_turns(self, timeout_s: float, count_ended: bool = False) -> int:
        """Waits until no turn may still run; returns how many ended meanwhile."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            before = len(self._active)
            while any(a.may_still_run for a in self._active.values()):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
            return before - len(self._active) if count_ended else 0

    def _settle_interrupted(self, active: _Active) -> None:
        progress = active.progress or _Progress(now_us(), time.perf_counter())
        logger.warning("turn %s interrupted by the app stopping", active.turn.id)
        try:
            self.store.finish_turn(
                active.turn.id,
                status=st.ERROR,
                text=progress.text,
                error_type=INTERRUPTED.error_type,
                error_message=str(INTERRUPTED),
            )
        finally:
            self._track_failure(active.user_id, active.turn, progress, INTERRUPTED)

    def _attach(self, user_id: str, turn: Turn, progress: _Progress) -> None:
        with self._changed:
            active = self._active.setdefault(turn.id, _Active(user_id, turn))
            active.progress = progress

    def _claim(self, turn_id: str) -> bool:
        """True if this thread is the one to settle the turn (shutdown may have)."""
        with self._changed:
            if turn_id in self._settled_elsewhere:
                return False
            self._settling.add(turn_id)
            return True

    def _release(self, turn_id: str) -> None:
        """The turn is settled: finished in the store and tracked."""
        with self._changed:
            self._active.pop(turn_id, None)
            self._settling.discard(turn_id)
            self._changed.notify_all()

    def begin(self, user_id: str, conversation_id: str | None, question: str) -> Turn:
        """Records the question (in a new conversation when none is given)."""
        question = _check_question(question)
        if conversation_id is None:
            conversation_id = self.store.create_conversation(user_id, question).id
        elif any(t.status == st.RUNNING for t in self.turns(user_id, conversation_id)):
            raise AppError(
                "a turn is still running in this conversation; wait or stop it"
            )
        return self.store.start_turn(conversation_id, question, liveness.current())

    def turns(self, user_id: str, conversation_id: str) -> list[Turn]:
        """The turns of ``user_id``'s conversation, none left running by a dead
        worker process."""
        self.store.conversation(conversation_id, user_id)
        turns = self.store.turns(conversation_id)
        orphans = [
            t
            for t in turns
            if t.status == st.RUNNING and t.worker and liveness.is_gone(t.worker)
        ]
        if not orphans:
            return turns
        for orphan in orphans:
            self._end_orphan(user_id, orphan)
        return self.store.turns(conversation_id)

    def _end_orphan(self, user_id: str, turn: Turn) -> None:
        if not self.store.interrupt_orphan(turn.id, turn.worker, str(INTERRUPTED)):
            return  # another poller ended it first
        logger.warning("turn %s interrupted: its worker %s died", turn.id, turn.worker)
        # Timed from the turn's start in the store: the dead worker's clock is gone.
        age_s = max(0.0, time.time() - turn.created_at)
        progress = _Progress(
            started_us=round(turn.created_at * 1_000_000),
            started_s=time.perf_counter() - age_s,
            text=turn.assistant_message,
        )
        self._track_failure(user_id, turn, progress, INTERRUPTED)

    def submit(self, user_id: str, turn: Turn) -> Future[Turn]:
        """Runs the turn on a worker thread."""
        with self._changed:
            active = self._active[turn.id] = _Active(user_id, turn)
            active.future = self._pool.submit(self._run_logged, user_id, turn)
            return active.future

    def _run_logged(self, user_id: str, turn: Turn) -> Turn:
        # A worker thread's exception would vanish with its Future: log it.
        try:
            return self.run(user_id, turn)
        except Exception:
            logger.exception("turn %s could not be recorded", turn.id)
            raise

    def run(self, user_id: str, turn: Turn) -> Turn:
        """Streams the answer into the store, then tracks the ChatTurn.

        Model failures end the turn as an error turn; only the store failing
        raises.
        """
        progress = _Progress(started_us=now_us(), started_s=time.perf_counter())
        self._attach(user_id, turn, progress)
        try:
            return self._run(user_id, turn, progress)
        finally:
            self._release(turn.id)

    def _run(self, user_id: str, turn: Turn, progress: _Progress) -> Turn:
        try:
            finish = self._stream(turn, self._messages(turn), progress)
        except ModelError as error:
            return self._fail(user_id, turn, progress, error)
        except Exception as error:  # noqa: BLE001 - a bug still ends the turn visibly
            logger.exception("turn %s failed unexpectedly", turn.id)
            kind = type(error).__name__
            failure = ModelError(f"unexpected failure: {kind}", "unexpected")
            return self._fail(user_id, turn, progress, failure)

        if progress.interrupted:
            return self._fail(user_id, turn, progress, INTERRUPTED)
        if not self._claim(turn.id):
            return self.store.turn(turn.id)
        status = st.STOPPED if finish.finish_reason == "stopped" else st.OK
        self.store.finish_turn(
            turn.id,
            status=status,
            text=progress.text,
            finish_reason=finish.finish_reason,
        )
        self._track(
            user_id,
            turn,
            progress,
            status="ok",
            finish_reason=finish.finish_reason,
            input_tokens=finish.input_tokens,
            output_tokens=finish.output_tokens,
            request_id=finish.request_id,
        )
        return self.store.turn(turn.id)

    def _stream(self, turn: Turn, messages: list[dict], progress: _Progress):
        def should_stop() -> bool:
            return progress.stop_requested or progress.interrupted

        for event in self.model.stream(messages, should_stop):
            if not isinstance(event, Delta):
                return event
            progress.text += event.text
            now = time.perf_counter()
            if progress.first_token_s is None:
                progress.first_token_s = now - progress.started_s
            if now - progress.last_write_s >= WRITE_INTERVAL_S:
                progress.stop_requested = self.store.write_text(turn.id, progress.text)
                progress.last_write_s = now
        raise ModelError("model stream ended without a result", "stream_error")

    def _fail(self, user_id, turn, progress: _Progress, error: ModelError) -> Turn:
        if not self._claim(turn.id):
            return self.store.turn(turn.id)
        logger.warning("turn %s failed: %s", turn.id, error.error_type)
        self.store.finish_turn(
            turn.id,
            status=st.ERROR,
            text=progress.text,
            error_type=error.error_type,
            error_message=str(error),
        )
        self._track_failure(user_id, turn, progress, error)
        return self.store.turn(turn.id)

    def _track_failure(self, user_id, turn, progress: _Progress, error) -> None:
        self._track(
            user_id,
            turn,
            progress,
            status="error",
            error_type=error.error_type,
            error_message=str(error),
        )

    def _track(self, user_id, turn, progress: _Progress, **outcome) -> None:
        elapsed_ms = round((time.perf_counter() - progress.started_s) * 1000)
        first = progress.first_token_s
        self.telemetry.track_turn(
            telemetry_id=turn.id,
            event_time=progress.started_us,
            session_id=turn.conversation_id,
            user_id=user_id,
            turn_index=turn.turn_index,
            app_name=self.settings.app_name,
            app_version=self.settings.app_version,
            endpoint=self.model.settings.base_url,
            model=self.model.settings.model,
            user_message=turn.user_message,
            assistant_message=progress.text,
            response_time_ms=elapsed_ms,
            ttft_ms=None if first is None else round(first * 1000),
            **outcome,
        )

    def _messages(self, turn: Turn) -> list[dict]:
        """The system prompt, the earlier answered turns, then this question."""
        messages = [{"role": "system", "content": self.model.settings.system_prompt}]
        for earlier in self.store.turns(turn.conversation_id):
            if earlier.turn_index >= turn.turn_index:
                break
            if earlier.status in (st.OK, st.STOPPED):
                messages.append({"role": "user", "content": earlier.user_message})
                messages.append(
                    {"role": "assistant", "content": earlier.assistant_message}
                )
        messages.append({"role": "user", "content": turn.user_message})
        return messages

    def stop(self, user_id: str, turn_id: str) -> None:
        self.owned_turn(user_id, turn_id)
        self.store.request_stop(turn_id)

    def retry(self, user_id: str, turn_id: str) -> Turn:
        """Replaces a failed turn with a new attempt at the same question."""
        failed = self.owned_turn(user_id, turn_id)
        if failed.status != st.ERROR:
            raise AppError(
                f"turn {turn_id!r} did not fail, so there is nothing to retry"
            )
        self.store.delete_turn(turn_id)
        return self.store.start_turn(
            failed.conversation_id, failed.user_message, liveness.current()
        )

    def rate(
        self, user_id: str, turn_id: str, rating: int, comment: str | None = None
    ) -> str:
        """Records a rating (+1 or -1) and sends a Feedback event; returns its id."""
        if rating not in (1, -1):
            raise AppError(f"rating must be 1 or -1, not {rating!r}")
        comment = _check_comment(comment)
        turn = self.owned_turn(user_id, turn_id)
        self.store.rate(turn_id, rating, comment)
        feedback_id = uuid.uuid4().hex
        self.telemetry.track_feedback(
            feedback_id=feedback_id,
            telemetry_id=turn.id,
            event_time=now_us(),
            session_id=turn.conversation_id,
            user_id=user_id,
            rating=rating,
            comment=comment,
        )
        return feedback_id

    def owned_turn(self, user_id: str, turn_id: str) -> Turn:
        """The turn if it is ``user_id``'s; else NotFound naming only ``turn_id``."""
        turn = self.store.turn(turn_id)
        try:
            self.store.conversation(turn.conversation_id, user_id)
        except NotFound:
            # Not the owner's conversation id: that would hand it to a stranger.
            raise NotFound(f"turn {turn_id!r} not found") from None
        return turn


def _check_question(question: str) -> str:
    if not isinstance(question, str) or not question.strip():
        raise AppError("type a question first")
    if len(question) > MAX_QUESTION_CHARS:
        raise AppError(
            f"the question has {len(question)} characters; "
            f"the limit is {MAX_QUESTION_CHARS}"
        )
    _check_unicode(question, "the question")
    return question.strip()


def _check_comment(comment: str | None) -> str | None:
    """The stripped comment, or None; too long is refused, never silently cut."""
    if comment is not None and not isinstance(comment, str):
        raise AppError("a comment is text")
    comment = (comment or "").strip()
    if len(comment) > MAX_COMMENT_CHARS:
        raise AppError(
            f"the comment has {len(comment)} characters; "
            f"the limit is {MAX_COMMENT_CHARS}: shorten it and send it again"
        )
    _check_unicode(comment, "the comment")
    return comment or None


def _check_unicode(text: str, what: str) -> None:
    # A lone surrogate (half of a UTF-16 pair) can arrive in the JSON of a
    # callback, but cannot be stored or sent as UTF-8.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        char = ord(text[error.start])
        raise AppError(
            f"{what} holds an invalid character (a lone UTF-16 surrogate, "
            f"U+{char:04X}) at position {error.start + 1}; retype it"
        ) from None
