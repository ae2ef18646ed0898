"""Answers the official openai client accepts are accepted here too: OpenAI-compatible
servers leave out ``id`` or ``created`` and send null token counts. A provider that returns
fewer vectors than inputs is the provider's fault, not the caller's."""

from __future__ import annotations

import json

import httpx
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

import llmstash
from llmstash.exceptions import APIResponseValidationError
from llmstash.providers import Route
from llmstash.providers._sse import ServerSentEvent
from llmstash.providers.openai import parse_chat_response, parse_stream_event

ROUTE = Route(
    provider="openai_compatible",
    model="openai/local",
    upstream_model="local",
    api_base="http://local/v1",
)
CHOICE = {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}


@pytest.mark.parametrize(
    "body",
    [
        {"choices": [CHOICE], "model": "local"},  # no id, no created
        {"id": None, "created": None, "choices": [CHOICE], "model": "local"},
        {"id": "x", "created": 1, "choices": [CHOICE]},  # no model
        {
            "id": "x",
            "created": 1,
            "model": "local",
            "choices": [CHOICE],
            "usage": {"prompt_tokens": 3, "completion_tokens": None, "total_tokens": None},
        },
    ],
)
def test_plain_answers_the_openai_client_accepts(body: dict[str, object]) -> None:
    r = parse_chat_response(json.dumps(body).encode(), ROUTE)
    assert r.choices[0].message.content == "hi"
    assert isinstance(r.id, str) and r.id and isinstance(r.created, int) and r.created > 0
    if r.usage is not None:
        assert r.usage.completion_tokens == 0 and r.usage.prompt_tokens == 3
    ChatCompletion.model_validate(r.model_dump())


def test_a_chunk_without_created_or_id() -> None:
    data = json.dumps({"choices": [{"index": 0, "delta": {"content": "a"}}], "model": "local"})
    (chunk,) = parse_stream_event(ServerSentEvent(event="message", data=data), ROUTE)  # type: ignore[misc]
    assert chunk.choices[0].delta.content == "a"
    ChatCompletionChunk.model_validate(chunk.model_dump())


def test_an_error_body_is_still_an_error() -> None:
    with pytest.raises(APIResponseValidationError):
        parse_chat_response(b'{"id": "x", "created": 1, "model": "m"}', ROUTE)


async def test_fewer_vectors_than_inputs_is_the_providers_fault() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            json={
                "object": "list",
                "model": "m",
                "data": [{"object": "embedding", "index": 0, "embedding": [0.5, 0.25]}],
                "usage": {"prompt_tokens": 2, "total_tokens": 2},
            },
        )

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        async with llmstash.Client(http_client=http) as client:
            with pytest.raises(APIResponseValidationError, match="1 embeddings for 2 inputs"):
                await client.aembedding(
                    model="openai/m", input=["a", "b"], api_base="http://local/v1", api_key="k"
                )
