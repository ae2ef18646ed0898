"""LiteLLM's Cache methods that user code calls directly — ``get_cache_key``, ``add_cache``,
``get_cache``, ``async_add_cache``, ``async_get_cache`` — over every backend, against entries
real calls made and read."""

from __future__ import annotations

import json
import time
import uuid

import anyio
import pytest
from openai.types.chat import ChatCompletion

import llmstash
from llmstash import _sync
from llmstash.caching import Cache
from llmstash.exceptions import InvalidRequestError
from llmstash.testing import FakeProvider
from llmstash.types import (
    Choices,
    Embedding,
    EmbeddingResponse,
    FloatVector,
    Message,
    ModelResponse,
    Usage,
)

MODEL = "gpt-4o-mini"


@pytest.fixture(autouse=True)
def openai_env(monkeypatch: pytest.MonkeyPatch, provider: FakeProvider) -> None:
    """Calls name no api_base (it would be part of the key), as LiteLLM's tests do."""
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("OPENAI_API_BASE", provider.openai_base)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-surface-123456")


def fresh_messages() -> list[dict[str, str]]:
    return [{"role": "user", "content": f"poem about {uuid.uuid4().hex}"}]


def canned(text: str = "from add_cache") -> ModelResponse:
    return ModelResponse(
        id=f"chatcmpl-canned-{uuid.uuid4().hex}",
        choices=[Choices(message=Message(content=text))],
        created=1_700_000_000,
        model=MODEL,
        usage=Usage(prompt_tokens=3, completion_tokens=2, total_tokens=5),
    )


async def test_the_key_of_the_call_kwargs_is_the_key_the_call_used(provider, any_cache):
    messages = fresh_messages()
    r = await llmstash.acompletion(model=MODEL, messages=messages)
    key = any_cache.get_cache_key(model=MODEL, messages=messages)
    assert r._hidden_params["cache_key"] == key
    found = await any_cache.async_get_cache(model=MODEL, messages=messages)
    assert found["id"] == r.id
    assert found == r
    assert await any_cache.async_get_cache(model=MODEL, messages=fresh_messages()) is None


async def test_sync_add_then_async_get_by_call_kwargs(provider, any_cache):
    """LiteLLM's test_redis_cache_basic: a sync add_cache under a computed key, read back
    by the call's keyword arguments."""
    messages = fresh_messages()
    key = any_cache.get_cache_key(model=MODEL, messages=messages)
    mine = canned()
    any_cache.add_cache(result=mine, cache_key=key)  # sync, from a coroutine
    stored = await any_cache.async_get_cache(model=MODEL, messages=messages)
    assert stored["id"] == mine.id
    assert stored.choices[0].message.content == "from add_cache"
    # and a real call is now a hit, with no request
    r = await llmstash.acompletion(model=MODEL, messages=messages)
    assert provider.request_count == 0
    assert r._hidden_params["cache_hit"] is True
    assert r.id == mine.id


async def test_async_add_and_sync_get(provider, any_cache):
    messages = fresh_messages()
    mine = canned("async added")
    await any_cache.async_add_cache(mine, model=MODEL, messages=messages, temperature=0.2)
    assert any_cache.get_cache(model=MODEL, messages=messages) is None  # temperature differs
    got = any_cache.get_cache(model=MODEL, messages=messages, temperature=0.2)
    assert got == mine
    r = await llmstash.acompletion(model=MODEL, messages=messages, temperature=0.2, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in r if c.choices])
    assert text == "async added"
    assert provider.request_count == 0


@pytest.mark.parametrize("form", ["dict", "json", "openai"])
async def test_results_as_dicts_json_and_other_libraries_objects(provider, any_cache, form):
    messages = fresh_messages()
    mine = canned(f"as {form}")
    result = {
        "dict": mine.model_dump(),
        "json": mine.model_dump_json(indent=2),
        "openai": ChatCompletion.model_validate(mine.model_dump()),
    }[form]
    await any_cache.async_add_cache(result, model=MODEL, messages=messages)
    got = await any_cache.async_get_cache(model=MODEL, messages=messages)
    assert got.id == mine.id
    assert got.choices[0].message.content == f"as {form}"
    assert got.usage.total_tokens == 5


async def test_a_stored_stream_reads_back_assembled(provider, any_cache):
    messages = fresh_messages()
    chunks = [
        c async for c in await llmstash.acompletion(model=MODEL, messages=messages, stream=True)
    ]
    other = fresh_messages()
    await any_cache.async_add_cache(chunks, model=MODEL, messages=other)
    got = await any_cache.async_get_cache(model=MODEL, messages=other)
    assert got.id == chunks[0].id
    assert got.choices[0].message.content == f"Echo: {messages[0]['content']}"
    replay = [c async for c in await llmstash.acompletion(model=MODEL, messages=other, stream=True)]
    assert replay == chunks
    assert provider.request_count == 1


async def test_ttl_and_max_age_controls(provider, any_cache):
    messages = fresh_messages()
    await any_cache.async_add_cache(canned(), model=MODEL, messages=messages, ttl=0)
    assert await any_cache.async_get_cache(model=MODEL, messages=messages) is None
    await any_cache.async_add_cache(canned(), model=MODEL, messages=messages, cache={"ttl": 0.3})
    assert await any_cache.async_get_cache(model=MODEL, messages=messages) is not None
    await anyio.sleep(0.05)
    young = {"s-maxage": 0.01}
    assert await any_cache.async_get_cache(model=MODEL, messages=messages, cache=young) is None
    assert any_cache.get_cache(model=MODEL, messages=messages, cache={"s-maxage": 60}) is not None
    deadline = time.monotonic() + 5
    while await any_cache.async_get_cache(model=MODEL, messages=messages) is not None:
        assert time.monotonic() < deadline, "the entry outlived its ttl"
        await anyio.sleep(0.05)


async def test_namespace_control_and_a_replaced_key_function(provider, any_cache):
    messages = fresh_messages()
    mine = canned()
    await any_cache.async_add_cache(mine, model=MODEL, messages=messages, cache={"namespace": "x"})
    assert await any_cache.async_get_cache(model=MODEL, messages=messages) is None
    got = await any_cache.async_get_cache(model=MODEL, messages=messages, cache={"namespace": "x"})
    assert got == mine
    ns = any_cache.namespace or "test"
    any_cache.get_cache_key = lambda *args, **kwargs: f"{ns}:mine:{kwargs['model']}"
    try:
        await any_cache.async_add_cache(mine, model="anything", messages=messages)
        assert any_cache.get_cache(model="anything") == mine
        assert any_cache.get_cache(cache_key=f"{ns}:mine:anything") == mine
    finally:
        del any_cache.get_cache_key
        await any_cache.adelete(f"{ns}:mine:anything")


async def test_default_off_reads_and_writes_only_when_asked(provider, llm):
    cache = llmstash.cache = Cache(mode="default_off")
    messages = fresh_messages()
    await cache.async_add_cache(canned(), model=MODEL, messages=messages)
    cache.add_cache(canned(), model=MODEL, messages=messages)
    opt_in = {"use-cache": True}
    assert await cache.async_get_cache(model=MODEL, messages=messages, cache=opt_in) is None
    mine = canned()
    cache.add_cache(mine, model=MODEL, messages=messages, cache=opt_in)
    assert await cache.async_get_cache(model=MODEL, messages=messages) is None  # not asked
    assert cache.get_cache(model=MODEL, messages=messages, cache=opt_in) == mine


async def test_embeddings_are_added_and_read_per_input(provider, any_cache):
    model = "text-embedding-3-small"
    a, b = f"a {uuid.uuid4().hex}", f"b {uuid.uuid4().hex}"
    vectors = EmbeddingResponse(
        data=[
            Embedding(embedding=FloatVector([0.25, 0.5]), index=0),
            Embedding(embedding=FloatVector([0.75, 1.0]), index=1),
        ],
        model=model,
        usage=Usage(prompt_tokens=5, total_tokens=5),
    )
    await any_cache.async_add_cache(vectors, model=model, input=[a, b])
    one = await any_cache.async_get_cache(model=model, input=b)
    assert one["embedding"] == [0.75, 1.0]
    assert one["prompt_tokens"] == 2
    assert (await any_cache.async_get_cache(model=model, input=a))["prompt_tokens"] == 3
    r = await llmstash.aembedding(model=model, input=[b, a])
    assert provider.request_count == 0
    assert r._hidden_params["cache_hit"] is True
    assert [list(d.embedding) for d in r.data] == [[0.75, 1.0], [0.25, 0.5]]
    with pytest.raises(InvalidRequestError, match="one item per vector"):
        await any_cache.async_add_cache(vectors, model=model, input=[a])


async def test_bad_results_and_keys_are_clear_errors(any_cache):
    with pytest.raises(InvalidRequestError, match="got int"):
        await any_cache.async_add_cache(42, model=MODEL, messages=fresh_messages())
    with pytest.raises(InvalidRequestError, match="not a chat completion"):
        any_cache.add_cache({"error": "nope"}, model=MODEL, messages=fresh_messages())
    with pytest.raises(InvalidRequestError, match="cache key"):
        any_cache.get_cache(cache_key=123)


def test_sync_add_and_get_on_redis_without_a_running_loop(provider, sync_llm, redis_url):
    cache = llmstash.cache = Cache(type="redis", url=redis_url, namespace=f"t-{uuid.uuid4().hex}")
    messages = fresh_messages()
    r = llmstash.completion(model=MODEL, messages=messages)
    assert cache.get_cache(model=MODEL, messages=messages) == r
    mine = canned()
    cache.add_cache(mine, model=MODEL, messages=messages)
    assert cache.get_cache(model=MODEL, messages=messages) == mine
    assert llmstash.completion(model=MODEL, messages=messages).id == mine.id
    assert provider.request_count == 1
    _sync.run(cache.aclear)


def test_reasoning_survives_a_hit_and_dumps_as_indented_json(provider, sync_llm, monkeypatch):
    """LiteLLM's test_caching_with_reasoning_content: a thinking model's hit keeps its
    reasoning; ``model_dump_json(indent=4)`` is what the test prints."""
    monkeypatch.setenv("ANTHROPIC_API_BASE", provider.anthropic_base)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-123456")
    llmstash.cache = Cache()
    kwargs = {
        "model": "anthropic/claude-sonnet-4-5",
        "messages": fresh_messages(),
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "max_tokens": 2048,
    }
    first = llmstash.completion(**kwargs)
    second = llmstash.completion(**kwargs)
    assert second._hidden_params["cache_hit"] is True
    assert second.choices[0].message.reasoning_content
    assert second.choices[0].message.reasoning_content == first.choices[0].message.reasoning_content
    text = second.model_dump_json(indent=4)
    assert "\n    " in text
    assert json.loads(text) == second.model_dump()
    assert provider.request_count == 1


async def test_embeddings_one_by_one_then_as_a_list(provider, llm):
    """LiteLLM's test_embedding_caching_individual_items_and_then_list: single-string calls
    fill the cache a list call then reads, with non-zero tokens that grow with a new input."""
    llmstash.cache = Cache()
    model = "text-embedding-3-small"
    words = [f"hello {uuid.uuid4().hex}", f"world {uuid.uuid4().hex}"]
    e1 = await llmstash.aembedding(model=model, input=words[0])
    e2 = await llmstash.aembedding(model=model, input=words[1])
    e3 = await llmstash.aembedding(model=model, input=words)
    assert provider.request_count == 2
    assert e3["data"][0]["embedding"] == e1["data"][0]["embedding"]
    assert e3["data"][1]["embedding"] == e2["data"][0]["embedding"]
    assert e3._hidden_params["cache_hit"] is True
    assert e3.usage.prompt_tokens != 0
    e4 = await llmstash.aembedding(model=model, input=[*words, "this is a new text"])
    assert provider.request_count == 3
    assert e4.usage.prompt_tokens > e3.usage.prompt_tokens
