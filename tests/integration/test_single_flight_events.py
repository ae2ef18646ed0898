"""Single-flight followers are hits (DESIGN §4.1): of 50 concurrent identical cold calls, the one
that reached the provider reports ``cache_hit=False`` and the cost, the 49 others
``cache_hit=True``, cost 0 and ``saved_cost``; summed ``response_cost`` is what was spent, and
``log_post_api_call`` fires once per provider request. Real HTTP to the fake provider, every
cache backend."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import llmstash
from llmstash.integrations.custom_logger import CustomLogger
from llmstash.testing import FakeProvider

KEY = "sk-test-key-123456"
CALLS = 50
# Same answer, what a hit may differ in: the hit flag, the cost, the timings and the call's id.
MAY_DIFFER = {"cache_hit", "response_cost", "saved_cost", "start_time", "end_time"}


class Recorder(CustomLogger):
    def __init__(self) -> None:
        self.successes: list[tuple[dict[str, Any], Any]] = []
        self.post_api_calls: list[dict[str, Any]] = []

    def log_post_api_call(self, kwargs, response_obj, start_time, end_time):
        self.post_api_calls.append(kwargs)

    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        self.successes.append((kwargs, response_obj))


def chat_kwargs(provider: FakeProvider, text: str) -> dict[str, Any]:
    return {
        "model": "openai/gpt-4o-mini",  # priced: the cost is known
        "messages": [{"role": "user", "content": text}],
        "api_base": provider.openai_base,
        "api_key": KEY,
    }


@pytest.fixture
def recorder(llm: None) -> Recorder:
    handler = Recorder()
    llmstash.callbacks = [handler]
    return handler


def assert_one_paid_event(recorder: Recorder, count: int) -> tuple[dict[str, Any], list[Any]]:
    """One miss event with the full cost, ``count - 1`` hit events at cost 0 with
    ``saved_cost``; returns the miss's kwargs and the hits' kwargs."""
    events = [kwargs for kwargs, _ in recorder.successes]
    assert len(events) == count
    misses = [kwargs for kwargs in events if kwargs["cache_hit"] is False]
    hits = [kwargs for kwargs in events if kwargs["cache_hit"] is True]
    assert len(misses) == 1, [kwargs["cache_hit"] for kwargs in events]
    assert len(hits) == count - 1
    [miss] = misses
    assert miss["response_cost"] is not None and miss["response_cost"] > 0
    assert "saved_cost" not in miss or not miss["saved_cost"]
    for kwargs in hits:
        assert kwargs["response_cost"] == 0
        assert kwargs["saved_cost"] == pytest.approx(miss["response_cost"])
    assert sum(kwargs["response_cost"] for kwargs in events) == pytest.approx(miss["response_cost"])
    return miss, hits


async def test_50_concurrent_cold_calls_one_paid_event_49_hits(provider, any_cache, recorder):
    provider.latency = 0.1  # the provider request outlasts the other 49 lookups
    try:
        results = await asyncio.gather(
            *[llmstash.acompletion(**chat_kwargs(provider, "fifty at once")) for _ in range(CALLS)]
        )
    finally:
        provider.latency = 0.0
    await llmstash.aflush_callbacks()
    assert provider.request_count == 1
    assert len({r.id for r in results}) == 1
    hidden = [r._hidden_params for r in results]
    assert sum(h["cache_hit"] is False for h in hidden) == 1
    assert sum(h["cache_hit"] is True for h in hidden) == CALLS - 1
    paid = [h for h in hidden if h["cache_hit"] is False]
    assert paid[0]["response_cost"] > 0
    assert all(h["response_cost"] == 0 and h["saved_cost"] > 0 for h in hidden if h["cache_hit"])
    assert_one_paid_event(recorder, CALLS)
    assert len(recorder.post_api_calls) == 1


async def test_concurrent_cold_streams_one_paid_event(provider, any_cache, recorder):
    provider.latency = 0.1

    async def read() -> list[Any]:
        stream = await llmstash.acompletion(**chat_kwargs(provider, "streams at once"), stream=True)
        return [chunk async for chunk in stream]

    try:
        streams = await asyncio.gather(*[read() for _ in range(20)])
    finally:
        provider.latency = 0.0
    await llmstash.aflush_callbacks()
    assert provider.request_count == 1
    assert all(chunks == streams[0] for chunks in streams)
    assert_one_paid_event(recorder, 20)
    assert len(recorder.post_api_calls) == 1


async def test_a_follower_reports_what_the_leader_reported(provider, any_cache, recorder):
    """Only ``cache_hit``, the cost and the timings differ between the paid event and the
    followers' (and between the responses' ``_hidden_params``)."""
    provider.latency = 0.1
    try:
        results = await asyncio.gather(
            *[llmstash.acompletion(**chat_kwargs(provider, "same report")) for _ in range(5)]
        )
    finally:
        provider.latency = 0.0
    await llmstash.aflush_callbacks()
    miss, hits = assert_one_paid_event(recorder, 5)
    ignore = MAY_DIFFER | {"litellm_call_id"}
    for kwargs in hits:
        assert set(kwargs) - {"saved_cost"} == set(miss)
        differing = {k for k in miss if k not in ignore and kwargs[k] != miss[k]}
        assert not differing, {k: (miss[k], kwargs[k]) for k in differing}
    [leader] = [r for r in results if r._hidden_params["cache_hit"] is False]
    for r in results:
        if r is leader:
            continue
        for key, value in leader._hidden_params.items():
            if key not in MAY_DIFFER:
                assert r._hidden_params.get(key) == value, key


async def test_a_later_hit_reports_what_the_miss_reported(provider, any_cache, recorder):
    first = await llmstash.acompletion(**chat_kwargs(provider, "miss then hit"))
    second = await llmstash.acompletion(**chat_kwargs(provider, "miss then hit"))
    await llmstash.aflush_callbacks()
    assert provider.request_count == 1
    miss, [hit] = assert_one_paid_event(recorder, 2)
    ignore = MAY_DIFFER | {"litellm_call_id"}
    differing = {k for k in miss if k not in ignore and hit.get(k) != miss[k]}
    assert not differing, {k: (miss[k], hit.get(k)) for k in differing}
    for key, value in first._hidden_params.items():
        if key not in MAY_DIFFER:
            assert second._hidden_params.get(key) == value, key
