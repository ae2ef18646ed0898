"""Fixtures for end-to-end tests: clean module settings, and caches over every backend."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

import llmstash
from llmstash import _api
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


@pytest.fixture(params=["local", "redis"])
async def any_cache(request: pytest.FixtureRequest, llm: None) -> AsyncIterator[Cache]:
    """A fresh cache on each backend, installed as ``llmstash.cache``; Redis entries live
    under a unique namespace on the shared server and are removed afterwards."""
    if request.param == "local":
        cache = Cache()
    else:
        url = request.getfixturevalue("redis_url")
        cache = Cache(type="redis", url=url, namespace=f"test-{uuid.uuid4().hex}")
    llmstash.cache = cache
    yield cache
    await cache.aflush_writes()
    if cache.type == "redis":
        await cache.aclear()
