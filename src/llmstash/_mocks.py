"""``mock_response``: well-formed answers — or errors — without any network call, as in
LiteLLM.

Errors a mock stands for (:func:`mock_error`): an exception instance (llmstash's and the
``openai``/``litellm`` packages' raised as they are, any other wrapped in the status error its
``status_code`` names, else a 500, as LiteLLM does), LiteLLM's strings ``"litellm.RateLimitError"``,
``"litellm.ContextWindowExceededError"``, ``"litellm.InternalServerError"`` (and any
``"litellm.<Name>"`` naming an error class of ``llmstash.exceptions``),
``"Exception: content_filter_policy..."`` (a 400 content-policy error) and
``"Exception: mock_streaming_error"`` (a stream that fails after its first chunks; a plain call
fails at once). They are raised inside the call, so failure callbacks see them as any
provider error.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Final, TypeVar

import msgspec

from . import exceptions
from ._request import Request
from ._streaming import response_to_chunks
from .exceptions import APIError, InvalidRequestError, LLMStashError, make_status_error
from .types import (
    Choices,
    Embedding,
    EmbeddingResponse,
    FloatVector,
    Message,
    ModelResponse,
    ModelResponseStream,
    Usage,
)

__all__ = ["mock_chat", "mock_embedding", "mock_error", "mock_stream"]

CONTENT_FILTER: Final = "Exception: content_filter_policy"
STREAM_ERROR: Final = "Exception: mock_streaming_error"
MIDWAY_TEXT: Final = "This is a mock stream that fails."
"""The text of the answer a ``mock_streaming_error`` stream sends the first half of."""
T = TypeVar("T")
_NAMED: Final = {
    "RateLimitError": (429, "this is a mock rate limit error"),
    "ContextWindowExceededError": (400, "this is a mock context window exceeded error"),
    "InternalServerError": (500, "this is a mock internal server error"),
}


def _provider(model: str) -> str | None:
    try:
        from .providers._resolve import get_llm_provider

        return get_llm_provider(model)[1]
    except Exception:
        prefix, sep, _ = model.partition("/")
        return prefix if sep else None


def mock_error(mock: Any, model: str) -> BaseException | None:
    """The error ``mock`` stands for (see the module docstring), or ``None`` for an answer."""
    if isinstance(mock, BaseException):
        if not isinstance(mock, Exception) or isinstance(mock, LLMStashError):
            return mock
        if type(mock).__module__.split(".", 1)[0] in ("openai", "litellm"):
            return mock  # their own error types, which their users catch
        status = getattr(mock, "status_code", None)
        message = getattr(mock, "message", None) or str(mock) or type(mock).__name__
        error = make_status_error(
            status if isinstance(status, int) and 400 <= status <= 599 else 500,
            str(message),
            model=model,
            llm_provider=_provider(model),
        )
        error.__cause__ = mock
        return error
    if not isinstance(mock, str):
        return None
    if mock.startswith("litellm."):
        name = mock[len("litellm.") :]
        status, message = _NAMED.get(name, (0, ""))
        cls = getattr(exceptions, name, None)
        if isinstance(cls, type) and issubclass(cls, exceptions.APIStatusError):
            if not status:
                status, message = _status_of(cls), f"this is a mock {name}"
            return cls(message, status_code=status, model=model, llm_provider=_provider(model))
        if isinstance(cls, type) and issubclass(cls, APIError):
            return cls(f"this is a mock {name}", model=model, llm_provider=_provider(model))
        return None
    if mock.startswith(CONTENT_FILTER):
        return make_status_error(400, mock, model=model, llm_provider=_provider(model))
    if mock.startswith(STREAM_ERROR):
        return _stream_error(model)
    return None


def _status_of(cls: type[exceptions.APIStatusError]) -> int:
    """The HTTP status an error class stands for (its own, or its nearest parent's)."""
    for klass in cls.__mro__:
        for status in (400, 401, 403, 404, 422, 429, 503):
            if type(make_status_error(status, "")) is klass:
                return status
    return 500


def _stream_error(model: str) -> exceptions.APIStatusError:
    return make_status_error(
        529, "this is a mock error raised mid-stream", model=model, llm_provider=_provider(model)
    )


def _words(text: Any) -> int:
    return len(str(text).split()) if text else 0


def mock_chat(req: Request) -> ModelResponse:
    """The answer ``mock_response`` stands for: raised if it is an exception, as given if it
    is a response, else a response with that text and word-count usage (a fresh id each
    time, priced like any answer)."""
    mock = req.mock_response
    error = mock_error(mock, req.model)
    if error is not None:
        raise error
    if isinstance(mock, ModelResponse):
        return msgspec.structs.replace(mock)  # each call's bookkeeping on its own object
    return _text_answer(req, str(mock))


def _text_answer(req: Request, content: str) -> ModelResponse:
    prompt = sum(_words(m.get("content")) for m in req.messages or ())
    completion = _words(content)
    return ModelResponse(
        id=f"chatcmpl-mock-{uuid.uuid4().hex}",
        choices=[Choices(message=Message(content=content), finish_reason="stop")],
        created=int(time.time()),
        model=req.model,
        usage=Usage(
            prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
        ),
    )


def mock_embedding(mock_response: Any, inputs: list[Any], model: str = "") -> EmbeddingResponse:
    """Embeddings for ``mock_response``: comma-separated floats (LiteLLM's form) or a list
    of numbers, one vector repeated for every input."""
    error = mock_error(mock_response, model)
    if error is not None:
        raise error
    if isinstance(mock_response, str):
        try:
            values = [float(x) for x in mock_response.split(",") if x.strip()]
        except ValueError:
            raise InvalidRequestError(
                "embedding mock_response must be comma-separated floats, e.g. '0.1,0.2'"
            ) from None
    elif isinstance(mock_response, (list, tuple)):
        try:
            values = [float(x) for x in mock_response]
        except (TypeError, ValueError):
            raise InvalidRequestError(
                "embedding mock_response must be a list of numbers, e.g. [0.1, 0.2]"
            ) from None
    else:
        values = [0.0]
    tokens = sum(_words(x) if isinstance(x, str) else len(x) for x in inputs)
    return EmbeddingResponse(
        data=[Embedding(embedding=FloatVector(values), index=i) for i in range(len(inputs))],
        model="mock",
        usage=Usage(prompt_tokens=tokens, total_tokens=tokens),
    )


def mock_stream(req: Request) -> AsyncIterator[ModelResponseStream]:
    """The chunks of :func:`mock_chat`'s answer. An error the mock stands for is raised here,
    before any chunk, except ``"Exception: mock_streaming_error"``: that stream sends the first
    half of a mocked answer's chunks, then fails."""
    if isinstance(req.mock_response, str) and req.mock_response.startswith(STREAM_ERROR):
        chunks = response_to_chunks(_text_answer(req, MIDWAY_TEXT))
        return _fail_midway(chunks[: max(1, len(chunks) // 2)], _stream_error(req.model))
    return _replay(response_to_chunks(mock_chat(req)))


async def _replay(chunks: list[ModelResponseStream]) -> AsyncIterator[ModelResponseStream]:
    for chunk in chunks:
        yield chunk


async def _fail_midway(chunks: list[T], error: BaseException) -> AsyncIterator[T]:
    for chunk in chunks:
        yield chunk
    raise error
