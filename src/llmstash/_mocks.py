"""``mock_response``: well-formed answers without any network call, as in LiteLLM."""

from __future__ import annotations

import time
import uuid
from typing import Any

import msgspec

from ._request import Request
from .exceptions import InvalidRequestError
from .types import Choices, Embedding, EmbeddingResponse, FloatVector, Message, ModelResponse, Usage

__all__ = ["mock_chat", "mock_embedding"]


def _words(text: Any) -> int:
    return len(str(text).split()) if text else 0


def mock_chat(req: Request) -> ModelResponse:
    """The answer ``mock_response`` stands for: raised if it is an exception, as given if it
    is a response, else a response with that text and word-count usage (a fresh id each
    time, priced like any answer)."""
    mock = req.mock_response
    if isinstance(mock, BaseException):
        raise mock
    if isinstance(mock, ModelResponse):
        return msgspec.structs.replace(mock)  # each call's bookkeeping on its own object
    content = str(mock)
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


def mock_embedding(mock_response: Any, inputs: list[Any]) -> EmbeddingResponse:
    """Embeddings for ``mock_response``: comma-separated floats (LiteLLM's form) or a list
    of numbers, one vector repeated for every input."""
    if isinstance(mock_response, BaseException):
        raise mock_response
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
