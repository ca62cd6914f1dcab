"""Simulated users for `chatlake demo`: real model calls, real telemetry.

Each user is a thread holding one conversation; it asks a few questions in
turn through ChatService (the same path the web page uses) and rates some
answers, so the tables and dashboards fill with realistic rows.
"""

from __future__ import annotations

import random
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

from chatlake.app import store as st
from chatlake.app.server import build_parts

FLUSH_TIMEOUT_S = 30.0
MAX_PARALLEL_USERS = 8

QUESTIONS = (
    "How do I start chatlake?",
    "What does the chat_events table hold?",
    "How does telemetry reach Delta Lake?",
    "How do I query the tables with SQL?",
    "What happens when the ingest server is down?",
    "Which model does the app use?",
    "How are duplicate rows avoided?",
    "What is in the feedback table?",
    "How do I rotate streams?",
    "Can I use Databricks Model Serving?",
)
COMMENTS = (
    "clear, thanks",
    "too long",
    "missed the point",
    "exactly what I needed",
    None,
)


def run_demo(
    users: int,
    turns: int,
    data_dir: str | None,
    feedback_rate: float,
    seed: int | None,
    progress: bool = True,
) -> dict:
    """Runs ``users`` x ``turns`` turns; returns counts and the telemetry state.

    ``errors`` counts the failed turns by error type.
    """
    parts = build_parts(data_dir)
    service = parts.service
    counts = {"turns": 0, "failed": 0, "ratings": 0, "errors": {}}
    lock = threading.Lock()
    master = random.Random(seed)
    seeds = [master.randrange(2**32) for _ in range(users)]

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=not progress,
    ) as bar:
        task = bar.add_task("simulated turns", total=users * turns)

        def one_user(user_seed: int) -> None:
            rng = random.Random(user_seed)
            user_id = f"demo-{uuid.UUID(int=rng.getrandbits(128)).hex}"
            conversation_id = None
            for _ in range(turns):
                turn = service.begin(user_id, conversation_id, rng.choice(QUESTIONS))
                conversation_id = turn.conversation_id
                done = service.run(user_id, turn)
                rated = done.status == st.OK and rng.random() < feedback_rate
                if rated:
                    rating = 1 if rng.random() < 0.7 else -1
                    service.rate(user_id, done.id, rating, rng.choice(COMMENTS))
                with lock:
                    counts["turns"] += 1
                    if done.status == st.ERROR:
                        counts["failed"] += 1
                        errors = counts["errors"]
                        errors[done.error_type] = errors.get(done.error_type, 0) + 1
                    counts["ratings"] += rated
                bar.advance(task)

        with ThreadPoolExecutor(min(users, MAX_PARALLEL_USERS)) as pool:
            for future in [pool.submit(one_user, s) for s in seeds]:
                future.result()

    service.telemetry.flush(FLUSH_TIMEOUT_S)
    counts["telemetry"] = (
        service.telemetry.status().describe().removeprefix("telemetry: ")
    )
    service.telemetry.close()
    service.model.close()
    return counts
