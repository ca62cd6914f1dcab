"""The offline demo model: retrieval, answer composition and the OpenAI wire format."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from chatlake.app.demo_model import (
    DEMO_MODEL_ID,
    DemoModelSettings,
    create_demo_app,
    cut_at_stop,
    split_tokens,
)
from chatlake.app.retrieval import Bm25Index, Passage, split_markdown, stem, tokenize

DOC = """# Guide

Intro paragraph about nothing much.

## Starting everything

Run `make up` to start the catalog and the ingest server.

```
make up
```

## Tables

The chat_events table has one row per turn.
"""


@pytest.fixture
def doc_path(tmp_path):
    path = tmp_path / "guide.md"
    path.write_text(DOC, encoding="utf-8")
    return path


@pytest.fixture
def client(doc_path):
    settings = DemoModelSettings(
        token_delay_ms=0,
        first_token_delay_ms=0,
        passages_per_answer=1,
        documents=(doc_path,),
    )
    with TestClient(create_demo_app(settings)) as test_client:
        yield test_client


def test_split_markdown_packs_a_sections_paragraphs_with_their_code():
    passages = split_markdown("guide.md", DOC)
    assert [(p.heading, p.text) for p in passages] == [
        ("Guide", "Intro paragraph about nothing much."),
        (
            "Starting everything",
            "Run `make up` to start the catalog and the ingest server.\n\n"
            "```\nmake up\n```",
        ),
        ("Tables", "The chat_events table has one row per turn."),
    ]


def test_long_sections_are_cut_into_bounded_passages():
    paragraph = "word " * 100
    text = "# Big\n\n" + "\n\n".join([paragraph.strip()] * 4)
    passages = split_markdown("big.md", text)
    assert [len(p.text) for p in passages] == [499, 499, 499, 499]
    assert {p.heading for p in passages} == {"Big"}


def test_tokenize_drops_stop_words_and_stems():
    assert tokenize("How do I start the Starting tables?") == [
        "start",
        "start",
        "table",
    ]
    assert stem("runs") == "runs"  # too short to strip
    assert stem("streaming") == "stream"


def test_bm25_ranks_the_passage_sharing_rare_words_first():
    index = Bm25Index(
        [
            Passage("a", "x", "delta lake tables everywhere"),
            Passage("a", "y", "the ingest server writes a wal"),
            Passage("a", "z", "nothing relevant at all"),
        ]
    )
    hits = index.search("what does the wal of the ingest server do", limit=3)
    assert [p.heading for _, p in hits] == ["y"]
    assert index.search("zebra") == []


def test_split_tokens_and_stop_sequences():
    assert split_tokens("a  b\nc") == ["a", "  b", "\nc"]
    assert cut_at_stop("one two three", ["three", "two"]) == ("one ", True)
    assert cut_at_stop("one", ["x"]) == ("one", False)


def test_models_lists_the_demo_model(client):
    body = client.get("/v1/models").json()
    assert body["data"][0]["id"] == DEMO_MODEL_ID


def test_answer_comes_from_the_best_passage(client):
    response = client.post(
        "/v1/chat/completions",
        json={
            "model": DEMO_MODEL_ID,
            "messages": [{"role": "user", "content": "How to start?"}],
        },
    )
    body = response.json()
    assert response.status_code == 200
    assert body["choices"][0]["message"]["content"] == (
        "Here is what chatlake's documentation says:\n\n**Starting everything** "
        "(guide.md)\n\nRun `make up` to start the catalog and the ingest server."
        "\n\n```\nmake up\n```"
    )
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"] == {
        "prompt_tokens": 3,
        "completion_tokens": 24,  # 20 words of prose, 4 pieces of the code block
        "total_tokens": 27,
    }


def _stream(client, **extra):
    body = {
        "model": DEMO_MODEL_ID,
        "stream": True,
        "messages": [{"role": "user", "content": "How to start?"}],
        **extra,
    }
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    return [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]


def test_stream_honours_max_tokens_and_reports_usage(client):
    chunks = _stream(client, max_tokens=3, stream_options={"include_usage": True})
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[:-1])
    assert text == "Here is what"
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["usage"] == {
        "prompt_tokens": 3,
        "completion_tokens": 3,
        "total_tokens": 6,
    }


def test_stream_cuts_at_the_stop_sequence_without_usage_unless_asked(client):
    chunks = _stream(client, stop=["documentation"])
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == "Here is what chatlake's "
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all("usage" not in c for c in chunks)


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        (
            {"model": "gpt-x", "messages": [{"role": "user", "content": "q"}]},
            404,
            "model",
        ),
        ({"model": DEMO_MODEL_ID, "messages": []}, 400, "messages"),
        ({"model": DEMO_MODEL_ID, "messages": ["hi"]}, 400, "messages"),
        (
            {"model": DEMO_MODEL_ID, "messages": [{"role": "user"}], "max_tokens": 0},
            400,
            "max_tokens",
        ),
        (
            {"model": DEMO_MODEL_ID, "messages": [{"role": "user"}], "stop": [1]},
            400,
            "stop",
        ),
        (
            {
                "model": DEMO_MODEL_ID,
                "messages": [{"role": "user"}],
                "stop": list("abcde"),
            },
            400,
            "stop",
        ),
        ({"model": DEMO_MODEL_ID, "messages": [{"role": "user"}], "n": 2}, 400, "n"),
    ],
)
def test_bad_requests_get_openai_style_errors(client, body, status, param):
    response = client.post("/v1/chat/completions", json=body)
    assert response.status_code == status
    assert response.json()["error"]["param"] == param


def test_body_that_is_not_json_is_refused(client):
    response = client.post("/v1/chat/completions", content=b"{nope")
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "the request body is not JSON"


def test_oversized_body_is_refused_without_reading_it_all(client):
    body = (
        b'{"model": "chatlake-demo", "messages": [' + b" " * (5 * 1024 * 1024) + b"]}"
    )
    response = client.post("/v1/chat/completions", content=body)
    assert response.status_code == 413
    assert (
        response.json()["error"]["message"] == "the request body is over 4194304 bytes"
    )
