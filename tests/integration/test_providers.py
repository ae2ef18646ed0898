"""The provider adapters over real HTTP, against the fake provider server."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any

import httpx
import pytest

from llmstash._streaming import assemble_chunks
from llmstash.exceptions import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    InternalServerError,
    RateLimitError,
    ServiceUnavailableError,
)
from llmstash.providers import (
    AnthropicProvider,
    AzureProvider,
    OpenAICompatibleProvider,
    OpenAIProvider,
    Route,
)
from llmstash.testing import FakeProvider
from llmstash.types import FloatVector, ModelResponseStream

MESSAGES = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": "what is a cache?"},
]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "search",
            "description": "search the web",
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
        },
    }
]


class Sleeps:
    """Records the backoff delays instead of sleeping."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def openai_route(provider: FakeProvider, key: str | None = "sk-openai-test") -> Route:
    return Route(
        provider="openai",
        model="gpt-4o-mini",
        upstream_model="gpt-4o-mini",
        api_base=provider.openai_base,
        api_key=key,
    )


def azure_route(provider: FakeProvider) -> Route:
    return Route(
        provider="azure",
        model="azure/my-gpt",
        upstream_model="my-gpt",
        api_base=provider.azure_base,
        api_key="azure-test-key",
        api_version="2024-10-21",
    )


def anthropic_route(provider: FakeProvider) -> Route:
    return Route(
        provider="anthropic",
        model="anthropic/claude-test",
        upstream_model="claude-test",
        api_base=provider.anthropic_base,
        api_key="sk-ant-test",
    )


def all_routes(provider: FakeProvider) -> list[tuple[Any, Route]]:
    return [
        (OpenAIProvider, openai_route(provider)),
        (AzureProvider, azure_route(provider)),
        (AnthropicProvider, anthropic_route(provider)),
    ]


async def collect(
    stream: AsyncGenerator[ModelResponseStream, None],
) -> list[ModelResponseStream]:
    async with aclosing(stream) as chunks:
        return [chunk async for chunk in chunks]


# plain chat --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["openai", "azure", "anthropic"])
async def test_chat_echo(provider: FakeProvider, http: httpx.AsyncClient, name: str) -> None:
    provider_cls, route = dict(
        zip(["openai", "azure", "anthropic"], all_routes(provider), strict=True)
    )[name]
    resp = await provider_cls().chat(
        http, route, MESSAGES, {"temperature": 0}, timeout=10, num_retries=0
    )
    assert resp.choices[0].message.content == "Echo: what is a cache?"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage is not None and resp.usage.completion_tokens == 5
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + 5
    assert provider.request_count == 1


async def test_openai_request_on_the_wire(provider: FakeProvider, http: httpx.AsyncClient) -> None:
    await OpenAIProvider().chat(
        http, openai_route(provider), MESSAGES, {"seed": 3}, timeout=10, num_retries=0
    )
    (request,) = provider.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-openai-test"
    assert request.json == {"model": "gpt-4o-mini", "messages": MESSAGES, "seed": 3}


async def test_azure_request_on_the_wire(provider: FakeProvider, http: httpx.AsyncClient) -> None:
    resp = await AzureProvider().chat(
        http, azure_route(provider), MESSAGES, {}, timeout=10, num_retries=0
    )
    (request,) = provider.requests
    assert request.path == "/openai/deployments/my-gpt/chat/completions"
    assert request.query == {"api-version": "2024-10-21"}
    assert request.headers["api-key"] == "azure-test-key"
    assert "authorization" not in request.headers
    assert resp.model == "my-gpt"


async def test_anthropic_request_on_the_wire(
    provider: FakeProvider, http: httpx.AsyncClient
) -> None:
    await AnthropicProvider().chat(
        http, anthropic_route(provider), MESSAGES, {"stop": "END"}, timeout=10, num_retries=0
    )
    (request,) = provider.requests
    assert request.path == "/v1/messages"
    assert request.headers["x-api-key"] == "sk-ant-test"
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.json["system"] == "be brief"
    assert request.json["messages"] == [{"role": "user", "content": "what is a cache?"}]
    assert request.json["stop_sequences"] == ["END"]
    assert isinstance(request.json["max_tokens"], int)


async def test_set_reply(provider: FakeProvider, http: httpx.AsyncClient) -> None:
    provider.set_reply("fixed answer")
    resp = await OpenAIProvider().chat(
        http, openai_route(provider), MESSAGES, {}, timeout=10, num_retries=0
    )
    assert resp.choices[0].message.content == "fixed answer"


# tools -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["openai", "anthropic"])
async def test_tool_call_and_result_round_trip(
    provider: FakeProvider, http: httpx.AsyncClient, name: str
) -> None:
    routes: dict[str, tuple[Any, Route]] = {
        "openai": (OpenAIProvider, openai_route(provider)),
        "anthropic": (AnthropicProvider, anthropic_route(provider)),
    }
    provider_cls, route = routes[name]
    adapter = provider_cls()
    params = {"tools": TOOLS, "tool_choice": "auto"}
    first = await adapter.chat(http, route, MESSAGES, params, timeout=10, num_retries=0)
    msg = first.choices[0].message
    assert first.choices[0].finish_reason == "tool_calls"
    assert msg.tool_calls is not None and msg.tool_calls[0].function.name == "search"
    call = msg.tool_calls[0]
    assert json.loads(call.function.arguments) == {"query": "what is a cache?"}
    history = [
        *MESSAGES,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": "search", "arguments": call.function.arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call.id, "content": "a fast store"},
    ]
    second = await adapter.chat(http, route, history, params, timeout=10, num_retries=0)
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content
    if name == "anthropic":
        sent = provider.requests[-1].json["messages"]
        assert sent[-1]["role"] == "user"
        assert sent[-1]["content"][0]["type"] == "tool_result"
        assert sent[-1]["content"][0]["tool_use_id"] == call.id


# streams -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["openai", "azure", "anthropic"])
async def test_stream_echo(provider: FakeProvider, http: httpx.AsyncClient, name: str) -> None:
    provider_cls, route = dict(
        zip(["openai", "azure", "anthropic"], all_routes(provider), strict=True)
    )[name]
    chunks = await collect(
        provider_cls().chat_stream(http, route, MESSAGES, {}, timeout=10, num_retries=0)
    )
    assert len(chunks) >= 5
    assert chunks[0].choices[0].delta.role == "assistant"
    resp = assemble_chunks(chunks)
    assert resp.choices[0].message.content == "Echo: what is a cache?"
    assert resp.choices[0].finish_reason == "stop"
    assert provider.requests[0].json["stream"] is True
    if name == "anthropic":
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5


async def test_openai_stream_usage_when_asked(
    provider: FakeProvider, http: httpx.AsyncClient
) -> None:
    params = {"stream_options": {"include_usage": True}}
    chunks = await collect(
        OpenAIProvider().chat_stream(
            http, openai_route(provider), MESSAGES, params, timeout=10, num_retries=0
        )
    )
    resp = assemble_chunks(chunks)
    assert resp.usage is not None and resp.usage.completion_tokens == 5


@pytest.mark.parametrize("name", ["openai", "anthropic"])
async def test_stream_tool_call(provider: FakeProvider, http: httpx.AsyncClient, name: str) -> None:
    routes: dict[str, tuple[Any, Route]] = {
        "openai": (OpenAIProvider, openai_route(provider)),
        "anthropic": (AnthropicProvider, anthropic_route(provider)),
    }
    provider_cls, route = routes[name]
    chunks = await collect(
        provider_cls().chat_stream(
            http, route, MESSAGES, {"tools": TOOLS}, timeout=10, num_retries=0
        )
    )
    resp = assemble_chunks(chunks)
    calls = resp.choices[0].message.tool_calls
    assert calls is not None and len(calls) == 1
    assert calls[0].function.name == "search"
    assert calls[0].id
    assert resp.choices[0].finish_reason == "tool_calls"


async def test_stream_closed_early_leaves_the_connection_usable(
    provider: FakeProvider, http: httpx.AsyncClient
) -> None:
    provider.set_reply(" ".join(["word"] * 200))
    route = openai_route(provider)
    async with aclosing(
        OpenAIProvider().chat_stream(http, route, MESSAGES, {}, timeout=10, num_retries=0)
    ) as stream:
        async for _ in stream:
            break
    resp = await OpenAIProvider().chat(http, route, MESSAGES, {}, timeout=10, num_retries=0)
    assert resp.choices[0].message.content.startswith("word")  # type: ignore[union-attr]


async def test_stream_retried_before_first_chunk(
    provider: FakeProvider, http: httpx.AsyncClient
) -> None:
    sleeps = Sleeps()
    provider.fail_next(429, retry_after=0)
    chunks = await collect(
        AnthropicProvider(sleep=sleeps).chat_stream(
            http, anthropic_route(provider), MESSAGES, {}, timeout=10, num_retries=2
        )
    )
    assert assemble_chunks(chunks).choices[0].message.content == "Echo: what is a cache?"
    assert provider.request_count == 2
    assert sleeps.delays == [0.0]


# embeddings --------------------------------------------------------------------------------


async def test_embeddings_base64_matches_floats(
    provider: FakeProvider, http: httpx.AsyncClient
) -> None:
    route = openai_route(provider)
    inputs = ["alpha", "beta", "gamma"]
    packed = await OpenAIProvider().embed(http, route, inputs, {}, timeout=10, num_retries=0)
    floats = await OpenAIProvider().embed(
        http, route, inputs, {"encoding_format": "float"}, timeout=10, num_retries=0
    )
    assert provider.requests[0].json["encoding_format"] == "base64"
    assert [d.index for d in packed.data] == [0, 1, 2]
    for a, b in zip(packed.data, floats.data, strict=True):
        assert isinstance(a.embedding, FloatVector)
        assert a.embedding.typecode == "f"
        assert len(a.embedding) == 8
        assert a.embedding == b.embedding
    assert packed.data[0].embedding != packed.data[1].embedding
    again = await OpenAIProvider().embed(http, route, ["beta"], {}, timeout=10, num_retries=0)
    assert again.data[0].embedding == packed.data[1].embedding
    assert packed.usage.prompt_tokens == 3


async def test_embeddings_base64_kept_when_asked(
    provider: FakeProvider, http: httpx.AsyncClient
) -> None:
    resp = await OpenAIProvider().embed(
        http,
        openai_route(provider),
        ["alpha"],
        {"encoding_format": "base64", "dimensions": 4},
        timeout=10,
        num_retries=0,
    )
    vector = resp.data[0].embedding
    assert isinstance(vector, str)
    assert len(FloatVector.frombase64(vector)) == 4


async def test_azure_and_compatible_embeddings(
    provider: FakeProvider, http: httpx.AsyncClient
) -> None:
    azure = await AzureProvider().embed(
        http, azure_route(provider), ["alpha"], {}, timeout=10, num_retries=0
    )
    assert provider.requests[0].path == "/openai/deployments/my-gpt/embeddings"
    route = Route(
        provider="openai_compatible",
        model="local-embedder",
        upstream_model="local-embedder",
        api_base=provider.openai_base,
        api_key="sk-local",
    )
    compatible = await OpenAICompatibleProvider().embed(
        http, route, ["alpha"], {}, timeout=10, num_retries=0
    )
    assert "encoding_format" not in provider.requests[1].json
    assert azure.data[0].embedding == compatible.data[0].embedding


# failures ----------------------------------------------------------------------------------


async def test_rate_limit_retried_with_retry_after(
    provider: FakeProvider, http: httpx.AsyncClient
) -> None:
    sleeps = Sleeps()
    provider.fail_next(429, retry_after=3)
    resp = await OpenAIProvider(sleep=sleeps).chat(
        http, openai_route(provider), MESSAGES, {}, timeout=10, num_retries=2
    )
    assert resp.choices[0].message.content == "Echo: what is a cache?"
    assert provider.request_count == 2
    assert sleeps.delays == [3.0]


async def test_server_errors_exhaust_retries(
    provider: FakeProvider, http: httpx.AsyncClient
) -> None:
    sleeps = Sleeps()
    provider.fail_next(500, count=3)
    with pytest.raises(InternalServerError) as info:
        await AzureProvider(sleep=sleeps).chat(
            http, azure_route(provider), MESSAGES, {}, timeout=10, num_retries=2
        )
    assert provider.request_count == 3
    assert len(sleeps.delays) == 2
    assert info.value.llm_provider == "azure"
    assert "injected by FakeProvider" in info.value.message


async def test_anthropic_overloaded(provider: FakeProvider, http: httpx.AsyncClient) -> None:
    provider.fail_next(529, count=2)
    with pytest.raises(ServiceUnavailableError) as info:
        await AnthropicProvider(sleep=Sleeps()).chat(
            http, anthropic_route(provider), MESSAGES, {}, timeout=10, num_retries=1
        )
    assert info.value.status_code == 529
    assert provider.request_count == 2


async def test_bad_request_not_retried(provider: FakeProvider, http: httpx.AsyncClient) -> None:
    provider.fail_next(400)
    with pytest.raises(BadRequestError):
        await OpenAIProvider(sleep=Sleeps()).chat(
            http, openai_route(provider), MESSAGES, {}, timeout=10, num_retries=2
        )
    assert provider.request_count == 1


async def test_missing_key_is_authentication_error(
    provider: FakeProvider, http: httpx.AsyncClient
) -> None:
    with pytest.raises(AuthenticationError) as info:
        await OpenAIProvider().chat(
            http, openai_route(provider, key=None), MESSAGES, {}, timeout=10, num_retries=2
        )
    assert "API key" in info.value.message
    assert provider.request_count == 1


async def test_provider_error_message_surfaces(
    provider: FakeProvider, http: httpx.AsyncClient
) -> None:
    with pytest.raises(BadRequestError) as info:
        await OpenAIProvider().chat(http, openai_route(provider), [], {}, timeout=10, num_retries=0)
    assert info.value.message == "'messages' must be a non-empty array."
    assert info.value.response is not None


async def test_timeout(provider: FakeProvider, http: httpx.AsyncClient) -> None:
    provider.hang_next(5)
    with pytest.raises(APITimeoutError) as info:
        await OpenAIProvider().chat(
            http, openai_route(provider), MESSAGES, {}, timeout=0.2, num_retries=0
        )
    assert isinstance(info.value.__cause__, httpx.TimeoutException)


async def test_timeout_then_retry_succeeds(provider: FakeProvider, http: httpx.AsyncClient) -> None:
    provider.hang_next(5)
    resp = await OpenAIProvider(sleep=Sleeps()).chat(
        http, openai_route(provider), MESSAGES, {}, timeout=0.3, num_retries=1
    )
    assert resp.choices[0].message.content == "Echo: what is a cache?"
    assert provider.request_count == 2


async def test_connection_refused(http: httpx.AsyncClient) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    route = Route(
        provider="openai_compatible",
        model="m",
        upstream_model="m",
        api_base=f"http://127.0.0.1:{port}/v1",
    )
    sleeps = Sleeps()
    with pytest.raises(APIConnectionError) as info:
        await OpenAICompatibleProvider(sleep=sleeps).chat(
            http, route, MESSAGES, {}, timeout=5, num_retries=2
        )
    assert not isinstance(info.value, APITimeoutError)
    assert len(sleeps.delays) == 2


async def test_rate_limit_during_stream_open_exhausted(
    provider: FakeProvider, http: httpx.AsyncClient
) -> None:
    provider.fail_next(429, count=2, retry_after=0)
    with pytest.raises(RateLimitError):
        await collect(
            OpenAIProvider(sleep=Sleeps()).chat_stream(
                http, openai_route(provider), MESSAGES, {}, timeout=10, num_retries=1
            )
        )
    assert provider.request_count == 2
