"""``mock_response`` standing for an error — an exception, or LiteLLM's string forms —
raised through the call's error path: failure callbacks fire, nothing is cached, and streams
fail where LiteLLM's do."""

from __future__ import annotations

import uuid

import httpx
import openai
import pytest

import llmstash
from llmstash.caching import Cache
from llmstash.exceptions import (
    ContentPolicyViolationError,
    ContextWindowExceededError,
    InternalServerError,
    RateLimitError,
    ServiceUnavailableError,
)
from llmstash.integrations.custom_logger import CustomLogger


class Recorder(CustomLogger):
    def __init__(self) -> None:
        self.failures: list[tuple[dict, BaseException]] = []
        self.successes = 0

    def log_failure_event(self, kwargs, response_obj, start_time, end_time):
        self.failures.append((kwargs, kwargs.get("exception") or response_obj))

    async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time):
        self.failures.append((kwargs, kwargs.get("exception") or response_obj))

    def log_success_event(self, kwargs, response_obj, start_time, end_time):
        self.successes += 1

    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        self.successes += 1


def messages() -> list[dict[str, str]]:
    return [{"role": "user", "content": f"filtered request {uuid.uuid4().hex}"}]


CASES = [
    ("Exception: content_filter_policy", ContentPolicyViolationError, 400),
    ("Exception: content_filter_policy: the prompt was filtered", ContentPolicyViolationError, 400),
    ("litellm.RateLimitError", RateLimitError, 429),
    ("litellm.ContextWindowExceededError", ContextWindowExceededError, 400),
    ("litellm.InternalServerError", InternalServerError, 500),
    ("Exception: mock_streaming_error", ServiceUnavailableError, 529),
    (ValueError("boom"), InternalServerError, 500),
]


@pytest.mark.parametrize(("mock", "cls", "status"), CASES, ids=lambda v: str(v)[:40])
@pytest.mark.parametrize("stream", [False, True])
async def test_a_mocked_error_fails_the_call_and_fires_failure_callbacks(
    provider, llm, mock, cls, status, stream
):
    recorder = Recorder()
    llmstash.callbacks = [recorder]
    llmstash.cache = Cache()
    msgs = messages()
    with pytest.raises(cls) as info:
        r = await llmstash.acompletion(
            model="azure/chatgpt-v-2", messages=msgs, stream=stream, mock_response=mock
        )
        async for _ in r:  # a mid-stream error arrives here
            pass
    assert info.value.status_code == status
    assert info.value.model == "azure/chatgpt-v-2"
    if isinstance(mock, Exception):
        assert info.value.__cause__ is mock
    await llmstash.aflush_callbacks()
    assert recorder.successes == 0
    assert len(recorder.failures) == 1
    kwargs, error = recorder.failures[0]
    assert error is info.value
    assert kwargs["model"] == "azure/chatgpt-v-2"
    assert kwargs["messages"] == msgs
    # nothing was cached: the same call with an answer is a miss
    ok = await llmstash.acompletion(model="azure/chatgpt-v-2", messages=msgs, mock_response="hi")
    assert ok._hidden_params["cache_hit"] is False
    assert provider.request_count == 0


def test_sync_stream_moderation_failure_reaches_the_sync_failure_hook(provider, sync_llm):
    """LiteLLM's test_completion_azure_stream_moderation_failure: a filtered streamed call
    raises, and the handler's log_failure_event ran."""
    recorder = Recorder()
    llmstash.callbacks = [recorder]
    msgs = messages()
    with pytest.raises(ContentPolicyViolationError):
        for _ in llmstash.completion(
            model="azure/chatgpt-v-2",
            messages=msgs,
            stream=True,
            mock_response="Exception: content_filter_policy",
        ):
            pass
    llmstash.flush_callbacks()
    assert [k["messages"] for k, _ in recorder.failures] == [msgs]
    assert isinstance(recorder.failures[0][1], ContentPolicyViolationError)


async def test_a_mid_stream_mock_error_sends_chunks_first_and_stores_nothing(provider, llm):
    llmstash.cache = Cache()
    msgs = messages()
    got = []
    stream = await llmstash.acompletion(
        model="gpt-4o-mini",
        messages=msgs,
        stream=True,
        mock_response="Exception: mock_streaming_error",
    )
    with pytest.raises(ServiceUnavailableError, match="mid-stream"):
        async for chunk in stream:
            got.append(chunk)  # noqa: PERF401 - the error ends the loop midway
    assert got, "chunks come before the error"
    again = await llmstash.acompletion(model="gpt-4o-mini", messages=msgs, mock_response="x")
    assert again._hidden_params["cache_hit"] is False


async def test_llmstash_and_openai_errors_are_raised_as_given(llm):
    mine = RateLimitError("slow down", status_code=429, model="m")
    with pytest.raises(RateLimitError) as info:
        await llmstash.acompletion(model="gpt-4o-mini", messages=messages(), mock_response=mine)
    assert info.value is mine
    theirs = openai.APIConnectionError(request=httpx.Request("POST", "https://example.invalid"))
    with pytest.raises(openai.APIConnectionError) as info2:
        await llmstash.acompletion(model="gpt-4o-mini", messages=messages(), mock_response=theirs)
    assert info2.value is theirs


async def test_other_exception_strings_are_answers_as_in_litellm(llm):
    r = await llmstash.acompletion(
        model="gpt-4o-mini", messages=messages(), mock_response="Exception: just text"
    )
    assert r.choices[0].message.content == "Exception: just text"


async def test_embedding_mock_errors(llm):
    recorder = Recorder()
    llmstash.callbacks = [recorder]
    with pytest.raises(RateLimitError):
        await llmstash.aembedding(
            model="text-embedding-3-small", input=["a"], mock_response="litellm.RateLimitError"
        )
    await llmstash.aflush_callbacks()
    assert len(recorder.failures) == 1


@pytest.mark.parametrize(
    ("call", "arg", "model"),
    [
        (llmstash.aresponses, "input", "gpt-4o-mini"),
        (llmstash.atext_completion, "prompt", "gpt-3.5-turbo-instruct"),
    ],
)
async def test_responses_and_text_completion_mock_errors(llm, call, arg, model) -> None:
    cache = llmstash.cache = Cache()
    recorder = Recorder()
    llmstash.callbacks = [recorder]
    text = f"mocked {uuid.uuid4().hex}"
    for mock, error in (
        ("litellm.RateLimitError", RateLimitError),
        ("Exception: content_filter_policy violated", ContentPolicyViolationError),
        (ValueError("not an API error"), InternalServerError),
    ):
        with pytest.raises(error):
            await call(model=model, **{arg: text}, mock_response=mock)
    stream = await call(
        model=model, **{arg: text}, mock_response="Exception: mock_streaming_error", stream=True
    )
    assert await stream.__anext__() is not None  # it fails after its first items
    with pytest.raises(ServiceUnavailableError):
        async for _ in stream:
            pass
    await llmstash.aflush_callbacks()
    assert [type(e).__name__ for _, e in recorder.failures] == [
        "RateLimitError",
        "ContentPolicyViolationError",
        "InternalServerError",
        "ServiceUnavailableError",
    ]
    assert recorder.successes == 0
    assert cache.stats().stores == 0
    # nothing was cached: a plain mock now answers
    r = await call(model=model, **{arg: text}, mock_response="fine")
    assert r._hidden_params["cache_hit"] is False
