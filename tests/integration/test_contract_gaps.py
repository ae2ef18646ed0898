"""Parts of the DESIGN §2 contract that other files leave uncovered, end to end through the
public API: a replaced key function, call types, retries, stream edge cases, ``default_off``
on Redis, top-level ``ttl``, embedding controls, Anthropic, and concurrent callbacks."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

import llmstash
from llmstash.caching import Cache
from llmstash.integrations.custom_logger import CustomLogger

KEY = "sk-test-key-123456"


def question(text: str = "what is a cache?") -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def chat_kwargs(provider, text: str = "what is a cache?", **extra) -> dict[str, Any]:
    return {
        "model": "openai/gpt-4o-mini",
        "messages": question(text),
        "api_base": provider.openai_base,
        "api_key": KEY,
        **extra,
    }


def emb_kwargs(provider, inputs, **extra) -> dict[str, Any]:
    return {
        "model": "openai/text-embedding-3-small",
        "input": inputs,
        "api_base": provider.openai_base,
        "api_key": KEY,
        **extra,
    }


class Recorder(CustomLogger):
    """Records the async success and failure events it receives."""

    def __init__(self) -> None:
        self.successes: list[tuple[dict[str, Any], Any]] = []
        self.failures: list[tuple[dict[str, Any], Any]] = []

    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        self.successes.append((kwargs, response_obj))

    async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time):
        self.failures.append((kwargs, response_obj))


# A replaced key function ------------------------------------------------------------------------


async def test_a_replaced_get_cache_key_is_used_by_acompletion(provider, any_cache):
    fixed = "fixed" if any_cache.namespace is None else f"{any_cache.namespace}:llmstash:fixed"
    seen: list[dict[str, Any]] = []

    def my_key(*args, **kwargs):
        seen.append(kwargs)
        return fixed

    any_cache.get_cache_key = my_key
    r1 = await llmstash.acompletion(**chat_kwargs(provider, "first prompt"))
    r2 = await llmstash.acompletion(**chat_kwargs(provider, "a different prompt"))
    assert provider.request_count == 1  # both prompts map to the one fixed key
    assert r1._hidden_params["cache_key"] == r2._hidden_params["cache_key"] == fixed
    assert r2._hidden_params["cache_hit"] is True and r2.id == r1.id
    assert r2.choices[0].message.content == "Echo: first prompt"
    assert [k["messages"] for k in seen] == [
        question("first prompt"),
        question("a different prompt"),
    ]
    assert seen[0]["model"] == "openai/gpt-4o-mini"


def test_a_replaced_get_cache_key_is_used_by_sync_completion(provider, sync_llm):
    cache = Cache()
    cache.get_cache_key = lambda *args, **kwargs: "fixed"
    llmstash.cache = cache
    r1 = llmstash.completion(**chat_kwargs(provider, "sync one"))
    r2 = llmstash.completion(**chat_kwargs(provider, "sync two"))
    assert provider.request_count == 1
    assert r2._hidden_params["cache_key"] == "fixed" and r2.id == r1.id


# supported_call_types ---------------------------------------------------------------------------

CALL_TYPES = ["completion", "acompletion", "embedding", "aembedding"]


async def call_of_type(provider, call_type: str, tag: str) -> Any:
    """One call of ``call_type``; the sync ones from a worker thread, as sync code would."""
    if call_type == "completion":
        return await anyio.to_thread.run_sync(
            lambda: llmstash.completion(**chat_kwargs(provider, f"sync {tag}"))
        )
    if call_type == "acompletion":
        return await llmstash.acompletion(**chat_kwargs(provider, f"async {tag}"))
    if call_type == "embedding":
        return await anyio.to_thread.run_sync(
            lambda: llmstash.embedding(**emb_kwargs(provider, [f"sync {tag}"]))
        )
    return await llmstash.aembedding(**emb_kwargs(provider, [f"async {tag}"]))


@pytest.mark.parametrize("supported", CALL_TYPES)
async def test_supported_call_types_cover_exactly_the_named_kind(provider, llm, supported):
    llmstash.cache = Cache(supported_call_types=[supported])
    tag = uuid.uuid4().hex
    for call_type in CALL_TYPES:
        before = provider.request_count
        await call_of_type(provider, call_type, tag)
        second = await call_of_type(provider, call_type, tag)
        made = provider.request_count - before
        if call_type == supported:
            assert made == 1, f"{call_type} not cached under {[supported]}"
            assert second._hidden_params["cache_hit"] is True
        else:
            assert made == 2, f"{call_type} cached under {[supported]}"


# Embeddings -------------------------------------------------------------------------------------


def test_sync_embedding_partial_hit_sends_only_the_missing_inputs(provider, sync_llm):
    llmstash.cache = Cache()
    full = llmstash.embedding(**emb_kwargs(provider, ["a", "b", "c"]))
    mixed = llmstash.embedding(**emb_kwargs(provider, ["x", "b", "y", "a"]))
    assert provider.request_count == 2
    assert provider.requests[1].json["input"] == ["x", "y"]
    assert [d.index for d in mixed.data] == [0, 1, 2, 3]
    assert mixed.data[1].embedding == full.data[1].embedding
    assert mixed.data[3].embedding == full.data[0].embedding
    fresh = llmstash.embedding(**emb_kwargs(provider, ["x", "y"]), caching=False)
    assert mixed.data[0].embedding == fresh.data[0].embedding
    assert mixed.data[2].embedding == fresh.data[1].embedding
    assert mixed.data[0].embedding != mixed.data[2].embedding
    uncached = llmstash.embedding(**emb_kwargs(provider, ["x", "b", "y", "a"]), caching=False)
    assert mixed.usage.prompt_tokens == uncached.usage.prompt_tokens
    assert mixed._hidden_params["cache_hit"] is False
    again = llmstash.embedding(**emb_kwargs(provider, ["y", "x"]))
    assert provider.request_count == 4  # fully cached now
    assert again._hidden_params["cache_hit"] is True
    assert again.data[0].embedding == fresh.data[1].embedding


async def test_embedding_no_store_and_s_maxage(provider, any_cache):
    await llmstash.aembedding(**emb_kwargs(provider, ["p", "q"]), cache={"no-store": True})
    await llmstash.aembedding(**emb_kwargs(provider, ["p", "q"]))
    assert provider.request_count == 2  # the no-store call kept nothing

    young = await llmstash.aembedding(**emb_kwargs(provider, ["p", "q"]), cache={"s-maxage": 60})
    assert provider.request_count == 2 and young._hidden_params["cache_hit"] is True

    await asyncio.sleep(0.25)
    await llmstash.aembedding(**emb_kwargs(provider, ["r"]))  # stored now: young
    assert provider.request_count == 3
    mixed = await llmstash.aembedding(**emb_kwargs(provider, ["p", "r"]), cache={"s-maxage": 0.2})
    assert provider.request_count == 4
    assert provider.requests[-1].json["input"] == ["p"]  # only the entry older than 0.2 s
    assert mixed._hidden_params["cache_hit"] is False


# Retries through the public API -------------------------------------------------------------
# retry_after=0 makes the provider layer retry at once (it obeys Retry-After over its backoff).


@pytest.mark.parametrize("how", ["argument", "module_setting"])
async def test_server_errors_are_retried_until_success(provider, llm, monkeypatch, how):
    handler = Recorder()
    llmstash.callbacks = [handler]
    provider.fail_next(status=500, count=2, retry_after=0)
    if how == "argument":
        r = await llmstash.acompletion(**chat_kwargs(provider), num_retries=2)
    else:
        monkeypatch.setattr(llmstash, "num_retries", 2)
        r = await llmstash.acompletion(**chat_kwargs(provider))
    assert provider.request_count == 3
    assert r.choices[0].message.content == "Echo: what is a cache?"
    await llmstash.aflush_callbacks()
    assert len(handler.successes) == 1 and handler.failures == []


async def test_retries_run_out_with_one_error_and_one_failure_event(provider, llm):
    handler = Recorder()
    llmstash.callbacks = [handler]
    llmstash.cache = Cache()
    provider.fail_next(status=500, count=3, retry_after=0)
    with pytest.raises(llmstash.InternalServerError) as raised:
        await llmstash.acompletion(**chat_kwargs(provider), num_retries=2)
    assert provider.request_count == 3
    assert raised.value.status_code == 500
    await llmstash.aflush_callbacks()
    assert len(handler.failures) == 1
    kwargs, response = handler.failures[0]
    assert kwargs["exception"] is raised.value
    assert response is None
    assert handler.successes == []
    r = await llmstash.acompletion(**chat_kwargs(provider), num_retries=2)  # error not cached
    assert r._hidden_params["cache_hit"] is False and provider.request_count == 4


# Streams ----------------------------------------------------------------------------------------


async def test_no_store_on_a_streamed_miss_stores_nothing(provider, any_cache):
    stream = await llmstash.acompletion(
        **chat_kwargs(provider), stream=True, cache={"no-store": True}
    )
    chunks = [c async for c in stream]
    assert len(chunks) > 2 and stream.response is not None
    key = stream.response._hidden_params["cache_key"]
    await any_cache.aflush_writes()
    assert await any_cache.alookup(key) is None
    r = await llmstash.acompletion(**chat_kwargs(provider))
    assert r._hidden_params["cache_hit"] is False
    assert provider.request_count == 2


def sse(*events: dict[str, Any]) -> bytes:
    return b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)


FIRST_CHUNK = {
    "id": "chatcmpl-midway",
    "object": "chat.completion.chunk",
    "created": 1,
    "model": "gpt-4o-mini",
    "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Half "}}],
}


async def test_a_stream_failing_midway_fires_one_failure_and_no_success(provider, llm):
    handler = Recorder()
    llmstash.callbacks = [handler]
    llmstash.cache = Cache()
    # A 200 stream whose second event is an error, as OpenAI sends when it fails mid-answer.
    error = {"error": {"message": "server fell over", "type": "server_error"}}
    provider.fail_next(status=200, body=sse(FIRST_CHUNK, error))
    stream = await llmstash.acompletion(**chat_kwargs(provider), stream=True, num_retries=2)
    got = []
    with pytest.raises(llmstash.InternalServerError, match="server fell over") as raised:
        async for chunk in stream:
            got.append(chunk)  # noqa: PERF401 - keep what arrived before the failure
    assert [c.choices[0].delta.content for c in got] == ["Half "]
    assert provider.request_count == 1  # never retried after a chunk was delivered
    await llmstash.aflush_callbacks()
    assert len(handler.failures) == 1
    assert handler.failures[0][0]["exception"] is raised.value
    assert handler.successes == []
    r = await llmstash.acompletion(**chat_kwargs(provider))  # the broken stream was not stored
    assert r._hidden_params["cache_hit"] is False and provider.request_count == 2


@pytest.fixture
async def cut_server() -> AsyncIterator[str]:
    """An OpenAI-like server that sends the head of a stream and one chunk, then drops the
    connection (no final chunk): a stream cut mid-way by the network. Yields its base URL."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await reader.readexactly(length)
        event = sse(FIRST_CHUNK)
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n%s\r\n" % (len(event), event)
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.close()
        await server.wait_closed()


async def test_a_stream_cut_by_the_network_fires_one_failure_and_no_success(llm, cut_server):
    handler = Recorder()
    llmstash.callbacks = [handler]
    call = {
        "model": "openai/gpt-4o-mini",
        "messages": question(),
        "api_base": cut_server,
        "api_key": KEY,
    }
    stream = await llmstash.acompletion(**call, stream=True, num_retries=2)
    got = []
    with pytest.raises(llmstash.APIConnectionError) as raised:
        async for chunk in stream:
            got.append(chunk)  # noqa: PERF401 - keep what arrived before the failure
    assert len(got) == 1
    await llmstash.aflush_callbacks()
    assert len(handler.failures) == 1
    assert handler.failures[0][0]["exception"] is raised.value
    assert handler.successes == []


async def test_an_abandoned_stream_fires_no_success_event(provider, llm):
    handler = Recorder()
    llmstash.callbacks = [handler]
    llmstash.cache = Cache()
    stream = await llmstash.acompletion(**chat_kwargs(provider), stream=True)
    async for _ in stream:
        break
    await stream.aclose()
    await llmstash.aflush_callbacks()
    assert handler.successes == []
    # ... while the same stream read to its end does fire one (the check above can fail).
    stream = await llmstash.acompletion(**chat_kwargs(provider), stream=True)
    assert [c async for c in stream]
    await llmstash.aflush_callbacks()
    assert len(handler.successes) == 1
    assert provider.request_count == 2


# Cache modes and ttl ----------------------------------------------------------------------------


@pytest.fixture(params=["redis", "cluster"])
def redis_settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    namespace = f"test-{uuid.uuid4().hex}"
    if request.param == "redis":
        return {"url": request.getfixturevalue("redis_url"), "namespace": namespace}
    cluster = request.getfixturevalue("redis_cluster")
    return {"redis_startup_nodes": cluster.startup_nodes, "namespace": namespace}


async def test_mode_default_off_on_redis(provider, llm, redis_settings):
    cache = Cache(type="redis", mode="default_off", **redis_settings)
    llmstash.cache = cache
    key = cache.get_cache_key(**chat_kwargs(provider))
    try:
        assert await cache.aping()
        await llmstash.acompletion(**chat_kwargs(provider))
        await llmstash.acompletion(**chat_kwargs(provider))
        assert provider.request_count == 2
        await cache.aflush_writes()
        assert await cache.alookup(key) is None  # calls that did not ask stored nothing

        first = await llmstash.acompletion(**chat_kwargs(provider), caching=True)
        await cache.aflush_writes()
        assert first._hidden_params["cache_key"] == key
        assert await cache.alookup(key) is not None
        hit = await llmstash.acompletion(**chat_kwargs(provider), cache={"use-cache": True})
        assert hit._hidden_params["cache_hit"] is True and hit.id == first.id
        assert provider.request_count == 3
        plain = await llmstash.acompletion(**chat_kwargs(provider))  # does not ask: not read
        assert plain._hidden_params["cache_hit"] is False and provider.request_count == 4
    finally:
        await cache.aflush_writes()
        await cache.aclear()


async def test_top_level_ttl_expires(provider, any_cache):
    r1 = await llmstash.acompletion(**chat_kwargs(provider), ttl=0.3)
    r2 = await llmstash.acompletion(**chat_kwargs(provider))
    assert r2._hidden_params["cache_hit"] is True and r2.id == r1.id
    await asyncio.sleep(0.45)
    r3 = await llmstash.acompletion(**chat_kwargs(provider))
    assert r3._hidden_params["cache_hit"] is False
    assert provider.request_count == 2


# Anthropic end to end ---------------------------------------------------------------------------


def claude_kwargs(provider, text: str) -> dict[str, Any]:
    return {
        "model": "anthropic/claude-3-5-haiku-20241022",
        "messages": question(text),
        "api_base": provider.anthropic_base,
        "api_key": "sk-ant-test-key-0001",
    }


async def test_anthropic_plain_and_streamed_calls_are_cached(provider, any_cache):
    r1 = await llmstash.acompletion(**claude_kwargs(provider, "plain claude"))
    assert r1.choices[0].message.content == "Echo: plain claude"
    sent = provider.requests[0]
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == "sk-ant-test-key-0001"
    assert sent.json["model"] == "claude-3-5-haiku-20241022"
    r2 = await llmstash.acompletion(**claude_kwargs(provider, "plain claude"))
    assert provider.request_count == 1
    assert r2._hidden_params["cache_hit"] is True and r2 == r1
    ChatCompletion.model_validate(r2.model_dump())

    stream = await llmstash.acompletion(**claude_kwargs(provider, "streamed claude"), stream=True)
    first = [c async for c in stream]
    assert provider.request_count == 2 and provider.requests[1].json["stream"] is True
    text = "".join(c.choices[0].delta.content or "" for c in first if c.choices)
    assert text == "Echo: streamed claude"
    await any_cache.aflush_writes()
    replay = await llmstash.acompletion(**claude_kwargs(provider, "streamed claude"), stream=True)
    second = [c async for c in replay]
    assert provider.request_count == 2
    assert second == first  # same chunks, same boundaries, same usage
    for chunk in second:
        ChatCompletionChunk.model_validate(chunk.model_dump())
    plain = await llmstash.acompletion(**claude_kwargs(provider, "streamed claude"))
    assert plain._hidden_params["cache_hit"] is True
    assert plain.choices[0].message.content == text
    assert provider.request_count == 2


# Callbacks run concurrently, off the caller's path ----------------------------------------------


async def test_three_slow_success_hooks_overlap_and_do_not_delay_the_call(provider, llm):
    spans: list[tuple[float, float]] = []

    class Slow(CustomLogger):
        async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
            start = time.monotonic()
            await asyncio.sleep(0.05)
            spans.append((start, time.monotonic()))

    llmstash.callbacks = [Slow(), Slow(), Slow()]
    r = await llmstash.acompletion(**chat_kwargs(provider))
    assert r.choices[0].message.content
    assert spans == []  # the call returned before any hook finished
    await llmstash.aflush_callbacks()
    assert len(spans) == 3
    # Every hook started before any other ended: they ran at the same time, not in turn.
    assert max(start for start, _ in spans) < min(end for _, end in spans)
