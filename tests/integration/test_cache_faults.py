"""A dead, slow or restarted Redis never breaks or stalls a call; Redis stays the truth."""

from __future__ import annotations

import asyncio
import time
import uuid

import redis.asyncio as aioredis

import llmstash
from llmstash.caching import Cache
from tests._fixtures_redis import eventually

# Generous bounds: they catch multi-second stalls (LiteLLM's sync path waits ~8 s on a dead
# Redis), not speed; speed lives in benchmarks/.
STALL = 2.0


def chat(provider, text: str = "fault test", **extra):
    return {
        "model": "openai/gpt-4o-mini",
        "messages": [{"role": "user", "content": text}],
        "api_base": provider.openai_base,
        "api_key": "sk-test-key-123456",
        **extra,
    }


def fault_cache(url: str, **extra) -> Cache:
    settings = {
        "lookup_timeout": 0.05,
        "breaker_threshold": 3,
        "breaker_reset": 0.2,
        "socket_connect_timeout": 0.2,
        "socket_timeout": 0.2,
        **extra,
    }
    return Cache(type="redis", url=url, **settings)


async def test_redis_stopped_mid_run_then_back(provider, llm, private_redis):
    cache = fault_cache(private_redis.url)
    llmstash.cache = cache
    await llmstash.acompletion(**chat(provider))
    await cache.aflush_writes()
    r = await llmstash.acompletion(**chat(provider))
    assert r._hidden_params["cache_hit"] is True

    private_redis.stop()
    for i in range(6):
        t0 = time.perf_counter()
        r = await llmstash.acompletion(**chat(provider, f"while down {i}"))
        assert time.perf_counter() - t0 < STALL
        assert r._hidden_params["cache_hit"] is False
    assert cache.stats()["breaker_open"] is True
    assert provider.request_count == 7

    private_redis.restart()

    async def caching_again() -> bool:
        await llmstash.acompletion(**chat(provider, "after restart"))
        await cache.aflush_writes()
        again = await llmstash.acompletion(**chat(provider, "after restart"))
        return bool(again._hidden_params["cache_hit"])

    await eventually(caching_again, within=5.0)
    assert cache.stats()["breaker_open"] is False
    await cache.aclose()


async def test_slow_redis_is_bounded_by_the_lookup_budget(provider, llm, redis_server_factory):
    private_redis = redis_server_factory("--enable-debug-command", "yes")
    cache = fault_cache(private_redis.url, breaker_threshold=100)
    llmstash.cache = cache
    await llmstash.acompletion(**chat(provider))  # connect once
    await cache.aflush_writes()
    blocker = aioredis.Redis(host=private_redis.host, port=private_redis.port)
    try:
        # Connected first, so that DEBUG SLEEP reaches the server at once and not after a
        # connection handshake that could outlast the pause below.
        assert await blocker.ping()
        # DEBUG SLEEP blocks the server for a second; our lookup must give up after ~50 ms.
        task = asyncio.ensure_future(blocker.execute_command("DEBUG", "SLEEP", "1"))
        await asyncio.sleep(0.05)
        t0 = time.perf_counter()
        r = await llmstash.acompletion(**chat(provider))
        waited = time.perf_counter() - t0
        await task
    finally:
        await blocker.aclose()
    assert r._hidden_params["cache_hit"] is False
    assert waited < 0.5
    await cache.aclose()


async def test_garbage_planted_under_the_real_key_is_a_miss(provider, llm, redis_url):
    cache = Cache(type="redis", url=redis_url, namespace=f"garbage-{uuid.uuid4().hex}")
    llmstash.cache = cache
    key = cache.get_cache_key(**chat(provider))
    client = aioredis.Redis.from_url(redis_url)
    try:
        for garbage in (b"\x00\x01garbage", b'{"choices": 5}', b"null"):
            await client.set(key, garbage)
            r = await llmstash.acompletion(**chat(provider))
            assert r._hidden_params["cache_hit"] is False
            await cache.aflush_writes()
        assert provider.request_count == 3
    finally:
        await cache.aflush_writes()
        await cache.aclear()
        await client.delete(key)
        await client.aclose()
        await cache.aclose()


async def test_redis_is_the_source_of_truth(provider, llm, redis_url):
    cache = Cache(type="redis", url=redis_url, namespace=f"truth-{uuid.uuid4().hex}")
    llmstash.cache = cache
    client = aioredis.Redis.from_url(redis_url)
    try:
        r1 = await llmstash.acompletion(**chat(provider))
        await cache.aflush_writes()
        assert await client.delete(r1._hidden_params["cache_key"]) == 1
        r2 = await llmstash.acompletion(**chat(provider))
        assert r2._hidden_params["cache_hit"] is False  # no hidden in-process copy served it
    finally:
        await client.aclose()
        await cache.aflush_writes()
        await cache.aclear()
        await cache.aclose()


async def test_opt_in_memory_tier_honours_deletes(provider, llm, redis_url):
    namespace = f"tier-{uuid.uuid4().hex}"
    cache = Cache(type="redis", url=redis_url, namespace=namespace, default_in_memory_ttl=30)
    llmstash.cache = cache
    try:
        r1 = await llmstash.acompletion(**chat(provider))
        await cache.aflush_writes()
        r2 = await llmstash.acompletion(**chat(provider))
        assert r2._hidden_params["cache_hit"] is True and r2 == r1
        assert await cache.adelete(r1._hidden_params["cache_key"]) == 1
        r3 = await llmstash.acompletion(**chat(provider))
        assert r3._hidden_params["cache_hit"] is False
    finally:
        await cache.aflush_writes()
        await cache.aclear()
        await cache.aclose()


def test_sync_call_against_a_dead_redis_is_bounded(provider, sync_llm, free_tcp_port):
    llmstash.cache = fault_cache(f"redis://127.0.0.1:{free_tcp_port}")
    for i in range(4):
        t0 = time.perf_counter()
        r = llmstash.completion(**chat(provider, f"sync dead {i}"))
        assert time.perf_counter() - t0 < STALL
        assert r.choices[0].message.content == f"Echo: sync dead {i}"


async def test_lease_makes_workers_share_one_call(provider, llm, redis_url):
    """Two Clients with their own Cache objects stand for two processes sharing a Redis."""
    namespace = f"lease-{uuid.uuid4().hex}"
    # A 0.5 s budget: a lookup a loaded machine delays past 50 ms would be a miss by design.
    caches = [
        Cache(type="redis", url=redis_url, namespace=namespace, lease=2.0, lookup_timeout=0.5)
        for _ in range(2)
    ]
    clients = [llmstash.Client(cache=c) for c in caches]
    provider.latency = 0.1
    try:
        calls = [
            client.acompletion(**chat(provider, "leased question"))
            for client in clients
            for _ in range(5)
        ]
        results = await asyncio.gather(*calls)
    finally:
        provider.latency = 0.0
        for client in clients:
            await client.aclose()
        await caches[0].aclear()
        for cache in caches:
            await cache.aclose()
    assert provider.request_count == 1
    assert len({r.id for r in results}) == 1


async def test_memory_tier_never_outlives_the_entry_ttl(provider, llm, redis_url):
    namespace = f"tier-ttl-{uuid.uuid4().hex}"
    writer = Cache(type="redis", url=redis_url, namespace=namespace)
    reader = Cache(type="redis", url=redis_url, namespace=namespace, default_in_memory_ttl=30)
    try:
        llmstash.cache = writer
        await llmstash.acompletion(**chat(provider, "short-lived"), ttl=0.3)
        await writer.aflush_writes()
        llmstash.cache = reader  # another process, with a 30 s in-process tier
        hit = await llmstash.acompletion(**chat(provider, "short-lived"))
        assert hit._hidden_params["cache_hit"] is True
        await asyncio.sleep(0.45)
        late = await llmstash.acompletion(**chat(provider, "short-lived"))
        assert late._hidden_params["cache_hit"] is False
    finally:
        await reader.aflush_writes()
        await reader.aclear()
        await writer.aclose()
        await reader.aclose()


async def test_a_burst_of_misses_is_written_in_full(llm, private_redis):
    """300 concurrent misses: every entry lands, with no write failing for want of a
    connection (writes are pipelined by one task per loop, not one connection each)."""
    # A generous lookup budget and a warm connection: this test is about the writes, so a
    # slow first connect on a busy machine must not open the breaker (which skips writes).
    cache = Cache(type="redis", url=private_redis.url, lookup_timeout=2.0)
    llmstash.cache = cache
    try:
        assert await cache.aping()
        assert await cache.alookup("warm-up") is None
        responses = await asyncio.gather(
            *[
                llmstash.acompletion(
                    model="gpt-4o-mini",
                    messages=[{"role": "user", "content": f"burst {i}"}],
                    mock_response=f"answer {i}",
                )
                for i in range(300)
            ]
        )
        await cache.aflush_writes()
        assert cache.stats()["consecutive_failures"] == 0
        raw = aioredis.Redis(host=private_redis.host, port=private_redis.port)
        try:
            stored = await raw.exists(*[r._hidden_params["cache_key"] for r in responses])
        finally:
            await raw.aclose()
        assert stored == 300
    finally:
        await cache.aclose()
