"""ChatService, the backend path of a turn, against the real demo model on loopback.

Telemetry is a recording stand-in for TelemetryClient here, so the exact
ChatTurn and Feedback events can be asserted; the stack tests send them for real.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from chatlake.app import layout, liveness
from chatlake.app import store as st
from chatlake.app.demo_model import DemoModelSettings, create_demo_app
from chatlake.app.errors import AppError
from chatlake.app.model_client import ModelClient
from chatlake.app.retrieval import PRIMER_PATH
from chatlake.app.settings import AppSettings, ModelSettings
from chatlake.app.store import ConversationStore, NotFound
from chatlake.app.telemetry_sink import TelemetrySink
from chatlake.app.testing import ServerThread, free_port, scripted_model, wait_until
from chatlake.app.turns import ChatService
from chatlake.telemetry import ChatTurn, Feedback


class RecordingClient:
    def __init__(self) -> None:
        self.events: list = []

    def track(self, event) -> None:
        self.events.append(event)

    def status(self):
        raise RuntimeError("status broke")


@pytest.fixture(scope="module")
def model_url():
    settings = DemoModelSettings(
        token_delay_ms=1, first_token_delay_ms=5, documents=(PRIMER_PATH,)
    )
    with ServerThread(scripted_model(create_demo_app(settings), hang_s=5)) as server:
        yield f"{server.url}/v1"


def make_service(tmp_path, base_url, timeout_s=10.0):
    model = ModelSettings(
        base_url, "k", "chatlake-demo", "offline demo model", timeout_s
    )
    recorder = RecordingClient()
    settings = AppSettings(tmp_path, "test-app", "9.9")
    store = ConversationStore(settings.store_path)
    service = ChatService(store, ModelClient(model), TelemetrySink(recorder), settings)
    return service, recorder


def test_turn_streams_into_the_store_and_tracks_one_chat_turn(tmp_path, model_url):
    service, recorder = make_service(tmp_path, model_url)
    turn = service.begin("u1", None, "  How do I start chatlake?  ")
    done = service.run("u1", turn)

    assert done.status == st.OK
    assert done.user_message == "How do I start chatlake?"
    assert done.assistant_message.startswith(
        "Here is what chatlake's documentation says:"
    )
    (event,) = recorder.events
    assert isinstance(event, ChatTurn)
    assert event.telemetry_id == turn.id
    assert event.session_id == turn.conversation_id
    assert (event.user_id, event.turn_index, event.status) == ("u1", 0, "ok")
    assert (event.app_name, event.app_version) == ("test-app", "9.9")
    assert (event.model, event.endpoint) == ("chatlake-demo", model_url)
    assert event.finish_reason == "stop"
    assert event.assistant_message == done.assistant_message
    assert event.input_tokens == 13  # the system prompt (8) plus the question (5)
    assert event.output_tokens == len(done.assistant_message.split())
    assert 0 <= event.ttft_ms <= event.response_time_ms
    assert not event.HasField("error_type")


def test_second_turn_sends_the_history(tmp_path, model_url):
    service, recorder = make_service(tmp_path, model_url)
    first = service.run("u1", service.begin("u1", None, "How do I start chatlake?"))
    second = service.run("u1", service.begin("u1", first.conversation_id, "And SQL?"))

    assert second.turn_index == 1
    history_tokens = 8 + 5 + len(first.assistant_message.split()) + 2
    assert recorder.events[1].input_tokens == history_tokens
    titles = [c.title for c in service.store.conversations("u1")]
    assert titles == ["How do I start chatlake?"]


def test_failing_endpoint_records_an_error_turn_and_retry_replaces_it(
    tmp_path, model_url
):
    service, recorder = make_service(tmp_path, model_url)
    failed = service.run("u1", service.begin("u1", None, "[fail-once] hello"))

    assert (failed.status, failed.error_type) == (st.ERROR, "server_error")
    assert (
        failed.error_message
        == "model endpoint server_error: HTTP 500: scripted failure"
    )
    event = recorder.events[0]
    assert (event.status, event.error_type) == ("error", "server_error")
    assert not event.HasField("ttft_ms")

    retried = service.run("u1", service.retry("u1", failed.id))
    assert retried.status == st.OK
    assert [t.id for t in service.store.turns(failed.conversation_id)] == [retried.id]
    with pytest.raises(AppError, match="did not fail"):
        service.retry("u1", retried.id)


def test_timeout_and_refused_connection_become_error_types(tmp_path, model_url):
    service, recorder = make_service(tmp_path, model_url, timeout_s=0.5)
    hung = service.run("u1", service.begin("u1", None, "[hang] hello"))
    assert hung.error_type == "timeout"

    closed = f"http://127.0.0.1:{free_port()}/v1"
    service, recorder = make_service(tmp_path / "b", closed)
    refused = service.run("u1", service.begin("u1", None, "hello"))
    assert refused.error_type == "connection_error"
    assert recorder.events[0].status == "error"


def test_stop_request_ends_the_stream_with_finish_reason_stopped(tmp_path):
    settings = DemoModelSettings(
        token_delay_ms=20, first_token_delay_ms=0, documents=(PRIMER_PATH,)
    )
    with ServerThread(create_demo_app(settings)) as server:
        service, recorder = make_service(tmp_path, f"{server.url}/v1")
        turn = service.begin("u1", None, "How does telemetry reach Delta Lake?")
        finished = threading.Event()
        service.submit("u1", turn).add_done_callback(lambda _: finished.set())

        def some_text():
            return service.store.turn(turn.id).assistant_message

        wait_until(some_text, 10, what="the first tokens")
        service.stop("u1", turn.id)
        assert finished.wait(10)

    stopped = service.store.turn(turn.id)
    assert stopped.status == st.STOPPED
    assert recorder.events[0].finish_reason == "stopped"
    assert recorder.events[0].output_tokens == len(stopped.assistant_message.split())


def test_ratings_send_feedback_tied_to_the_turn(tmp_path, model_url):
    service, recorder = make_service(tmp_path, model_url)
    turn = service.run("u1", service.begin("u1", None, "How do I start chatlake?"))
    service.rate("u1", turn.id, -1)
    service.rate("u1", turn.id, 1, "  clear  ")

    down, up = recorder.events[1:]
    assert isinstance(up, Feedback)
    assert (down.rating, up.rating) == (-1, 1)
    assert down.telemetry_id == up.telemetry_id == turn.id
    assert down.feedback_id != up.feedback_id
    assert up.comment == "clear" and not down.HasField("comment")
    assert (up.session_id, up.user_id) == (turn.conversation_id, "u1")
    saved = service.store.turn(turn.id)
    assert (saved.rating, saved.comment) == (1, "clear")


def test_other_browsers_cannot_touch_a_conversation(tmp_path, model_url):
    service, recorder = make_service(tmp_path, model_url)
    turn = service.run("u1", service.begin("u1", None, "hello"))
    # Told only of the turn id they gave, never of the owner's conversation id.
    unknown = f"^turn {turn.id!r} not found$"
    with pytest.raises(NotFound, match=unknown):
        service.rate("u2", turn.id, 1)
    with pytest.raises(NotFound):
        service.begin("u2", turn.conversation_id, "sneaky")
    with pytest.raises(NotFound, match=unknown):
        service.stop("u2", turn.id)
    with pytest.raises(NotFound, match=unknown):
        service.retry("u2", turn.id)
    with pytest.raises(NotFound):
        service.turns("u2", turn.conversation_id)
    assert service.store.conversations("u2") == []
    assert service.store.turn(turn.id).rating is None


@pytest.mark.parametrize(
    ("question", "message"),
    [
        ("   ", "type a question first"),
        ("x" * 8001, "the question has 8001 characters"),
    ],
)
def test_bad_questions_are_refused_before_anything_is_stored(
    tmp_path, question, message
):
    service, recorder = make_service(tmp_path, "http://127.0.0.1:9/v1")
    with pytest.raises(AppError, match=message):
        service.begin("u1", None, question)
    assert service.store.conversations("u1") == []


def test_bad_rating_is_refused(tmp_path, model_url):
    service, recorder = make_service(tmp_path, model_url)
    turn = service.run("u1", service.begin("u1", None, "hello"))
    with pytest.raises(AppError, match="rating must be 1 or -1, not 0"):
        service.rate("u1", turn.id, 0)
    assert len(recorder.events) == 1


def test_one_running_turn_per_conversation(tmp_path, model_url):
    service, recorder = make_service(tmp_path, model_url)
    turn = service.begin("u1", None, "hello")
    with pytest.raises(AppError, match="still running"):
        service.begin("u1", turn.conversation_id, "again")


def test_telemetry_failures_never_break_a_turn(tmp_path, model_url):
    class Broken:
        def track(self, event):
            raise RuntimeError("boom")

    service, _ = make_service(tmp_path, model_url)
    service.telemetry = TelemetrySink(Broken())
    done = service.run("u1", service.begin("u1", None, "hello"))
    assert done.status == st.OK
    assert service.telemetry.status().describe() == "telemetry: not configured"


def test_shutdown_interrupts_a_running_turn_and_tracks_it(tmp_path, model_url):
    service, recorder = make_service(tmp_path, model_url)
    turn = service.begin("u1", None, "[slow] how do I start chatlake?")
    future = service.submit("u1", turn)
    wait_until(lambda: service.store.turn(turn.id).assistant_message, 10)

    assert service.shutdown(grace_s=0.2) == 1

    done = service.store.turn(turn.id)
    assert (done.status, done.error_type) == (st.ERROR, "interrupted")
    assert done.error_message == "the app stopped during this turn"
    title, detail, _ = layout.answer(done).children
    assert (title.children, detail.children) == (
        "The app stopped during this turn.",
        "the app stopped during this turn",
    )
    (event,) = recorder.events
    assert (event.telemetry_id, event.status) == (turn.id, "error")
    assert event.error_type == "interrupted"
    assert event.assistant_message.startswith("Here is")
    assert future.result(5).status == st.ERROR


def test_shutdown_lets_a_turn_finish_within_the_grace(tmp_path, model_url):
    service, recorder = make_service(tmp_path, model_url)
    turn = service.begin("u1", None, "How do I start chatlake?")
    service.submit("u1", turn)

    assert service.shutdown(grace_s=10) == 0

    assert service.store.turn(turn.id).status == st.OK
    assert [(e.telemetry_id, e.status) for e in recorder.events] == [(turn.id, "ok")]


def test_shutdown_settles_a_turn_whose_model_hangs_exactly_once(tmp_path, model_url):
    service, recorder = make_service(tmp_path, model_url)
    turn = service.begin("u1", None, "[hang] anyone there?")
    future = service.submit("u1", turn)
    wait_until(lambda: service._active[turn.id].progress, 5)

    assert service.shutdown(grace_s=0.1) == 1

    assert service.store.turn(turn.id).error_type == "interrupted"
    future.result(15)  # the hang ends; the late thread must not settle it again
    assert [(e.status, e.error_type) for e in recorder.events] == [
        ("error", "interrupted")
    ]
    assert service.store.turn(turn.id).error_type == "interrupted"


# A worker process that starts a turn, streams a little of it, then waits to be
# killed: what a gunicorn worker looks like to the store when SIGKILL hits it.
WORKER_SCRIPT = """
import sys, time
from pathlib import Path
from chatlake.app import liveness
from chatlake.app.store import ConversationStore
store = ConversationStore(Path(sys.argv[1]))
turn = store.start_turn(sys.argv[2], "How do I start chatlake?", liveness.current())
store.write_text(turn.id, "Here is what")
print(turn.id, flush=True)
time.sleep(60)
"""


def turn_of_a_killed_worker(service, conversation_id) -> st.Turn:
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER_SCRIPT, str(service.store.path), conversation_id],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        turn_id = worker.stdout.readline().strip()
    finally:
        worker.kill()
        worker.wait(10)
        worker.stdout.close()
    return service.store.turn(turn_id)


def test_a_turn_whose_worker_died_ends_interrupted_and_is_tracked_once(
    tmp_path, model_url
):
    service, recorder = make_service(tmp_path, model_url)
    conversation = service.store.create_conversation("u1", "How do I start chatlake?")
    orphan = turn_of_a_killed_worker(service, conversation.id)
    assert orphan.status == st.RUNNING

    (done,) = service.turns("u1", conversation.id)
    other_worker, _ = make_service(tmp_path, model_url)
    assert other_worker.turns("u1", conversation.id) == [done]

    assert (done.id, done.status, done.error_type) == (
        orphan.id,
        st.ERROR,
        "interrupted",
    )
    assert done.error_message == "the app stopped during this turn"
    assert done.assistant_message == "Here is what"
    (event,) = recorder.events
    assert (event.telemetry_id, event.session_id) == (orphan.id, conversation.id)
    assert (event.user_id, event.turn_index) == ("u1", 0)
    assert (event.status, event.error_type) == ("error", "interrupted")
    assert event.assistant_message == "Here is what"
    assert event.event_time == round(orphan.created_at * 1_000_000)
    assert not event.HasField("ttft_ms")


def test_the_next_question_goes_through_once_the_dead_workers_turn_ends(
    tmp_path, model_url
):
    service, recorder = make_service(tmp_path, model_url)
    conversation = service.store.create_conversation("u1", "How do I start chatlake?")
    orphan = turn_of_a_killed_worker(service, conversation.id)

    turn = service.begin("u1", conversation.id, "And SQL?")

    assert service.store.turn(orphan.id).error_type == "interrupted"
    assert (turn.turn_index, turn.status) == (1, st.RUNNING)
    assert turn.worker == liveness.current()


def test_a_turn_of_a_live_worker_keeps_running(tmp_path, model_url):
    service, recorder = make_service(tmp_path, model_url)
    turn = service.begin("u1", None, "hello")
    other_host = service.store.start_turn(
        service.store.create_conversation("u1", "q").id, "q", "elsewhere/1/1"
    )

    assert [t.status for t in service.turns("u1", turn.conversation_id)] == [st.RUNNING]
    assert service.turns("u1", other_host.conversation_id)[0].status == st.RUNNING
    assert recorder.events == []


def test_liveness_tells_a_reused_pid_from_the_worker_that_had_it():
    host, pid, started = liveness.current().split("/")

    assert int(pid) == os.getpid() and started.isdigit()
    assert not liveness.is_gone(liveness.current())
    assert liveness.is_gone(f"{host}/{pid}/{int(started) + 1}")  # a reused pid
    assert liveness.is_gone(f"{host}/{2**22 + 1}/{started}")  # above pid_max
    assert not liveness.is_gone(f"another-host/{2**22 + 1}/{started}")
    assert not liveness.is_gone("garbled")
