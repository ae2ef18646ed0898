"""The Responses API and text completion end to end: real HTTP to the fake provider, caches in
memory and on a private Redis, answers checked against the ``openai`` package's types."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import openai
import pytest
from openai.types import Completion
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

import llmstash
from llmstash.caching import Cache
from llmstash.caching._codec import (
    ResponsesEntry,
    ResponsesStreamEntry,
    TextCompletionEntry,
    TextCompletionStreamEntry,
    peek,
)
from llmstash.exceptions import BadRequestError, InternalServerError, UnsupportedParamsError
from llmstash.integrations.custom_logger import CustomLogger
from llmstash.testing import FakeProvider
from llmstash.types import ResponsesAPIStreamEvent as ResponsesAPIStreamEventType
from tests._fixtures_redis import RedisServer

EVENT = TypeAdapter(ResponseStreamEvent)


@pytest.fixture(scope="module")
def module_redis(free_tcp_port_factory: Any) -> Iterator[RedisServer]:
    """One private redis-server for this module's tests."""
    with RedisServer(free_tcp_port_factory()) as server:
        yield server


@pytest.fixture(params=["local", "redis"])
async def cache(request: pytest.FixtureRequest, llm: None) -> AsyncIterator[Cache]:
    """A fresh cache in memory or on a private Redis, installed as ``llmstash.cache``."""
    if request.param == "local":
        made = Cache()
    else:
        server = request.getfixturevalue("module_redis")
        # A generous lookup budget: a loaded machine must not turn request counts flaky.
        made = Cache(
            type="redis", url=server.url, namespace=f"t-{uuid.uuid4().hex}", lookup_timeout=0.5
        )
        assert await made.aping()
        for _ in range(50):  # let the lookup connection finish connecting
            await made.alookup("warm-up")
            if made.stats()["consecutive_failures"] == 0:
                break
            await asyncio.sleep(0.05)
    llmstash.cache = made
    yield made
    await made.aflush_writes()
    if made.type == "redis":
        await made.aclear()
    await made.aclose()


def rkw(provider: FakeProvider, **extra: Any) -> dict[str, Any]:
    return {
        "model": "openai/gpt-4o-mini",
        "input": f"what is a cache? {uuid.uuid4().hex[:6]}",
        "api_base": provider.openai_base,
        "api_key": "sk-test-key-123456",
        **extra,
    }


def tkw(provider: FakeProvider, **extra: Any) -> dict[str, Any]:
    return {
        "model": "gpt-3.5-turbo-instruct",
        "prompt": f"say something {uuid.uuid4().hex[:6]}",
        "api_base": provider.openai_base,
        "api_key": "sk-test-key-123456",
        **extra,
    }


async def read(stream: Any) -> list[Any]:
    return [item async for item in stream]


def validate_chunk(chunk: Any) -> None:
    """A streamed text completion chunk validates as the ``openai`` package's ``Completion``,
    whose ``finish_reason`` does not allow the ``null`` that chunks before the last carry (the
    official client parses chunks without validating)."""
    data = chunk.model_dump()
    for choice in data["choices"]:
        choice["finish_reason"] = choice["finish_reason"] or "stop"
    Completion.model_validate(data)


def dumps(items: list[Any]) -> list[dict[str, Any]]:
    return [item.model_dump() for item in items]


# the official openai client against the fake provider -------------------------------------


@pytest.fixture
def oai(provider: FakeProvider) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=provider.openai_base, api_key="sk-test", max_retries=0) as client:
        yield client


def test_openai_client_reads_the_fake_responses_api(oai: openai.OpenAI) -> None:
    r = oai.responses.create(model="gpt-4o-mini", input="hello there", instructions="be brief")
    assert r.output_text == "Echo: hello there"
    assert r.instructions == "be brief" and r.usage is not None and r.usage.input_tokens == 4
    Response.model_validate(r.model_dump())  # strict validation, not the client's lenient parse
    events = list(oai.responses.create(model="gpt-4o-mini", input="hello there", stream=True))
    kinds = [e.type for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-3:] == [
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert len(deltas) > 1 and "".join(deltas) == "Echo: hello there"
    for e in events:
        EVENT.validate_python(e.model_dump())
    completed = events[-1]
    assert completed.type == "response.completed"
    assert completed.response.output_text == "Echo: hello there"


def test_openai_client_reads_fake_tool_calls_and_reasoning(oai: openai.OpenAI) -> None:
    tools: Any = [{"type": "function", "name": "lookup", "parameters": {"type": "object"}}]
    r = oai.responses.create(
        model="o4-mini",
        input="find it",
        tools=tools,
        tool_choice="required",
        reasoning={"effort": "low", "summary": "auto"},
    )
    assert [item.type for item in r.output] == ["reasoning", "function_call"]
    Response.model_validate(r.model_dump())
    events = list(
        oai.responses.create(
            model="o4-mini",
            input="find it",
            tools=tools,
            tool_choice="required",
            reasoning={"effort": "low", "summary": "auto"},
            stream=True,
        )
    )
    kinds = {e.type for e in events}
    assert "response.function_call_arguments.delta" in kinds
    assert "response.reasoning_summary_text.delta" in kinds
    for e in events:
        EVENT.validate_python(e.model_dump())


def test_openai_client_reads_the_fake_completions(oai: openai.OpenAI) -> None:
    c = oai.completions.create(model="gpt-3.5-turbo-instruct", prompt="say hi", logprobs=1)
    assert c.choices[0].text == "Echo: say hi" and c.object == "text_completion"
    assert c.choices[0].logprobs is not None and c.choices[0].logprobs.tokens
    Completion.model_validate(c.model_dump())
    chunks = list(
        oai.completions.create(
            model="gpt-3.5-turbo-instruct",
            prompt="say hi",
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(ch.choices[0].text for ch in chunks if ch.choices) == "Echo: say hi"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    for ch in chunks:
        validate_chunk(ch)


def test_fake_azure_routes_for_responses_and_completions(provider: FakeProvider) -> None:
    headers = {"api-key": "azure-key"}
    body = {"model": "my-deployment", "input": "hi"}
    with httpx.Client(base_url=provider.url) as http:
        dated = http.post(
            "/openai/responses?api-version=2025-03-01-preview", json=body, headers=headers
        )
        v1 = http.post("/openai/v1/responses", json=body, headers=headers)
        no_version = http.post("/openai/responses", json=body, headers=headers)
        no_key = http.post("/openai/v1/responses", json=body)
        legacy = http.post(
            "/openai/deployments/my-instruct/completions?api-version=2024-10-21",
            json={"prompt": "hi"},
            headers=headers,
        )
    assert dated.status_code == v1.status_code == legacy.status_code == 200
    assert dated.json()["model"] == v1.json()["model"] == "my-deployment"
    assert legacy.json()["model"] == "my-instruct"
    assert no_version.status_code == 404 and no_key.status_code == 401
    Response.model_validate(dated.json())


def test_openai_azure_client_against_the_fake_v1_route(provider: FakeProvider) -> None:
    with openai.OpenAI(
        base_url=provider.url + "/openai/v1",
        api_key="unused",
        default_headers={"api-key": "azure-key"},
        max_retries=0,
    ) as client:
        r = client.responses.create(model="my-deployment", input="hello")
    assert r.output_text == "Echo: hello" and r.model == "my-deployment"


# the Responses API through llmstash -------------------------------------------------------


async def test_responses_plain_miss_then_hit(provider: FakeProvider, cache: Cache) -> None:
    kw = rkw(provider, instructions="be brief")
    first = await llmstash.aresponses(**kw)
    second = await llmstash.aresponses(**kw)
    assert provider.request_count == 1
    assert first == second and first.id == second.id
    assert first._hidden_params["cache_hit"] is False and second._hidden_params["cache_hit"] is True
    for r in (first, second):
        Response.model_validate(r.model_dump())
        assert r.output_text.startswith("Echo: what is a cache?")
        assert r["output"][0]["content"][0]["text"] == r.output[0].content[0].text
    body = provider.requests[0].json
    assert provider.requests[0].path == "/v1/responses"
    assert body["instructions"] == "be brief" and "stream" not in body
    raw = await cache.backend.get(first._hidden_params["cache_key"])
    assert raw is not None and peek(raw).kind == "responses"


async def test_responses_stream_replays_every_event(provider: FakeProvider, cache: Cache) -> None:
    kw = rkw(provider)
    miss = await llmstash.aresponses(**kw, stream=True)
    events = await read(miss)
    hit = await llmstash.aresponses(**kw, stream=True)
    replayed = await read(hit)
    assert provider.request_count == 1
    assert not miss.cache_hit and hit.cache_hit
    assert dumps(replayed) == dumps(events)
    assert [e.sequence_number for e in replayed] == list(range(len(events)))
    assert replayed[-1].type == "response.completed"
    assert len([e for e in replayed if e.type == "response.output_text.delta"]) > 1
    for e in replayed:
        EVENT.validate_python(e.model_dump())
    # The stream's whole answer is reported, and a plain call is served from the stream entry.
    assert miss.response is not None and miss.response._hidden_params["cache_hit"] is False
    plain = await llmstash.aresponses(**kw)
    assert provider.request_count == 1 and plain._hidden_params["cache_hit"] is True
    assert plain == miss.response
    Response.model_validate(plain.model_dump())
    raw = await cache.backend.get(plain._hidden_params["cache_key"])
    assert raw is not None and peek(raw).kind == "responses-stream"


async def test_a_plain_entry_does_not_serve_a_stream(provider: FakeProvider, cache: Cache) -> None:
    kw = rkw(provider)
    plain = await llmstash.aresponses(**kw)
    stream = await llmstash.aresponses(**kw, stream=True)
    events = await read(stream)
    assert provider.request_count == 2 and not stream.cache_hit  # a real stream, not a fake one
    assert [e.sequence_number for e in events] == list(range(len(events)))
    # The stream entry (serving both modes) replaced the plain one.
    again = await llmstash.aresponses(**kw, stream=True)
    assert again.cache_hit and dumps(await read(again)) == dumps(events)
    later = await llmstash.aresponses(**kw)
    assert provider.request_count == 2 and later._hidden_params["cache_hit"] is True
    assert later.output_text == plain.output_text


@pytest.mark.parametrize(
    ("name", "a", "b"),
    [
        ("previous_response_id", "resp_a", "resp_b"),
        ("store", True, False),
        ("tools", [{"type": "web_search_preview"}], [{"type": "file_search"}]),
        ("reasoning", {"effort": "low"}, {"effort": "high"}),
        ("instructions", "be brief", "be verbose"),
        ("text", {"format": {"type": "text"}}, {"format": {"type": "json_object"}}),
    ],
)
async def test_responses_key_covers_what_changes_the_answer(
    provider: FakeProvider, cache: Cache, name: str, a: Any, b: Any
) -> None:
    kw = rkw(provider)
    first = await llmstash.aresponses(**kw, **{name: a})
    same = await llmstash.aresponses(**kw, **{name: a})
    other = await llmstash.aresponses(**kw, **{name: b})
    bare = await llmstash.aresponses(**kw)
    assert provider.request_count == 3
    assert same._hidden_params["cache_hit"] is True
    keys = {r._hidden_params["cache_key"] for r in (first, other, bare)}
    assert len(keys) == 3
    assert provider.requests[0].json[name] == a


async def test_responses_and_embeddings_and_completions_keep_apart(
    provider: FakeProvider, llm: None
) -> None:
    cache = llmstash.cache = Cache()
    text = "one shared text"
    key_r = (await llmstash.aresponses(**{**rkw(provider), "input": text}))._hidden_params[
        "cache_key"
    ]
    key_t = (await llmstash.atext_completion(**{**tkw(provider), "prompt": text}))._hidden_params[
        "cache_key"
    ]
    key_e = cache.input_cache_keys(
        [text], model="openai/gpt-4o-mini", api_base=provider.openai_base
    )[0]
    assert len({key_r, key_t, key_e}) == 3


async def test_responses_cache_controls(provider: FakeProvider, cache: Cache) -> None:
    kw = rkw(provider)
    await llmstash.aresponses(**kw, cache={"no-store": True})
    await llmstash.aresponses(**kw)  # stored now
    assert provider.request_count == 2
    skipped = await llmstash.aresponses(**kw, cache={"no-cache": True})
    assert provider.request_count == 3 and skipped._hidden_params["cache_hit"] is False
    other_space = await llmstash.aresponses(**kw, cache={"namespace": f"ns-{uuid.uuid4().hex}"})
    assert provider.request_count == 4 and other_space._hidden_params["cache_hit"] is False
    off = await llmstash.aresponses(**kw, caching=False)
    assert provider.request_count == 5 and off._hidden_params.get("cache_hit") is False
    hit = await llmstash.aresponses(**kw, cache={"s-maxage": 60})
    assert provider.request_count == 5 and hit._hidden_params["cache_hit"] is True
    fresh = {**rkw(provider), "ttl": 0}
    await llmstash.aresponses(**fresh)
    await llmstash.aresponses(**fresh)
    assert provider.request_count == 7  # ttl=0 keeps nothing


async def test_responses_single_flight(provider: FakeProvider, cache: Cache) -> None:
    provider.latency = 0.2
    kw = rkw(provider)
    results = await asyncio.gather(*(llmstash.aresponses(**kw) for _ in range(20)))
    assert provider.request_count == 1
    assert len({r.id for r in results}) == 1
    assert sum(not r._hidden_params["cache_hit"] for r in results) == 1


async def test_responses_errors_are_raised_and_not_cached(
    provider: FakeProvider, cache: Cache
) -> None:
    kw = rkw(provider)
    provider.fail_next(500)
    with pytest.raises(InternalServerError):
        await llmstash.aresponses(**kw, num_retries=0)
    ok = await llmstash.aresponses(**kw)
    assert ok._hidden_params["cache_hit"] is False and provider.request_count == 2
    with pytest.raises(BadRequestError):
        await llmstash.aresponses(**rkw(provider, previous_response_id="nope"))


async def test_a_stream_error_event_raises(provider: FakeProvider, llm: None) -> None:
    provider.fail_next(
        200,
        body=(
            b'event: error\ndata: {"type":"error","code":"server_error",'
            b'"message":"boom","param":null,"sequence_number":0}\n\n'
        ),
    )
    with pytest.raises(InternalServerError, match="boom"):
        stream = await llmstash.aresponses(**rkw(provider), stream=True, num_retries=0)
        await read(stream)


async def test_a_provider_without_a_responses_api_is_refused_before_any_io(
    provider: FakeProvider, llm: None
) -> None:
    llmstash.cache = Cache()
    for model in ("anthropic/claude-sonnet-4-5", "claude-haiku-4-5"):
        with pytest.raises(UnsupportedParamsError, match="anthropic does not offer"):
            await llmstash.aresponses(
                model=model, input="hi", api_base=provider.anthropic_base, api_key="sk-ant"
            )
        with pytest.raises(UnsupportedParamsError):
            await llmstash.atext_completion(
                model=model, prompt="hi", api_base=provider.anthropic_base, api_key="sk-ant"
            )
    assert provider.request_count == 0
    assert issubclass(UnsupportedParamsError, BadRequestError)
    assert issubclass(UnsupportedParamsError, llmstash.InvalidRequestError)


@pytest.mark.parametrize("bad", [None, "", [], 3, [object()]])
async def test_bad_input_is_refused_before_any_io(
    provider: FakeProvider, llm: None, bad: Any
) -> None:
    with pytest.raises(llmstash.InvalidRequestError):
        await llmstash.aresponses(**{**rkw(provider), "input": bad})
    with pytest.raises(llmstash.InvalidRequestError):
        await llmstash.atext_completion(**{**tkw(provider), "prompt": bad})
    assert provider.request_count == 0


@pytest.mark.parametrize(
    ("version", "path", "query"),
    [
        ("2025-03-01-preview", "/openai/responses", {"api-version": "2025-03-01-preview"}),
        ("v1", "/openai/v1/responses", {}),
        ("preview", "/openai/v1/responses", {"api-version": "preview"}),
    ],
)
async def test_azure_responses_routes(
    provider: FakeProvider, cache: Cache, version: str, path: str, query: dict[str, str]
) -> None:
    kw = {
        "model": "azure/my-deployment",
        "input": f"hello {uuid.uuid4().hex[:6]}",
        "api_base": provider.azure_base,
        "api_key": "azure-key",
        "api_version": version,
    }
    r = await llmstash.aresponses(**kw)
    events = await read(await llmstash.aresponses(**kw, stream=True, instructions="x"))
    hit = await llmstash.aresponses(**kw)
    assert provider.request_count == 2 and hit._hidden_params["cache_hit"] is True
    for request in provider.requests:
        assert request.path == path and request.query == query
        assert (
            request.headers["api-key"] == "azure-key" and request.json["model"] == "my-deployment"
        )
    Response.model_validate(r.model_dump())
    assert events[-1].type == "response.completed"
    assert r._hidden_params["custom_llm_provider"] == "azure"


async def test_azure_text_completion_route(provider: FakeProvider, llm: None) -> None:
    r = await llmstash.atext_completion(
        model="azure/my-instruct",
        prompt="hello",
        api_base=provider.azure_base,
        api_key="azure-key",
        api_version="2024-10-21",
    )
    assert r.choices[0].text == "Echo: hello"
    request = provider.requests[0]
    assert request.path == "/openai/deployments/my-instruct/completions"
    assert request.query == {"api-version": "2024-10-21"}


class Recorder(CustomLogger):
    def __init__(self) -> None:
        self.success: list[dict[str, Any]] = []
        self.failure: list[dict[str, Any]] = []
        self.stream_events = 0

    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):  # type: ignore[no-untyped-def]
        self.success.append({**kwargs, "_response": response_obj})

    async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time):  # type: ignore[no-untyped-def]
        self.failure.append(kwargs)

    async def async_log_stream_event(self, kwargs, response_obj, start_time, end_time):  # type: ignore[no-untyped-def]
        self.stream_events += 1


async def test_callbacks_fire_as_for_chat(provider: FakeProvider, cache: Cache) -> None:
    recorder = Recorder()
    llmstash.callbacks = [recorder]
    kw = rkw(provider, model="openai/gpt-4o-mini")
    await llmstash.aresponses(**kw)
    await llmstash.aresponses(**kw)
    await read(await llmstash.aresponses(**rkw(provider), stream=True))
    await llmstash.atext_completion(**tkw(provider))
    provider.fail_next(400)
    with pytest.raises(BadRequestError):
        await llmstash.aresponses(**rkw(provider))
    await llmstash.aflush_callbacks()
    miss, hit, streamed, text = recorder.success
    assert miss["call_type"] == hit["call_type"] == "aresponses"
    assert text["call_type"] == "atext_completion" and text["prompt"].startswith("say something")
    assert miss["cache_hit"] is False and hit["cache_hit"] is True
    assert miss["input"] == kw["input"] and miss["cache_key"] == hit["cache_key"]
    assert miss["response_cost"] > 0 and hit["response_cost"] == 0 and hit["saved_cost"] > 0
    assert "sk-test-key-123456" not in repr(miss)
    assert streamed["stream"] is True and streamed["_response"].object == "response"
    assert recorder.stream_events > 5
    assert recorder.failure and recorder.failure[0]["call_type"] == "aresponses"


async def test_mock_response_is_cached(provider: FakeProvider, cache: Cache) -> None:
    kw = {"model": "gpt-4o-mini", "input": f"mock {uuid.uuid4().hex}"}
    first = await llmstash.aresponses(**kw, mock_response="cached")
    second = await llmstash.aresponses(**kw, mock_response="different")
    assert first.id == second.id and second.output_text == "cached"
    Response.model_validate(second.model_dump())
    events = await read(
        await llmstash.aresponses(**kw, mock_response="x", stream=True, store=False)
    )
    assert events[-1].type == "response.completed" and events[-1].response.output_text == "x"
    for e in events:
        EVENT.validate_python(e.model_dump())
    assert provider.request_count == 0


def test_sync_responses_and_text_completion(provider: FakeProvider, sync_llm: None) -> None:
    llmstash.cache = Cache()
    kw = rkw(provider)
    assert llmstash.responses(**kw) == llmstash.responses(**kw)
    events = list(llmstash.responses(**kw, stream=True, instructions="i"))
    assert events[-1].type == "response.completed"
    tk = tkw(provider)
    chunks = list(llmstash.text_completion(**tk, stream=True))
    plain = llmstash.text_completion(**tk)
    assert plain._hidden_params["cache_hit"] is True
    assert plain.choices[0].text == "".join(c.choices[0].text for c in chunks)
    assert provider.request_count == 3


# text completion ----------------------------------------------------------------------------


async def test_text_completion_plain_miss_then_hit(provider: FakeProvider, cache: Cache) -> None:
    kw = tkw(provider, max_tokens=40, temperature=1)
    first = await llmstash.atext_completion(**kw)
    second = await llmstash.atext_completion(**kw)
    assert provider.request_count == 1 and first.id == second.id and first == second
    assert second._hidden_params["cache_hit"] is True
    assert second.object == "text_completion" and second.choices[0].text.startswith("Echo: ")
    assert second["choices"][0]["text"] == second.choices[0].text
    Completion.model_validate(second.model_dump())
    assert provider.requests[0].path == "/v1/completions"
    raw = await cache.backend.get(first._hidden_params["cache_key"])
    assert raw is not None and peek(raw).kind == "text-completion"


async def test_text_completion_under_litellm_s_prefix(provider: FakeProvider) -> None:
    # LiteLLM (and dspy's text model type) name OpenAI's text completion models so.
    r = await llmstash.atext_completion(
        model="text-completion-openai/gpt-3.5-turbo-instruct",
        prompt="Say hi",
        api_base=provider.openai_base,
        api_key="sk-test",
    )
    assert r.choices[0].text.startswith("Echo: ")
    assert provider.requests[0].path == "/v1/completions"
    assert provider.requests[0].json["model"] == "gpt-3.5-turbo-instruct"
    assert llmstash.get_llm_provider("text-completion-openai/gpt-3.5-turbo-instruct")[:2] == (
        "gpt-3.5-turbo-instruct",
        "openai",
    )


async def test_text_completion_stream_miss_then_hit(provider: FakeProvider, cache: Cache) -> None:
    kw = tkw(provider)
    miss = await llmstash.atext_completion(**kw, stream=True)
    chunks = await read(miss)
    hit = await llmstash.atext_completion(**kw, stream=True)
    replayed = await read(hit)
    assert provider.request_count == 1 and hit.cache_hit
    assert dumps(replayed) == dumps(chunks)
    # The caller did not ask for usage: asked of the provider for the entry, hidden here.
    assert all(c.choices for c in replayed)
    assert provider.requests[0].json["stream_options"] == {"include_usage": True}
    for c in replayed:
        validate_chunk(c)
    plain = await llmstash.atext_completion(**kw)
    assert provider.request_count == 1 and plain._hidden_params["cache_hit"] is True
    assert plain.choices[0].text == "".join(c.choices[0].text for c in chunks)
    assert plain.usage.completion_tokens > 0 and plain.choices[0].finish_reason == "stop"
    Completion.model_validate(plain.model_dump())
    asked = await read(
        await llmstash.atext_completion(**kw, stream=True, stream_options={"include_usage": True})
    )
    assert asked[-1].choices == [] and asked[-1].usage is not None


async def test_text_completion_stream_logprobs_assemble(provider: FakeProvider, llm: None) -> None:
    llmstash.cache = Cache()
    kw = tkw(provider, logprobs=1)
    chunks = await read(await llmstash.atext_completion(**kw, stream=True))
    plain = await llmstash.atext_completion(**kw)
    assert provider.request_count == 1
    tokens = [t for c in chunks if c.choices[0].logprobs for t in c.choices[0].logprobs.tokens]
    assert plain.choices[0].logprobs.tokens == tokens and len(tokens) > 1


async def test_supported_call_types_know_the_new_names(provider: FakeProvider, llm: None) -> None:
    llmstash.cache = Cache(supported_call_types=["atext_completion"])
    prompt = f"write a one sentence poem about: {uuid.uuid4()}"
    first = await llmstash.atext_completion(
        model="gpt-3.5-turbo-instruct", prompt=prompt, mock_response="cached"
    )
    second = await llmstash.atext_completion(
        model="gpt-3.5-turbo-instruct", prompt=prompt, mock_response="different"
    )
    assert first.id == second.id
    kw = rkw(provider)
    await llmstash.aresponses(**kw)
    await llmstash.aresponses(**kw)
    assert provider.request_count == 2  # aresponses is not among the cached call types
    Cache(supported_call_types=["responses", "aresponses", "text_completion"])
    with pytest.raises(llmstash.InvalidRequestError):
        Cache(supported_call_types=["aresponse"])


async def test_garbage_under_a_responses_key_is_a_miss(
    provider: FakeProvider, cache: Cache
) -> None:
    kw = rkw(provider)
    first = await llmstash.aresponses(**kw)
    key = first._hidden_params["cache_key"]
    await cache.backend.set(key, b"L\x03\x04\x00" + b"\x00" * 18 + b"\xc1garbage", ttl=None)
    again = await llmstash.aresponses(**kw)
    assert again._hidden_params["cache_hit"] is False and provider.request_count == 2


async def test_client_methods(provider: FakeProvider) -> None:
    async with llmstash.Client(cache=Cache()) as client:
        kw = rkw(provider)
        a = await client.aresponses(**kw)
        b = await client.aresponses(**kw)
        t = await client.atext_completion(**tkw(provider))
    assert a == b and provider.request_count == 2 and t.object == "text_completion"


def test_entry_kinds_round_trip() -> None:
    from llmstash.caching._codec import (
        decode,
        encode_responses,
        encode_responses_stream,
        encode_text_completion,
        encode_text_completion_stream,
    )
    from llmstash.types import ResponsesAPIResponse, ResponsesAPIStreamEvent, TextCompletionResponse

    body = {"id": "resp_1", "object": "response", "output": [], "x_vendor": {"a": [1, None]}}
    entry = decode(encode_responses(ResponsesAPIResponse(body), 1.0, 10, model="m"))
    assert isinstance(entry, ResponsesEntry) and entry.response.model_dump() == body
    assert entry.expires_at == 11.0
    events = [ResponsesAPIStreamEvent({"type": "response.created", "sequence_number": 0})]
    entry2 = decode(encode_responses_stream(events, 1.0))
    assert isinstance(entry2, ResponsesStreamEntry) and entry2.events == events
    text = TextCompletionResponse({"id": "c", "choices": [{"text": "hi"}]})
    entry3 = decode(encode_text_completion(text, 1.0))
    assert isinstance(entry3, TextCompletionEntry) and entry3.response == text
    entry4 = decode(encode_text_completion_stream([text], 1.0))
    assert isinstance(entry4, TextCompletionStreamEntry) and entry4.chunks == [text]
    with pytest.raises(ValueError):
        encode_responses_stream([], 1.0)


@pytest.mark.parametrize("kind", [4, 5, 6, 7])
@pytest.mark.parametrize("payload", [b"", b"\x90", b"\x91\x01", b"\xa3abc", b"\x81\x01\x02"])
def test_hostile_payloads_of_the_new_kinds_do_not_decode(kind: int, payload: bytes) -> None:
    from llmstash.caching._codec import _pack, decode
    from llmstash.exceptions import CacheDataError

    with pytest.raises(CacheDataError):
        decode(_pack(kind, 1.0, None, payload))


def test_new_kinds_compress_and_decode() -> None:
    from llmstash.caching._codec import compress, decode, encode_responses_stream

    events = [
        ResponsesAPIStreamEventType(
            {"type": "response.output_text.delta", "sequence_number": i, "delta": " word"}
        )
        for i in range(200)
    ]
    plain = encode_responses_stream(events, 1.0)
    packed = compress(plain)
    assert len(packed) < len(plain) / 2 and peek(packed).flags != 0
    entry = decode(packed)
    assert isinstance(entry, ResponsesStreamEntry) and entry.events == events


async def test_streamed_single_flight_gives_every_caller_every_event(
    provider: FakeProvider, cache: Cache
) -> None:
    provider.latency = 0.2
    kw = rkw(provider)

    async def one() -> list[dict[str, Any]]:
        return dumps(await read(await llmstash.aresponses(**kw, stream=True)))

    results = await asyncio.gather(*(one() for _ in range(10)))
    assert provider.request_count == 1
    assert all(r == results[0] for r in results) and results[0][-1]["type"] == "response.completed"


async def test_an_abandoned_stream_is_not_stored(provider: FakeProvider, cache: Cache) -> None:
    kw = rkw(provider)
    stream = await llmstash.aresponses(**kw, stream=True)
    await stream.__anext__()
    await stream.aclose()
    again = await llmstash.aresponses(**kw, stream=True)
    assert not again.cache_hit and provider.request_count == 2
    await read(again)


async def test_a_failed_response_stream_is_not_stored(provider: FakeProvider, cache: Cache) -> None:
    failed = {
        "id": "resp_failed",
        "object": "response",
        "created_at": 1,
        "status": "failed",
        "model": "gpt-4o-mini",
        "output": [],
        "error": {"code": "server_error", "message": "boom"},
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
    }
    events = [
        {
            "type": "response.created",
            "sequence_number": 0,
            "response": {**failed, "status": "in_progress"},
        },
        {"type": "response.failed", "sequence_number": 1, "response": failed},
    ]
    provider.fail_next(200, body=b"".join(b"data: " + json_bytes(e) + b"\n\n" for e in events))
    kw = rkw(provider)
    got = await read(await llmstash.aresponses(**kw, stream=True))
    assert [e.type for e in got] == ["response.created", "response.failed"]
    plain = await llmstash.aresponses(**kw)
    assert plain._hidden_params["cache_hit"] is False and plain.status == "completed"
    assert provider.request_count == 2


async def test_a_text_stream_without_usage_does_not_serve_a_plain_call(
    provider: FakeProvider, cache: Cache
) -> None:
    from llmstash.caching._codec import encode_text_completion_stream
    from llmstash.types import TextCompletionResponse

    kw = tkw(provider)
    first = await llmstash.atext_completion(**kw)
    key = first._hidden_params["cache_key"]
    chunk = TextCompletionResponse(
        {
            "id": "cmpl-x",
            "object": "text_completion",
            "created": 1,
            "model": "m",
            "choices": [{"text": "hi", "index": 0, "logprobs": None, "finish_reason": "stop"}],
        }
    )
    await cache.astore({key: encode_text_completion_stream([chunk], 1e10)}, None)
    streamed = await llmstash.atext_completion(**kw, stream=True)
    assert streamed.cache_hit and [c.id for c in await read(streamed)] == ["cmpl-x"]
    plain = await llmstash.atext_completion(**kw)
    assert plain._hidden_params["cache_hit"] is False and provider.request_count == 2


def json_bytes(value: Any) -> bytes:
    import json

    return json.dumps(value).encode()


async def test_responses_key_headers_and_credentials(provider: FakeProvider, cache: Cache) -> None:
    kw = rkw(provider)
    a = await llmstash.aresponses(**kw, extra_headers={"X-Tenant": "a", "traceparent": "00-1"})
    b = await llmstash.aresponses(**kw, extra_headers={"x-tenant": "a", "traceparent": "00-2"})
    c = await llmstash.aresponses(**kw, extra_headers={"X-Tenant": "b"})
    d = await llmstash.aresponses(
        **{**kw, "api_key": "sk-another-key-987654"}, extra_headers={"X-Tenant": "a"}
    )
    assert b._hidden_params["cache_hit"] is True and d._hidden_params["cache_hit"] is True
    assert c._hidden_params["cache_hit"] is False and provider.request_count == 2
    assert a._hidden_params["cache_key"] != c._hidden_params["cache_key"]
    assert provider.requests[0].headers["x-tenant"] == "a"


async def test_provider_prefixes_offer_only_what_their_servers_serve(
    provider: FakeProvider, llm: None
) -> None:
    llmstash.cache = Cache()
    for model in ("groq/llama-3.1-8b-instant", "mistral/mistral-small", "gemini/gemini-2.0-flash"):
        with pytest.raises(UnsupportedParamsError):
            await llmstash.aresponses(
                model=model, input="hi", api_base=provider.openai_base, api_key="k"
            )
    with pytest.raises(UnsupportedParamsError):
        await llmstash.atext_completion(
            model="groq/llama", prompt="hi", api_base=provider.openai_base, api_key="k"
        )
    assert provider.request_count == 0
    r = await llmstash.aresponses(
        model="hosted_vllm/my-model", input="hi", api_base=provider.url, api_key="k"
    )
    t = await llmstash.atext_completion(
        model="ollama/llama3", prompt="hi", api_base=provider.url, api_key="k"
    )
    assert r.output_text == "Echo: hi" and t.choices[0].text == "Echo: hi"
    assert [q.path for q in provider.requests] == ["/v1/responses", "/v1/completions"]
    assert r._hidden_params["custom_llm_provider"] == "hosted_vllm"
