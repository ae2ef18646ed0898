"""The cross-process lease (DESIGN §4.1): with ``Cache(type="redis", lease=10)``, a second real
process asking while the first holds the lease waits for its entry instead of calling the
provider; when the holder's call fails or is cancelled, the waiter calls the provider itself
within about a second, never waiting out the 10 s lease; streams take the lease too. The test
process holds the lease; a child process waits. Real Redis, the fake provider over HTTP."""

from __future__ import annotations

import asyncio
import json
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis

import llmstash
from llmstash.caching import Cache
from llmstash.testing import FakeProvider
from tests._child import CHILD_TIMEOUT, Child
from tests._fixtures_redis import eventually

pytestmark = pytest.mark.redis

KEY = "sk-test-key-123456"
LEASE = 10.0
HOLD = 1.5
"""Seconds the holder's provider request takes: time for the child to start waiting."""
NOTICE = 1.0
"""Seconds within which the waiter must call the provider after the holder gave up."""
# Budgets far above a loopback round trip: the lease and lookups must not be skipped as slow.
BUDGETS = {"lookup_timeout": 2.0, "write_timeout": 2.0}

WAITER = textwrap.dedent(
    """
    import asyncio, json, sys, time
    import llmstash
    from llmstash.caching import Cache

    base, url, namespace, text = sys.argv[1:5]
    budgets = json.loads(sys.argv[5])
    KWARGS = dict(
        model="openai/gpt-4o-mini",
        messages=[{"role": "user", "content": text}],
        api_base=base,
        api_key="sk-test-key-123456",
        num_retries=0,
    )

    async def call(mode):
        if mode == "stream":
            stream = await llmstash.acompletion(**KWARGS, stream=True)
            chunks = [chunk async for chunk in stream]
            content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            return {"hit": stream.cache_hit, "id": chunks[0].id, "content": content}
        r = await llmstash.acompletion(**KWARGS)
        hit = r._hidden_params["cache_hit"]
        return {"hit": hit, "id": r.id, "content": r.choices[0].message.content}

    async def main():
        cache = Cache(type="redis", url=url, namespace=namespace, lease=10, **budgets)
        llmstash.cache = cache
        assert await cache.aping()
        await cache.alookup(namespace + ":warm-up")
        print(json.dumps({"ready": True}), flush=True)
        while True:
            mode = (await asyncio.to_thread(sys.stdin.readline)).strip()
            if mode in ("", "exit"):
                break
            print(json.dumps({"started": True}), flush=True)
            start = time.monotonic()
            try:
                result = await call(mode)
            except Exception as exc:
                result = {"error": repr(exc)}
            result["elapsed"] = time.monotonic() - start
            print(json.dumps(result), flush=True)
        await cache.aclose()

    asyncio.run(main())
    """
)


class Waiter(Child):
    """The child process: ready once it is connected to Redis; ``ask(mode)`` makes it call
    (it says ``{"started": true}`` as it starts), ``answer()`` reads what it says next."""

    def __init__(self, *args: str) -> None:
        super().__init__(WAITER, *args)

    async def answer(self, timeout: float = CHILD_TIMEOUT) -> dict[str, Any]:
        result: dict[str, Any] = await self.areceive(timeout)
        return result

    def ask(self, mode: str) -> None:
        self.send(mode)


@pytest.fixture
def namespace(redis_url: str) -> Iterator[str]:
    name = f"test-lease-{uuid.uuid4().hex}"
    yield name
    with redis.Redis.from_url(redis_url) as client:
        keys = list(client.scan_iter(match=f"{name}:*"))
        if keys:
            client.delete(*keys)


@pytest.fixture
async def holder_cache(llm: None, redis_url: str, namespace: str) -> Cache:
    """The test process's cache, with the lease, installed as ``llmstash.cache``."""
    cache = Cache(type="redis", url=redis_url, namespace=namespace, lease=LEASE, **BUDGETS)
    assert await cache.aping()
    await cache.alookup(f"{namespace}:warm-up")
    llmstash.cache = cache
    return cache


@pytest.fixture
async def waiter(
    provider: FakeProvider, redis_url: str, namespace: str, request: pytest.FixtureRequest
) -> AsyncIterator[Waiter]:
    text = f"leased {request.node.name}"
    child = Waiter(provider.openai_base, redis_url, namespace, text, json.dumps(BUDGETS))
    try:
        assert await child.answer() == {"ready": True}
        yield child
        child.ask("exit")
        await asyncio.to_thread(child.process.wait, CHILD_TIMEOUT)
    finally:
        child.kill()


def holder_kwargs(provider: FakeProvider, request: pytest.FixtureRequest) -> dict[str, Any]:
    """The same call as the waiter's (same text: the same key)."""
    return {
        "model": "openai/gpt-4o-mini",
        "messages": [{"role": "user", "content": f"leased {request.node.name}"}],
        "api_base": provider.openai_base,
        "api_key": KEY,
        "num_retries": 0,
    }


async def hold(kwargs: dict[str, Any], mode: str) -> tuple[str, str]:
    """The holder's call, read to its end: the answer's id and text."""
    if mode == "stream":
        stream = await llmstash.acompletion(**kwargs, stream=True)
        chunks = [chunk async for chunk in stream]
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        return chunks[0].id, text
    r = await llmstash.acompletion(**kwargs)
    return r.id, r.choices[0].message.content


async def requests_reach(provider: FakeProvider, n: int, within: float) -> None:
    async def arrived() -> bool:
        return provider.request_count >= n

    await eventually(arrived, within)


@pytest.mark.parametrize(
    ("holder_mode", "waiter_mode"),
    [("plain", "plain"), ("stream", "plain"), ("plain", "stream"), ("stream", "stream")],
)
async def test_another_process_waits_for_the_lease_holder(
    provider, holder_cache, waiter, request, holder_mode, waiter_mode
):
    kwargs = holder_kwargs(provider, request)
    provider.hang_next(HOLD)  # the holder's request only
    holder = asyncio.ensure_future(hold(kwargs, holder_mode))
    try:
        await requests_reach(provider, 1, within=5.0)  # the holder has the lease
        waiter.ask(waiter_mode)
        assert await waiter.answer() == {"started": True}
        answer = await waiter.answer()
        held_id, held_text = await holder
    finally:
        holder.cancel()
    assert "error" not in answer, answer
    assert provider.request_count == 1  # the waiter made no request of its own
    assert answer["hit"] is True
    assert answer["id"] == held_id
    assert answer["content"] == held_text == f"Echo: leased {request.node.name}"


@pytest.mark.parametrize("waiter_mode", ["plain", "stream"])
@pytest.mark.parametrize("how", ["error", "cancel"])
async def test_the_waiter_calls_itself_soon_after_the_holder_gives_up(
    provider, holder_cache, waiter, request, how, waiter_mode
):
    kwargs = holder_kwargs(provider, request)
    provider.hang_next(HOLD)
    if how == "error":
        provider.fail_next(500)  # the same request: it hangs, then fails
    holder = asyncio.ensure_future(hold(kwargs, "plain"))
    try:
        await requests_reach(provider, 1, within=5.0)
        waiter.ask(waiter_mode)
        assert await waiter.answer() == {"started": True}
        if how == "error":
            with pytest.raises(llmstash.InternalServerError):
                await holder
        else:
            # A margin for the waiter's lookup and lease attempt, which nothing outside it can
            # see; that it then waited is checked below (no request of its own until now).
            await asyncio.sleep(0.3)
            holder.cancel()
            with pytest.raises(asyncio.CancelledError):
                await holder
        gave_up = time.monotonic()
        # The waiter was waiting on the lease, not calling the provider.
        assert provider.request_count == 1
        await requests_reach(provider, 2, within=NOTICE)
        noticed = time.monotonic() - gave_up
        answer = await waiter.answer()
    finally:
        holder.cancel()
    assert noticed < NOTICE
    assert "error" not in answer, answer
    assert answer["hit"] is False
    assert answer["content"] == f"Echo: leased {request.node.name}"
    assert answer["elapsed"] < LEASE / 2
    assert provider.request_count == 2
