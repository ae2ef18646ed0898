"""The OpenAI-compatible provider family end to end: each prefix over real HTTP to the fake
provider, at the path its provider serves, with the auth header and environment variables it
uses, plain and streamed, miss and hit, on every cache backend."""

from __future__ import annotations

import dataclasses
import uuid

import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

import llmstash
from llmstash.exceptions import AuthenticationError, InvalidRequestError
from llmstash.providers._family import FAMILY
from llmstash.testing import FakeProvider

SECRET = "sk-family-SECRET-0123456789"


@dataclasses.dataclass(frozen=True)
class Case:
    model: str
    base_path: str
    """Appended to the fake's root URL in the base variable."""
    path: str
    """Where the chat request must arrive."""
    upstream: str
    key_env: str | None
    """The key variable set; ``None``: no key at all (local servers)."""


CASES = {
    "groq": Case(
        "groq/llama-3.1-8b-instant",
        "/openai/v1",
        "/openai/v1",
        "llama-3.1-8b-instant",
        "GROQ_API_KEY",
    ),
    "together_ai": Case(
        "together_ai/meta-llama/Llama-3-8b",
        "/v1",
        "/v1",
        "meta-llama/Llama-3-8b",
        "TOGETHERAI_API_KEY",
    ),
    "mistral": Case(
        "mistral/mistral-small-latest", "", "/v1", "mistral-small-latest", "MISTRAL_API_KEY"
    ),
    "deepseek": Case("deepseek/deepseek-chat", "", "", "deepseek-chat", "DEEPSEEK_API_KEY"),
    "openrouter": Case(
        "openrouter/anthropic/claude-3.5-haiku",
        "/api/v1",
        "/api/v1",
        "anthropic/claude-3.5-haiku",
        "OPENROUTER_API_KEY",
    ),
    "fireworks_ai": Case(
        "fireworks_ai/llama-v3p1-8b-instruct",
        "/inference/v1",
        "/inference/v1",
        "accounts/fireworks/models/llama-v3p1-8b-instruct",
        "FIREWORKS_AI_API_KEY",
    ),
    "xai": Case("xai/grok-3-mini", "/v1", "/v1", "grok-3-mini", "XAI_API_KEY"),
    "perplexity": Case("perplexity/sonar", "", "", "sonar", "PERPLEXITYAI_API_KEY"),
    "gemini": Case(
        "gemini/gemini-2.0-flash", "", "/v1beta/openai", "gemini-2.0-flash", "GEMINI_API_KEY"
    ),
    "ollama": Case("ollama/llama3.2", "", "/v1", "llama3.2", None),
    "ollama_chat": Case("ollama_chat/llama3.2", "", "/v1", "llama3.2", None),
    "hosted_vllm": Case("hosted_vllm/Qwen/Qwen2.5-7B", "/v1", "/v1", "Qwen/Qwen2.5-7B", None),
    "lm_studio": Case("lm_studio/qwen2.5-7b-instruct", "/v1", "/v1", "qwen2.5-7b-instruct", None),
}

ALL_ENV = sorted({name for f in FAMILY.values() for name in (*f.base_env, *f.key_env)})

PERPLEXITY_EXTRAS = {
    "citations": ["https://example.com/caching"],
    "search_results": [
        {"title": "Caching", "url": "https://example.com/caching", "date": "2025-01-01"}
    ],
}


def test_every_prefix_has_a_case() -> None:
    assert set(CASES) == set(FAMILY)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ALL_ENV:
        monkeypatch.delenv(name, raising=False)


def configure(monkeypatch: pytest.MonkeyPatch, provider: FakeProvider, prefix: str) -> Case:
    """Point the prefix's base variable at the fake and set its key variable (a local server
    gets no key, and the fake then asks for none)."""
    case = CASES[prefix]
    family = FAMILY[prefix]
    monkeypatch.setenv(family.base_env[0], provider.url + case.base_path)
    if case.key_env is None:
        provider.require_auth = False
    else:
        monkeypatch.setenv(case.key_env, SECRET)
    if prefix == "perplexity":
        provider.set_extra_fields(response=PERPLEXITY_EXTRAS)
    return case


def check_request(provider: FakeProvider, case: Case, endpoint: str = "chat/completions") -> None:
    request = provider.requests[-1]
    assert request.path == f"{case.path}/{endpoint}"
    if case.key_env is None:
        assert "authorization" not in request.headers
    else:
        assert request.headers["authorization"] == f"Bearer {SECRET}"
    assert request.json["model"] == case.upstream


@pytest.mark.parametrize("prefix", sorted(CASES))
async def test_prefix_plain_and_stream_miss_then_hit(
    monkeypatch: pytest.MonkeyPatch, provider: FakeProvider, any_cache, prefix: str
) -> None:
    case = configure(monkeypatch, provider, prefix)
    messages = [{"role": "user", "content": f"hello {uuid.uuid4().hex}"}]
    seen: list[dict] = []
    llmstash.success_callback = [lambda kwargs, *_: seen.append(kwargs)]

    miss = await llmstash.acompletion(model=case.model, messages=messages)
    check_request(provider, case)
    hit = await llmstash.acompletion(model=case.model, messages=messages)
    assert provider.request_count == 1
    assert miss._hidden_params["cache_hit"] is False
    assert hit._hidden_params["cache_hit"] is True
    assert hit == miss
    assert hit.choices[0].message.content == f"Echo: {messages[0]['content']}"
    assert miss._hidden_params["custom_llm_provider"] == prefix
    assert hit._hidden_params["custom_llm_provider"] == prefix
    ChatCompletion.model_validate(hit.model_dump())
    if prefix == "perplexity":
        for r in (miss, hit):
            assert r.citations == PERPLEXITY_EXTRAS["citations"]
            assert r["search_results"] == PERPLEXITY_EXTRAS["search_results"]
            assert r.model_dump()["search_results"] == PERPLEXITY_EXTRAS["search_results"]

    streamed = [{"role": "user", "content": f"stream {uuid.uuid4().hex}"}]
    first = [
        c
        async for c in await llmstash.acompletion(model=case.model, messages=streamed, stream=True)
    ]
    check_request(provider, case)
    assert provider.requests[-1].json["stream"] is True
    await any_cache.aflush_writes()
    second = [
        c
        async for c in await llmstash.acompletion(model=case.model, messages=streamed, stream=True)
    ]
    assert provider.request_count == 2
    assert second == first
    for chunk in second:
        ChatCompletionChunk.model_validate(chunk.model_dump())
    text = "".join(c.choices[0].delta.content or "" for c in second if c.choices)
    assert text == f"Echo: {streamed[0]['content']}"
    if prefix == "perplexity":
        assert all(c.citations == PERPLEXITY_EXTRAS["citations"] for c in second)
        assert all(c["search_results"] == PERPLEXITY_EXTRAS["search_results"] for c in second)

    await llmstash.aflush_callbacks()
    assert [k["custom_llm_provider"] for k in seen] == [prefix] * 4
    assert sorted(k["cache_hit"] for k in seen) == [False, False, True, True]  # any order
    assert all(SECRET not in repr(k) for k in seen)


@pytest.mark.parametrize("prefix", sorted(p for p, f in FAMILY.items() if f.embeddings))
async def test_prefix_embeddings_miss_then_hit(
    monkeypatch: pytest.MonkeyPatch, provider: FakeProvider, llm, prefix: str
) -> None:
    case = configure(monkeypatch, provider, prefix)
    llmstash.cache = llmstash.Cache()
    inputs = [f"a {uuid.uuid4().hex}", f"b {uuid.uuid4().hex}"]
    miss = await llmstash.aembedding(model=case.model, input=inputs)
    check_request(provider, case, "embeddings")
    assert "encoding_format" not in provider.requests[-1].json  # JSON floats: safest here
    hit = await llmstash.aembedding(model=case.model, input=inputs)
    assert provider.request_count == 1
    assert hit._hidden_params["cache_hit"] is True
    assert [list(d.embedding) for d in hit.data] == [list(d.embedding) for d in miss.data]
    assert len(miss.data[0].embedding) == provider.embedding_dim


@pytest.mark.parametrize("prefix", sorted(p for p, f in FAMILY.items() if not f.embeddings))
async def test_prefix_without_embeddings_is_refused_before_io(
    monkeypatch: pytest.MonkeyPatch, provider: FakeProvider, llm, prefix: str
) -> None:
    case = configure(monkeypatch, provider, prefix)
    with pytest.raises(InvalidRequestError, match="no embeddings API"):
        await llmstash.aembedding(model=case.model, input=["x"])
    assert provider.request_count == 0


async def test_the_model_as_given_is_part_of_the_key(
    monkeypatch: pytest.MonkeyPatch, provider: FakeProvider, llm
) -> None:
    """Two prefixes asking one server for the same upstream model are two entries."""
    llmstash.cache = llmstash.Cache()
    monkeypatch.setenv("GROQ_API_BASE", provider.openai_base)
    monkeypatch.setenv("XAI_API_BASE", provider.openai_base)
    monkeypatch.setenv("GROQ_API_KEY", SECRET)
    monkeypatch.setenv("XAI_API_KEY", SECRET)
    messages = [{"role": "user", "content": "same question"}]
    a = await llmstash.acompletion(model="groq/m", messages=messages)
    b = await llmstash.acompletion(model="xai/m", messages=messages)
    assert provider.request_count == 2
    assert [r.json["model"] for r in provider.requests] == ["m", "m"]
    assert a._hidden_params["cache_key"] != b._hidden_params["cache_key"]


async def test_arguments_beat_the_environment(
    monkeypatch: pytest.MonkeyPatch, provider: FakeProvider, llm
) -> None:
    monkeypatch.setenv("TOGETHER_AI_API_BASE", "http://127.0.0.1:9/v1")  # nothing listens
    monkeypatch.setenv("TOGETHER_API_KEY", "sk-env-key-first")
    monkeypatch.setenv("TOGETHERAI_API_KEY", "sk-env-key-later")
    await llmstash.acompletion(
        model="together_ai/m",
        messages=[{"role": "user", "content": "hi"}],
        api_base=provider.openai_base,
    )
    assert provider.requests[-1].headers["authorization"] == "Bearer sk-env-key-first"
    await llmstash.acompletion(
        model="together_ai/m",
        messages=[{"role": "user", "content": "hi again"}],
        api_base=provider.openai_base,
        api_key="sk-argument-key",
    )
    assert provider.requests[-1].headers["authorization"] == "Bearer sk-argument-key"


async def test_a_keyless_local_call_meets_a_server_that_wants_one(
    monkeypatch: pytest.MonkeyPatch, provider: FakeProvider, llm
) -> None:
    """The fake checks auth unless told not to: the keyless cases above prove no header."""
    monkeypatch.setenv("OLLAMA_API_BASE", provider.url)
    with pytest.raises(AuthenticationError) as info:
        await llmstash.acompletion(
            model="ollama/llama3.2", messages=[{"role": "user", "content": "hi"}]
        )
    assert info.value.llm_provider == "ollama"
    assert provider.requests[-1].path == "/v1/chat/completions"


async def test_a_missing_key_at_the_public_endpoint_is_refused_before_io(llm) -> None:
    with pytest.raises(InvalidRequestError, match="GROQ_API_KEY"):
        await llmstash.acompletion(
            model="groq/llama-3.1-8b-instant", messages=[{"role": "user", "content": "hi"}]
        )


def test_sync_completion_through_a_prefix(
    monkeypatch: pytest.MonkeyPatch, provider: FakeProvider, sync_llm
) -> None:
    case = configure(monkeypatch, provider, "deepseek")
    llmstash.cache = llmstash.Cache()
    messages = [{"role": "user", "content": f"sync {uuid.uuid4().hex}"}]
    r1 = llmstash.completion(model=case.model, messages=messages)
    r2 = llmstash.completion(model=case.model, messages=messages)
    check_request(provider, case)
    assert provider.request_count == 1
    assert r2._hidden_params["cache_hit"] is True
    assert r1 == r2


async def test_custom_llm_provider_names_the_family_member(
    monkeypatch: pytest.MonkeyPatch, provider: FakeProvider, llm
) -> None:
    case = configure(monkeypatch, provider, "together_ai")
    r = await llmstash.acompletion(
        model="meta-llama/Llama-3-8b",
        custom_llm_provider="together_ai",
        messages=[{"role": "user", "content": "hi"}],
    )
    check_request(provider, case)
    assert r._hidden_params["custom_llm_provider"] == "together_ai"


@pytest.mark.parametrize("prefix", ["mistral", "groq"])
async def test_a_stored_stream_asks_for_usage_only_where_the_provider_accepts_it(
    monkeypatch: pytest.MonkeyPatch, provider: FakeProvider, llm, prefix: str
) -> None:
    """Mistral refuses ``stream_options`` (422, extra fields forbidden) and sends the usage
    unasked; the others are asked for it so that a plain hit of the stream has its usage."""
    case = configure(monkeypatch, provider, prefix)
    llmstash.cache = llmstash.Cache()
    stream = await llmstash.acompletion(
        model=case.model, messages=[{"role": "user", "content": "hi"}], stream=True
    )
    [c async for c in stream]
    sent = provider.requests[-1].json
    if prefix == "mistral":
        assert "stream_options" not in sent
    else:
        assert sent["stream_options"] == {"include_usage": True}
