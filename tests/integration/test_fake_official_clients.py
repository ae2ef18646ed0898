"""The official ``openai`` and ``anthropic`` clients understand every new answer of the fake
provider: logprobs, vendor extra fields, model lists, thinking blocks, both Anthropic auth
forms."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
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

MESSAGES: list[Any] = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": "what is a cache?"},
]
QUESTION = "what is a cache?"
THINKING: Any = {"type": "enabled", "budget_tokens": 1024}


@pytest.fixture
def oai(provider: FakeProvider) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=provider.openai_base, api_key="sk-test", max_retries=0) as client:
        yield client


@pytest.fixture
def no_anthropic_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No credentials, base URL or profile from the environment reach the anthropic client."""
    for name in (
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_AUTH_TOKEN",
        "ANTHROPIC_BASE_URL",
        "ANTHROPIC_PROFILE",
        "ANTHROPIC_CUSTOM_HEADERS",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def claude(provider: FakeProvider, no_anthropic_env: None) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(
        base_url=provider.anthropic_base, api_key="sk-ant-test", max_retries=0
    ) as client:
        yield client


# openai ------------------------------------------------------------------------------------


def test_openai_chat_with_logprobs(oai):
    reply = oai.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, logprobs=True, top_logprobs=2
    )
    choice = reply.choices[0]
    assert choice.message.content == "Echo: what is a cache?"
    assert choice.logprobs is not None and choice.logprobs.content is not None
    assert [lp.model_dump() for lp in choice.logprobs.content] == token_logprobs(
        "Echo: what is a cache?", 2
    )
    assert all(len(lp.top_logprobs) == 2 for lp in choice.logprobs.content)


def test_openai_stream_with_logprobs_and_usage(oai):
    stream = oai.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        logprobs=True,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    *body, last = chunks
    assert last.choices == [] and last.usage is not None
    assert last.usage.total_tokens == 11
    assert all(chunk.usage is None for chunk in body)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in body)
    assert text == "Echo: what is a cache?"
    tokens = [
        entry.token
        for chunk in body
        if chunk.choices[0].logprobs is not None
        for entry in chunk.choices[0].logprobs.content or ()
    ]
    assert "".join(tokens) == text
    plain = oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    assert all(chunk.usage is None and chunk.choices for chunk in plain)


def test_openai_keeps_the_vendor_extra_fields(oai, provider):
    provider.set_extra_fields(**VENDOR_EXTRAS)
    reply = oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    extra = reply.model_extra or {}
    assert extra["citations"] == VENDOR_EXTRAS["response"]["citations"]
    assert extra["prompt_filter_results"] == VENDOR_EXTRAS["response"]["prompt_filter_results"]
    assert extra["x_vendor"] == {"a": 1}
    assert reply.service_tier == "default"
    message = reply.choices[0].message
    assert message.annotations is not None
    assert message.annotations[0].url_citation.url == "https://example.com/caching"
    message_extra = message.model_extra or {}
    assert message_extra["reasoning_content"] == VENDOR_EXTRAS["message"]["reasoning_content"]
    assert message_extra["reasoning"] == VENDOR_EXTRAS["message"]["reasoning"]
    assert message_extra["x_vendor_message"] == {"b": 2}
    assert reply.usage is not None
    assert reply.usage.prompt_tokens_details is not None
    assert reply.usage.prompt_tokens_details.cached_tokens == 0
    assert reply.usage.completion_tokens_details is not None
    assert reply.usage.completion_tokens_details.reasoning_tokens == 8
    assert (reply.usage.model_extra or {})["x_vendor_usage"] == {"c": 3}

    chunks = list(
        oai.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert all((chunk.model_extra or {})["citations"] for chunk in chunks)
    reasoning = "".join(
        (chunk.choices[0].delta.model_extra or {}).get("reasoning_content", "")
        for chunk in chunks
        if chunk.choices
    )
    assert reasoning == VENDOR_EXTRAS["message"]["reasoning_content"]
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens_details is not None


def test_openai_models_and_embeddings(oai, provider):
    assert [model.id for model in oai.models.list()] == list(DEFAULT_MODELS)
    model = oai.models.retrieve("gpt-4o")
    assert (model.id, model.object, model.owned_by) == ("gpt-4o", "model", "openai")
    with pytest.raises(openai.NotFoundError):
        oai.models.retrieve("no-such-model")
    floats = oai.embeddings.create(model="e", input=["a cache", "b"], encoding_format="float")
    packed = oai.embeddings.create(model="e", input=["a cache", "b"])
    assert [d.embedding for d in floats.data] == [d.embedding for d in packed.data]
    assert len(floats.data[0].embedding) == 8
    assert floats.usage.prompt_tokens == 3


def test_azure_client_keeps_prompt_filter_results(provider):
    provider.set_extra_fields(response={"prompt_filter_results": [{"prompt_index": 0}]})
    with openai.AzureOpenAI(
        azure_endpoint=provider.azure_base, api_key="k", api_version="2024-10-21", max_retries=0
    ) as azure:
        reply = azure.chat.completions.create(model="dep", messages=MESSAGES, logprobs=True)
        assert (reply.model_extra or {})["prompt_filter_results"] == [{"prompt_index": 0}]
        assert reply.choices[0].logprobs is not None


# anthropic ---------------------------------------------------------------------------------


def test_anthropic_message_with_thinking(claude):
    message = claude.messages.create(
        model="claude-test",
        max_tokens=2048,
        messages=[{"role": "user", "content": QUESTION}],
        thinking=THINKING,
    )
    thinking, text = message.content
    assert thinking.type == "thinking"
    assert thinking.thinking == thinking_text(QUESTION)
    assert thinking.signature == thinking_signature(thinking.thinking)
    assert text.type == "text" and text.text == "Echo: what is a cache?"
    assert message.stop_reason == "end_turn"


def test_anthropic_stream_with_thinking(claude):
    with claude.messages.stream(
        model="claude-test",
        max_tokens=2048,
        messages=[{"role": "user", "content": QUESTION}],
        thinking=THINKING,
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert "thinking" in kinds and "signature" in kinds and "text" in kinds
    thinking, text = final.content
    assert thinking.type == "thinking"
    assert thinking.thinking == thinking_text(QUESTION)
    assert thinking.signature == thinking_signature(thinking.thinking)
    assert text.type == "text" and text.text == "Echo: what is a cache?"
    assert final.usage.output_tokens == 5 + len(thinking.thinking.split())


def test_anthropic_raw_stream_and_redacted_thinking(claude):
    events = list(
        claude.messages.create(
            model="claude-test",
            max_tokens=2048,
            messages=[{"role": "user", "content": f"hi {REDACTED_THINKING_TRIGGER}"}],
            thinking=THINKING,
            stream=True,
        )
    )
    starts = [event.content_block for event in events if event.type == "content_block_start"]
    assert [block.type for block in starts] == ["thinking", "redacted_thinking", "text"]
    assert starts[1].data
    deltas = [event.delta.type for event in events if event.type == "content_block_delta"]
    assert deltas.count("signature_delta") == 1


def test_anthropic_next_turn_with_tools_sends_thinking_back(claude):
    tools: Any = [{"name": "search", "input_schema": {"type": "object"}}]
    first = claude.messages.create(
        model="claude-test",
        max_tokens=2048,
        messages=[{"role": "user", "content": QUESTION}],
        thinking=THINKING,
        tools=tools,
    )
    assert [block.type for block in first.content] == ["thinking", "tool_use"]
    tool_use = first.content[1]
    result: Any = {"type": "tool_result", "tool_use_id": tool_use.id, "content": "a fast store"}
    answer = claude.messages.create(
        model="claude-test",
        max_tokens=2048,
        messages=[
            {"role": "user", "content": QUESTION},
            {"role": "assistant", "content": first.content},
            {"role": "user", "content": [result]},
        ],
        thinking=THINKING,
        tools=tools,
    )
    assert answer.content[0].type == "text"
    with pytest.raises(anthropic.BadRequestError, match="thinking"):
        claude.messages.create(
            model="claude-test",
            max_tokens=2048,
            messages=[
                {"role": "user", "content": QUESTION},
                {"role": "assistant", "content": [tool_use]},
                {"role": "user", "content": [result]},
            ],
            thinking=THINKING,
            tools=tools,
        )


def test_anthropic_models(claude, provider):
    provider.set_models(["claude-a", "claude-b", "claude-c"])
    page = claude.models.list(limit=2)
    assert [model.id for model in page.data] == ["claude-a", "claude-b"]
    assert page.has_more is True
    assert [model.id for model in page] == ["claude-a", "claude-b", "claude-c"]  # auto-paging
    model = claude.models.retrieve("claude-b")
    assert (model.id, model.type, model.display_name) == ("claude-b", "model", "Claude B")
    assert model.created_at.year == 2025
    with pytest.raises(anthropic.NotFoundError):
        claude.models.retrieve("claude-z")
    assert all("anthropic-version" in request.headers for request in provider.requests)


@pytest.mark.parametrize(
    "auth",
    [
        {"api_key": "sk-ant-key"},
        {"auth_token": "oauth-token"},
        {"default_headers": {"x-api-key": "sk-ant-header"}},
    ],
)
def test_anthropic_auth_forms(provider, no_anthropic_env, auth):
    with anthropic.Anthropic(base_url=provider.anthropic_base, max_retries=0, **auth) as client:
        message = client.messages.create(
            model="claude-test", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
        assert message.content[0].type == "text"
        assert client.models.list().data
    headers = provider.requests[0].headers
    if "auth_token" in auth:
        assert headers["authorization"] == "Bearer oauth-token"
    elif "api_key" in auth:  # x-api-key, or Bearer in newer client versions
        assert (
            headers.get("x-api-key") == "sk-ant-key"
            or headers.get("authorization") == "Bearer sk-ant-key"
        )
    else:
        assert headers["x-api-key"] == "sk-ant-header"
        assert "authorization" not in headers


def test_anthropic_without_credentials_is_401(provider):
    response = httpx.post(
        provider.anthropic_base + "/v1/messages",
        json={"model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
        headers={"anthropic-version": "2023-06-01"},
    )
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"
