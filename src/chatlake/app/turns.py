"""The backend path of one chat turn, shared by the Dash app, `chatlake demo` and
the overhead benchmark.

``ChatService.begin`` records the question and returns at once; ``run`` streams
the answer into the store (which the page polls), then records the ChatTurn
event. Ratings record a Feedback event tied to the turn's telemetry_id.
"""

from __future__ import annotations

import logging
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from chatlake.app import store as st
from chatlake.app.errors import AppError, ModelError
from chatlake.app.model_client import Delta, ModelClient
from chatlake.app.settings import AppSettings
from chatlake.app.store import ConversationStore, Turn
from chatlake.app.telemetry_sink import TelemetrySink, now_us

logger = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 8000
MAX_COMMENT_CHARS = 2000
MAX_CONCURRENT_TURNS = 16
WRITE_INTERVAL_S = 0.05  # how stale the polled answer may be


@dataclass
class _Progress:
    started_us: int  # wall clock, for event_time
    started_s: float  # perf_counter, for durations
    text: str = ""
    first_token_s: float | None = None
    last_write_s: float = 0.0
    stop_requested: bool = False


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

    def close(self, wait: bool = True) -> None:
        """Stops taking turns; ``wait`` lets running turns finish and be tracked."""
        self._pool.shutdown(wait=wait, cancel_futures=not wait)

    def begin(self, user_id: str, conversation_id: str | None, question: str) -> Turn:
        """Records the question (in a new conversation when none is given)."""
        question = _check_question(question)
        if conversation_id is None:
            conversation_id = self.store.create_conversation(user_id, question).id
        else:
            self.store.conversation(conversation_id, user_id)
        if any(t.status == st.RUNNING for t in self.store.turns(conversation_id)):
            raise AppError(
                "a turn is still running in this conversation; wait or stop it"
            )
        return self.store.start_turn(conversation_id, question)

    def submit(self, user_id: str, turn: Turn) -> Future[Turn]:
        """Runs the turn on a worker thread."""
        return self._pool.submit(self._run_logged, user_id, turn)

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
        try:
            finish = self._stream(turn, self._messages(turn), progress)
        except ModelError as error:
            return self._fail(user_id, turn, progress, error)
        except Exception as error:  # noqa: BLE001 - a bug still ends the turn visibly
            logger.exception("turn %s failed unexpectedly", turn.id)
            kind = type(error).__name__
            failure = ModelError(f"unexpected failure: {kind}", "unexpected")
            return self._fail(user_id, turn, progress, failure)

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
        for event in self.model.stream(messages, lambda: progress.stop_requested):
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
        logger.warning("turn %s failed: %s", turn.id, error.error_type)
        self.store.finish_turn(
            turn.id,
            status=st.ERROR,
            text=progress.text,
            error_type=error.error_type,
            error_message=str(error),
        )
        self._track(
            user_id,
            turn,
            progress,
            status="error",
            error_type=error.error_type,
            error_message=str(error),
        )
        return self.store.turn(turn.id)

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
        self._owned_turn(user_id, turn_id)
        self.store.request_stop(turn_id)

    def retry(self, user_id: str, turn_id: str) -> Turn:
        """Replaces a failed turn with a new attempt at the same question."""
        failed = self._owned_turn(user_id, turn_id)
        if failed.status != st.ERROR:
            raise AppError(
                f"turn {turn_id!r} did not fail, so there is nothing to retry"
            )
        self.store.delete_turn(turn_id)
        return self.store.start_turn(failed.conversation_id, failed.user_message)

    def rate(
        self, user_id: str, turn_id: str, rating: int, comment: str | None = None
    ) -> str:
        """Records a rating (+1 or -1) and sends a Feedback event; returns its id."""
        if rating not in (1, -1):
            raise AppError(f"rating must be 1 or -1, not {rating!r}")
        comment = (comment or "").strip()[:MAX_COMMENT_CHARS] or None
        turn = self._owned_turn(user_id, turn_id)
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

    def _owned_turn(self, user_id: str, turn_id: str) -> Turn:
        turn = self.store.turn(turn_id)
        self.store.conversation(turn.conversation_id, user_id)
        return turn


def _check_question(question: str) -> str:
    if not isinstance(question, str) or not question.strip():
        raise AppError("type a question first")
    if len(question) > MAX_QUESTION_CHARS:
        raise AppError(
            f"the question has {len(question)} characters; "
            f"the limit is {MAX_QUESTION_CHARS}"
        )
    return question.strip()
