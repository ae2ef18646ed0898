"""Costs of real calls: mocked answers priced from their usage (LiteLLM's
test_cost_tracking_with_caching: a mocked miss costs > 0 and its cache hit 0, over a real Redis),
streams, embeddings, per-call prices through completion_cost, and unknown models."""

from __future__ import annotations

import time
from typing import Any

import pytest

import llmstash
from llmstash.caching import Cache
from llmstash.exceptions import InvalidRequestError
from llmstash.integrations.custom_logger import CustomLogger
from llmstash.testing import FakeProvider
from tests._fixtures_redis import RedisServer


class CostHandler(CustomLogger):
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    async def async_log_success_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self.events.append(kwargs)

    @property
    def response_cost(self) -> Any:
        return self.events[-1]["response_cost"]


def poem() -> list[dict[str, str]]:
    return [{"role": "user", "content": f"write a one sentence poem about: {time.time()}"}]


@pytest.mark.redis
async def test_cost_tracking_with_caching(private_redis: RedisServer, llm: None) -> None:
    """LiteLLM's test, over a private Redis: the mocked miss is priced, the hit costs 0."""
    llmstash.cache = Cache(type="redis", host=private_redis.host, port=str(private_redis.port))
    handler = CostHandler()
    llmstash.callbacks = [handler]
    messages = poem()
    params: dict[str, Any] = {"max_tokens": 40, "temperature": 0.2, "caching": True}

    first = await llmstash.acompletion(
        model="gpt-3.5-turbo", messages=messages, mock_response="Hey, i'm doing well!", **params
    )
    await llmstash.aflush_callbacks()
    assert handler.response_cost > 0
    usage = first.usage
    assert usage is not None and usage.prompt_tokens > 0 and usage.completion_tokens > 0
    expected = usage.prompt_tokens * 0.5e-6 + usage.completion_tokens * 1.5e-6
    assert handler.response_cost == pytest.approx(expected)
    assert first._hidden_params["response_cost"] == pytest.approx(expected)
    assert llmstash.completion_cost(completion_response=first) == pytest.approx(expected)

    second = await llmstash.acompletion(model="gpt-3.5-turbo", messages=messages, **params)
    await llmstash.aflush_callbacks()
    assert second._hidden_params["cache_hit"] is True
    assert handler.response_cost == 0
    assert handler.events[-1]["saved_cost"] == pytest.approx(expected)
    # What the tokens cost is unchanged by where they came from.
    assert llmstash.completion_cost(completion_response=second) == pytest.approx(expected)


async def test_a_mocked_stream_is_priced_and_its_replay_is_free(llm: None) -> None:
    llmstash.cache = Cache()
    handler = CostHandler()
    llmstash.callbacks = [handler]
    call: dict[str, Any] = {
        "model": "claude-haiku-4-5",
        "messages": poem(),
        "mock_response": "A short mocked answer of eight words here",
        "stream": True,
    }
    for _ in range(2):
        stream = await llmstash.acompletion(**call)
        async for _chunk in stream:
            pass
    await llmstash.aflush_callbacks()
    assert llmstash.completion_cost(completion_response=stream) == pytest.approx(
        handler.events[0]["response_cost"]
    )
    miss, hit = handler.events
    assert miss["cache_hit"] is False and hit["cache_hit"] is True
    assert miss["response_cost"] > 0
    assert hit["response_cost"] == 0
    assert hit["saved_cost"] == pytest.approx(miss["response_cost"])


async def test_an_unknown_model_never_fails_a_call(llm: None) -> None:
    handler = CostHandler()
    llmstash.callbacks = [handler]
    r = await llmstash.acompletion(
        model="openai/not-a-priced-model", messages=poem(), mock_response="fine"
    )
    await llmstash.aflush_callbacks()
    assert r.choices[0].message.content == "fine"
    assert r._hidden_params["response_cost"] is None
    assert handler.response_cost is None
    with pytest.raises(InvalidRequestError, match="isn't mapped"):
        llmstash.completion_cost(completion_response=r)
    # Registered, the next call is priced.
    llmstash.register_model(
        {"openai/not-a-priced-model": {"input_cost_per_token": 1e-6, "output_cost_per_token": 0}}
    )
    try:
        again = await llmstash.acompletion(
            model="openai/not-a-priced-model", messages=poem(), mock_response="fine"
        )
        usage = again.usage
        assert usage is not None
        assert again._hidden_params["response_cost"] == pytest.approx(usage.prompt_tokens * 1e-6)
    finally:
        del llmstash.model_cost["openai/not-a-priced-model"]


async def test_per_call_prices_are_honoured_by_completion_cost(
    provider: FakeProvider, llm: None
) -> None:
    r = await llmstash.acompletion(
        model="azure/my-deployment",
        messages=poem(),
        api_base=provider.azure_base,
        api_key="fake",
        input_cost_per_token=0.005,
        output_cost_per_token=1,
    )
    usage = r.usage
    assert usage is not None
    expected = usage.prompt_tokens * 0.005 + usage.completion_tokens * 1
    assert r._hidden_params["response_cost"] == pytest.approx(expected)
    assert llmstash.completion_cost(completion_response=r) == pytest.approx(expected)


async def test_a_real_embedding_call_is_priced(provider: FakeProvider, llm: None) -> None:
    r = await llmstash.aembedding(
        model="text-embedding-3-large",
        input=["one text", "another text"],
        api_base=provider.openai_base,
        api_key="fake",
    )
    assert r.usage is not None and r.usage.prompt_tokens > 0
    expected = r.usage.prompt_tokens * 0.13e-6
    assert r._hidden_params["response_cost"] == pytest.approx(expected)
    assert llmstash.completion_cost(completion_response=r) == pytest.approx(expected)


def test_sync_mocked_call_is_priced(sync_llm: None) -> None:
    r = llmstash.completion(model="gpt-4o", messages=poem(), mock_response="Hello world")
    assert r._hidden_params["response_cost"] > 0
    assert llmstash.completion_cost(completion_response=r) == pytest.approx(
        r._hidden_params["response_cost"]
    )
