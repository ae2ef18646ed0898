"""LiteLLM's call options that mean something: fallbacks, a per-model concurrency cap and
per-call prices, against the fake provider over HTTP."""

from __future__ import annotations

import asyncio

import pytest

import llmstash
from llmstash.integrations.custom_logger import CustomLogger

MSGS = [{"role": "user", "content": "which model answers?"}]


def call(provider, **kwargs):
    return {
        "model": "gpt-4o-mini",
        "messages": MSGS,
        "api_base": provider.openai_base,
        "api_key": "sk-x",
        "num_retries": 0,
        **kwargs,
    }


async def test_fallbacks_try_the_next_model_on_errors_worth_it(provider, llm):
    provider.fail_next(503)
    r = await llmstash.acompletion(**call(provider, fallbacks=["gpt-4o"]))
    models = [req.json["model"] for req in provider.requests]
    assert models == ["gpt-4o-mini", "gpt-4o"]
    assert r.choices[0].message.content


async def test_fallback_answers_are_not_stored_under_the_first_models_key(provider, llm):
    llmstash.cache = llmstash.Cache()
    provider.fail_next(429)
    await llmstash.acompletion(**call(provider, fallbacks=[{"model": "gpt-4o"}]))
    again = await llmstash.acompletion(**call(provider, fallbacks=["gpt-4o"]))
    assert again._hidden_params["cache_hit"] is False
    assert [req.json["model"] for req in provider.requests] == [
        "gpt-4o-mini",
        "gpt-4o",
        "gpt-4o-mini",
    ]


async def test_no_fallback_for_the_callers_own_mistakes(provider, llm):
    provider.fail_next(400)
    with pytest.raises(llmstash.BadRequestError):
        await llmstash.acompletion(**call(provider, fallbacks=["gpt-4o"]))
    assert provider.request_count == 1


async def test_the_last_fallbacks_error_is_raised(provider, llm):
    provider.fail_next(500, count=2)
    with pytest.raises(llmstash.InternalServerError):
        await llmstash.acompletion(**call(provider, fallbacks=["gpt-4o"]))
    assert provider.request_count == 2


async def test_max_parallel_requests_caps_requests_in_flight(provider, llm):
    provider.latency = 0.2
    calls = [
        llmstash.acompletion(
            **{**call(provider), "messages": [{"role": "user", "content": f"q{i}"}]},
            max_parallel_requests=2,
        )
        for i in range(6)
    ]
    tasks = [asyncio.ensure_future(c) for c in calls]
    for _ in range(100):
        if provider.request_count >= 2:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    assert provider.request_count == 2  # the other four wait for a slot, not for the server
    await asyncio.gather(*tasks)
    assert provider.request_count == 6


async def test_per_call_prices_set_the_cost(provider, llm):
    events = []

    class Costs(CustomLogger):
        async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
            events.append((kwargs["cache_hit"], kwargs["response_cost"]))

    llmstash.callbacks = [Costs()]
    llmstash.cache = llmstash.Cache()
    kwargs = call(provider, input_cost_per_token=0.001, output_cost_per_token=0.002)
    miss = await llmstash.acompletion(**kwargs)
    hit = await llmstash.acompletion(**kwargs)
    await llmstash.aflush_callbacks()
    usage = miss.usage
    expected = usage.prompt_tokens * 0.001 + usage.completion_tokens * 0.002
    assert miss._hidden_params["response_cost"] == pytest.approx(expected)
    assert hit._hidden_params["response_cost"] == 0.0
    assert hit._hidden_params["saved_cost"] == pytest.approx(expected)
    assert events == [(False, pytest.approx(expected)), (True, 0.0)]


async def test_a_stream_falls_back_before_its_first_chunk(provider, llm):
    provider.fail_next(503)
    stream = await llmstash.acompletion(**call(provider, fallbacks=["gpt-4o"]), stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream])
    assert text
    assert [req.json["model"] for req in provider.requests] == ["gpt-4o-mini", "gpt-4o"]


async def test_max_parallel_requests_holds_a_slot_for_as_long_as_a_stream_lasts(provider, llm):
    first = await llmstash.acompletion(**call(provider), stream=True, max_parallel_requests=1)
    second = asyncio.ensure_future(
        llmstash.acompletion(
            **{**call(provider), "messages": [{"role": "user", "content": "other"}]},
            stream=True,
            max_parallel_requests=1,
        )
    )
    await asyncio.sleep(0.1)
    assert provider.request_count == 1  # the second waits for the first stream's slot
    assert [c async for c in first]
    stream = await second
    assert [c async for c in stream]
    assert provider.request_count == 2


async def test_a_mock_response_object_gives_each_call_its_own_answer(llm):
    from llmstash.types import Choices, Message, ModelResponse

    mock = ModelResponse(
        id="mock-1", created=1, model="m", choices=[Choices(message=Message(content="x"))]
    )
    a = await llmstash.acompletion(model="gpt-4o-mini", messages=MSGS, mock_response=mock)
    b = await llmstash.acompletion(model="gpt-4o", messages=MSGS, mock_response=mock)
    assert a == b and a is not b
    assert a._hidden_params is not b._hidden_params
