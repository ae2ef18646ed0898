from __future__ import annotations

import array
import base64
import json
from typing import Any

import httpx
import pytest
from openai.types.chat import ChatCompletion

from llmstash._config import DEFAULT_ANTHROPIC_MAX_TOKENS, DEFAULT_ANTHROPIC_VERSION
from llmstash.exceptions import APIResponseValidationError, InvalidRequestError
from llmstash.providers import (
    AnthropicProvider,
    AzureProvider,
    OpenAICompatibleProvider,
    OpenAIProvider,
    Route,
)
from llmstash.providers.anthropic import messages_body, parse_messages_response
from llmstash.types import FloatVector, ModelResponse

KEY = "sk-request-SECRET-9999"
OPENAI = Route(
    provider="openai",
    model="gpt-4o",
    upstream_model="gpt-4o",
    api_base="http://oa.test/v1",
    api_key=KEY,
)
AZURE = Route(
    provider="azure",
    model="azure/my deploy",
    upstream_model="my deploy",
    api_base="http://az.test",
    api_key=KEY,
    api_version="2024-10-21",
)
ANTHROPIC = Route(
    provider="anthropic",
    model="anthropic/claude-x",
    upstream_model="claude-x",
    api_base="http://an.test",
    api_key=KEY,
)
COMPATIBLE = Route(
    provider="openai_compatible",
    model="llama",
    upstream_model="llama",
    api_base="http://local.test/v1",
)
MESSAGES = [{"role": "user", "content": "hello"}]
CHAT_BODY = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "gpt-4o-2024-08-06",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "hi", "extra_field": 1},
            "finish_reason": "stop",
            "logprobs": None,
        }
    ],
    "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
    "unknown_top_level": {"ignored": True},
}
ANTHROPIC_BODY = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-x-2025",
    "content": [{"type": "text", "text": "hi"}],
    "stop_reason": "end_turn",
    "usage": {"input_tokens": 5, "output_tokens": 1},
}


class Capture:
    def __init__(self, reply: Any) -> None:
        self.reply = reply
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200, json=self.reply)

    @property
    def body(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.requests[-1].content)
        return data


async def call(
    provider: Any, route: Route, reply: Any, method: str = "chat", **kwargs: Any
) -> tuple[Any, Capture]:
    capture = Capture(reply)
    async with httpx.AsyncClient(transport=httpx.MockTransport(capture)) as http:
        if method == "embed":
            inputs = kwargs.pop("inputs", ["a", "b"])
            result = await provider.embed(http, route, inputs, kwargs, timeout=10.0, num_retries=0)
        else:
            result = await provider.chat(http, route, MESSAGES, kwargs, timeout=10.0, num_retries=0)
    return result, capture


# OpenAI ------------------------------------------------------------------------------------


async def test_openai_chat_request() -> None:
    result, cap = await call(OpenAIProvider(), OPENAI, CHAT_BODY, temperature=0.2, seed=7)
    request = cap.requests[0]
    assert request.method == "POST"
    assert str(request.url) == "http://oa.test/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["content-type"] == "application/json"
    assert cap.body == {
        "model": "gpt-4o",
        "messages": MESSAGES,
        "temperature": 0.2,
        "seed": 7,
    }
    assert isinstance(result, ModelResponse)
    assert result.id == "chatcmpl-1"
    assert result.model == "gpt-4o-2024-08-06"
    assert result.choices[0].message.content == "hi"
    assert result.usage is not None and result.usage.total_tokens == 6


async def test_openai_without_key_sends_no_authorization() -> None:
    _, cap = await call(OpenAICompatibleProvider(), COMPATIBLE, CHAT_BODY)
    assert "authorization" not in cap.requests[0].headers
    assert str(cap.requests[0].url) == "http://local.test/v1/chat/completions"
    assert cap.body["model"] == "llama"


async def test_extra_headers_and_body() -> None:
    _, cap = await call(
        OpenAIProvider(),
        OPENAI,
        CHAT_BODY,
        extra_headers={"x-trace": "1"},
        extra_body={"custom": True},
    )
    assert cap.requests[0].headers["x-trace"] == "1"
    assert cap.body["custom"] is True
    assert "extra_headers" not in cap.body and "extra_body" not in cap.body


async def test_stream_flag_in_params_is_not_sent_on_plain_calls() -> None:
    _, cap = await call(OpenAIProvider(), OPENAI, CHAT_BODY, stream=True)
    assert "stream" not in cap.body


async def test_stream_request_body() -> None:
    capture = Capture(None)

    def handler(request: httpx.Request) -> httpx.Response:
        capture.requests.append(request)
        return httpx.Response(200, content=b"data: [DONE]\n\n")

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        stream = OpenAIProvider().chat_stream(
            http,
            OPENAI,
            MESSAGES,
            {"stream_options": {"include_usage": True}},
            timeout=5,
            num_retries=0,
        )
        assert [c async for c in stream] == []
    assert capture.body["stream"] is True
    assert capture.body["stream_options"] == {"include_usage": True}


async def test_unserializable_param_is_caller_error_before_io() -> None:
    capture = Capture(CHAT_BODY)
    async with httpx.AsyncClient(transport=httpx.MockTransport(capture)) as http:
        with pytest.raises(InvalidRequestError, match="JSON"):
            await OpenAIProvider().chat(
                http, OPENAI, MESSAGES, {"temperature": object()}, timeout=5, num_retries=0
            )
    assert capture.requests == []


@pytest.mark.parametrize(
    "body",
    [b"not json", b'{"id": "x"}', b'{"choices": "nope"}', b""],
)
async def test_unreadable_2xx_body(body: bytes) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        with pytest.raises(APIResponseValidationError) as info:
            await OpenAIProvider().chat(http, OPENAI, MESSAGES, {}, timeout=5, num_retries=0)
    assert info.value.llm_provider == "openai"


def b64(values: list[float]) -> str:
    return base64.b64encode(array.array("f", values).tobytes()).decode()


async def test_openai_embeddings_default_base64_sorted() -> None:
    reply = {
        "object": "list",
        "model": "text-embedding-3-small",
        "data": [
            {"object": "embedding", "index": 1, "embedding": b64([0.5, -1.0])},
            {"object": "embedding", "index": 0, "embedding": b64([0.25, 2.0])},
        ],
        "usage": {"prompt_tokens": 2, "total_tokens": 2},
    }
    result, cap = await call(OpenAIProvider(), OPENAI, reply, method="embed", dimensions=2)
    assert str(cap.requests[0].url) == "http://oa.test/v1/embeddings"
    assert cap.body == {
        "model": "gpt-4o",
        "input": ["a", "b"],
        "dimensions": 2,
        "encoding_format": "base64",
    }
    assert [d.index for d in result.data] == [0, 1]
    first = result.data[0].embedding
    assert isinstance(first, FloatVector)
    assert first.typecode == "f"
    assert first == [0.25, 2.0]
    assert result.data[1].embedding == [0.5, -1.0]
    assert result.usage.prompt_tokens == 2
    assert result.model_dump()["data"][0]["embedding"] == [0.25, 2.0]


async def test_openai_embeddings_float_requested() -> None:
    reply = {"data": [{"index": 0, "embedding": [0.1, 0.2]}], "model": "m"}
    result, cap = await call(
        OpenAIProvider(), OPENAI, reply, method="embed", inputs=["a"], encoding_format="float"
    )
    assert cap.body["encoding_format"] == "float"
    assert isinstance(result.data[0].embedding, FloatVector)
    assert result.data[0].embedding == [0.1, 0.2]


async def test_openai_embeddings_base64_requested_stays_string() -> None:
    encoded = b64([1.0])
    reply = {"data": [{"index": 0, "embedding": encoded}], "model": "m"}
    result, _ = await call(
        OpenAIProvider(), OPENAI, reply, method="embed", inputs=["a"], encoding_format="base64"
    )
    assert result.data[0].embedding == encoded


async def test_compatible_embeddings_ask_for_floats_and_accept_them() -> None:
    reply = {"data": [{"index": 0, "embedding": [1.5]}], "model": "llama"}
    result, cap = await call(
        OpenAICompatibleProvider(), COMPATIBLE, reply, method="embed", inputs=["a"]
    )
    assert "encoding_format" not in cap.body
    assert result.data[0].embedding == [1.5]


async def test_server_ignoring_base64_request_still_parses() -> None:
    reply = {"data": [{"index": 0, "embedding": [1.5, 2.5]}]}
    result, _ = await call(OpenAIProvider(), OPENAI, reply, method="embed", inputs=["a"])
    assert result.data[0].embedding == [1.5, 2.5]
    assert result.model == "gpt-4o"


# Azure -------------------------------------------------------------------------------------


async def test_azure_chat_request() -> None:
    _, cap = await call(AzureProvider(), AZURE, CHAT_BODY)
    request = cap.requests[0]
    assert str(request.url) == (
        "http://az.test/openai/deployments/my%20deploy/chat/completions?api-version=2024-10-21"
    )
    assert request.headers["api-key"] == KEY
    assert "authorization" not in request.headers
    assert cap.body["messages"] == MESSAGES


async def test_azure_embeddings_request() -> None:
    reply = {"data": [{"index": 0, "embedding": b64([1.0])}], "model": "ada"}
    _, cap = await call(AzureProvider(), AZURE, reply, method="embed", inputs=["x"])
    assert str(cap.requests[0].url) == (
        "http://az.test/openai/deployments/my%20deploy/embeddings?api-version=2024-10-21"
    )


# Anthropic: HTTP ---------------------------------------------------------------------------


async def test_anthropic_chat_request() -> None:
    result, cap = await call(AnthropicProvider(), ANTHROPIC, ANTHROPIC_BODY, temperature=0.5)
    request = cap.requests[0]
    assert str(request.url) == "http://an.test/v1/messages"
    assert request.headers["x-api-key"] == KEY
    assert request.headers["anthropic-version"] == DEFAULT_ANTHROPIC_VERSION
    assert request.headers["content-type"] == "application/json"
    assert "authorization" not in request.headers
    assert cap.body == {
        "model": "claude-x",
        "messages": MESSAGES,
        "max_tokens": DEFAULT_ANTHROPIC_MAX_TOKENS,
        "temperature": 0.5,
    }
    assert result.choices[0].message.content == "hi"
    assert result.choices[0].finish_reason == "stop"
    assert result.model == "claude-x-2025"
    assert result.usage is not None
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (5, 1)
    assert result.usage.total_tokens == 6


async def test_anthropic_extra_headers_override() -> None:
    _, cap = await call(
        AnthropicProvider(),
        ANTHROPIC,
        ANTHROPIC_BODY,
        extra_headers={"anthropic-beta": "x-2025"},
    )
    assert cap.requests[0].headers["anthropic-beta"] == "x-2025"


async def test_anthropic_embeddings_refused() -> None:
    async with httpx.AsyncClient() as http:
        with pytest.raises(InvalidRequestError):
            await AnthropicProvider().embed(http, ANTHROPIC, ["a"], {}, timeout=1, num_retries=0)


# Anthropic: translation (pure) -------------------------------------------------------------


def body(messages: list[dict[str, Any]], **params: Any) -> dict[str, Any]:
    return messages_body(ANTHROPIC, messages, params, stream=False)


def test_system_messages_become_top_level_system() -> None:
    out = body(
        [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hi"},
            {"role": "developer", "content": "and kind"},
        ]
    )
    assert out["system"] == "be brief\n\nand kind"
    assert out["messages"] == [{"role": "user", "content": "hi"}]


def test_system_parts_keep_cache_control() -> None:
    out = body(
        [
            {
                "role": "system",
                "content": [
                    {"type": "text", "text": "long", "cache_control": {"type": "ephemeral"}}
                ],
            },
            {"role": "user", "content": "hi"},
        ]
    )
    assert out["system"] == [
        {"type": "text", "text": "long", "cache_control": {"type": "ephemeral"}}
    ]


def test_multipart_user_content_and_images() -> None:
    out = body(
        [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                    {"type": "image_url", "image_url": "https://example.test/cat.jpg"},
                ],
            }
        ]
    )
    assert out["messages"][0]["content"] == [
        {"type": "text", "text": "what is this?"},
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"},
        },
        {"type": "image", "source": {"type": "url", "url": "https://example.test/cat.jpg"}},
    ]


def test_non_base64_data_url_refused() -> None:
    with pytest.raises(InvalidRequestError):
        body([{"role": "user", "content": [{"type": "image_url", "image_url": "data:x,y"}]}])


def test_tool_round_trip_translation() -> None:
    out = body(
        [
            {"role": "user", "content": "weather in Paris and Rome?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
                    },
                    {
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city": "Rome"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            {"role": "tool", "tool_call_id": "call_2", "content": "rain"},
            {"role": "user", "content": "thanks"},
        ]
    )
    assert out["messages"] == [
        {"role": "user", "content": "weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "call_2", "name": "weather", "input": {"city": "Rome"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"},
                {"type": "tool_result", "tool_use_id": "call_2", "content": "rain"},
                {"type": "text", "text": "thanks"},
            ],
        },
    ]


def test_assistant_text_with_tool_calls_and_thinking_blocks() -> None:
    thinking = {"type": "thinking", "thinking": "hmm", "signature": "sig"}
    out = body(
        [
            {"role": "user", "content": "q"},
            {
                "role": "assistant",
                "content": "let me check",
                "thinking_blocks": [thinking],
                "tool_calls": [
                    {"id": "t", "type": "function", "function": {"name": "f", "arguments": ""}}
                ],
            },
        ]
    )
    assert out["messages"][1]["content"] == [
        thinking,
        {"type": "text", "text": "let me check"},
        {"type": "tool_use", "id": "t", "name": "f", "input": {}},
    ]


def test_bad_tool_arguments_refused() -> None:
    with pytest.raises(InvalidRequestError, match="arguments"):
        body(
            [
                {
                    "role": "assistant",
                    "tool_calls": [{"id": "t", "function": {"name": "f", "arguments": "[1]"}}],
                }
            ]
        )


def test_unknown_role_refused() -> None:
    with pytest.raises(InvalidRequestError, match="role"):
        body([{"role": "function", "content": "x"}])


def test_tools_and_tool_choice() -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "weather",
            "description": "Get the weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    out = body(MESSAGES, tools=[tool], tool_choice="required")
    assert out["tools"] == [
        {
            "name": "weather",
            "description": "Get the weather",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]
    assert out["tool_choice"] == {"type": "any"}
    assert body(MESSAGES, tool_choice="auto")["tool_choice"] == {"type": "auto"}
    assert body(MESSAGES, tool_choice="none")["tool_choice"] == {"type": "none"}
    named = {"type": "function", "function": {"name": "weather"}}
    assert body(MESSAGES, tool_choice=named)["tool_choice"] == {"type": "tool", "name": "weather"}
    assert body(MESSAGES, parallel_tool_calls=False)["tool_choice"] == {
        "type": "auto",
        "disable_parallel_tool_use": True,
    }
    native = {"name": "x", "input_schema": {"type": "object"}}
    assert body(MESSAGES, tools=[native])["tools"] == [native]


def test_tool_without_parameters_gets_empty_schema() -> None:
    out = body(MESSAGES, tools=[{"type": "function", "function": {"name": "now"}}])
    assert out["tools"] == [{"name": "now", "input_schema": {"type": "object", "properties": {}}}]


def test_sampling_params_and_translations() -> None:
    out = body(
        MESSAGES,
        max_completion_tokens=100,
        stop="END",
        temperature=0.1,
        top_p=0.9,
        top_k=5,
        metadata={"a": 1},
        user="u-1",
        seed=1,
        frequency_penalty=0.5,
        presence_penalty=0.5,
        logit_bias={},
        n=1,
        response_format={"type": "text"},
        stream_options={"include_usage": True},
    )
    assert out == {
        "model": "claude-x",
        "messages": MESSAGES,
        "max_tokens": 100,
        "stop_sequences": ["END"],
        "temperature": 0.1,
        "top_p": 0.9,
        "top_k": 5,
        "metadata": {"a": 1, "user_id": "u-1"},
    }
    assert body(MESSAGES, stop=["a", "b"], max_tokens=7)["stop_sequences"] == ["a", "b"]
    assert body(MESSAGES, max_tokens=7)["max_tokens"] == 7


def test_thinking_and_reasoning_effort() -> None:
    thinking = {"type": "enabled", "budget_tokens": 8000}
    out = body(MESSAGES, thinking=thinking)
    assert out["thinking"] == thinking
    assert out["max_tokens"] > 8000
    effort = body(MESSAGES, reasoning_effort="low")
    assert effort["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert "reasoning_effort" not in effort


@pytest.mark.parametrize(
    "params",
    [
        {"n": 2},
        {"response_format": {"type": "json_object"}},
        {"functions": [{"name": "f"}]},
    ],
)
def test_unsupported_params_refused(params: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequestError):
        body(MESSAGES, **params)


def test_stream_flag() -> None:
    assert messages_body(ANTHROPIC, MESSAGES, {}, stream=True)["stream"] is True
    assert "stream" not in messages_body(ANTHROPIC, MESSAGES, {"stream": True}, stream=False)


# Anthropic: response parsing (pure) --------------------------------------------------------


def test_parse_tool_use_and_thinking() -> None:
    raw = {
        "id": "msg_2",
        "model": "claude-x",
        "content": [
            {"type": "thinking", "thinking": "let me think", "signature": "sig1"},
            {"type": "redacted_thinking", "data": "opaque"},
            {"type": "text", "text": "Checking "},
            {"type": "text", "text": "now."},
            {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
        ],
        "stop_reason": "tool_use",
        "usage": {
            "input_tokens": 10,
            "output_tokens": 20,
            "cache_read_input_tokens": 100,
            "cache_creation_input_tokens": 5,
        },
    }
    resp = parse_messages_response(json.dumps(raw).encode(), ANTHROPIC)
    msg = resp.choices[0].message
    assert msg.content == "Checking now."
    assert msg.reasoning_content == "let me think"
    assert msg.thinking_blocks == [
        {"type": "thinking", "thinking": "let me think", "signature": "sig1"},
        {"type": "redacted_thinking", "data": "opaque"},
    ]
    assert msg.tool_calls is not None
    call = msg.tool_calls[0]
    assert (call.id, call.type, call.function.name) == ("toolu_1", "function", "weather")
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert resp.choices[0].finish_reason == "tool_calls"
    assert resp.usage is not None
    assert resp.usage.prompt_tokens == 115
    assert resp.usage.completion_tokens == 20
    assert resp.usage.total_tokens == 135
    assert resp.usage.prompt_tokens_details == {"cached_tokens": 100, "cache_creation_tokens": 5}


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
    ],
)
def test_stop_reason_mapping(stop_reason: str, finish: str) -> None:
    raw = {**ANTHROPIC_BODY, "stop_reason": stop_reason}
    resp = parse_messages_response(json.dumps(raw).encode(), ANTHROPIC)
    assert resp.choices[0].finish_reason == finish


def test_parsed_anthropic_response_validates_as_openai_chat_completion() -> None:
    raw = {
        **ANTHROPIC_BODY,
        "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}],
        "stop_reason": "tool_use",
    }
    resp = parse_messages_response(json.dumps(raw).encode(), ANTHROPIC)
    validated = ChatCompletion.model_validate(resp.model_dump())
    assert validated.choices[0].message.tool_calls[0].function.name == "f"
