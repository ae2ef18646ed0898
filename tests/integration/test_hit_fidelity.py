"""A hit is the miss that made it (DESIGN §4.1), in either mode, on the memory cache and on
Redis: usage, the stream usage chunk, logprobs, Anthropic thinking signatures and vendor fields
survive a stream entry served to a plain call and a plain entry served to a stream. Real HTTP to
the fake provider; real Redis."""

from __future__ import annotations

from typing import Any

import pytest

import llmstash
from llmstash.testing import VENDOR_EXTRAS, FakeProvider, thinking_signature, thinking_text
from llmstash.types import ModelResponseStream

pytestmark = pytest.mark.parametrize(
    "any_cache", ["local", pytest.param("redis", marks=pytest.mark.redis)], indirect=True
)

KEY = "sk-test-key-123456"
ANTHROPIC_KEY = "sk-ant-fidelity-test"
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
INCLUDE_USAGE = {"include_usage": True}


def openai_kwargs(provider: FakeProvider, text: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": "openai/gpt-4o-mini",
        "messages": [{"role": "user", "content": text}],
        "api_base": provider.openai_base,
        "api_key": KEY,
        **extra,
    }


def claude_kwargs(provider: FakeProvider, text: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": "anthropic/claude-test",
        "messages": [{"role": "user", "content": text}],
        "api_base": provider.anthropic_base,
        "api_key": ANTHROPIC_KEY,
        "thinking": THINKING,
        **extra,
    }


async def read(**kwargs: Any) -> list[ModelResponseStream]:
    stream = await llmstash.acompletion(**kwargs, stream=True)
    return [chunk async for chunk in stream]


def text_of(chunks: list[ModelResponseStream]) -> str:
    """The README's loop: ``chunk.choices[0]`` on every chunk (an IndexError on an empty one)."""
    return "".join(chunk.choices[0].delta.content or "" for chunk in chunks)


def usage_numbers(usage: Any) -> tuple[int, int, int]:
    assert usage is not None
    return (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens)


def streamed_logprobs(chunks: list[ModelResponseStream]) -> list[dict[str, Any]]:
    """The per-token logprobs a stream carries, in order."""
    entries: list[dict[str, Any]] = []
    for chunk in chunks:
        for choice in chunk.model_dump()["choices"]:
            if choice.get("logprobs"):
                entries.extend(choice["logprobs"]["content"] or [])
    return entries


def folded_thinking(chunks: list[ModelResponseStream]) -> list[dict[str, Any]]:
    """The thinking blocks a stream adds up to: text pieces joined, the signature attached to
    the block it closes."""
    blocks: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for chunk in chunks:
        if not chunk.choices:
            continue
        for item in chunk.choices[0].delta.thinking_blocks or ():
            if item["type"] == "redacted_thinking":
                blocks.append(dict(item))
                current = None
                continue
            if current is None:
                current = {"type": "thinking", "thinking": ""}
                blocks.append(current)
            current["thinking"] += item.get("thinking") or ""
            if item.get("signature"):
                current["signature"] = item["signature"]
                current = None
    return blocks


def signed_block(question: str) -> dict[str, Any]:
    text = thinking_text(question)
    return {"type": "thinking", "thinking": text, "signature": thinking_signature(text)}


def without_identity(dump: dict[str, Any]) -> dict[str, Any]:
    """A response dump less what differs between two provider answers to one question."""
    return {k: v for k, v in dump.items() if k not in ("id", "created")}


# usage and the stream usage chunk ---------------------------------------------------------------


async def test_a_stream_entry_serves_a_plain_call_with_the_plain_usage(provider, any_cache):
    reference = await llmstash.acompletion(**openai_kwargs(provider, "usage please"), caching=False)
    chunks = await read(**openai_kwargs(provider, "usage please"))
    assert text_of(chunks) == "Echo: usage please"
    plain = await llmstash.acompletion(**openai_kwargs(provider, "usage please"))
    assert plain._hidden_params["cache_hit"] is True
    assert provider.request_count == 2
    assert plain.usage is not None
    assert usage_numbers(plain.usage) == usage_numbers(reference.usage)
    assert plain["usage"]["total_tokens"] == reference.usage.total_tokens


async def test_a_caller_who_did_not_ask_for_usage_never_gets_the_usage_chunk(provider, any_cache):
    """Neither on the miss (even if llmstash asked the provider for the usage to store it) nor
    on the replay: the README's loop reads ``chunk.choices[0]`` on every chunk."""
    miss = await read(**openai_kwargs(provider, "no usage chunk"))
    hit = await read(**openai_kwargs(provider, "no usage chunk"))
    assert provider.request_count == 1
    for chunks in (miss, hit):
        assert all(chunk.choices for chunk in chunks)
        assert text_of(chunks) == "Echo: no usage chunk"
    assert hit == miss


async def test_a_stream_stored_with_the_usage_chunk_replays_it_only_to_who_asks(
    provider, any_cache
):
    asked = await read(**openai_kwargs(provider, "usage chunk", stream_options=INCLUDE_USAGE))
    assert asked[-1].choices == [] and asked[-1].usage is not None
    not_asked = await read(**openai_kwargs(provider, "usage chunk"))
    assert provider.request_count == 1
    assert all(chunk.choices for chunk in not_asked)
    assert text_of(not_asked) == "Echo: usage chunk"
    assert not_asked == asked[:-1]  # the same chunks, less the usage chunk
    asked_again = await read(**openai_kwargs(provider, "usage chunk", stream_options=INCLUDE_USAGE))
    assert asked_again == asked
    plain = await llmstash.acompletion(**openai_kwargs(provider, "usage chunk"))
    assert usage_numbers(plain.usage) == usage_numbers(asked[-1].usage)
    assert provider.request_count == 1


@pytest.mark.parametrize("stored_by", ["plain", "stream without usage"])
async def test_a_caller_who_asks_for_usage_gets_it_from_any_entry(provider, any_cache, stored_by):
    text = f"usage from a {stored_by} entry"
    reference = await llmstash.acompletion(**openai_kwargs(provider, text), caching=False)
    if stored_by == "plain":
        await llmstash.acompletion(**openai_kwargs(provider, text))
    else:
        await read(**openai_kwargs(provider, text))
    chunks = await read(**openai_kwargs(provider, text, stream_options=INCLUDE_USAGE))
    assert provider.request_count == 2
    assert chunks[-1].choices == []
    assert usage_numbers(chunks[-1].usage) == usage_numbers(reference.usage)
    assert text_of(chunks[:-1]) == f"Echo: {text}"


# logprobs ---------------------------------------------------------------------------------------


async def test_logprobs_survive_a_stream_entry_served_plain(provider, any_cache):
    reference = await llmstash.acompletion(
        **openai_kwargs(provider, "logprobs from a stream", logprobs=True), caching=False
    )
    expected = reference.model_dump()["choices"][0]["logprobs"]["content"]
    assert len(expected) == 5  # one per word of "Echo: logprobs from a stream"
    chunks = await read(**openai_kwargs(provider, "logprobs from a stream", logprobs=True))
    assert streamed_logprobs(chunks) == expected
    plain = await llmstash.acompletion(
        **openai_kwargs(provider, "logprobs from a stream", logprobs=True)
    )
    assert plain._hidden_params["cache_hit"] is True
    assert provider.request_count == 2
    assert plain.choices[0].logprobs is not None
    assert plain.model_dump()["choices"][0]["logprobs"]["content"] == expected
    assert plain["choices"][0]["logprobs"]["content"][0]["token"] == expected[0]["token"]


async def test_logprobs_survive_a_plain_entry_served_as_a_stream(provider, any_cache):
    reference = await read(
        **openai_kwargs(provider, "logprobs from a plain answer", logprobs=True), caching=False
    )
    expected = streamed_logprobs(reference)
    assert len(expected) == 6  # one per word of "Echo: logprobs from a plain answer"
    plain = await llmstash.acompletion(
        **openai_kwargs(provider, "logprobs from a plain answer", logprobs=True)
    )
    assert plain.model_dump()["choices"][0]["logprobs"]["content"] == expected
    chunks = await read(**openai_kwargs(provider, "logprobs from a plain answer", logprobs=True))
    assert provider.request_count == 2
    assert streamed_logprobs(chunks) == expected
    assert text_of(chunks) == "Echo: logprobs from a plain answer"


# Anthropic thinking -----------------------------------------------------------------------------


async def test_a_stream_entry_served_plain_keeps_the_thinking_signature(provider, any_cache):
    question = "think, then answer"
    chunks = await read(**claude_kwargs(provider, question))
    assert folded_thinking(chunks) == [signed_block(question)]
    plain = await llmstash.acompletion(**claude_kwargs(provider, question))
    assert plain._hidden_params["cache_hit"] is True
    assert provider.request_count == 1
    message = plain.choices[0].message
    assert message.thinking_blocks == [signed_block(question)]
    assert message.reasoning_content == thinking_text(question)
    assert message.content == f"Echo: {question}"
    assert plain.model_dump()["choices"][0]["message"]["thinking_blocks"] == [
        signed_block(question)
    ]


async def test_a_thinking_stream_entry_served_plain_works_for_the_next_turn_with_tools(
    provider, any_cache
):
    """The real API refuses a tool result whose assistant turn lacks its signed thinking
    block: the next turn built from the hit must be accepted."""
    question = "search for caches"
    await read(**claude_kwargs(provider, question, tools=TOOLS))
    first = await llmstash.acompletion(**claude_kwargs(provider, question, tools=TOOLS))
    assert first._hidden_params["cache_hit"] is True
    assert provider.request_count == 1
    message = first.choices[0].message
    assert message.tool_calls
    call = message.tool_calls[0]
    follow_up = [
        {"role": "user", "content": question},
        message,
        {"role": "tool", "tool_call_id": call.id, "content": "a fast store"},
    ]
    next_turn = claude_kwargs(provider, question, tools=TOOLS)
    next_turn["messages"] = follow_up
    answer = await llmstash.acompletion(**next_turn)
    assert answer.choices[0].message.content == "Echo: a fast store"
    sent = provider.requests[-1].json["messages"][1]["content"]
    assert sent[0] == signed_block(question)
    assert sent[-1]["type"] == "tool_use"


async def test_a_plain_entry_served_as_a_stream_keeps_the_thinking_signature(provider, any_cache):
    question = "think before streaming"
    plain = await llmstash.acompletion(**claude_kwargs(provider, question))
    assert plain.choices[0].message.thinking_blocks == [signed_block(question)]
    chunks = await read(**claude_kwargs(provider, question))
    assert provider.request_count == 1
    assert folded_thinking(chunks) == [signed_block(question)]
    reasoning = "".join(c.choices[0].delta.reasoning_content or "" for c in chunks if c.choices)
    assert reasoning == thinking_text(question)
    assert text_of([c for c in chunks if c.choices]) == f"Echo: {question}"


# Fields the response types do not know ----------------------------------------------------------


def assert_vendor_fields(response: Any) -> None:
    """Every VENDOR_EXTRAS field, by attribute, by key and in model_dump()."""
    dump = response.model_dump()
    for key, value in VENDOR_EXTRAS["response"].items():
        assert getattr(response, key) == value, key
        assert response[key] == value, key
        assert dump[key] == value, key
    message = response.choices[0].message
    for key, value in VENDOR_EXTRAS["message"].items():
        assert getattr(message, key) == value, key
        assert response["choices"][0]["message"][key] == value, key
        assert dump["choices"][0]["message"][key] == value, key
    for key, value in VENDOR_EXTRAS["usage"].items():
        assert response["usage"][key] == value, key
        assert dump["usage"][key] == value, key


async def test_vendor_fields_on_the_plain_miss_and_hit(provider, any_cache):
    provider.set_extra_fields(**VENDOR_EXTRAS)
    miss = await llmstash.acompletion(**openai_kwargs(provider, "vendor fields"))
    hit = await llmstash.acompletion(**openai_kwargs(provider, "vendor fields"))
    assert hit._hidden_params["cache_hit"] is True
    assert provider.request_count == 1
    assert_vendor_fields(miss)
    assert_vendor_fields(hit)
    assert hit.model_dump() == miss.model_dump()


async def test_vendor_fields_on_the_streamed_miss_and_hit(provider, any_cache):
    provider.set_extra_fields(**VENDOR_EXTRAS)
    miss = await read(**openai_kwargs(provider, "vendor stream", stream_options=INCLUDE_USAGE))
    hit = await read(**openai_kwargs(provider, "vendor stream", stream_options=INCLUDE_USAGE))
    assert provider.request_count == 1
    for chunks in (miss, hit):
        for chunk in chunks:
            for key, value in VENDOR_EXTRAS["response"].items():
                assert getattr(chunk, key) == value, key
                assert chunk[key] == value, key
                assert chunk.model_dump()[key] == value, key
        annotated = [
            c for c in chunks if c.choices and c.choices[0].delta.model_dump().get("annotations")
        ]
        assert len(annotated) == 1
        delta = annotated[0].choices[0].delta
        assert delta.annotations == VENDOR_EXTRAS["message"]["annotations"]
        reasoning = "".join(c.choices[0].delta.reasoning_content or "" for c in chunks if c.choices)
        assert reasoning == VENDOR_EXTRAS["message"]["reasoning_content"]
        usage = chunks[-1].model_dump()["usage"]
        for key, value in VENDOR_EXTRAS["usage"].items():
            assert usage[key] == value, key
    assert [c.model_dump() for c in hit] == [c.model_dump() for c in miss]


async def test_a_stream_entry_served_plain_is_the_plain_miss_field_for_field(provider, any_cache):
    provider.set_extra_fields(**VENDOR_EXTRAS)
    reference = await llmstash.acompletion(**openai_kwargs(provider, "vendor both"), caching=False)
    await read(**openai_kwargs(provider, "vendor both"))
    plain = await llmstash.acompletion(**openai_kwargs(provider, "vendor both"))
    assert plain._hidden_params["cache_hit"] is True
    assert provider.request_count == 2
    assert_vendor_fields(plain)
    assert without_identity(plain.model_dump()) == without_identity(reference.model_dump())


async def test_a_plain_entry_served_as_a_stream_keeps_the_vendor_fields(provider, any_cache):
    provider.set_extra_fields(**VENDOR_EXTRAS)
    await llmstash.acompletion(**openai_kwargs(provider, "vendor replay"))
    chunks = await read(**openai_kwargs(provider, "vendor replay", stream_options=INCLUDE_USAGE))
    assert provider.request_count == 1
    for chunk in chunks:
        for key, value in VENDOR_EXTRAS["response"].items():
            assert chunk[key] == value, key
    with_choices = [c for c in chunks if c.choices]
    deltas = [c.choices[0].delta.model_dump() for c in with_choices]
    annotations = [d["annotations"] for d in deltas if d.get("annotations")]
    assert annotations == [VENDOR_EXTRAS["message"]["annotations"]]
    reasoning = "".join(d.get("reasoning_content") or "" for d in deltas)
    assert reasoning == VENDOR_EXTRAS["message"]["reasoning_content"]
    assert text_of(with_choices) == "Echo: vendor replay"
    usage = chunks[-1].model_dump()["usage"]
    for key, value in VENDOR_EXTRAS["usage"].items():
        assert usage[key] == value, key
