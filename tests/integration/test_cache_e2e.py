"""The cache contract of DESIGN §2, end to end: real HTTP to the fake provider, real Redis."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
import redis.asyncio as aioredis
from openai.types.chat import ChatCompletion, ChatCompletionChunk

import llmstash
from llmstash.caching import Cache
from tests._fixtures_redis import eventually

MSGS = [{"role": "user", "content": "what is a cache?"}]


def chat_kwargs(provider, **extra):
    return {
        "model": "openai/gpt-4o-mini",
        "messages": MSGS,
        "api_base": provider.openai_base,
        "api_key": "sk-test-key-123456",
        **extra,
    }


async def test_hit_is_equal_and_served_without_a_request(provider, any_cache):
    r1 = await llmstash.acompletion(**chat_kwargs(provider))
    r2 = await llmstash.acompletion(**chat_kwargs(provider))  # no sleep: read-your-writes
    assert provider.request_count == 1
    assert r1 == r2
    assert r2.id == r1.id
    assert r1._hidden_params["cache_hit"] is False
    assert r2._hidden_params["cache_hit"] is True
    assert r2._hidden_params["cache_key"] == r1._hidden_params["cache_key"]
    assert r2["choices"][0]["message"]["content"] == "Echo: what is a cache?"
    ChatCompletion.model_validate(r2.model_dump())


async def test_params_change_the_key_and_api_key_does_not(provider, any_cache):
    await llmstash.acompletion(**chat_kwargs(provider, temperature=0.1))
    await llmstash.acompletion(**chat_kwargs(provider, temperature=0.9))
    assert provider.request_count == 2
    again = chat_kwargs(provider, temperature=0.1, api_key="sk-other-tenant-999", timeout=5)
    r = await llmstash.acompletion(**again)
    assert provider.request_count == 2
    assert r._hidden_params["cache_hit"] is True


async def test_caching_false_and_no_cache_set(provider, any_cache):
    await llmstash.acompletion(**chat_kwargs(provider))
    await llmstash.acompletion(**chat_kwargs(provider), caching=False)
    assert provider.request_count == 2
    llmstash.cache = None  # read at call time
    await llmstash.acompletion(**chat_kwargs(provider), caching=True)
    assert provider.request_count == 3
    llmstash.cache = any_cache


async def test_mode_default_off(provider, llm):
    llmstash.cache = Cache(mode="default_off")
    await llmstash.acompletion(**chat_kwargs(provider))
    await llmstash.acompletion(**chat_kwargs(provider))
    assert provider.request_count == 2
    await llmstash.acompletion(**chat_kwargs(provider), caching=True)
    await llmstash.acompletion(**chat_kwargs(provider), cache={"use-cache": True})
    assert provider.request_count == 3


async def test_no_cache_skips_lookup_but_stores(provider, any_cache):
    await llmstash.acompletion(**chat_kwargs(provider))
    r = await llmstash.acompletion(**chat_kwargs(provider), cache={"no-cache": True})
    assert provider.request_count == 2
    assert r._hidden_params["cache_hit"] is False
    r3 = await llmstash.acompletion(**chat_kwargs(provider))
    assert r3.id == r.id  # the no-cache call's answer replaced the entry


async def test_no_store(provider, any_cache):
    await llmstash.acompletion(**chat_kwargs(provider), cache={"no-store": True})
    await llmstash.acompletion(**chat_kwargs(provider))
    assert provider.request_count == 2


async def test_ttl_expires_and_ttl_zero_keeps_nothing(provider, any_cache):
    await llmstash.acompletion(**chat_kwargs(provider), ttl=0)
    await llmstash.acompletion(**chat_kwargs(provider), ttl=0)
    assert provider.request_count == 2
    await llmstash.acompletion(**chat_kwargs(provider), cache={"ttl": 0.3})
    await llmstash.acompletion(**chat_kwargs(provider))
    assert provider.request_count == 3
    await asyncio.sleep(0.45)
    await llmstash.acompletion(**chat_kwargs(provider))
    assert provider.request_count == 4


async def test_s_maxage(provider, any_cache):
    await llmstash.acompletion(**chat_kwargs(provider))
    await llmstash.acompletion(**chat_kwargs(provider), cache={"s-maxage": 60})
    assert provider.request_count == 1
    await asyncio.sleep(0.25)
    r = await llmstash.acompletion(**chat_kwargs(provider), cache={"s-maxage": 0.2})
    assert provider.request_count == 2
    assert r._hidden_params["cache_hit"] is False


async def test_namespaces_are_separate(provider, any_cache):
    a, b = f"a-{uuid.uuid4().hex}", f"b-{uuid.uuid4().hex}"
    try:
        await llmstash.acompletion(**chat_kwargs(provider), cache={"namespace": a})
        await llmstash.acompletion(**chat_kwargs(provider), cache={"namespace": b})
        r = await llmstash.acompletion(**chat_kwargs(provider), cache={"namespace": a})
        assert provider.request_count == 2
        assert r._hidden_params["cache_key"].startswith(f"{a}:llmstash:v2:")
    finally:
        await any_cache.aflush_writes()
        await any_cache.aclear(a)
        await any_cache.aclear(b)


async def test_errors_are_never_cached(provider, any_cache):
    provider.fail_next(status=400)
    with pytest.raises(llmstash.BadRequestError):
        await llmstash.acompletion(**chat_kwargs(provider))
    r = await llmstash.acompletion(**chat_kwargs(provider))
    assert r._hidden_params["cache_hit"] is False
    assert provider.request_count == 2


async def test_mock_response_cached_and_a_hit_wins(provider, any_cache):
    m1 = await llmstash.acompletion(**chat_kwargs(provider, mock_response="mocked!"))
    m2 = await llmstash.acompletion(**chat_kwargs(provider, mock_response="other"))
    assert m2.id == m1.id and m2.choices[0].message.content == "mocked!"
    assert provider.request_count == 0
    fresh1 = await llmstash.acompletion(**chat_kwargs(provider, mock_response="x"), caching=False)
    fresh2 = await llmstash.acompletion(**chat_kwargs(provider, mock_response="x"), caching=False)
    assert fresh1.id != fresh2.id


async def test_stream_miss_stored_and_replayed_chunk_for_chunk(provider, any_cache):
    first = [c async for c in await llmstash.acompletion(**chat_kwargs(provider), stream=True)]
    assert len(first) > 2
    await any_cache.aflush_writes()
    stream = await llmstash.acompletion(**chat_kwargs(provider), stream=True)
    second = [c async for c in stream]
    assert provider.request_count == 1
    assert second == first
    for chunk in second:
        ChatCompletionChunk.model_validate(chunk.model_dump())
    plain = await llmstash.acompletion(**chat_kwargs(provider))
    assert plain._hidden_params["cache_hit"] is True
    assert plain.choices[0].message.content == "Echo: what is a cache?"
    assert provider.request_count == 1


async def test_plain_entry_replayed_as_a_stream(provider, any_cache):
    r = await llmstash.acompletion(**chat_kwargs(provider))
    stream = await llmstash.acompletion(**chat_kwargs(provider), stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == r.choices[0].message.content
    assert provider.request_count == 1


async def test_abandoned_stream_is_not_stored(provider, any_cache):
    stream = await llmstash.acompletion(**chat_kwargs(provider), stream=True)
    async for _ in stream:
        break
    await stream.aclose()
    await llmstash.acompletion(**chat_kwargs(provider))
    assert provider.request_count == 2


async def test_single_flight_100_concurrent_cold_calls(provider, any_cache):
    provider.latency = 0.05
    try:
        results = await asyncio.gather(
            *[llmstash.acompletion(**chat_kwargs(provider)) for _ in range(100)]
        )
    finally:
        provider.latency = 0.0
    assert provider.request_count == 1
    assert len({r.id for r in results}) == 1


async def test_single_flight_shares_errors(provider, any_cache):
    provider.latency = 0.05
    provider.fail_next(status=400)
    try:
        results = await asyncio.gather(
            *[llmstash.acompletion(**chat_kwargs(provider)) for _ in range(10)],
            return_exceptions=True,
        )
    finally:
        provider.latency = 0.0
    assert provider.request_count == 1
    assert all(isinstance(r, llmstash.BadRequestError) for r in results)


def emb_kwargs(provider, inputs, **extra):
    return {
        "model": "openai/text-embedding-3-small",
        "input": inputs,
        "api_base": provider.openai_base,
        "api_key": "sk-test-key-123456",
        **extra,
    }


async def test_embeddings_cached_per_input(provider, any_cache):
    full = await llmstash.aembedding(**emb_kwargs(provider, ["a", "b", "c", "d"]))
    provider.reset()
    await llmstash.aembedding(**emb_kwargs(provider, ["b", "d"]))
    assert provider.request_count == 0
    mixed = await llmstash.aembedding(**emb_kwargs(provider, ["x", "c", "y", "a"]))
    assert provider.request_count == 1
    assert provider.requests[0].json["input"] == ["x", "y"]
    assert [d.index for d in mixed.data] == [0, 1, 2, 3]
    assert mixed.data[1].embedding == full.data[2].embedding
    assert mixed.data[3].embedding == full.data[0].embedding
    fresh = await llmstash.aembedding(**emb_kwargs(provider, ["x", "y"]), caching=False)
    assert mixed.data[0].embedding == fresh.data[0].embedding
    assert mixed.data[2].embedding == fresh.data[1].embedding
    # Usage counts every input, the cached ones too: as an uncached call of the same inputs.
    uncached = await llmstash.aembedding(
        **emb_kwargs(provider, ["x", "c", "y", "a"]), caching=False
    )
    assert provider.requests[-1].json["input"] == ["x", "c", "y", "a"]
    assert mixed.usage.prompt_tokens == uncached.usage.prompt_tokens == 4
    assert mixed.usage.total_tokens == uncached.usage.total_tokens == 4
    assert mixed["data"][0]["embedding"][0] == fresh.data[0].embedding[0]
    assert isinstance(mixed.model_dump()["data"][0]["embedding"], list)


async def test_embedding_mock_response(any_cache):
    r = await llmstash.aembedding(
        model="text-embedding-3-small", input=["q"], mock_response="0.5,0.25"
    )
    assert r.data[0].embedding.tolist() == [0.5, 0.25]


async def test_garbage_under_the_key_is_a_miss(provider, any_cache):
    key = any_cache.get_cache_key(**chat_kwargs(provider))
    for garbage in (
        b"\xff\xfe not ours",
        b'{"id": 1, "choices": "nope"}',
        b"L\x01\x01" + b"\x00" * 12,
    ):
        await any_cache.astore({key: garbage}, None)
        await any_cache.aflush_writes()
        r = await llmstash.acompletion(**chat_kwargs(provider))
        assert r._hidden_params["cache_hit"] is False
    assert provider.request_count == 3


def test_sync_completion_hits_and_respects_call_types(provider, sync_llm):
    llmstash.cache = Cache(supported_call_types=["acompletion"])
    llmstash.completion(**chat_kwargs(provider))
    llmstash.completion(**chat_kwargs(provider))
    assert provider.request_count == 2  # "acompletion" does not cover completion
    llmstash.cache = Cache()
    r1 = llmstash.completion(**chat_kwargs(provider))
    r2 = llmstash.completion(**chat_kwargs(provider))
    assert provider.request_count == 3 and r1 == r2
    chunks = list(llmstash.completion(**chat_kwargs(provider), stream=True))
    assert provider.request_count == 3 and len(chunks) > 1
    e = llmstash.embedding(**emb_kwargs(provider, ["s1", "s2"]))
    assert len(e.data) == 2


async def test_constructor_does_no_io_and_dead_redis_is_a_fast_miss(provider, llm, free_tcp_port):
    cache = Cache(
        type="redis", host="127.0.0.1", port=str(free_tcp_port), socket_connect_timeout=0.2
    )
    llmstash.cache = cache
    t0 = time.perf_counter()
    for i in range(8):
        msgs = [{"role": "user", "content": f"question {i}"}]
        r = await llmstash.acompletion(**chat_kwargs(provider, messages=msgs))
        assert r._hidden_params["cache_hit"] is False
    assert provider.request_count == 8
    assert cache.stats()["breaker_open"] is True
    # bounded: eight calls against a dead Redis, far from eight connect timeouts each
    assert time.perf_counter() - t0 < 8 * 0.5


REDIS_ENV = ("REDIS_URL", "REDIS_SSL_URL", "REDIS_HOST", "REDIS_PORT", "REDIS_PASSWORD")


@pytest.mark.parametrize("how", ["host_port", "host_port_password", "url"])
async def test_redis_env_fallback(monkeypatch, provider, llm, redis_server_factory, how):
    """With no host given, Cache(type="redis") goes where the environment says: a private
    server on a free port (so an ignored REDIS_PORT would reach 6379 instead), one that needs
    the password from REDIS_PASSWORD, or REDIS_URL."""
    password = "env pass-word" if how == "host_port_password" else None
    server = redis_server_factory(*(["--requirepass", password] if password else []))
    for name in REDIS_ENV:
        monkeypatch.delenv(name, raising=False)
    if how == "url":
        monkeypatch.setenv("REDIS_URL", f"redis://{server.host}:{server.port}/2")
    else:
        monkeypatch.setenv("REDIS_HOST", server.host)
        monkeypatch.setenv("REDIS_PORT", str(server.port))
        if password:
            monkeypatch.setenv("REDIS_PASSWORD", password)
    db = 2 if how == "url" else 0
    raw = aioredis.Redis(host=server.host, port=server.port, password=password, db=db)
    cache = Cache(type="redis", namespace=f"envtest-{uuid.uuid4().hex}")
    llmstash.cache = cache
    try:
        r1 = await llmstash.acompletion(**chat_kwargs(provider))
        await cache.aflush_writes()
        key = r1._hidden_params["cache_key"]
        assert await raw.get(key) is not None  # landed on the server the environment names
        r2 = await llmstash.acompletion(**chat_kwargs(provider))
        assert r2._hidden_params["cache_hit"] is True
        assert provider.request_count == 1
    finally:
        await cache.aflush_writes()
        await cache.aclear()
        await raw.aclose()


async def test_single_flight_streams_every_waiter_gets_the_whole_stream(provider, any_cache):
    provider.latency = 0.05

    async def read_stream():
        stream = await llmstash.acompletion(**chat_kwargs(provider), stream=True)
        return [c async for c in stream]

    async def plain():
        return await llmstash.acompletion(**chat_kwargs(provider))

    try:
        results = await asyncio.gather(*[read_stream() for _ in range(20)], plain())
    finally:
        provider.latency = 0.0
    assert provider.request_count == 1
    streams, response = results[:-1], results[-1]
    assert all(s == streams[0] for s in streams) and len(streams[0]) > 2
    assert response.choices[0].message.content == "Echo: what is a cache?"


async def wait_for_requests(provider, n: int, within: float = 5.0) -> None:
    """Poll until the provider has received ``n`` requests (fail after ``within`` s)."""

    async def arrived() -> bool:
        return provider.request_count >= n

    await eventually(arrived, within)
    assert provider.request_count == n


async def settle(tasks, within: float = 0.1) -> None:
    """Give ``tasks`` time to reach their wait (a Redis lookup first takes a round trip); none
    may finish meanwhile."""
    await asyncio.sleep(within)
    assert not any(t.done() for t in tasks)


async def test_single_flight_followers_recover_when_the_leader_abandons(provider, any_cache):
    provider.latency = 0.05
    try:
        leader = await llmstash.acompletion(**chat_kwargs(provider), stream=True)
        await wait_for_requests(provider, 1)
        followers = [
            asyncio.ensure_future(llmstash.acompletion(**chat_kwargs(provider))) for _ in range(3)
        ]
        await settle(followers)
        assert provider.request_count == 1  # the followers wait on the leader's stream
        await leader.aclose()
        results = await asyncio.gather(*followers)
    finally:
        provider.latency = 0.0
    assert all(r.choices[0].message.content == "Echo: what is a cache?" for r in results)
    # The abandoned stream was neither shared nor stored: one follower took over, the others
    # shared its answer.
    assert provider.request_count == 2
    assert len({r.id for r in results}) == 1


async def test_an_unread_stream_does_not_block_an_identical_call(provider, any_cache):
    first = await llmstash.acompletion(**chat_kwargs(provider), stream=True)
    # Same task, first stream not read yet: the second call must not wait on it forever.
    second = await asyncio.wait_for(llmstash.acompletion(**chat_kwargs(provider), stream=True), 5)
    assert [c async for c in second] and [c async for c in first]


async def test_a_cancelled_leader_hands_over_to_one_follower(provider, any_cache):
    provider.hang_next(0.5)  # the leader's request only
    leader = asyncio.ensure_future(llmstash.acompletion(**chat_kwargs(provider)))
    await wait_for_requests(provider, 1)  # the leader's request is at the provider
    followers = [
        asyncio.ensure_future(llmstash.acompletion(**chat_kwargs(provider))) for _ in range(20)
    ]
    await settle(followers)
    assert provider.request_count == 1  # the followers wait on the leader
    leader.cancel()
    results = await asyncio.gather(*followers)
    with pytest.raises(asyncio.CancelledError):
        await leader
    assert provider.request_count == 2  # the cancelled one and a single successor
    assert len({r.id for r in results}) == 1


async def test_credential_errors_are_not_shared_with_followers(provider, any_cache):
    provider.hang_next(0.2)  # the keyless call's request only
    no_key = chat_kwargs(provider, api_key=None)
    # The keyless call must lead: its request is at the provider before the other starts
    # (started together, either lookup may come back first on a cluster).
    leader = asyncio.ensure_future(llmstash.acompletion(**no_key, num_retries=0))
    await wait_for_requests(provider, 1)
    follower = asyncio.ensure_future(llmstash.acompletion(**chat_kwargs(provider)))
    results = await asyncio.gather(leader, follower, return_exceptions=True)
    assert isinstance(results[0], llmstash.AuthenticationError)
    assert results[1].choices[0].message.content == "Echo: what is a cache?"
    assert provider.request_count == 2  # the follower made its own call with its own key


async def test_a_stream_cut_short_is_not_stored(any_cache):
    from llmstash._streams import replay as _replay
    from llmstash.types import Delta, ModelResponseStream, StreamingChoices

    client = llmstash.Client(cache=any_cache)
    try:
        stream = await client.acompletion(
            model="gpt-4o-mini", messages=MSGS, stream=True, mock_response="x"
        )
        call = stream._call
        cut = [
            ModelResponseStream(
                id="c", created=1, model="m", choices=[StreamingChoices(delta=Delta(content=t))]
            )
            for t in ("The answer ", "is ")
        ]  # no chunk with a finish_reason: the connection ended early
        stream._source = _replay(cut)
        stream._first = None
        stream._chunks = []
        call.key = any_cache.get_cache_key(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "cut"}]
        )
        assert [c async for c in stream] == cut
        await any_cache.aflush_writes()
        assert await any_cache.alookup(call.key) is None
    finally:
        await client.aclose()


async def test_a_named_server_is_part_of_the_key(provider, any_cache):
    from llmstash.testing import FakeProvider

    with FakeProvider() as other:
        a = await llmstash.acompletion(**chat_kwargs(provider))
        b = await llmstash.acompletion(**chat_kwargs(provider, api_base=other.openai_base))
        assert other.request_count == 1 and provider.request_count == 1
        assert a.id != b.id
        again = await llmstash.acompletion(
            **chat_kwargs(provider, api_base=provider.openai_base + "/")
        )
        assert again.id == a.id  # a trailing slash names the same server
