"""Fixtures for end-to-end tests: clean module settings, and caches over every backend."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import anyio
import pytest

import llmstash
from llmstash import _api, _sync
from llmstash.caching import Cache


@pytest.fixture
async def llm() -> AsyncIterator[None]:
    """Module settings reset before and after; the loop's default client closed after."""
    saved = (llmstash.cache, llmstash.callbacks, llmstash.success_callback)
    llmstash.cache = None
    llmstash.callbacks = []
    llmstash.success_callback = []
    llmstash.failure_callback = []
    yield
    await llmstash.aflush_callbacks()
    if llmstash.cache is not None:
        await llmstash.cache.aclose()
    llmstash.cache, llmstash.callbacks, llmstash.success_callback = saved
    llmstash.failure_callback = []
    await _api._aclose_client()


@pytest.fixture
def sync_llm() -> Iterator[None]:
    """For sync tests that set ``llmstash.cache`` or callbacks: module settings cleared before,
    and after the test its sync events flushed, its cache closed on the sync loop and the
    settings restored, whether the test passed or not."""
    saved = (
        llmstash.cache,
        llmstash.callbacks,
        llmstash.success_callback,
        llmstash.failure_callback,
    )
    llmstash.cache = None
    llmstash.callbacks = []
    llmstash.success_callback = []
    llmstash.failure_callback = []
    try:
        yield
    finally:
        cache = llmstash.cache
        try:
            llmstash.flush_callbacks()
            if cache is not None and _sync.loop_if_started() is not None:
                _sync.run(cache.aclose)
        finally:
            (
                llmstash.cache,
                llmstash.callbacks,
                llmstash.success_callback,
                llmstash.failure_callback,
            ) = saved


_BUDGET = 0.5
"""The lookup budget of ``any_cache``'s Redis caches: these tests are about what a cache does,
not about its budget (tests of the budget make their own caches), and a loaded 2-core machine
can keep a 50 ms lookup from answering, which is a miss by design and a flaky count here."""


@pytest.fixture(params=["local", "redis", "cluster"])
async def any_cache(request: pytest.FixtureRequest, llm: None) -> AsyncIterator[Cache]:
    """A fresh cache on each backend (memory, the shared Redis, a private 3-master cluster),
    installed as ``llmstash.cache``; Redis entries live under a unique namespace and are
    removed afterwards."""
    namespace = f"test-{uuid.uuid4().hex}"
    if request.param == "local":
        cache = Cache()
    elif request.param == "redis":
        url = request.getfixturevalue("redis_url")
        cache = Cache(type="redis", url=url, namespace=namespace, lookup_timeout=_BUDGET)
    else:
        cluster = request.getfixturevalue("redis_cluster")
        cache = Cache(
            type="redis",
            redis_startup_nodes=cluster.startup_nodes,
            namespace=namespace,
            lookup_timeout=_BUDGET,
        )
    if cache.type == "redis":
        # Connect (and, for the cluster, learn the slot map) before the test: a cold client on
        # a busy machine can exceed the 50 ms lookup budget, which is a miss by design.
        assert await cache.aping()
        # The lookup connection is opened by the first lookup; let it finish connecting.
        for _ in range(50):
            await cache.alookup(f"{namespace}:warm-up")
            if cache.stats()["consecutive_failures"] == 0:
                break
            await anyio.sleep(0.05)
    llmstash.cache = cache
    yield cache
    await cache.aflush_writes()
    if cache.type == "redis":
        await cache.aclear()
    await cache.aclose()
