"""The offline demo model: an OpenAI-compatible chat completions endpoint.

It answers from chatlake's own documentation (the passages BM25 ranks highest
for the last user message), streams the answer word by word with a delay like a
real model's, and honours ``max_tokens``, ``stop`` and ``stream_options``. It
binds to loopback only and needs no key: it exists so the app, its streaming path
and its tests always have a model to talk to.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from chatlake import config
from chatlake.app.retrieval import Bm25Index, default_documents, load_index
from chatlake.errors import ConfigError

DEMO_MODEL_ID = "chatlake-demo"
DEMO_MODEL_LABEL = "offline demo model"
MAX_STOP_SEQUENCES = 4
MAX_BODY_BYTES = 4 * 1024 * 1024

_TOKEN = re.compile(r"\s*\S+|\s+")


# A minute: a longer pause between tokens would look like a hung stream.
MAX_DELAY_MS = 60_000.0


@dataclass(frozen=True)
class DemoModelSettings:
    token_delay_ms: float = 20.0
    first_token_delay_ms: float = 150.0
    passages_per_answer: int = 2
    documents: tuple[Path, ...] = ()

    def __post_init__(self) -> None:
        for name in ("token_delay_ms", "first_token_delay_ms"):
            value = getattr(self, name)
            problem = config.number_problem(value, maximum=MAX_DELAY_MS)
            if problem:
                raise ConfigError(f"demo model {name} {problem}, got {value!r}")


class RequestError(Exception):
    """A request the endpoint refuses with 400, in OpenAI's error format."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class Completion:
    tokens: list[str]
    finish_reason: str
    prompt_tokens: int


def split_tokens(text: str) -> list[str]:
    """Pieces of text the demo streams and counts as tokens: a word with its spacing."""
    return _TOKEN.findall(text)


def compose_answer(index: Bm25Index, question: str, passages: int) -> str:
    """Markdown built from the passages that best match the question."""
    hits = index.search(question, limit=passages)
    if not hits:
        return (
            "The offline demo model found nothing about that in chatlake's "
            "documentation. Try asking how to start chatlake, what the "
            "`chat_events` table holds, or how telemetry reaches Delta Lake."
        )
    parts = ["Here is what chatlake's documentation says:"]
    for _, passage in hits:
        parts.append(f"**{passage.heading}** ({passage.source})\n\n{passage.text}")
    return "\n\n".join(parts)


def cut_at_stop(text: str, stop: list[str]) -> tuple[str, bool]:
    """The text before the earliest stop sequence, and whether one was found."""
    positions = [text.find(s) for s in stop if s and s in text]
    if not positions:
        return text, False
    return text[: min(positions)], True


def _parse_stop(value: Any) -> list[str]:
    if value is None:
        return []
    stop = [value] if isinstance(value, str) else value
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise RequestError("stop must be a string or a list of strings", "stop")
    if len(stop) > MAX_STOP_SEQUENCES:
        raise RequestError(f"stop takes at most {MAX_STOP_SEQUENCES} sequences", "stop")
    return stop


def _parse_max_tokens(body: dict) -> int | None:
    value = body.get("max_completion_tokens", body.get("max_tokens"))
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RequestError("max_tokens must be a positive integer", "max_tokens")
    return value


def _parse_messages(body: dict) -> list[dict]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError("messages must be a non-empty list", "messages")
    for position, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise RequestError(f"messages[{position}] needs a string role", "messages")
        if not isinstance(message.get("content", ""), str | list | None):
            raise RequestError(f"messages[{position}].content is malformed", "messages")
    return messages


def _text_of(message: dict) -> str:
    content = message.get("content") or ""
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content


class DemoModel:
    """Turns a chat completions request into a completion."""

    def __init__(self, settings: DemoModelSettings) -> None:
        self.settings = settings
        documents = list(settings.documents) or default_documents()
        self.index = load_index(documents)

    def complete(self, body: dict) -> Completion:
        messages = _parse_messages(body)
        stop = _parse_stop(body.get("stop"))
        max_tokens = _parse_max_tokens(body)
        if body.get("n", 1) != 1:
            raise RequestError("the demo model only returns n=1", "n")

        questions = [_text_of(m) for m in messages if m["role"] == "user"]
        answer = compose_answer(
            self.index,
            questions[-1] if questions else "",
            self.settings.passages_per_answer,
        )
        # A stop sequence and the natural end both finish with "stop".
        answer, _ = cut_at_stop(answer, stop)
        tokens = split_tokens(answer)
        finish_reason = "stop"
        if max_tokens is not None and len(tokens) > max_tokens:
            tokens, finish_reason = tokens[:max_tokens], "length"

        prompt_tokens = sum(len(split_tokens(_text_of(m))) for m in messages)
        return Completion(tokens, finish_reason, prompt_tokens)


def _usage(completion: Completion) -> dict:
    completion_tokens = len(completion.tokens)
    return {
        "prompt_tokens": completion.prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": completion.prompt_tokens + completion_tokens,
    }


def _error(
    status: int, message: str, kind: str, param: str | None = None
) -> JSONResponse:
    body = {"error": {"message": message, "type": kind, "param": param, "code": None}}
    return JSONResponse(body, status_code=status)


def create_demo_app(settings: DemoModelSettings | None = None) -> FastAPI:
    """The FastAPI application serving /v1/models and /v1/chat/completions."""
    model = DemoModel(settings or DemoModelSettings())
    api = FastAPI(title="chatlake offline demo model", docs_url=None, redoc_url=None)

    @api.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    @api.get("/v1/models")
    async def models() -> dict:
        entry = {
            "id": DEMO_MODEL_ID,
            "object": "model",
            "created": 0,
            "owned_by": "chatlake",
        }
        return {"object": "list", "data": [entry]}

    @api.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        raw = bytearray()
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > MAX_BODY_BYTES:
                message = f"the request body is over {MAX_BODY_BYTES} bytes"
                return _error(413, message, "invalid_request_error")
        try:
            body = json.loads(raw)
        except ValueError:
            return _error(400, "the request body is not JSON", "invalid_request_error")
        if not isinstance(body, dict):
            return _error(
                400, "the request body must be a JSON object", "invalid_request_error"
            )
        if body.get("model") != DEMO_MODEL_ID:
            message = (
                f"model {body.get('model')!r} does not exist; use {DEMO_MODEL_ID!r}"
            )
            return _error(404, message, "invalid_request_error", "model")
        try:
            completion = model.complete(body)
        except RequestError as error:
            return _error(400, str(error), "invalid_request_error", error.param)

        if body.get("stream"):
            options = body.get("stream_options") or {}
            include_usage = isinstance(options, dict) and bool(
                options.get("include_usage")
            )
            stream = _stream(completion, model.settings, include_usage)
            return StreamingResponse(stream, media_type="text/event-stream")
        return _whole(completion)

    return api


def _whole(completion: Completion) -> dict:
    message = {"role": "assistant", "content": "".join(completion.tokens)}
    choice = {"index": 0, "message": message, "finish_reason": completion.finish_reason}
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": DEMO_MODEL_ID,
        "choices": [choice],
        "usage": _usage(completion),
    }


async def _stream(
    completion: Completion, settings: DemoModelSettings, include_usage: bool
) -> AsyncIterator[str]:
    common = {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": DEMO_MODEL_ID,
    }

    def chunk(delta: dict, finish_reason: str | None = None, **extra: Any) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
        return f"data: {json.dumps({**common, 'choices': [choice], **extra})}\n\n"

    await asyncio.sleep(settings.first_token_delay_ms / 1000)
    yield chunk({"role": "assistant", "content": ""})
    for position, token in enumerate(completion.tokens):
        if position:
            await asyncio.sleep(settings.token_delay_ms / 1000)
        yield chunk({"content": token})
    yield chunk({}, completion.finish_reason)
    if include_usage:
        usage = {**common, "choices": [], "usage": _usage(completion)}
        yield f"data: {json.dumps(usage)}\n\n"
    yield "data: [DONE]\n\n"
