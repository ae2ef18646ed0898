"""Every response llmstash returns is accepted by the openai package's own types."""

from __future__ import annotations

import pytest
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk

import llmstash
from llmstash.caching import Cache

MSGS = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "shape check"}]
TOOLS = [
    {
        "type": "function",
        "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}},
    }
]


def route(provider, kind: str) -> dict:
    if kind == "openai":
        return {"model": "gpt-4o-mini", "api_base": provider.openai_base, "api_key": "sk-t"}
    if kind == "azure":
        return {
            "model": "azure/my-deployment",
            "api_base": provider.azure_base,
            "api_key": "k",
            "api_version": "2024-10-21",
        }
    return {
        "model": "anthropic/claude-3-5-haiku-20241022",
        "api_base": provider.anthropic_base,
        "api_key": "sk-ant-t",
    }


@pytest.mark.parametrize("kind", ["openai", "azure", "anthropic"])
@pytest.mark.parametrize("tools", [None, TOOLS])
async def test_chat_and_stream_shapes(provider, llm, kind, tools):
    llmstash.cache = Cache()
    extra = {"tools": tools} if tools else {}
    fresh = await llmstash.acompletion(messages=MSGS, **route(provider, kind), **extra)
    hit = await llmstash.acompletion(messages=MSGS, **route(provider, kind), **extra)
    assert hit._hidden_params["cache_hit"] is True
    for r in (fresh, hit):
        parsed = ChatCompletion.model_validate(r.model_dump())
        if tools:
            assert parsed.choices[0].message.tool_calls[0].function.name == "lookup"
        else:
            assert parsed.choices[0].message.content == "Echo: shape check"
    stream = await llmstash.acompletion(
        messages=MSGS, stream=True, caching=False, **route(provider, kind), **extra
    )
    chunks = [c async for c in stream]
    assert len(chunks) > 1
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk.model_dump())


@pytest.mark.parametrize("kind", ["openai", "azure"])
async def test_embedding_shapes(provider, llm, kind):
    llmstash.cache = Cache()
    args = route(provider, kind)
    args["model"] = "text-embedding-3-small" if kind == "openai" else "azure/embedder"
    for _ in range(2):  # a miss, then a hit
        e = await llmstash.aembedding(input=["a", "b"], **args)
        parsed = CreateEmbeddingResponse.model_validate(e.model_dump())
        assert [d.index for d in parsed.data] == [0, 1]
        assert len(parsed.data[0].embedding) == len(e.data[0].embedding) > 0
    assert e._hidden_params["cache_hit"] is True
    assert provider.request_count == 1
