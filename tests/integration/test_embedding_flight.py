"""Identical concurrent embedding misses share one provider request, as chat calls do."""

from __future__ import annotations

import asyncio

import llmstash


def embed(provider, inputs):
    return llmstash.aembedding(
        model="text-embedding-3-small",
        input=inputs,
        api_base=provider.openai_base,
        api_key="sk-x",
        num_retries=0,
    )


async def test_identical_concurrent_embedding_misses_make_one_request(provider, any_cache):
    provider.latency = 0.05
    inputs = ["alpha", "beta", "gamma"]
    results = await asyncio.gather(*(embed(provider, inputs) for _ in range(20)))
    assert provider.request_count == 1
    leaders = [r for r in results if not r._hidden_params["cache_hit"]]
    assert len(leaders) == 1
    assert all(r._hidden_params.get("coalesced") for r in results if r is not leaders[0])
    assert all(r.data == leaders[0].data for r in results)
    assert all(r.usage == leaders[0].usage for r in results)


async def test_waiters_share_a_provider_error_about_the_request(provider, llm):
    llmstash.cache = llmstash.Cache()
    provider.latency = 0.05
    provider.fail_next(400)
    results = await asyncio.gather(
        *(embed(provider, ["x"]) for _ in range(5)), return_exceptions=True
    )
    assert provider.request_count == 1
    assert all(isinstance(r, llmstash.BadRequestError) for r in results)


async def test_different_inputs_do_not_wait_for_each_other(provider, llm):
    llmstash.cache = llmstash.Cache()
    await asyncio.gather(embed(provider, ["a"]), embed(provider, ["b"]))
    assert provider.request_count == 2


async def test_without_a_cache_each_call_is_its_own(provider, llm):
    await asyncio.gather(*(embed(provider, ["same"]) for _ in range(3)))
    assert provider.request_count == 3
