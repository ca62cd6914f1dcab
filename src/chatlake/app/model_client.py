"""The one model client: the OpenAI SDK, streaming, for any compatible endpoint.

``ModelClient.stream(messages)`` yields ``Delta`` pieces as they arrive and ends
with one ``Finish`` carrying the finish reason and token counts. Every failure
becomes a ``ModelError`` whose ``error_type`` is what telemetry records.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import openai

from chatlake.app.demo_model import split_tokens
from chatlake.app.errors import ModelError
from chatlake.app.oauth import TokenSource
from chatlake.app.settings import ModelSettings

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Delta:
    text: str


@dataclass(frozen=True)
class Finish:
    finish_reason: str
    input_tokens: int
    output_tokens: int
    request_id: str | None
    counted: bool  # True when the endpoint sent no usage and the words were counted


# (exception class, error_type) in the order they are tested: subclasses first.
_ERROR_TYPES: tuple[tuple[type[BaseException], str], ...] = (
    (openai.APITimeoutError, "timeout"),
    (openai.APIConnectionError, "connection_error"),
    (openai.AuthenticationError, "auth_error"),
    (openai.PermissionDeniedError, "auth_error"),
    (openai.NotFoundError, "not_found"),
    (openai.RateLimitError, "rate_limited"),
    (openai.BadRequestError, "bad_request"),
    (openai.UnprocessableEntityError, "bad_request"),
    (openai.InternalServerError, "server_error"),
    (openai.APIStatusError, "http_error"),
    (openai.APIError, "stream_error"),
)


def classify(error: BaseException) -> ModelError:
    """A ModelError with a short type and a message that never quotes the prompt."""
    for kind, error_type in _ERROR_TYPES:
        if isinstance(error, kind):
            status = getattr(error, "status_code", None)
            detail = f"HTTP {status}: " if status else ""
            return ModelError(
                f"model endpoint {error_type}: {detail}{_reason(error)}", error_type
            )
    return ModelError(f"model endpoint failed: {type(error).__name__}", "unexpected")


def _reason(error: BaseException) -> str:
    body = getattr(error, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return inner["message"][:300]
    return str(error)[:300] or type(error).__name__


class ModelClient:
    """Streams chat completions from the configured endpoint."""

    def __init__(self, settings: ModelSettings) -> None:
        self.settings = settings
        timeout = openai.Timeout(
            settings.timeout_s, connect=min(CONNECT_TIMEOUT_S, settings.timeout_s)
        )
        # Retries would hide a failing endpoint behind a long wait; the user has a
        # retry button instead.
        self._tokens = TokenSource(settings.oauth) if settings.oauth else None
        self._client = openai.OpenAI(
            base_url=settings.base_url,
            api_key=settings.api_key or "oauth",
            timeout=timeout,
            max_retries=0,
        )

    def close(self) -> None:
        self._client.close()

    def stream(
        self, messages: list[dict], should_stop: Callable[[], bool] = lambda: False
    ) -> Iterator[Delta | Finish]:
        """Deltas as they arrive, then a Finish; ``should_stop`` ends it early."""
        try:
            yield from self._stream(messages, should_stop)
        except openai.OpenAIError as error:
            raise classify(error) from error

    def _stream(
        self, messages: list[dict], should_stop: Callable[[], bool]
    ) -> Iterator[Delta | Finish]:
        client = self._client
        if self._tokens is not None:
            client = client.with_options(api_key=self._tokens.token())
        stream = client.chat.completions.create(
            model=self.settings.model,
            messages=messages,
            max_tokens=self.settings.max_tokens,
            stream=True,
            stream_options={"include_usage": True},
        )
        request_id = stream.response.headers.get("x-request-id")
        finish_reason, usage, pieces = None, None, []
        try:
            for chunk in stream:
                request_id = request_id or chunk.id
                usage = chunk.usage or usage
                for choice in chunk.choices:
                    finish_reason = choice.finish_reason or finish_reason
                    if choice.delta and choice.delta.content:
                        pieces.append(choice.delta.content)
                        yield Delta(choice.delta.content)
                if should_stop():
                    finish_reason = "stopped"
                    break
        finally:
            stream.close()
        yield _finish(messages, pieces, finish_reason, usage, request_id)


def _finish(messages, pieces, finish_reason, usage, request_id) -> Finish:
    if finish_reason is None:
        raise ModelError(
            "model endpoint ended the stream without a finish reason", "stream_error"
        )
    if usage is not None and finish_reason != "stopped":
        return Finish(
            finish_reason,
            usage.prompt_tokens,
            usage.completion_tokens,
            request_id,
            False,
        )
    prompt = sum(len(split_tokens(str(m.get("content") or ""))) for m in messages)
    return Finish(
        finish_reason, prompt, len(split_tokens("".join(pieces))), request_id, True
    )
