"""Cache stats: every miss reason is produced and reported; hits, stores and savings add up;
fleet counters from two real processes sum exactly in Redis (one server and a cluster)."""

from __future__ import annotations

import asyncio
import json
import struct
import time
import uuid
from typing import Any

import redis.asyncio as aioredis

import llmstash
from llmstash.caching import Cache
from llmstash.caching._stats import MISS_REASONS
from tests._child import Child

MODEL = "openai/gpt-4o-mini"


def chat(provider: Any, text: str = "stats", **extra: Any) -> dict[str, Any]:
    return {
        "model": MODEL,
        "messages": [{"role": "user", "content": text}],
        "api_base": provider.openai_base,
        "api_key": "sk-test-key-123456",
        **extra,
    }


def reasons(stats: Any) -> dict[str, int]:
    return {r: n for r, n in stats.miss_reasons.items() if n}


async def test_hits_misses_stores_and_savings_in_memory(provider, llm) -> None:
    cache = llmstash.cache = Cache(namespace="ns1")
    first = await llmstash.acompletion(**chat(provider))
    for _ in range(3):
        await llmstash.acompletion(**chat(provider))
    await llmstash.acompletion(**chat(provider, "other", cache={"namespace": "ns2"}))
    s = cache.stats()
    assert (s.lookups, s.hits, s.misses, s.stores) == (5, 3, 2, 2)
    assert reasons(s) == {"absent": 2}
    assert s.tokens_saved == 3 * first.usage.total_tokens > 0
    # gpt-4o-mini is priced: $0.15 / $0.60 per 1M tokens.
    one = (first.usage.prompt_tokens * 0.15 + first.usage.completion_tokens * 0.60) / 1e6
    assert abs(s.cost_saved_usd - 3 * one) < 1e-9
    assert s.provider_calls == 2 and s.provider_time_s > 0
    assert s.provider_time_saved_s > 0
    assert set(s.by_namespace) == {"ns1", "ns2"}
    assert s.by_namespace["ns1"].hits == 3 and s.by_namespace["ns2"].misses == 1
    assert s.by_model[MODEL].lookups == 5
    assert s.hit_rate == 0.6
    d = s.to_dict()
    json.dumps(d)  # plain values
    assert d["miss_reasons"] == {r: (2 if r == "absent" else 0) for r in MISS_REASONS}
    assert s["breaker_open"] is False and s["writes_given_up"] == 0  # the older keys


async def test_every_miss_reason_in_memory(provider, llm) -> None:
    cache = llmstash.cache = Cache()
    await llmstash.acompletion(**chat(provider, "no-cache", cache={"no-cache": True}))
    await llmstash.acompletion(**chat(provider, "short", ttl=0.05))
    await asyncio.sleep(0.1)
    await llmstash.acompletion(**chat(provider, "short", ttl=0.05))  # expired
    await llmstash.acompletion(**chat(provider, "old"))
    await asyncio.sleep(0.05)
    await llmstash.acompletion(**chat(provider, "old", cache={"s-maxage": 0.01}))
    key = cache.get_cache_key(**chat(provider, "garbage"))
    await cache.backend.set(key, b"\x00 not an entry")
    await llmstash.acompletion(**chat(provider, "garbage"))
    s = cache.stats()
    assert reasons(s) == {
        "no-cache": 1,
        "absent": 2,  # "short" and "old" at first
        "expired": 1,
        "s-maxage": 1,
        "garbage": 1,
    }
    assert s.hits == 0 and s.misses == 6


async def test_every_redis_miss_reason(provider, llm, redis_server_factory, free_tcp_port) -> None:
    server = redis_server_factory("--enable-debug-command", "yes")
    ns = f"reasons-{uuid.uuid4().hex}"
    # A budget no loaded machine runs out of, but for a server held by DEBUG SLEEP.
    settings = {"lookup_timeout": 0.5, "breaker_threshold": 100, "socket_timeout": 3.0}
    cache = llmstash.cache = Cache(type="redis", url=server.url, namespace=ns, **settings)
    await llmstash.acompletion(**chat(provider, "absent"))
    await llmstash.acompletion(**chat(provider, "absent", cache={"s-maxage": 0}))
    await llmstash.acompletion(**chat(provider, "absent", cache={"no-cache": True}))
    raw = aioredis.Redis.from_url(server.url)
    try:
        await raw.set(cache.get_cache_key(**chat(provider, "garbage")), b"junk")
        await llmstash.acompletion(**chat(provider, "garbage"))
        await cache.aflush_writes()
        # An entry whose header says it expired (a clock ahead of Redis's) is never served.
        key = cache.get_cache_key(**chat(provider, "stale"))
        value = await raw.get(cache.get_cache_key(**chat(provider, "absent")))
        stale = bytearray(value)
        struct.pack_into("<d", stale, 12, time.time() - 1)  # expires-at: a second ago
        await raw.set(key, bytes(stale))
        await llmstash.acompletion(**chat(provider, "stale"))
        # DEBUG SLEEP blocks the server: the lookup gives up after its budget.
        assert await raw.ping()
        task = asyncio.ensure_future(raw.execute_command("DEBUG", "SLEEP", "1.5"))
        await asyncio.sleep(0.05)
        await llmstash.acompletion(**chat(provider, "budget"))
        await task
    finally:
        await raw.aclose()
    s = cache.stats()
    await cache.aclose()
    # A dead server: refused (error) until the breaker opens, then skipped (breaker).
    dead = llmstash.cache = Cache(
        type="redis",
        url=f"redis://127.0.0.1:{free_tcp_port}",
        breaker_threshold=1,
        breaker_reset=60,
        socket_connect_timeout=0.2,
    )
    await llmstash.acompletion(**chat(provider, "dead"))
    await llmstash.acompletion(**chat(provider, "dead"))
    d = dead.stats()
    assert reasons(s) == {
        "absent": 1,
        "s-maxage": 1,
        "no-cache": 1,
        "garbage": 1,
        "expired": 1,
        "budget": 1,
    }
    assert reasons(d) == {"error": 1, "breaker": 1}
    assert d.write_failures == 2 and d.stores == 0


CHILD = """
import asyncio, json, sys
import llmstash
from llmstash.caching import Cache
from llmstash.testing import FakeProvider

async def main():
    url, ns, who = sys.argv[1:4]
    misses, hits = int(sys.argv[4]), int(sys.argv[5])
    # Budgets generous enough that no lookup or write of a loaded machine is given up on.
    budgets = {"namespace": ns, "lookup_timeout": 5.0, "write_timeout": 5.0}
    if url.startswith("cluster:"):
        host, port = url[8:].split(":")
        cache = Cache(type="redis", redis_startup_nodes=[{"host": host, "port": port}], **budgets)
    else:
        cache = Cache(type="redis", url=url, **budgets)
    fake = FakeProvider().start()
    try:
        async with llmstash.Client(cache=cache) as client:
            for i in range(misses):
                for j in range(1 + hits):
                    await client.acompletion(model="gpt-4o-mini", api_base=fake.openai_base,
                        api_key="sk-child", messages=[{"role": "user", "content": f"{who} {i}"}])
            await client.acompletion(model="gpt-4o-mini", api_base=fake.openai_base,
                api_key="sk-child", messages=[{"role": "user", "content": "x"}],
                cache={"no-cache": True, "no-store": True})
        s = cache.stats()
        await cache.aclose()
    finally:
        fake.stop()
    print(json.dumps(s.to_dict()), flush=True)

asyncio.run(main())
"""


async def _two_processes(url: str, ns: str, reader: Cache) -> None:
    children = [Child(CHILD, url, ns, "a", "4", "2"), Child(CHILD, url, ns, "b", "3", "5")]
    try:
        local = [await c.areceive() for c in children]
    finally:
        for c in children:
            c.kill()
    fleet = await reader.astats(fleet=True, since=600, namespace=ns)
    assert fleet.scope == "fleet"
    # a: 4 misses, 8 hits; b: 3 misses, 15 hits; each one no-cache miss, stored nowhere.
    assert (fleet.hits, fleet.misses, fleet.stores) == (23, 9, 7)
    assert fleet.miss_reasons["absent"] == 7 and fleet.miss_reasons["no-cache"] == 2
    assert fleet.hits == sum(s["hits"] for s in local)
    assert fleet.tokens_saved == sum(s["tokens_saved"] for s in local) > 0
    assert abs(fleet.cost_saved_usd - sum(s["cost_saved_usd"] for s in local)) < 1e-9
    assert fleet.provider_calls == 9
    assert fleet.by_model["gpt-4o-mini"].hits == 23
    assert list(fleet.by_namespace) == [ns]


async def test_two_processes_add_up_exactly_on_redis(private_redis) -> None:
    ns = f"fleet-{uuid.uuid4().hex}"
    async with Cache(type="redis", url=private_redis.url) as reader:
        await _two_processes(private_redis.url, ns, reader)
        other = await reader.astats(fleet=True, namespace="someone-else")
        assert other.lookups == 0


async def test_two_processes_add_up_exactly_on_a_cluster(redis_cluster) -> None:
    ns = f"fleet-{uuid.uuid4().hex}"
    node = redis_cluster.startup_nodes[0]
    url = f"cluster:{node['host']}:{node['port']}"
    async with Cache(type="redis", redis_startup_nodes=redis_cluster.startup_nodes) as reader:
        await _two_processes(url, ns, reader)


async def test_hits_alone_reach_the_fleet_counters(provider, llm, private_redis) -> None:
    """A process that only hits sends its counters within the flush interval, unasked."""
    writer = Cache(type="redis", url=private_redis.url)
    llmstash.cache = writer
    await llmstash.acompletion(**chat(provider))
    await writer.aflush_writes()
    reader = Cache(type="redis", url=private_redis.url)
    try:
        for _ in range(5):
            await llmstash.acompletion(**chat(provider))
        deadline = time.monotonic() + 5
        while (await reader.astats(fleet=True)).hits < 5:
            assert time.monotonic() < deadline, "hits never reached the shared counters"
            await asyncio.sleep(0.1)
    finally:
        await reader.aclose()


async def test_stats_off_keeps_no_counters(provider, llm, private_redis) -> None:
    cache = llmstash.cache = Cache(type="redis", url=private_redis.url, stats=False)
    await llmstash.acompletion(**chat(provider))
    await llmstash.acompletion(**chat(provider))
    await cache.aflush_writes()
    assert cache.stats().lookups == 0
    assert (await cache.astats(fleet=True)).lookups == 0
    raw = aioredis.Redis.from_url(private_redis.url)
    try:
        assert [k async for k in raw.scan_iter(match="llmstash-stats:*")] == []
    finally:
        await raw.aclose()
    on = Cache(type="redis", url=private_redis.url)
    try:
        await on.astore({"k": b"v"}, None)
        await on.aflush_writes()
        raw = aioredis.Redis.from_url(private_redis.url)
        try:  # the same steps with stats on do leave counters: the check above can fail
            assert [k async for k in raw.scan_iter(match="llmstash-stats:*")] != []
        finally:
            await raw.aclose()
    finally:
        await on.aclose()


async def test_coalesced_followers_and_embeddings(provider, llm) -> None:
    cache = llmstash.cache = Cache()
    provider.latency = 0.1
    try:
        await asyncio.gather(*[llmstash.acompletion(**chat(provider, "burst")) for _ in range(5)])
    finally:
        provider.latency = 0.0
    s = cache.stats()
    assert (s.hits, s.coalesced, s.misses) == (4, 4, 1)
    emb = {"model": "text-embedding-3-small", "api_base": provider.openai_base, "api_key": "k"}
    await llmstash.aembedding(input=["a", "b"], **emb)
    await llmstash.aembedding(input=["a", "b", "c"], **emb)
    e = cache.stats().by_model["text-embedding-3-small"]
    assert (e.lookups, e.hits, e.misses, e.stores) == (5, 2, 3, 3)


async def test_responses_and_text_completion_miss_reasons_and_stores(provider, llm) -> None:
    cache = llmstash.cache = Cache(namespace="rt")
    base = {"api_base": provider.openai_base, "api_key": "sk-test-key-123456"}
    calls = {
        "gpt-4o-mini": lambda text, **kw: llmstash.aresponses(
            model="gpt-4o-mini", input=text, **base, **kw
        ),
        "gpt-3.5-turbo-instruct": lambda text, **kw: llmstash.atext_completion(
            model="gpt-3.5-turbo-instruct", prompt=text, **base, **kw
        ),
    }
    for call in calls.values():
        await call("no-cache", cache={"no-cache": True})
        await call("short", ttl=0.05)
        await asyncio.sleep(0.1)
        await call("short", ttl=0.05)  # expired
        first = await call("old")
        await asyncio.sleep(0.05)
        await call("old", cache={"s-maxage": 0.01})
        await cache.backend.set(first._hidden_params["cache_key"], b"\x00 not an entry")
        await call("old")  # garbage
        await call("old")  # a hit
        async for _ in await call("streamed", stream=True):
            pass
    s = cache.stats()
    for model in calls:
        m = s.by_model[model]
        assert reasons(m) == {
            "no-cache": 1,
            "absent": 3,  # "short", "old" at first, "streamed"
            "expired": 1,
            "s-maxage": 1,
            "garbage": 1,
        }, model
        # every answer stored is counted for its model (none under a blank one)
        assert m.stores == 7 and m.hits == 1, model
    assert set(s.by_model) == set(calls)
    assert set(s.by_namespace) == {"rt"}
