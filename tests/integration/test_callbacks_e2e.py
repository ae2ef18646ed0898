"""Callbacks through the public API, against the fake provider: the way LiteLLM users write them."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

import llmstash
from llmstash.caching import Cache
from llmstash.integrations.custom_logger import CustomLogger
from llmstash.testing import FakeProvider


class MyCustomHandler(CustomLogger):
    """A handler as LiteLLM's custom-callback docs show it, recording instead of printing."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any], Any]] = []
        self.threads: dict[str, int] = {}

    def _record(self, hook: str, kwargs: dict[str, Any], response_obj: Any) -> None:
        self.events.append((hook, kwargs, response_obj))
        self.threads[hook] = threading.get_ident()

    def log_pre_api_call(self, model, messages, kwargs):
        self._record("log_pre_api_call", kwargs, None)

    def log_post_api_call(self, kwargs, response_obj, start_time, end_time):
        self._record("log_post_api_call", kwargs, response_obj)

    def log_stream_event(self, kwargs, response_obj, start_time, end_time):
        self._record("log_stream_event", kwargs, response_obj)

    def log_success_event(self, kwargs, response_obj, start_time, end_time):
        self._record("log_success_event", kwargs, response_obj)

    def log_failure_event(self, kwargs, response_obj, start_time, end_time):
        self._record("log_failure_event", kwargs, response_obj)

    async def async_log_stream_event(self, kwargs, response_obj, start_time, end_time):
        self._record("async_log_stream_event", kwargs, response_obj)

    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        self._record("async_log_success_event", kwargs, response_obj)

    async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time):
        self._record("async_log_failure_event", kwargs, response_obj)

    def of(self, hook: str) -> list[tuple[dict[str, Any], Any]]:
        return [(kwargs, response) for name, kwargs, response in self.events if name == hook]

    @property
    def hooks(self) -> set[str]:
        return {name for name, _, _ in self.events}


@pytest.fixture(autouse=True)
def clean_settings() -> Iterator[None]:
    llmstash.cache = None
    llmstash.callbacks = []
    llmstash.success_callback = []
    llmstash.failure_callback = []
    yield
    llmstash.cache = None
    llmstash.callbacks = []
    llmstash.success_callback = []
    llmstash.failure_callback = []


def fresh_messages() -> list[dict[str, str]]:
    return [{"role": "user", "content": f"write a one sentence poem {uuid.uuid4()}"}]


def azure(provider: FakeProvider) -> dict[str, Any]:
    return {
        "model": "azure/chatgpt-v-2",
        "api_base": provider.azure_base,
        "api_key": "fake",
        "api_version": "2024-02-01",
    }


async def test_cache_hit_is_visible_in_async_success_callbacks(provider: FakeProvider) -> None:
    handler = MyCustomHandler()
    llmstash.callbacks = [handler]
    llmstash.cache = Cache()
    messages = fresh_messages()

    # Events of different calls may finish in any order: flush between the calls, as
    # LiteLLM's version of this test sleeps between them.
    first = await llmstash.acompletion(messages=messages, caching=True, **azure(provider))
    await llmstash.aflush_callbacks()
    second = await llmstash.acompletion(messages=messages, caching=True, **azure(provider))
    await llmstash.aflush_callbacks()

    assert provider.request_count == 1
    [(miss, miss_response), (hit, hit_response)] = handler.of("async_log_success_event")
    assert not miss["cache_hit"]
    assert hit["cache_hit"] is True
    assert miss_response is first
    assert hit_response is second
    assert miss["cache_key"] == hit["cache_key"] is not None
    for kwargs in (miss, hit):
        assert kwargs["model"] == "azure/chatgpt-v-2"
        assert kwargs["messages"] == messages
        assert kwargs["call_type"] == "acompletion"
        assert kwargs["stream"] is False
        assert kwargs["litellm_call_id"]
        assert kwargs["start_time"] <= kwargs["end_time"]
        assert "fake" not in kwargs.values()
    # An Azure deployment not named after a model has no known price.
    assert miss["response_cost"] is None
    assert hit["response_cost"] == 0.0
    # Only the miss reached the provider, so only it fires the pre- and post-call hooks.
    assert len(handler.of("log_pre_api_call")) == 1
    assert len(handler.of("log_post_api_call")) == 1
    assert not handler.hooks & {"log_success_event", "log_failure_event"}


async def test_response_cost_and_saved_cost(provider: FakeProvider) -> None:
    handler = MyCustomHandler()
    llmstash.callbacks = [handler]
    llmstash.cache = Cache()
    call: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "messages": fresh_messages(),
        "api_base": provider.openai_base,
        "api_key": "fake",
    }

    first = await llmstash.acompletion(**call)
    await llmstash.aflush_callbacks()
    await llmstash.acompletion(**call)
    await llmstash.aflush_callbacks()

    [(miss, _), (hit, _)] = handler.of("async_log_success_event")
    cost = llmstash.completion_cost(completion_response=first)
    assert cost is not None and cost > 0
    assert miss["response_cost"] == pytest.approx(cost)
    assert hit["response_cost"] == 0.0
    assert hit["saved_cost"] == pytest.approx(cost)


async def test_failures_reach_failure_hooks(provider: FakeProvider) -> None:
    handler = MyCustomHandler()
    llmstash.callbacks = [handler]
    provider.fail_next(status=400)

    with pytest.raises(llmstash.BadRequestError) as raised:
        await llmstash.acompletion(messages=fresh_messages(), **azure(provider))
    await llmstash.aflush_callbacks()

    [(kwargs, response)] = handler.of("async_log_failure_event")
    assert response is None
    assert kwargs["exception"] is raised.value
    assert not handler.of("async_log_success_event")
    assert not handler.of("log_post_api_call")


async def test_a_stream_reports_each_chunk_then_one_success(provider: FakeProvider) -> None:
    handler = MyCustomHandler()
    llmstash.callbacks = [handler]

    stream = await llmstash.acompletion(messages=fresh_messages(), stream=True, **azure(provider))
    chunks = [chunk async for chunk in stream]
    await llmstash.aflush_callbacks()

    reported = [response for _, response in handler.of("async_log_stream_event")]
    assert sorted(map(id, reported)) == sorted(map(id, chunks))
    [(kwargs, response)] = handler.of("async_log_success_event")
    assert kwargs["stream"] is True
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert response.choices[0].message.content == text != ""
    assert not handler.hooks & {"log_stream_event", "log_success_event"}


def test_sync_completion_fires_sync_hooks_in_a_worker_thread(provider: FakeProvider) -> None:
    handler = MyCustomHandler()
    llmstash.callbacks = [handler]
    llmstash.cache = Cache()
    messages = fresh_messages()

    response = llmstash.completion(messages=messages, caching=True, **azure(provider))
    llmstash.flush_callbacks()
    llmstash.completion(messages=messages, caching=True, **azure(provider))
    llmstash.flush_callbacks()

    [(miss, miss_response), (hit, _)] = handler.of("log_success_event")
    assert miss_response == response
    assert (bool(miss["cache_hit"]), hit["cache_hit"]) == (False, True)
    assert miss["call_type"] == "completion"
    assert len(handler.of("log_pre_api_call")) == 1
    assert not {hook for hook in handler.hooks if hook.startswith("async_")}
    assert handler.threads["log_success_event"] != threading.get_ident()


async def test_plain_success_and_failure_functions(provider: FakeProvider) -> None:
    seen: list[tuple[str, Any]] = []

    def on_success(kwargs, completion_response, start_time, end_time):
        seen.append(("success", kwargs["cache_hit"]))

    async def on_failure(kwargs, completion_response, start_time, end_time):
        seen.append(("failure", type(kwargs["exception"]).__name__))

    llmstash.success_callback = [on_success]
    llmstash.failure_callback = [on_failure]
    provider.fail_next(status=400)

    with pytest.raises(llmstash.BadRequestError):
        await llmstash.acompletion(messages=fresh_messages(), **azure(provider))
    await llmstash.acompletion(messages=fresh_messages(), **azure(provider))
    await llmstash.aflush_callbacks()

    assert sorted(seen) == [("failure", "BadRequestError"), ("success", False)]


async def test_embedding_success_carries_input_and_cost(provider: FakeProvider) -> None:
    handler = MyCustomHandler()
    llmstash.callbacks = [handler]
    inputs = ["first text", "second text"]

    response = await llmstash.aembedding(
        model="text-embedding-3-small",
        input=inputs,
        api_base=provider.openai_base,
        api_key="fake",
    )
    await llmstash.aflush_callbacks()

    [(kwargs, reported)] = handler.of("async_log_success_event")
    assert reported is response
    assert kwargs["input"] == inputs
    assert kwargs["response_cost"] == pytest.approx(
        llmstash.completion_cost(completion_response=response)
    )


async def test_a_slow_callback_does_not_delay_the_call(provider: FakeProvider) -> None:
    gate = anyio.Event()
    finished: list[bool] = []

    class Slow(CustomLogger):
        async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
            await gate.wait()
            finished.append(True)

    llmstash.callbacks = [Slow()]

    await llmstash.acompletion(messages=fresh_messages(), **azure(provider))
    assert finished == []

    gate.set()
    await llmstash.aflush_callbacks()
    assert finished == [True]


async def test_a_failing_callback_does_not_break_the_call(
    provider: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(CustomLogger):
        async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
            raise KeyError("missing")

    caplog.set_level(logging.WARNING, logger="llmstash")
    handler = MyCustomHandler()
    llmstash.callbacks = [Broken(), handler]

    response = await llmstash.acompletion(messages=fresh_messages(), **azure(provider))
    await llmstash.aflush_callbacks()

    assert response.choices[0].message.content
    assert len(handler.of("async_log_success_event")) == 1
    assert "Broken.async_log_success_event" in caplog.text
