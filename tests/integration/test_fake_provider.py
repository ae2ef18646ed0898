"""The fake provider over real HTTP: each wire format, streams, auth, injected failures, counts."""

from __future__ import annotations

import base64
import json
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import openai
import pytest

from llmstash.testing import FakeProvider, RecordedRequest

OPENAI_AUTH = {"Authorization": "Bearer sk-test"}
AZURE_AUTH = {"api-key": "azure-test"}
ANTHROPIC_AUTH = {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}
MESSAGES = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": "what is a cache?"},
]
TOOLS = [
    {"type": "function", "function": {"name": "search", "parameters": {"type": "object"}}},
    {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}},
]
ANTHROPIC_TOOLS = [
    {"name": "search", "description": "search the web", "input_schema": {"type": "object"}},
    {"name": "lookup", "description": "look a word up", "input_schema": {"type": "object"}},
]


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


def openai_chat(http: httpx.Client, provider: FakeProvider, **body: Any) -> httpx.Response:
    body = {"model": "gpt-4o-mini", "messages": MESSAGES, **body}
    return http.post(provider.openai_base + "/chat/completions", json=body, headers=OPENAI_AUTH)


def azure_url(provider: FakeProvider, endpoint: str, deployment: str = "my-gpt") -> str:
    return f"{provider.azure_base}/openai/deployments/{deployment}/{endpoint}"


def anthropic_chat(http: httpx.Client, provider: FakeProvider, **body: Any) -> httpx.Response:
    body = {
        "model": "claude-test",
        "max_tokens": 100,
        "system": "be brief",
        "messages": [{"role": "user", "content": "what is a cache?"}],
        **body,
    }
    return http.post(provider.anthropic_base + "/v1/messages", json=body, headers=ANTHROPIC_AUTH)


def sse(response: httpx.Response) -> list[tuple[str | None, str]]:
    """(event name, data) of each SSE event in the body."""
    assert response.headers["content-type"].startswith("text/event-stream")
    events = []
    for block in response.text.split("\n\n"):
        if not block:
            continue
        fields = dict(line.split(": ", 1) for line in block.split("\n"))
        events.append((fields.get("event"), fields["data"]))
    return events


def openai_chunks(response: httpx.Response) -> list[dict[str, Any]]:
    data = [data for _, data in sse(response)]
    assert data[-1] == "[DONE]"
    return [json.loads(item) for item in data[:-1]]


def test_openai_chat_echoes_the_last_user_message(http, provider):
    before = int(time.time())
    response = openai_chat(http, provider)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["id"].startswith("chatcmpl-")
    assert body["object"] == "chat.completion"
    assert before <= body["created"] <= time.time()
    assert body["model"] == "gpt-4o-mini"
    [choice] = body["choices"]
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"] == "Echo: what is a cache?"
    assert choice["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 6, "completion_tokens": 5, "total_tokens": 11}


def test_openai_chat_reads_text_parts_and_gives_fresh_ids(http, provider):
    messages = [
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {
            "role": "user",
            "content": [{"type": "text", "text": "second"}, {"type": "text", "text": "one"}],
        },
    ]
    first = openai_chat(http, provider, messages=messages).json()
    second = openai_chat(http, provider, messages=messages).json()
    assert first["choices"][0]["message"]["content"] == "Echo: second one"
    assert first["id"] != second["id"]
    assert first["choices"] == second["choices"]


def test_openai_chat_without_v1_prefix(http, provider):
    body = {"model": "local-model", "messages": MESSAGES}
    response = http.post(provider.url + "/chat/completions", json=body, headers=OPENAI_AUTH)
    assert response.status_code == 200
    assert response.json()["model"] == "local-model"


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer"}, {"Authorization": "Basic abc"}, AZURE_AUTH]
)
def test_openai_rejects_a_missing_key(http, provider, headers):
    body = {"model": "gpt-4o-mini", "messages": MESSAGES}
    response = http.post(provider.openai_base + "/chat/completions", json=body, headers=headers)
    assert response.status_code == 401
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"


def test_openai_rejects_bad_requests(http, provider):
    url = provider.openai_base + "/chat/completions"
    response = http.post(url, content=b"{not json", headers=OPENAI_AUTH)
    assert response.status_code == 400
    response = http.post(url, json={"messages": MESSAGES}, headers=OPENAI_AUTH)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "model"
    response = http.post(url, json={"model": "m", "messages": []}, headers=OPENAI_AUTH)
    assert response.json()["error"]["param"] == "messages"


def test_azure_chat_answers_as_the_deployment(http, provider):
    body = {"messages": MESSAGES}
    url = azure_url(provider, "chat/completions")
    response = http.post(url, params={"api-version": "2024-10-21"}, json=body, headers=AZURE_AUTH)
    assert response.status_code == 200
    assert response.json()["model"] == "my-gpt"
    assert response.json()["choices"][0]["message"]["content"] == "Echo: what is a cache?"
    [request] = provider.requests
    assert request.query == {"api-version": "2024-10-21"}
    assert request.headers["api-key"] == "azure-test"


def test_azure_requires_api_version_and_key(http, provider):
    body = {"messages": MESSAGES}
    url = azure_url(provider, "chat/completions")
    response = http.post(url, json=body, headers=AZURE_AUTH)
    assert response.status_code == 404
    assert "error" in response.json()
    response = http.post(url, params={"api-version": "2024-10-21"}, json=body)
    assert response.status_code == 401
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_anthropic_message(http, provider):
    response = anthropic_chat(http, provider)
    assert response.status_code == 200
    body = response.json()
    assert body["id"].startswith("msg_")
    assert body["id"] != anthropic_chat(http, provider).json()["id"]
    del body["id"]
    assert body == {
        "type": "message",
        "role": "assistant",
        "model": "claude-test",
        "content": [{"type": "text", "text": "Echo: what is a cache?"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 6, "output_tokens": 5},
    }


@pytest.mark.parametrize(
    "auth", [{}, {"Authorization": "Bearer"}, {"Authorization": "Basic abc"}, {"x-api-key": ""}]
)
def test_anthropic_rejects_a_missing_key(http, provider, auth):
    body = {"model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    headers = {"anthropic-version": "2023-06-01", **auth}
    response = http.post(provider.anthropic_base + "/v1/messages", json=body, headers=headers)
    assert response.status_code == 401
    assert response.json()["type"] == "error"
    assert response.json()["error"]["type"] == "authentication_error"


@pytest.mark.parametrize("auth", [{"x-api-key": "sk-ant"}, {"Authorization": "Bearer oauth-tok"}])
def test_anthropic_accepts_an_api_key_or_a_bearer_token(http, provider, auth):
    body = {"model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    headers = {"anthropic-version": "2023-06-01", **auth}
    response = http.post(provider.anthropic_base + "/v1/messages", json=body, headers=headers)
    assert response.status_code == 200
    assert response.json()["content"] == [{"type": "text", "text": "Echo: hi"}]


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"max_tokens": None}, "max_tokens"),
        (
            {"messages": [{"role": "system", "content": "x"}, {"role": "user", "content": "y"}]},
            "system",
        ),
        ({"messages": [{"role": "tool", "content": "x"}]}, "tool"),
        ({"headers": {"x-api-key": "k"}}, "anthropic-version"),
    ],
)
def test_anthropic_rejects_what_the_real_api_rejects(http, provider, change, words):
    body = {"model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    headers = change.get("headers", ANTHROPIC_AUTH)
    body.update(change)
    body = {key: value for key, value in body.items() if value is not None and key != "headers"}
    response = http.post(provider.anthropic_base + "/v1/messages", json=body, headers=headers)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert words in error["message"]


def test_openai_tool_call(http, provider):
    body = openai_chat(http, provider, tools=TOOLS).json()
    [choice] = body["choices"]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    [call] = choice["message"]["tool_calls"]
    assert call["id"].startswith("call_")
    assert call["type"] == "function"
    assert call["function"]["name"] == "search"
    assert json.loads(call["function"]["arguments"]) == {"query": "what is a cache?"}


def test_openai_tool_choice(http, provider):
    named = {"type": "function", "function": {"name": "lookup"}}
    body = openai_chat(http, provider, tools=TOOLS, tool_choice=named).json()
    assert body["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "lookup"
    body = openai_chat(http, provider, tools=TOOLS, tool_choice="none").json()
    assert body["choices"][0]["message"]["content"] == "Echo: what is a cache?"


def test_openai_answers_a_tool_result_with_text(http, provider):
    call = {"id": "call_1", "type": "function", "function": {"name": "search", "arguments": "{}"}}
    messages = [
        *MESSAGES,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "a fast store"},
    ]
    body = openai_chat(http, provider, tools=TOOLS, messages=messages).json()
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["choices"][0]["message"]["content"] == "Echo: what is a cache?"


def test_anthropic_tool_use(http, provider):
    body = anthropic_chat(http, provider, tools=ANTHROPIC_TOOLS).json()
    assert body["stop_reason"] == "tool_use"
    [block] = body["content"]
    assert block["type"] == "tool_use"
    assert block["id"].startswith("toolu_")
    assert block["name"] == "search"
    assert block["input"] == {"query": "what is a cache?"}

    named = anthropic_chat(
        http, provider, tools=ANTHROPIC_TOOLS, tool_choice={"type": "tool", "name": "lookup"}
    )
    assert named.json()["content"][0]["name"] == "lookup"
    none = anthropic_chat(http, provider, tools=ANTHROPIC_TOOLS, tool_choice={"type": "none"})
    assert none.json()["content"][0]["type"] == "text"

    result = {"type": "tool_result", "tool_use_id": block["id"], "content": "a fast store"}
    messages = [
        {"role": "user", "content": "what is a cache?"},
        {"role": "assistant", "content": [block]},
        {"role": "user", "content": [result]},
    ]
    answer = anthropic_chat(http, provider, tools=ANTHROPIC_TOOLS, messages=messages).json()
    assert answer["stop_reason"] == "end_turn"
    assert answer["content"][0]["text"] == "Echo: a fast store"


def test_set_reply_until_reset(http, provider):
    provider.set_reply("fixed words")
    assert openai_chat(http, provider).json()["choices"][0]["message"]["content"] == "fixed words"
    assert anthropic_chat(http, provider).json()["content"][0]["text"] == "fixed words"
    assert anthropic_chat(http, provider).json()["usage"]["output_tokens"] == 2
    provider.set_reply(None)
    assert openai_chat(http, provider).json()["choices"][0]["message"]["content"].startswith("Echo")
    provider.set_reply("fixed")
    provider.reset()
    assert openai_chat(http, provider).json()["choices"][0]["message"]["content"].startswith("Echo")


@pytest.mark.parametrize("include_usage", [False, True])
def test_openai_stream(http, provider, include_usage):
    response = openai_chat(
        http, provider, stream=True, stream_options={"include_usage": include_usage}
    )
    assert response.status_code == 200
    assert response.headers["transfer-encoding"] == "chunked"
    chunks = openai_chunks(response)
    assert {chunk["id"] for chunk in chunks} == {chunks[0]["id"]}
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    if include_usage:
        *chunks, last = chunks
        assert last["choices"] == []
        assert last["usage"] == {"prompt_tokens": 6, "completion_tokens": 5, "total_tokens": 11}
    *chunks, final = chunks
    assert final["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }
    pieces = [chunk["choices"][0]["delta"]["content"] for chunk in chunks[1:]]
    assert len(pieces) > 1
    assert "".join(pieces) == "Echo: what is a cache?"
    assert all(chunk["choices"][0]["finish_reason"] is None for chunk in chunks)


def test_openai_stream_of_a_tool_call(http, provider):
    chunks = openai_chunks(openai_chat(http, provider, stream=True, tools=TOOLS))
    deltas = [chunk["choices"][0]["delta"] for chunk in chunks]
    first = deltas[0]["tool_calls"][0]
    assert first["id"].startswith("call_")
    assert first["type"] == "function"
    assert first["function"]["name"] == "search"
    fragments = [delta["tool_calls"][0]["function"]["arguments"] for delta in deltas[1:-1]]
    assert len(fragments) > 1
    assert json.loads("".join(fragments)) == {"query": "what is a cache?"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_azure_stream(http, provider):
    body = {"messages": MESSAGES, "stream": True}
    url = azure_url(provider, "chat/completions", deployment="dep")
    response = http.post(url, params={"api-version": "v"}, json=body, headers=AZURE_AUTH)
    chunks = openai_chunks(response)
    assert {chunk["model"] for chunk in chunks} == {"dep"}
    text = "".join(chunk["choices"][0]["delta"].get("content") or "" for chunk in chunks)
    assert text == "Echo: what is a cache?"


def test_anthropic_stream(http, provider):
    events = sse(anthropic_chat(http, provider, stream=True))
    names = [name for name, _ in events]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(names[3:-3]) == {"content_block_delta"}
    data = [json.loads(item) for _, item in events]
    assert [item["type"] for item in data] == names
    assert data[0]["message"]["id"].startswith("msg_")
    assert data[0]["message"]["usage"]["input_tokens"] == 6
    deltas = [item["delta"] for item in data[3:-3]]
    assert len(deltas) > 1
    assert {delta["type"] for delta in deltas} == {"text_delta"}
    assert "".join(delta["text"] for delta in deltas) == "Echo: what is a cache?"
    assert data[-2]["delta"]["stop_reason"] == "end_turn"
    assert data[-2]["usage"] == {"output_tokens": 5}


def test_anthropic_stream_of_a_tool_use(http, provider):
    data = [
        json.loads(item)
        for _, item in sse(anthropic_chat(http, provider, stream=True, tools=ANTHROPIC_TOOLS))
    ]
    block = data[1]["content_block"]
    assert (block["type"], block["name"], block["input"]) == ("tool_use", "search", {})
    deltas = [item["delta"] for item in data if item["type"] == "content_block_delta"]
    assert {delta["type"] for delta in deltas} == {"input_json_delta"}
    assert json.loads("".join(delta["partial_json"] for delta in deltas)) == {
        "query": "what is a cache?"
    }
    assert data[-2]["delta"]["stop_reason"] == "tool_use"


def test_keep_alive_across_streams_and_plain_answers(provider):
    with httpx.Client(limits=httpx.Limits(max_connections=1)) as http:
        peers = set()
        for stream in (True, False, True):
            response = openai_chat(http, provider, stream=stream)
            assert response.status_code == 200
            peers.add(response.extensions["network_stream"].get_extra_info("client_addr"))
    assert len(peers) == 1


def test_embeddings_float_and_base64_agree(http, provider):
    url = provider.openai_base + "/embeddings"
    body = {"model": "text-embedding-3-small", "input": ["hello world", "a cache", "hello world"]}
    plain = http.post(url, json=body, headers=OPENAI_AUTH).json()
    packed = http.post(url, json={**body, "encoding_format": "base64"}, headers=OPENAI_AUTH).json()
    assert plain["object"] == "list"
    assert plain["model"] == "text-embedding-3-small"
    assert plain["usage"] == {"prompt_tokens": 6, "total_tokens": 6}
    vectors = [item["embedding"] for item in plain["data"]]
    assert [item["index"] for item in plain["data"]] == [0, 1, 2]
    assert all(len(vector) == 8 for vector in vectors)
    assert vectors[0] == vectors[2] != vectors[1]
    for vector in vectors:
        assert all(-1 <= value <= 1 and (value * 65536).is_integer() for value in vector)
    for item, vector in zip(packed["data"], vectors, strict=True):
        raw = base64.b64decode(item["embedding"])
        assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == vector


def test_embeddings_dimensions_and_a_single_string(http, provider):
    url = provider.openai_base + "/embeddings"
    body = {"model": "e", "input": "hello world", "dimensions": 5}
    response = http.post(url, json=body, headers=OPENAI_AUTH).json()
    [item] = response["data"]
    assert len(item["embedding"]) == 5
    provider.embedding_dim = 3
    response = http.post(url, json={"model": "e", "input": "hello world"}, headers=OPENAI_AUTH)
    assert response.json()["data"][0]["embedding"] == item["embedding"][:3]


def test_azure_embeddings(http, provider):
    url = azure_url(provider, "embeddings", deployment="emb")
    body = {"input": ["x"], "encoding_format": "base64"}
    response = http.post(url, params={"api-version": "v"}, json=body, headers=AZURE_AUTH)
    assert response.json()["model"] == "emb"
    assert len(base64.b64decode(response.json()["data"][0]["embedding"])) == 8 * 4
    assert http.post(url, json=body, headers=AZURE_AUTH).status_code == 404


@pytest.mark.parametrize(
    "body", [{"model": "e"}, {"model": "e", "input": []}, {"model": "e", "input": [1]}]
)
def test_embeddings_reject_bad_input(http, provider, body):
    response = http.post(provider.openai_base + "/embeddings", json=body, headers=OPENAI_AUTH)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "input"


def test_fail_next_openai(http, provider):
    provider.fail_next(status=429, count=2, retry_after=3)
    for _ in range(2):
        response = openai_chat(http, provider)
        assert response.status_code == 429
        assert response.headers["retry-after"] == "3"
        assert response.json()["error"]["code"] == "rate_limit_exceeded"
    assert openai_chat(http, provider).status_code == 200
    assert provider.request_count == 3


def test_fail_next_queues_in_order_with_custom_bodies(http, provider):
    custom = {
        "error": {
            "message": "too long",
            "type": "invalid_request_error",
            "param": None,
            "code": "context_length_exceeded",
        }
    }
    provider.fail_next(status=400, body=custom)
    provider.fail_next(status=500, body="plain text")
    response = openai_chat(http, provider)
    assert (response.status_code, response.json()) == (400, custom)
    assert "retry-after" not in response.headers
    response = openai_chat(http, provider)
    assert (response.status_code, response.text) == (500, "plain text")
    assert openai_chat(http, provider).status_code == 200


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (429, "rate_limit_error"),
        (529, "overloaded_error"),
        (500, "api_error"),
        (400, "invalid_request_error"),
    ],
)
def test_fail_next_anthropic(http, provider, status, kind):
    provider.fail_next(status=status, retry_after=0.5)
    response = anthropic_chat(http, provider)
    assert response.status_code == status
    assert response.headers["retry-after"] == "0.5"
    assert response.json() == {
        "type": "error",
        "error": {"type": kind, "message": response.json()["error"]["message"]},
    }


def test_fail_next_azure_uses_openai_errors(http, provider):
    provider.fail_next(status=503)
    url = azure_url(provider, "embeddings")
    response = http.post(url, params={"api-version": "v"}, json={"input": "x"}, headers=AZURE_AUTH)
    assert response.status_code == 503
    assert response.json()["error"]["type"] == "server_error"


def test_hang_next_makes_the_client_time_out(http, provider):
    provider.hang_next(2.0)
    with httpx.Client(timeout=0.2) as impatient, pytest.raises(httpx.ReadTimeout):
        openai_chat(impatient, provider)
    assert openai_chat(http, provider).status_code == 200
    assert provider.request_count == 2


def test_latency_delays_each_answer(http, provider):
    provider.latency = 0.05
    start = time.perf_counter()
    openai_chat(http, provider)
    assert time.perf_counter() - start >= 0.04


def test_requests_are_counted_and_recorded(http, provider):
    assert provider.request_count == 0
    openai_chat(http, provider, temperature=0)
    http.get(provider.url + "/nowhere?x=1")
    http.post(provider.openai_base + "/chat/completions", json={})
    assert provider.request_count == 3
    first, second, third = provider.requests
    assert isinstance(first, RecordedRequest)
    assert (first.method, first.path, first.query) == ("POST", "/v1/chat/completions", {})
    assert first.headers["authorization"] == "Bearer sk-test"
    assert first.headers["content-type"] == "application/json"
    assert first.json == {"model": "gpt-4o-mini", "messages": MESSAGES, "temperature": 0}
    assert json.loads(first.body) == first.json
    assert (second.method, second.path, second.query, second.body, second.json) == (
        "GET",
        "/nowhere",
        {"x": "1"},
        b"",
        None,
    )
    assert third.json == {}
    provider.reset()
    assert (provider.request_count, provider.requests) == (0, [])


def test_unknown_path_and_wrong_method(http, provider):
    response = http.post(provider.url + "/v2/unknown", json={}, headers=OPENAI_AUTH)
    assert response.status_code == 404
    assert "error" in response.json()
    response = http.get(provider.openai_base + "/chat/completions", headers=OPENAI_AUTH)
    assert response.status_code == 405


def test_chunked_request_body(http, provider):
    body = json.dumps({"model": "m", "messages": MESSAGES}).encode()
    parts = iter([body[:10], body[10:]])
    url = provider.openai_base + "/chat/completions"
    response = http.post(url, content=parts, headers=OPENAI_AUTH)
    assert response.status_code == 200
    assert provider.requests[0].json["model"] == "m"


async def test_many_concurrent_connections(provider):
    provider.latency = 0.05
    results: list[int] = []
    limits = httpx.Limits(max_connections=120)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:

        async def call(i: int) -> None:
            body = {"model": "m", "messages": [{"role": "user", "content": f"question {i}"}]}
            url = provider.openai_base + "/chat/completions"
            response = await client.post(url, json=body, headers=OPENAI_AUTH)
            results.append(response.status_code)

        async with anyio.create_task_group() as tg:
            for i in range(120):
                tg.start_soon(call, i)
    assert results == [200] * 120
    assert provider.request_count == 120


def test_the_openai_sdk_understands_every_answer(provider):
    client = openai.OpenAI(base_url=provider.openai_base, api_key="sk-test", max_retries=0)
    with client:
        reply = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert reply.choices[0].message.content == "Echo: what is a cache?"
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            tools=TOOLS,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
        assert chunks[-1].usage is not None
        arguments = "".join(
            chunk.choices[0].delta.tool_calls[0].function.arguments or ""
            for chunk in chunks
            if chunk.choices and chunk.choices[0].delta.tool_calls
        )
        assert json.loads(arguments) == {"query": "what is a cache?"}
        packed = client.embeddings.create(model="e", input=["a", "b"])  # asks for base64
        assert provider.requests[-1].json["encoding_format"] == "base64"
        floats = client.embeddings.create(model="e", input=["a", "b"], encoding_format="float")
        assert packed.data[1].embedding == floats.data[1].embedding
        provider.fail_next(status=429, retry_after=1)
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    azure = openai.AzureOpenAI(
        azure_endpoint=provider.azure_base, api_key="k", api_version="2024-10-21", max_retries=0
    )
    with azure:
        reply = azure.chat.completions.create(model="my-gpt", messages=MESSAGES)
        assert reply.model == "my-gpt"
        assert len(azure.embeddings.create(model="emb", input="x").data[0].embedding) == 8


def test_lifecycle():
    server = FakeProvider()
    with pytest.raises(RuntimeError):
        server.url  # noqa: B018
    with server:
        assert server.openai_base == server.url + "/v1"
        assert server.azure_base == server.anthropic_base == server.url
        with pytest.raises(RuntimeError):
            server.start()
    server.stop()
    with pytest.raises(RuntimeError):
        server.url  # noqa: B018


def test_stop_ends_hangs_and_open_connections():
    server = FakeProvider().start()
    server.hang_next(60)
    outcome: list[BaseException] = []

    def call() -> None:
        with httpx.Client(timeout=30) as client:
            try:
                openai_chat(client, server)
            except httpx.HTTPError as exc:
                outcome.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    while server.request_count == 0:
        time.sleep(0.01)
    server.stop()
    thread.join(timeout=20)
    assert not thread.is_alive()
    assert isinstance(outcome[0], httpx.RemoteProtocolError)


def test_command_line_server():
    command = [sys.executable, "-m", "llmstash.testing", "--port", "0", "--latency-ms", "1"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        assert process.stdout is not None
        try:
            url = process.stdout.readline().strip()
            assert url.startswith("http://127.0.0.1:")
            with httpx.Client(timeout=10) as client:
                body = {"model": "m", "messages": MESSAGES}
                response = client.post(url + "/v1/chat/completions", json=body, headers=OPENAI_AUTH)
                assert response.status_code == 200
                assert client.get(url + "/_fake/stats").json() == {"request_count": 1}
                client.post(url + "/_fake/reset")
                assert client.get(url + "/_fake/stats").json() == {"request_count": 0}
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0
