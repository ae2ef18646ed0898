"""Anthropic thinking through llmstash, against the fake provider: the plain answer and the
stream carry the same thinking blocks (signatures included), and the next turn with tools sends
them back first, as the real API requires."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any

import httpx
import pytest

import llmstash
from llmstash.exceptions import BadRequestError
from llmstash.providers import AnthropicProvider, Route
from llmstash.testing import (
    REDACTED_THINKING_TRIGGER,
    FakeProvider,
    thinking_signature,
    thinking_text,
)
from llmstash.types import ModelResponseStream

QUESTION = "what is a cache?"
THINKING = {"type": "enabled", "budget_tokens": 1024}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "search",
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
        },
    }
]


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def route(provider: FakeProvider) -> Route:
    return Route(
        provider="anthropic",
        model="anthropic/claude-test",
        upstream_model="claude-test",
        api_base=provider.anthropic_base,
        api_key="sk-ant-thinking-test",
    )


def user(text: str = QUESTION) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


async def collect(
    stream: AsyncGenerator[ModelResponseStream, None],
) -> list[ModelResponseStream]:
    async with aclosing(stream) as chunks:
        return [chunk async for chunk in chunks]


def fold_thinking(chunks: list[ModelResponseStream]) -> list[dict[str, Any]]:
    """The thinking blocks a stream adds up to by the convention of ``StreamParser``."""
    blocks: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for chunk in chunks:
        for item in (chunk.choices[0].delta.thinking_blocks or ()) if chunk.choices else ():
            if item["type"] == "redacted_thinking":
                blocks.append(dict(item))
                current = None
                continue
            if current is None:
                current = {"type": "thinking", "thinking": ""}
                blocks.append(current)
            current["thinking"] += item["thinking"]
            if "signature" in item:
                current["signature"] = item["signature"]
                current = None
    return blocks


def expected_block(question: str = QUESTION) -> dict[str, Any]:
    text = thinking_text(question)
    return {"type": "thinking", "thinking": text, "signature": thinking_signature(text)}


async def test_plain_answer_keeps_the_signed_thinking_block(provider, http):
    resp = await AnthropicProvider().chat(
        http, route(provider), user(), {"thinking": THINKING}, timeout=10, num_retries=0
    )
    message = resp.choices[0].message
    assert message.content == "Echo: what is a cache?"
    assert message.thinking_blocks == [expected_block()]
    assert message.reasoning_content == thinking_text(QUESTION)
    assert resp.usage is not None
    assert resp.usage.completion_tokens == 5 + len(thinking_text(QUESTION).split())


@pytest.mark.parametrize("question", [QUESTION, f"why? {REDACTED_THINKING_TRIGGER}"])
async def test_stream_folds_to_the_plain_thinking_blocks(provider, http, question):
    adapter = AnthropicProvider()
    params = {"thinking": THINKING}
    plain = await adapter.chat(
        http, route(provider), user(question), params, timeout=10, num_retries=0
    )
    chunks = await collect(
        adapter.chat_stream(
            http, route(provider), user(question), params, timeout=10, num_retries=0
        )
    )
    message = plain.choices[0].message
    assert message.thinking_blocks is not None
    assert fold_thinking(chunks) == message.thinking_blocks
    kinds = [block["type"] for block in message.thinking_blocks]
    redacted = REDACTED_THINKING_TRIGGER in question
    assert kinds == (["thinking", "redacted_thinking"] if redacted else ["thinking"])
    reasoning = "".join(c.choices[0].delta.reasoning_content or "" for c in chunks)
    assert reasoning == message.reasoning_content == thinking_text(question)
    content = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert content == message.content
    signed = [
        c.choices[0].delta for c in chunks if "signature" in str(c.choices[0].delta.thinking_blocks)
    ]
    assert len(signed) == 1
    assert signed[0].reasoning_content is None and signed[0].content is None
    assert chunks[-1].usage == plain.usage


@pytest.mark.parametrize("source", ["plain", "stream"])
async def test_next_turn_with_tools_sends_the_thinking_back_first(provider, http, source):
    adapter = AnthropicProvider()
    params: dict[str, Any] = {"thinking": THINKING, "tools": TOOLS}
    first = await adapter.chat(http, route(provider), user(), params, timeout=10, num_retries=0)
    message = first.choices[0].message
    assert message.tool_calls is not None
    thinking_blocks = message.thinking_blocks
    if source == "stream":
        chunks = await collect(
            adapter.chat_stream(http, route(provider), user(), params, timeout=10, num_retries=0)
        )
        thinking_blocks = fold_thinking(chunks)
    assert thinking_blocks == [expected_block()]
    call = message.tool_calls[0]
    history = [
        *user(),
        {
            "role": "assistant",
            "content": message.content,
            "reasoning_content": message.reasoning_content,
            "thinking_blocks": thinking_blocks,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.function.name, "arguments": call.function.arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call.id, "content": "a fast store"},
    ]
    provider.reset()
    answer = await adapter.chat(http, route(provider), history, params, timeout=10, num_retries=0)
    assert answer.choices[0].message.content == "Echo: a fast store"
    assert answer.choices[0].message.thinking_blocks is None  # no new thinking after a tool
    [request] = provider.requests
    sent = request.json["messages"][1]["content"]
    assert [block["type"] for block in sent] == ["thinking", "tool_use"]
    assert sent[0] == expected_block()
    assert sent[1]["id"] == call.id

    without = [dict(history[0]), {**history[1], "thinking_blocks": None}, history[2]]
    with pytest.raises(BadRequestError, match="thinking"):
        await adapter.chat(http, route(provider), without, params, timeout=10, num_retries=0)
    tampered_block = {**expected_block(), "thinking": "something else"}
    tampered = [history[0], {**history[1], "thinking_blocks": [tampered_block]}, history[2]]
    with pytest.raises(BadRequestError, match="signature"):
        await adapter.chat(http, route(provider), tampered, params, timeout=10, num_retries=0)


async def test_acompletion_round_trip_with_reasoning_effort(provider, llm):
    common: dict[str, Any] = {
        "model": "anthropic/claude-test",
        "api_base": provider.anthropic_base,
        "api_key": "sk-ant-thinking-test",
        "reasoning_effort": "low",
        "tools": TOOLS,
    }
    first = await llmstash.acompletion(messages=user(), **common)
    message = first.choices[0].message
    assert message.thinking_blocks == [expected_block()]
    assert provider.requests[0].json["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    call = message.tool_calls[0]
    follow_up = [
        *user(),
        message,
        {"role": "tool", "tool_call_id": call.id, "content": "a fast store"},
    ]
    answer = await llmstash.acompletion(messages=follow_up, **common)
    assert answer.choices[0].message.content == "Echo: a fast store"
    sent = provider.requests[-1].json["messages"][1]["content"]
    assert sent[0] == expected_block()
    assert sent[-1]["type"] == "tool_use"
