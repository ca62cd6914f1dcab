"""What a poll of a running turn costs now that it checks the turn's worker.

The page polls every 150 ms. Each poll used to read the conversation's turns
from the store; it now goes through ChatService.turns, which also checks that
the conversation is the caller's and, for a running turn streamed by another
process, reads that process's /proc/<pid>/stat to tell whether it died. Both
are timed here in one run, on a conversation of 10 turns whose last one runs in
another live process (pid 1), as when a poll reaches the worker that does not
run the turn.

    .venv/bin/python benchmarks/app_poll.py [--polls 5000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from chatlake.app import liveness
from chatlake.app.model_client import ModelClient
from chatlake.app.settings import AppSettings, ModelSettings
from chatlake.app.store import ConversationStore
from chatlake.app.telemetry_sink import TelemetrySink
from chatlake.app.turns import ChatService

POLL_INTERVAL_US = 150_000
ROUNDS = 5


def build_service(data_dir: Path) -> tuple[ChatService, str]:
    """A service and a conversation: 9 answered turns, then one running elsewhere."""
    settings = AppSettings(data_dir)
    store = ConversationStore(settings.store_path)
    # Never called: a poll reads the store only.
    model = ModelSettings.from_env(
        {"OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "CHATLAKE_MODEL": "m"}
    )
    service = ChatService(store, ModelClient(model), TelemetrySink(None), settings)
    conversation = store.create_conversation("bench", "a question")
    for _ in range(9):
        turn = store.start_turn(conversation.id, "a question")
        store.finish_turn(turn.id, status="ok", text="a" * 2000, finish_reason="stop")
    host = liveness.current().split("/")[0]
    init = f"{host}/1/{liveness._start_time(1)}"
    store.start_turn(conversation.id, "a question", init)
    return service, conversation.id


def best_us(poll, polls: int) -> float:
    """The fastest of a few rounds, in microseconds per call."""
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for _ in range(polls):
            poll()
        best = min(best, (time.perf_counter() - started) / polls)
    return best * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--polls", type=int, default=5000, help="calls per round")
    polls = parser.parse_args().polls

    with tempfile.TemporaryDirectory() as data_dir:
        service, conversation_id = build_service(Path(data_dir))
        before = best_us(lambda: service.store.turns(conversation_id), polls)
        after = best_us(lambda: service.turns("bench", conversation_id), polls)

    added = after - before
    print(f"store.turns (the poll's read before):  {before:8.1f} us")
    print(f"ChatService.turns (owner + liveness):  {after:8.1f} us")
    print(
        f"added per poll: {added:.1f} us ({after / before:.2f}x), "
        f"{added / POLL_INTERVAL_US:.3%} of the 150 ms poll interval"
    )


if __name__ == "__main__":
    main()
