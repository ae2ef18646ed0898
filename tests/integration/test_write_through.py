"""Writes are write-through on Redis (DESIGN §2): when a call that missed returns, or its stream
ends, its entry is in Redis. So ``asyncio.run(acompletion(...))`` per call loses nothing, and
another process asking right after the first call returned hits. Real Redis, the fake provider
over HTTP, real second processes."""

from __future__ import annotations

import json
import textwrap
import uuid
from collections.abc import Iterator

import pytest
import redis

import llmstash
from llmstash.caching import Cache
from llmstash.testing import FakeProvider
from tests._child import Child

pytestmark = pytest.mark.redis

KEY = "sk-test-key-123456"
# Generous lookup and write budgets in the children: these tests are about writes reaching
# Redis, not about a busy machine's first connection exceeding the default budgets.
BUDGETS = {"lookup_timeout": 2.0, "write_timeout": 5.0}

PRELUDE = textwrap.dedent(
    """
    import asyncio, json, sys
    import llmstash
    from llmstash.caching import Cache

    base, url, namespace, text = sys.argv[1:5]
    budgets = json.loads(sys.argv[5])
    llmstash.cache = Cache(type="redis", url=url, namespace=namespace, **budgets)
    KWARGS = dict(
        model="openai/gpt-4o-mini",
        messages=[{"role": "user", "content": text}],
        api_base=base,
        api_key="sk-test-key-123456",
    )

    async def one():
        r = await llmstash.acompletion(**KWARGS)
        hidden = r._hidden_params
        return {"hit": hidden["cache_hit"], "id": r.id, "key": hidden["cache_key"]}
    """
)

FIVE_RUNS = PRELUDE + textwrap.dedent(
    """
    print(json.dumps([asyncio.run(one()) for _ in range(5)]), flush=True)
    """
)

ON_SIGNAL = PRELUDE + textwrap.dedent(
    """
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if line.strip() == "call":
            print(json.dumps(asyncio.run(one())), flush=True)
        elif line.strip() == "exit":
            break
    """
)


@pytest.fixture
def namespace(redis_url: str) -> Iterator[str]:
    """A unique namespace on the shared Redis; its keys are deleted afterwards."""
    name = f"test-wt-{uuid.uuid4().hex}"
    yield name
    with redis.Redis.from_url(redis_url) as client:
        keys = list(client.scan_iter(match=f"{name}:*"))
        if keys:
            client.delete(*keys)


def child_args(provider: FakeProvider, redis_url: str, namespace: str, text: str) -> list[str]:
    return [provider.openai_base, redis_url, namespace, text, json.dumps(BUDGETS)]


def test_asyncio_run_per_call_stores_the_first_answer(provider, redis_url, namespace):
    child = Child(FIVE_RUNS, *child_args(provider, redis_url, namespace, "one loop per call"))
    try:
        results = child.receive()
        stderr = child.finish()
    finally:
        child.kill()
    assert provider.request_count == 1
    assert [r["hit"] for r in results] == [False, True, True, True, True]
    assert len({r["id"] for r in results}) == 1
    with redis.Redis.from_url(redis_url) as client:
        assert client.exists(results[0]["key"]) == 1
    assert "Task was destroyed but it is pending" not in stderr
    assert "was never awaited" not in stderr


def test_another_process_asking_right_after_the_first_returned_hits(provider, redis_url, namespace):
    args = child_args(provider, redis_url, namespace, "asked by two processes")
    first, second = Child(ON_SIGNAL, *args), Child(ON_SIGNAL, *args)
    try:
        assert first.receive() == {"ready": True}
        assert second.receive() == {"ready": True}  # imported, configured, waiting
        first.send("call")
        answer = first.receive()
        second.send("call")  # as soon as the first call returned; the first process lives on
        other = second.receive()
        assert answer["hit"] is False
        assert other["hit"] is True
        assert other["id"] == answer["id"]
        assert provider.request_count == 1
        first.send("exit")
        second.send("exit")
        first.finish()
        second.finish()
    finally:
        first.kill()
        second.kill()


@pytest.fixture
async def redis_cache(llm: None, redis_url: str, namespace: str) -> Cache:
    cache = Cache(type="redis", url=redis_url, namespace=namespace, **BUDGETS)
    llmstash.cache = cache
    return cache


async def test_a_returned_miss_is_already_in_redis(provider, redis_url, redis_cache):
    r = await llmstash.acompletion(
        model="openai/gpt-4o-mini",
        messages=[{"role": "user", "content": "written through"}],
        api_base=provider.openai_base,
        api_key=KEY,
    )
    assert r._hidden_params["cache_hit"] is False
    # No aflush_writes(): the entry was acknowledged before the call returned.
    with redis.Redis.from_url(redis_url) as client:
        assert client.exists(r._hidden_params["cache_key"]) == 1


async def test_a_stream_read_to_its_end_is_already_in_redis(provider, redis_url, redis_cache):
    kwargs = {
        "model": "openai/gpt-4o-mini",
        "messages": [{"role": "user", "content": "streamed through"}],
        "api_base": provider.openai_base,
        "api_key": KEY,
    }
    stream = await llmstash.acompletion(**kwargs, stream=True)
    chunks = [chunk async for chunk in stream]
    assert chunks
    key = redis_cache.get_cache_key(**kwargs)
    with redis.Redis.from_url(redis_url) as client:
        assert client.exists(key) == 1
