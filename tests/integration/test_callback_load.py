"""Callback events are delivered under load: a tight loop of in-memory cache hits (which never
wait on anything, so the loop would never run the hooks) is paced instead of piling events up
past the pending bound and dropping them."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

import llmstash
from llmstash import _api
from llmstash._callbacks import CallbackDispatcher
from llmstash.caching import Cache
from llmstash.integrations.custom_logger import CustomLogger
from llmstash.testing import FakeProvider

HITS = 20_000
EMBEDDING_HITS = 12_000  # past the default bound of 10,000 pending events


class Count(CustomLogger):
    def __init__(self, delay: float = 0.0) -> None:
        self.hits = 0
        self.misses = 0
        self.delay = delay

    async def async_log_success_event(self, kwargs: Any, *args: Any) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        if kwargs["cache_hit"]:
            self.hits += 1
        else:
            self.misses += 1


def call_kwargs(provider: FakeProvider) -> dict[str, Any]:
    return {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "tight loop"}],
        "api_base": provider.openai_base,
        "api_key": "sk-test",
    }


@pytest.mark.parametrize("delay", [0.0, 0.001], ids=["instant-hook", "sleeping-hook"])
async def test_every_event_of_a_tight_loop_of_hits_is_delivered(
    llm: None, provider: FakeProvider, caplog: pytest.LogCaptureFixture, delay: float
) -> None:
    caplog.set_level(logging.WARNING, logger="llmstash")
    counter = Count(delay)
    llmstash.cache = Cache()
    llmstash.callbacks = [counter]
    kwargs = call_kwargs(provider)
    await llmstash.acompletion(**kwargs)
    for _ in range(HITS):
        response = await llmstash.acompletion(**kwargs)
    assert response._hidden_params["cache_hit"] is True
    await llmstash.aflush_callbacks()
    assert (counter.misses, counter.hits) == (1, HITS)
    assert provider.request_count == 1
    assert _api._load_client()._dispatcher.dropped == 0
    assert not [r for r in caplog.records if "dropp" in r.getMessage().lower()]


async def test_every_event_of_a_tight_loop_of_embedding_hits_is_delivered(
    llm: None, provider: FakeProvider
) -> None:
    seen = 0

    def count(kwargs: Any, *args: Any) -> None:  # a plain function: runs in worker threads
        nonlocal seen
        seen += 1

    llmstash.cache = Cache()
    llmstash.success_callback = [count]
    kwargs: dict[str, Any] = {
        "model": "text-embedding-3-small",
        "input": ["a", "b"],
        "api_base": provider.openai_base,
        "api_key": "sk-test",
    }
    for _ in range(EMBEDDING_HITS + 1):
        await llmstash.aembedding(**kwargs)
    await llmstash.aflush_callbacks()
    assert seen == EMBEDDING_HITS + 1
    assert provider.request_count == 1


async def test_pace_keeps_a_small_bound_from_dropping() -> None:
    """The dispatcher's own promise: a caller that awaits ``pace()`` after reporting never
    sees an event dropped, however small the bound."""
    got = 0

    async def hook(kwargs: Any, *args: Any) -> None:
        nonlocal got
        await asyncio.sleep(0)
        got += 1

    dispatcher = CallbackDispatcher(max_pending=16)
    for i in range(5_000):
        dispatcher.success([], [hook], {"litellm_call_id": str(i)}, None, 0, 0, is_async=True)  # type: ignore[arg-type]
        await dispatcher.pace()
        assert dispatcher.pending <= 16
    await dispatcher.aflush()
    assert (got, dispatcher.dropped) == (5_000, 0)


async def test_pace_is_free_when_nothing_is_pending() -> None:
    dispatcher = CallbackDispatcher()
    assert not dispatcher.backlogged
    await dispatcher.pace()  # returns at once, without yielding to the loop
