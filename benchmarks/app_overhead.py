"""The app's overhead per turn over the raw model call, against the demo endpoint.

Runs N turns through ChatService (conversation store, streaming buffer writes,
telemetry track into a real TelemetryClient spooling to a temp dir) and N raw
OpenAI-SDK streams of the same question, interleaved, in one run. The demo
model streams with no delay so the model's own time is as small as it gets.

Overhead per turn = the turn's wall time minus the time spent inside the model
stream (measured around the same iterator), so the model's own time is
excluded. Target: p99 <= 5 ms.

    .venv/bin/python benchmarks/app_overhead.py [--turns 300]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from chatlake.app.demo_model import DEMO_MODEL_ID
from chatlake.app.model_client import ModelClient
from chatlake.app.retrieval import PRIMER_PATH
from chatlake.app.settings import AppSettings, ModelSettings
from chatlake.app.store import ConversationStore
from chatlake.app.telemetry_sink import TelemetrySink
from chatlake.app.testing import ChildProcess, free_port
from chatlake.app.turns import ChatService

QUESTION = "How does telemetry reach Delta Lake?"
TARGET_P99_MS = 5.0


class TimedModel(ModelClient):
    """The real client, adding up the time spent inside its stream."""

    spent_s = 0.0

    def stream(self, messages, should_stop=lambda: False):
        inner = super().stream(messages, should_stop)
        while True:
            started = time.perf_counter()
            try:
                event = next(inner)
            except StopIteration:
                self.spent_s += time.perf_counter() - started
                return
            self.spent_s += time.perf_counter() - started
            yield event


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def raw_turn(client: ModelClient) -> float:
    started = time.perf_counter()
    for _ in client.stream([{"role": "user", "content": QUESTION}]):
        pass
    return time.perf_counter() - started


def app_turn(service: ChatService, model: TimedModel, conversation: str | None):
    model.spent_s = 0.0
    started = time.perf_counter()
    turn = service.begin("bench", conversation, QUESTION)
    done = service.run("bench", turn)
    total = time.perf_counter() - started
    assert done.status == "ok", done.error_message
    return total, total - model.spent_s, done.conversation_id


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=300)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        # The model runs in its own process, as in production: in this one it
        # would compete with the measured path for the GIL.
        port = free_port()
        argv = ["model", "--port", str(port), "--token-delay-ms", "0"]
        argv += ["--first-token-delay-ms", "0", "--docs", str(PRIMER_PATH)]
        model = ChildProcess(argv, Path(tmp) / "model.log")
        try:
            model.wait_http(f"http://127.0.0.1:{port}/healthz")
            raw, total, overhead = measure(
                args.turns, Path(tmp), f"http://127.0.0.1:{port}/v1"
            )
        finally:
            model.stop()
    report(args.turns, raw, total, overhead)


def measure(turns: int, tmp: Path, base_url: str):
    os.environ["CHATLAKE_SPOOL_DIR"] = str(tmp / "spool")
    for name in ("ZEROBUS_SERVER_ENDPOINT", "ZEROBUS_HOST"):
        os.environ.pop(name, None)
    settings = ModelSettings(base_url, "k", DEMO_MODEL_ID, "demo")
    raw_client, timed = ModelClient(settings), TimedModel(settings)
    app_settings = AppSettings(tmp)
    store = ConversationStore(app_settings.store_path)
    service = ChatService(store, timed, TelemetrySink.from_env(), app_settings)

    raw, total, overhead = [], [], []
    conversation = None
    for i in range(turns + 20):
        # A fresh conversation every 5 turns keeps the history (and so the
        # prompt) the same size as a typical chat.
        if i % 5 == 0:
            conversation = None
        raw_s = raw_turn(raw_client)
        total_s, overhead_s, conversation = app_turn(service, timed, conversation)
        if i >= 20:  # warm-up
            raw.append(raw_s * 1000)
            total.append(total_s * 1000)
            overhead.append(overhead_s * 1000)
    service.telemetry.close()
    return raw, total, overhead


def report(turns: int, raw: list, total: list, overhead: list) -> None:
    def line(name, values):
        p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
        print(f"{name:<28} p50 {p50:8.2f} ms   p99 {p99:8.2f} ms")

    print(f"{turns} turns against the demo endpoint (no token delay)")
    line("raw model call (baseline)", raw)
    line("app turn, wall time", total)
    line("app overhead (excl. model)", overhead)
    ratio = statistics.median(total) / statistics.median(raw)
    print(f"app turn / raw call, p50 ratio: {ratio:.3f}")
    p99 = percentile(overhead, 0.99)
    verdict = "meets" if p99 <= TARGET_P99_MS else "misses"
    print(f"overhead p99 {p99:.2f} ms {verdict} the {TARGET_P99_MS:.0f} ms target")


if __name__ == "__main__":
    main()
