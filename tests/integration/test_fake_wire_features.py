"""The fake provider's wire features over raw HTTP: OpenAI logprobs, the stream usage chunk,
vendor extra fields, Anthropic thinking, model lists."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from llmstash.testing import (
    DEFAULT_MODELS,
    REDACTED_THINKING_TRIGGER,
    VENDOR_EXTRAS,
    FakeProvider,
    thinking_signature,
    thinking_text,
    token_logprobs,
)

OPENAI_AUTH = {"Authorization": "Bearer sk-test"}
AZURE_AUTH = {"api-key": "azure-test"}
ANTHROPIC_AUTH = {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}
MESSAGES = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": "what is a cache?"},
]
TOOLS = [{"type": "function", "function": {"name": "search", "parameters": {"type": "object"}}}]
ANTHROPIC_TOOLS = [{"name": "search", "input_schema": {"type": "object"}}]
THINKING = {"type": "enabled", "budget_tokens": 1024}
QUESTION = "what is a cache?"


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


def openai_chat(http: httpx.Client, provider: FakeProvider, **body: Any) -> httpx.Response:
    body = {"model": "gpt-4o-mini", "messages": MESSAGES, **body}
    return http.post(provider.openai_base + "/chat/completions", json=body, headers=OPENAI_AUTH)


def azure_chat(http: httpx.Client, provider: FakeProvider, **body: Any) -> httpx.Response:
    url = f"{provider.azure_base}/openai/deployments/dep/chat/completions"
    body = {"messages": MESSAGES, **body}
    return http.post(url, params={"api-version": "2024-10-21"}, json=body, headers=AZURE_AUTH)


def anthropic_chat(http: httpx.Client, provider: FakeProvider, **body: Any) -> httpx.Response:
    body = {
        "model": "claude-test",
        "max_tokens": 2048,
        "messages": [{"role": "user", "content": QUESTION}],
        **body,
    }
    return http.post(provider.anthropic_base + "/v1/messages", json=body, headers=ANTHROPIC_AUTH)


def sse_data(response: httpx.Response) -> list[Any]:
    """The decoded ``data`` of each SSE event (``"[DONE]"`` kept as a string)."""
    assert response.status_code == 200, response.text
    out = []
    for block in response.text.split("\n\n"):
        if block:
            fields = dict(line.split(": ", 1) for line in block.split("\n"))
            data = fields["data"]
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


def openai_chunks(response: httpx.Response) -> list[dict[str, Any]]:
    data = sse_data(response)
    assert data[-1] == "[DONE]"
    return data[:-1]


# logprobs ----------------------------------------------------------------------------------


def test_logprobs_in_a_plain_answer(http, provider):
    body = openai_chat(http, provider, logprobs=True).json()
    [choice] = body["choices"]
    logprobs = choice["logprobs"]
    assert set(logprobs) == {"content", "refusal"}
    assert logprobs["refusal"] is None
    entries = logprobs["content"]
    assert "".join(entry["token"] for entry in entries) == choice["message"]["content"]
    assert len(entries) == body["usage"]["completion_tokens"] == 5
    for entry in entries:
        assert set(entry) == {"token", "logprob", "bytes", "top_logprobs"}
        assert bytes(entry["bytes"]) == entry["token"].encode()
        assert -1 < entry["logprob"] <= 0
        assert entry["top_logprobs"] == []
    assert entries == token_logprobs("Echo: what is a cache?", 0)
    assert openai_chat(http, provider, logprobs=True).json()["choices"][0]["logprobs"] == logprobs


def test_top_logprobs_lists_the_token_first_then_worse_alternatives(http, provider):
    body = openai_chat(http, provider, logprobs=True, top_logprobs=3).json()
    entries = body["choices"][0]["logprobs"]["content"]
    for entry in entries:
        top = entry["top_logprobs"]
        assert len(top) == 3
        assert (top[0]["token"], top[0]["logprob"]) == (entry["token"], entry["logprob"])
        assert [alt["logprob"] for alt in top] == sorted(
            (alt["logprob"] for alt in top), reverse=True
        )
        assert len({alt["token"] for alt in top}) == 3
        assert all(bytes(alt["bytes"]) == alt["token"].encode() for alt in top)
        assert set(top[1]) == {"token", "logprob", "bytes"}
    zero = openai_chat(http, provider, logprobs=True, top_logprobs=0).json()
    assert all(e["top_logprobs"] == [] for e in zero["choices"][0]["logprobs"]["content"])


def test_no_logprobs_unless_asked(http, provider):
    assert openai_chat(http, provider).json()["choices"][0]["logprobs"] is None
    assert openai_chat(http, provider, logprobs=False).json()["choices"][0]["logprobs"] is None
    tool = openai_chat(http, provider, logprobs=True, tools=TOOLS).json()
    assert tool["choices"][0]["logprobs"] is None


@pytest.mark.parametrize("include_usage", [False, True])
def test_logprobs_in_a_stream_travel_with_their_tokens(http, provider, include_usage):
    plain = openai_chat(http, provider, logprobs=True, top_logprobs=2).json()
    chunks = openai_chunks(
        openai_chat(
            http,
            provider,
            logprobs=True,
            top_logprobs=2,
            stream=True,
            stream_options={"include_usage": include_usage},
        )
    )
    choices = [chunk["choices"][0] for chunk in chunks if chunk["choices"]]
    assert choices[0]["delta"] == {"role": "assistant", "content": ""}
    assert choices[0]["logprobs"] == {"content": [], "refusal": None}
    assert choices[-1]["finish_reason"] == "stop"
    assert choices[-1]["logprobs"] is None
    streamed: list[dict[str, Any]] = []
    for choice in choices[1:-1]:
        [entry] = choice["logprobs"]["content"]
        assert choice["logprobs"]["refusal"] is None
        assert entry["token"] == choice["delta"]["content"]
        streamed.append(entry)
    assert streamed == plain["choices"][0]["logprobs"]["content"]


def test_azure_logprobs(http, provider):
    body = azure_chat(http, provider, logprobs=True, top_logprobs=1).json()
    entries = body["choices"][0]["logprobs"]["content"]
    assert entries == token_logprobs("Echo: what is a cache?", 1)
    chunks = openai_chunks(azure_chat(http, provider, logprobs=True, stream=True))
    streamed = [
        entry
        for chunk in chunks
        for entry in (chunk["choices"][0]["logprobs"] or {}).get("content", [])
    ]
    assert [e["token"] for e in streamed] == [e["token"] for e in entries]


@pytest.mark.parametrize(
    "change",
    [
        {"top_logprobs": 2},
        {"logprobs": False, "top_logprobs": 2},
        {"logprobs": True, "top_logprobs": 21},
        {"logprobs": True, "top_logprobs": -1},
        {"logprobs": True, "top_logprobs": "2"},
        {"logprobs": "yes"},
    ],
)
def test_bad_logprobs_requests_are_refused(http, provider, change):
    response = openai_chat(http, provider, **change)
    assert response.status_code == 400
    assert response.json()["error"]["param"] in ("logprobs", "top_logprobs")


# the stream's usage chunk ------------------------------------------------------------------


@pytest.mark.parametrize(
    "options", [None, {}, {"include_usage": False}, {"include_usage": None}, {"include_usage": 1}]
)
@pytest.mark.parametrize("tools", [None, TOOLS])
def test_no_usage_chunk_unless_include_usage_is_true(http, provider, options, tools):
    extra: dict[str, Any] = {"stream": True}
    if options is not None:
        extra["stream_options"] = options
    if tools is not None:
        extra["tools"] = tools
    chunks = openai_chunks(openai_chat(http, provider, **extra))
    assert all("usage" not in chunk for chunk in chunks)
    assert all(len(chunk["choices"]) == 1 for chunk in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "tool_calls")


@pytest.mark.parametrize("tools", [None, TOOLS])
def test_include_usage_gives_null_usage_then_one_usage_chunk(http, provider, tools):
    extra: dict[str, Any] = {"stream": True, "stream_options": {"include_usage": True}}
    if tools is not None:
        extra["tools"] = tools
    *chunks, last = openai_chunks(openai_chat(http, provider, **extra))
    assert all(chunk["usage"] is None and len(chunk["choices"]) == 1 for chunk in chunks)
    assert last["choices"] == []
    plain = openai_chat(http, provider, **({"tools": tools} if tools else {})).json()
    assert last["usage"] == plain["usage"]
    assert last["id"] == chunks[0]["id"]
    assert last["object"] == "chat.completion.chunk"


# vendor extra fields -----------------------------------------------------------------------


def test_extra_fields_in_a_plain_answer(http, provider):
    provider.set_extra_fields(**VENDOR_EXTRAS)
    body = openai_chat(http, provider).json()
    for key, value in VENDOR_EXTRAS["response"].items():
        assert body[key] == value
    message = body["choices"][0]["message"]
    assert message["content"] == "Echo: what is a cache?"
    for key, value in VENDOR_EXTRAS["message"].items():
        assert message[key] == value
    usage = body["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (6, 5, 11)
    for key, value in VENDOR_EXTRAS["usage"].items():
        assert usage[key] == value
    assert body["citations"] == ["https://example.com/caching", "https://example.org/redis"]
    assert body["x_vendor"] == {"a": 1}
    assert message["annotations"][0]["type"] == "url_citation"
    assert message["reasoning_content"] == message["reasoning"]
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 8


def test_extra_fields_in_a_stream(http, provider):
    provider.set_extra_fields(**VENDOR_EXTRAS)
    chunks = openai_chunks(
        openai_chat(http, provider, stream=True, stream_options={"include_usage": True})
    )
    for chunk in chunks:
        for key, value in VENDOR_EXTRAS["response"].items():
            assert chunk[key] == value
    deltas = [chunk["choices"][0]["delta"] for chunk in chunks if chunk["choices"]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    reasoning = [d for d in deltas if "reasoning_content" in d]
    assert len(reasoning) > 1
    assert all(set(d) == {"reasoning_content", "reasoning"} for d in reasoning)
    assert all(d["reasoning"] == d["reasoning_content"] for d in reasoning)
    expected = VENDOR_EXTRAS["message"]["reasoning_content"]
    assert "".join(d["reasoning_content"] for d in reasoning) == expected
    first_content = next(i for i, d in enumerate(deltas) if d.get("content"))
    assert all(deltas.index(d) < first_content for d in reasoning)
    [whole] = [d for d in deltas if "annotations" in d]
    assert whole == {
        "annotations": VENDOR_EXTRAS["message"]["annotations"],
        "x_vendor_message": {"b": 2},
    }
    assert deltas.index(whole) == len(deltas) - 2  # after the content, before the finish
    assert "".join(d.get("content") or "" for d in deltas) == "Echo: what is a cache?"
    usage = chunks[-1]["usage"]
    assert chunks[-1]["choices"] == []
    assert usage["completion_tokens"] == 5
    assert usage["prompt_tokens_details"] == VENDOR_EXTRAS["usage"]["prompt_tokens_details"]
    assert usage["x_vendor_usage"] == {"c": 3}


def test_extra_fields_stream_different_reasoning_texts_apart(http, provider):
    provider.set_extra_fields(message={"reasoning_content": "one two", "reasoning": "three"})
    chunks = openai_chunks(openai_chat(http, provider, stream=True))
    deltas = [chunk["choices"][0]["delta"] for chunk in chunks]
    assert [d for d in deltas if "reasoning_content" in d or "reasoning" in d] == [
        {"reasoning_content": "one"},
        {"reasoning_content": " two"},
        {"reasoning": "three"},
    ]
    assert all("x_vendor" not in chunk for chunk in chunks)


def test_extra_fields_with_a_tool_call_stream(http, provider):
    provider.set_extra_fields(message={"reasoning_content": "use the tool"}, response={"k": 1})
    chunks = openai_chunks(openai_chat(http, provider, stream=True, tools=TOOLS))
    assert all(chunk["k"] == 1 for chunk in chunks)
    deltas = [chunk["choices"][0]["delta"] for chunk in chunks]
    assert deltas[0] == {"role": "assistant", "content": None}
    assert "".join(d.get("reasoning_content", "") for d in deltas) == "use the tool"
    calls = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
    assert calls[0]["function"]["name"] == "search"
    arguments = "".join(call["function"]["arguments"] for call in calls)
    assert json.loads(arguments) == {"query": QUESTION}
    plain = openai_chat(http, provider, tools=TOOLS).json()
    assert plain["choices"][0]["message"]["reasoning_content"] == "use the tool"
    assert plain["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "search"


def test_extra_fields_reach_azure_but_not_anthropic_or_embeddings(http, provider):
    provider.set_extra_fields(**VENDOR_EXTRAS)
    body = azure_chat(http, provider).json()
    assert body["prompt_filter_results"] == VENDOR_EXTRAS["response"]["prompt_filter_results"]
    chunks = openai_chunks(azure_chat(http, provider, stream=True))
    assert all("prompt_filter_results" in chunk for chunk in chunks)
    assert "citations" not in anthropic_chat(http, provider).json()
    embedding = http.post(
        provider.openai_base + "/embeddings", json={"model": "e", "input": "x"}, headers=OPENAI_AUTH
    ).json()
    assert "citations" not in embedding


def test_extra_fields_until_cleared_or_reset(http, provider):
    provider.set_extra_fields(response={"citations": ["https://a.example"]})
    assert openai_chat(http, provider).json()["citations"] == ["https://a.example"]
    provider.set_extra_fields()
    assert "citations" not in openai_chat(http, provider).json()
    fields = {"citations": ["https://b.example"]}
    provider.set_extra_fields(response=fields)
    fields["citations"].append("https://changed.example")  # the fake kept its own copy
    assert openai_chat(http, provider).json()["citations"] == ["https://b.example"]
    provider.reset()
    assert "citations" not in openai_chat(http, provider).json()


def test_constructor_extra_fields_and_models_survive_reset(http):
    with FakeProvider(extra_fields={"response": {"x": 1}}, models=["m1", "m2"]) as server:
        server.set_extra_fields(response={"y": 2})
        server.set_models(["m3"])
        server.reset()
        assert openai_chat(http, server).json()["x"] == 1
        listed = http.get(server.openai_base + "/models", headers=OPENAI_AUTH).json()
        assert [m["id"] for m in listed["data"]] == ["m1", "m2"]


def test_command_line_vendor_extras(http):
    command = [sys.executable, "-m", "llmstash.testing", "--port", "0", "--vendor-extras"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        assert process.stdout is not None
        try:
            url = process.stdout.readline().strip()
            body = {"model": "m", "messages": MESSAGES}
            http.post(url + "/_fake/reset")
            response = http.post(url + "/v1/chat/completions", json=body, headers=OPENAI_AUTH)
            assert response.json()["citations"] == VENDOR_EXTRAS["response"]["citations"]
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0


# Anthropic thinking ------------------------------------------------------------------------


def test_thinking_block_first_in_a_plain_answer(http, provider):
    body = anthropic_chat(http, provider, thinking=THINKING).json()
    thought = thinking_text(QUESTION)
    assert body["content"] == [
        {"type": "thinking", "thinking": thought, "signature": thinking_signature(thought)},
        {"type": "text", "text": "Echo: what is a cache?"},
    ]
    assert body["usage"]["output_tokens"] == 5 + len(thought.split())
    again = anthropic_chat(http, provider, thinking=THINKING).json()
    assert again["content"] == body["content"]


@pytest.mark.parametrize(
    "thinking",
    [None, {"type": "disabled"}, {"type": "adaptive"}, {"type": "enabled", "budget_tokens": 5000}],
)
def test_thinking_types(http, provider, thinking):
    extra = {} if thinking is None else {"thinking": thinking}
    body = anthropic_chat(http, provider, max_tokens=8000, **extra).json()
    kinds = [block["type"] for block in body["content"]]
    on = thinking is not None and thinking["type"] != "disabled"
    assert kinds == (["thinking", "text"] if on else ["text"])


def test_thinking_in_a_stream(http, provider):
    data = sse_data(anthropic_chat(http, provider, thinking=THINKING, stream=True))
    kinds = [item["type"] for item in data]
    assert kinds[:3] == ["message_start", "content_block_start", "ping"]
    assert data[1] == {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "thinking", "thinking": ""},
    }
    stop = kinds.index("content_block_stop")
    thinking_deltas = [item["delta"] for item in data[3:stop]]
    *texts, signature = thinking_deltas
    assert len(texts) > 1
    assert {delta["type"] for delta in texts} == {"thinking_delta"}
    thought = "".join(delta["thinking"] for delta in texts)
    assert thought == thinking_text(QUESTION)
    assert signature == {"type": "signature_delta", "signature": thinking_signature(thought)}
    assert all(item.get("index", 0) == 0 for item in data[1 : stop + 1])
    assert data[stop + 1] == {
        "type": "content_block_start",
        "index": 1,
        "content_block": {"type": "text", "text": ""},
    }
    text_deltas = [item for item in data if item.get("index") == 1 and "delta" in item]
    assert "".join(item["delta"]["text"] for item in text_deltas) == "Echo: what is a cache?"
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    plain = anthropic_chat(http, provider, thinking=THINKING).json()
    assert data[-2]["usage"]["output_tokens"] == plain["usage"]["output_tokens"]


def test_redacted_thinking_on_the_trigger(http, provider):
    question = f"hello {REDACTED_THINKING_TRIGGER}"
    messages = [{"role": "user", "content": question}]
    body = anthropic_chat(http, provider, thinking=THINKING, messages=messages).json()
    kinds = [block["type"] for block in body["content"]]
    assert kinds == ["thinking", "redacted_thinking", "text"]
    redacted = body["content"][1]
    assert set(redacted) == {"type", "data"}
    assert redacted["data"] and isinstance(redacted["data"], str)
    data = sse_data(
        anthropic_chat(http, provider, thinking=THINKING, messages=messages, stream=True)
    )
    starts = [item for item in data if item["type"] == "content_block_start"]
    assert [s["content_block"]["type"] for s in starts] == kinds
    assert starts[1]["content_block"] == redacted
    assert not [item for item in data if item.get("index") == 1 and "delta" in item]
    without = anthropic_chat(http, provider, messages=messages).json()
    assert [block["type"] for block in without["content"]] == ["text"]


def test_thinking_with_tools_and_the_next_turn(http, provider):
    first = anthropic_chat(http, provider, thinking=THINKING, tools=ANTHROPIC_TOOLS).json()
    assert [block["type"] for block in first["content"]] == ["thinking", "tool_use"]
    assert first["stop_reason"] == "tool_use"
    thinking_block, tool_use = first["content"]
    result = {"type": "tool_result", "tool_use_id": tool_use["id"], "content": "a fast store"}

    def next_turn(assistant_content: Any, **extra: Any) -> httpx.Response:
        messages = [
            {"role": "user", "content": QUESTION},
            {"role": "assistant", "content": assistant_content},
            {"role": "user", "content": [result]},
        ]
        return anthropic_chat(http, provider, tools=ANTHROPIC_TOOLS, messages=messages, **extra)

    answer = next_turn(first["content"], thinking=THINKING)
    assert answer.status_code == 200, answer.text
    # a tool result is answered without new thinking, as the real API does
    assert answer.json()["content"] == [{"type": "text", "text": "Echo: a fast store"}]

    missing = next_turn([tool_use], thinking=THINKING)
    assert missing.status_code == 400
    assert (
        "Expected `thinking` or `redacted_thinking`, but found `tool_use`"
        in (missing.json()["error"]["message"])
    )
    assert next_turn([tool_use]).status_code == 200  # without thinking, no thinking is needed

    tampered = {**thinking_block, "thinking": thinking_block["thinking"] + "!"}
    for extra in ({"thinking": THINKING}, {}):
        response = next_turn([tampered, tool_use], **extra)
        assert response.status_code == 400
        assert "Invalid `signature` in `thinking` block" in response.json()["error"]["message"]
        assert response.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"thinking": {"type": "enabled", "budget_tokens": 1023}}, "greater than or equal to 1024"),
        ({"thinking": {"type": "enabled"}}, "budget_tokens"),
        ({"thinking": {"type": "enabled", "budget_tokens": 2048}}, "max_tokens"),
        ({"thinking": {"type": "sometimes"}}, "thinking"),
        ({"thinking": "on"}, "thinking"),
        (
            {"thinking": THINKING, "tools": ANTHROPIC_TOOLS, "tool_choice": {"type": "any"}},
            "tool_choice forces tool use",
        ),
    ],
)
def test_thinking_requests_the_real_api_refuses(http, provider, change, words):
    response = anthropic_chat(http, provider, **change)
    assert response.status_code == 400
    assert response.json()["type"] == "error"
    assert words in response.json()["error"]["message"]


# models ------------------------------------------------------------------------------------


def test_openai_model_list(http, provider):
    for path in ("/v1/models", "/models"):
        response = http.get(provider.url + path, headers=OPENAI_AUTH)
        assert response.status_code == 200
        body = response.json()
        assert body["object"] == "list"
        assert [m["id"] for m in body["data"]] == list(DEFAULT_MODELS)
        for model in body["data"]:
            assert set(model) == {"id", "object", "created", "owned_by"}
            assert model["object"] == "model"
            assert isinstance(model["created"], int)
        owners = {m["id"]: m["owned_by"] for m in body["data"]}
        assert owners["gpt-4o"] == "openai"
        assert owners["claude-haiku-4-5"] == "anthropic"
    one = http.get(provider.openai_base + "/models/gpt-4o", headers=OPENAI_AUTH)
    assert one.json() == {**body["data"][1], "id": "gpt-4o"}
    missing = http.get(provider.openai_base + "/models/nope", headers=OPENAI_AUTH)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


def test_openai_model_list_needs_a_key_and_get(http, provider):
    response = http.get(provider.openai_base + "/models")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    response = http.post(provider.openai_base + "/models", headers=OPENAI_AUTH, json={})
    assert response.status_code == 405


def test_anthropic_model_list(http, provider):
    response = http.get(provider.url + "/v1/models", headers=ANTHROPIC_AUTH)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"data", "has_more", "first_id", "last_id"}
    ids = [m["id"] for m in body["data"]]
    assert ids == list(DEFAULT_MODELS)
    assert (body["has_more"], body["first_id"], body["last_id"]) == (False, ids[0], ids[-1])
    for model in body["data"]:
        assert set(model) == {"type", "id", "display_name", "created_at"}
        assert model["type"] == "model"
        assert model["created_at"].endswith("Z")
    names = {m["id"]: m["display_name"] for m in body["data"]}
    assert names["claude-sonnet-4-5"] == "Claude Sonnet 4 5"
    one = http.get(provider.url + "/v1/models/claude-haiku-4-5", headers=ANTHROPIC_AUTH)
    assert one.json() == next(m for m in body["data"] if m["id"] == "claude-haiku-4-5")
    missing = http.get(provider.url + "/v1/models/nope", headers=ANTHROPIC_AUTH)
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "not_found_error"


def test_anthropic_model_list_pages(http, provider):
    provider.set_models(["a", "b", "c", "d", "e"])
    url = provider.url + "/v1/models"

    def page(**params: Any) -> dict[str, Any]:
        response = http.get(url, params=params, headers=ANTHROPIC_AUTH)
        assert response.status_code == 200, response.text
        return response.json()

    first = page(limit=2)
    assert ([m["id"] for m in first["data"]], first["has_more"]) == (["a", "b"], True)
    assert (first["first_id"], first["last_id"]) == ("a", "b")
    second = page(limit=2, after_id="b")
    assert ([m["id"] for m in second["data"]], second["has_more"]) == (["c", "d"], True)
    last = page(limit=2, after_id="d")
    assert ([m["id"] for m in last["data"]], last["has_more"]) == (["e"], False)
    before = page(limit=2, before_id="d")
    assert ([m["id"] for m in before["data"]], before["has_more"]) == (["b", "c"], True)
    assert page(limit=5, before_id="c")["has_more"] is False
    empty = page(after_id="e")
    assert empty == {"data": [], "has_more": False, "first_id": None, "last_id": None}
    assert http.get(url, params={"limit": 0}, headers=ANTHROPIC_AUTH).status_code == 400
    assert http.get(url, params={"after_id": "zz"}, headers=ANTHROPIC_AUTH).status_code == 404


@pytest.mark.parametrize(
    ("auth", "status"),
    [
        ({"x-api-key": "k"}, 200),
        ({"Authorization": "Bearer tok"}, 200),
        ({}, 401),
        ({"Authorization": "Basic x"}, 401),
    ],
)
def test_anthropic_model_list_auth(http, provider, auth, status):
    headers = {"anthropic-version": "2023-06-01", **auth}
    response = http.get(provider.url + "/v1/models", headers=headers)
    assert response.status_code == status
    if status == 401:
        assert response.json()["error"]["type"] == "authentication_error"


def test_set_models_until_reset(http, provider):
    provider.set_models(["only-one"])
    body = http.get(provider.openai_base + "/models", headers=OPENAI_AUTH).json()
    assert [m["id"] for m in body["data"]] == ["only-one"]
    provider.set_models(None)
    body = http.get(provider.openai_base + "/models", headers=OPENAI_AUTH).json()
    assert [m["id"] for m in body["data"]] == list(DEFAULT_MODELS)
    provider.set_models([])
    assert http.get(provider.openai_base + "/models", headers=OPENAI_AUTH).json()["data"] == []
    provider.reset()
    body = http.get(provider.openai_base + "/models", headers=OPENAI_AUTH).json()
    assert len(body["data"]) == len(DEFAULT_MODELS)
    assert provider.request_count == 1
