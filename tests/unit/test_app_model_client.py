"""ModelClient against endpoints that leave things out: usage, finish reason."""

from __future__ import annotations

import json

import pytest
from fastapi import FastAPI
from fastapi.responses import StreamingResponse

from chatlake.app.demo_model import DEMO_MODEL_ID, DemoModelSettings, create_demo_app
from chatlake.app.errors import ModelError
from chatlake.app.model_client import Delta, Finish, ModelClient
from chatlake.app.retrieval import PRIMER_PATH
from chatlake.app.settings import ModelSettings
from chatlake.app.testing import ServerThread

QUESTION = [{"role": "user", "content": "How do I start chatlake?"}]


def without_usage(inner):
    """An endpoint that ignores stream_options, as some servers do."""

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return await inner(scope, receive, send)
        message = await receive()
        body = json.loads(message["body"])
        body.pop("stream_options", None)
        sent = False

        async def replay():
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": json.dumps(body).encode()}

        return await inner(scope, replay, send)

    return app


def client_for(url: str) -> ModelClient:
    return ModelClient(ModelSettings(f"{url}/v1", "k", DEMO_MODEL_ID, "demo", 5.0))


def test_tokens_are_counted_when_the_endpoint_sends_no_usage():
    demo = create_demo_app(
        DemoModelSettings(
            token_delay_ms=0, first_token_delay_ms=0, documents=(PRIMER_PATH,)
        )
    )
    with ServerThread(without_usage(demo)) as server:
        events = list(client_for(server.url).stream(QUESTION))
    *deltas, finish = events
    assert all(isinstance(d, Delta) for d in deltas)
    text = "".join(d.text for d in deltas)
    assert isinstance(finish, Finish) and finish.counted
    assert (finish.input_tokens, finish.output_tokens) == (5, len(text.split()))
    assert finish.finish_reason == "stop"


def test_usage_from_the_endpoint_is_used_when_sent():
    demo = create_demo_app(
        DemoModelSettings(
            token_delay_ms=0, first_token_delay_ms=0, documents=(PRIMER_PATH,)
        )
    )
    with ServerThread(demo) as server:
        *_, finish = client_for(server.url).stream(QUESTION)
    assert not finish.counted
    assert finish.input_tokens == 5
    assert finish.request_id.startswith("chatcmpl-")


def test_stream_without_a_finish_reason_is_a_stream_error():
    broken = FastAPI()

    @broken.post("/v1/chat/completions")
    async def cut_short():
        chunk = {
            "id": "x",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": DEMO_MODEL_ID,
            "choices": [
                {"index": 0, "delta": {"content": "half"}, "finish_reason": None}
            ],
        }

        async def lines():
            yield f"data: {json.dumps(chunk)}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(lines(), media_type="text/event-stream")

    with ServerThread(broken) as server:
        with pytest.raises(ModelError, match="without a finish reason") as error:
            list(client_for(server.url).stream(QUESTION))
    assert error.value.error_type == "stream_error"


def test_unknown_model_is_not_found():
    demo = create_demo_app(DemoModelSettings(documents=(PRIMER_PATH,)))
    with ServerThread(demo) as server:
        client = ModelClient(ModelSettings(f"{server.url}/v1", "k", "gpt-9", "x", 5.0))
        with pytest.raises(ModelError, match="model 'gpt-9' does not exist") as error:
            list(client.stream(QUESTION))
    assert error.value.error_type == "not_found"
