from __future__ import annotations

import pytest

from llmstash._config import DEFAULT_AZURE_API_VERSION
from llmstash.exceptions import InvalidRequestError
from llmstash.providers import (
    AnthropicProvider,
    AzureProvider,
    OpenAICompatibleProvider,
    OpenAIProvider,
    resolve,
)

ENV_VARS = [
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_API_BASE",
    "AZURE_API_KEY",
    "AZURE_API_BASE",
    "AZURE_API_VERSION",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_API_BASE",
    "ANTHROPIC_BASE_URL",
]
SECRET = "sk-test-SECRET-value-123456"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    ("model", "upstream"),
    [
        ("gpt-4o-mini", "gpt-4o-mini"),
        ("gpt-5", "gpt-5"),
        ("o1", "o1"),
        ("o3-mini", "o3-mini"),
        ("o4-mini", "o4-mini"),
        ("chatgpt-4o-latest", "chatgpt-4o-latest"),
        ("text-embedding-3-small", "text-embedding-3-small"),
        ("openai/my-finetune", "my-finetune"),
    ],
)
def test_openai_models(monkeypatch: pytest.MonkeyPatch, model: str, upstream: str) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    provider, route = resolve(model, call_type="chat")
    assert isinstance(provider, OpenAIProvider)
    assert not isinstance(provider, (AzureProvider, OpenAICompatibleProvider))
    assert route.provider == "openai"
    assert route.model == model
    assert route.upstream_model == upstream
    assert route.api_base == "https://api.openai.com/v1"
    assert route.api_key == SECRET
    assert SECRET not in repr(route)


def test_openai_base_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    monkeypatch.setenv("OPENAI_API_BASE", "http://api-base/v1/")
    assert resolve("gpt-4o")[1].api_base == "http://api-base/v1"
    monkeypatch.setenv("OPENAI_BASE_URL", "http://base-url/v1")
    assert resolve("gpt-4o")[1].api_base == "http://base-url/v1"
    assert resolve("gpt-4o", api_base="http://arg/v1//")[1].api_base == "http://arg/v1"


def test_explicit_key_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "from-env")
    assert resolve("gpt-4o", api_key="from-arg")[1].api_key == "from-arg"


def test_env_read_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InvalidRequestError):
        resolve("gpt-4o")
    monkeypatch.setenv("OPENAI_API_KEY", "later")
    assert resolve("gpt-4o")[1].api_key == "later"


def test_missing_openai_key_names_the_variable() -> None:
    with pytest.raises(InvalidRequestError, match="OPENAI_API_KEY"):
        resolve("gpt-4o")


def test_empty_env_key_counts_as_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "")
    with pytest.raises(InvalidRequestError, match="OPENAI_API_KEY"):
        resolve("gpt-4o")


def test_custom_base_needs_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    _, route = resolve("gpt-4o", api_base="http://127.0.0.1:8000/v1")
    assert route.api_key is None
    monkeypatch.setenv("OPENAI_BASE_URL", "http://proxy/v1")
    assert resolve("openai/x")[1].api_key is None


def test_azure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_API_BASE", "https://res.openai.azure.com/")
    monkeypatch.setenv("AZURE_API_KEY", SECRET)
    provider, route = resolve("azure/chatgpt-v-2", call_type="embedding")
    assert isinstance(provider, AzureProvider)
    assert route.provider == "azure"
    assert route.upstream_model == "chatgpt-v-2"
    assert route.api_base == "https://res.openai.azure.com"
    assert route.api_version == DEFAULT_AZURE_API_VERSION
    monkeypatch.setenv("AZURE_API_VERSION", "2025-01-01")
    assert resolve("azure/d")[1].api_version == "2025-01-01"
    assert resolve("azure/d", api_version="2024-02-01")[1].api_version == "2024-02-01"


def test_azure_requires_base() -> None:
    with pytest.raises(InvalidRequestError, match="AZURE_API_BASE"):
        resolve("azure/d", api_key="k")


def test_azure_host_requires_key_but_proxy_does_not() -> None:
    with pytest.raises(InvalidRequestError, match="AZURE_API_KEY"):
        resolve("azure/d", api_base="https://res.openai.azure.com")
    assert resolve("azure/d", api_base="http://127.0.0.1:9")[1].api_key is None


@pytest.mark.parametrize(
    ("model", "upstream"),
    [
        ("anthropic/claude-sonnet-4-5", "claude-sonnet-4-5"),
        ("claude-3-5-haiku", "claude-3-5-haiku"),
    ],
)
def test_anthropic(monkeypatch: pytest.MonkeyPatch, model: str, upstream: str) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    provider, route = resolve(model)
    assert isinstance(provider, AnthropicProvider)
    assert route.provider == "anthropic"
    assert route.upstream_model == upstream
    assert route.api_base == "https://api.anthropic.com"


def test_anthropic_base_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://b/")
    assert resolve("claude-x")[1].api_base == "http://b"
    monkeypatch.setenv("ANTHROPIC_API_BASE", "http://a/")
    assert resolve("claude-x")[1].api_base == "http://a"


def test_anthropic_missing_key() -> None:
    with pytest.raises(InvalidRequestError, match="ANTHROPIC_API_KEY"):
        resolve("claude-x")


def test_anthropic_embeddings_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "k")
    with pytest.raises(InvalidRequestError, match="embeddings"):
        resolve("anthropic/claude-x", call_type="embedding")


def test_unknown_model_with_base_is_openai_compatible() -> None:
    provider, route = resolve("meta-llama/Llama-3.1-8B", api_base="http://vllm:8000/v1/")
    assert isinstance(provider, OpenAICompatibleProvider)
    assert route.provider == "openai_compatible"
    assert route.upstream_model == "meta-llama/Llama-3.1-8B"
    assert route.api_base == "http://vllm:8000/v1"


@pytest.mark.parametrize("model", ["mistral-large", "bedrock/claude", "vertex_ai/gemini"])
def test_unknown_provider_lists_the_known_ones(model: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        resolve(model)
    assert "openai/" in str(info.value)
    assert "azure/" in str(info.value)
    assert "anthropic/" in str(info.value)


@pytest.mark.parametrize("model", ["", "   ", None, 42])
def test_bad_model(model: object) -> None:
    with pytest.raises(InvalidRequestError, match="model"):
        resolve(model)  # type: ignore[arg-type]


@pytest.mark.parametrize("model", ["openai/", "azure/", "anthropic/"])
def test_prefix_without_model(model: str) -> None:
    with pytest.raises(InvalidRequestError):
        resolve(model, api_key="k", api_base="http://x")


def test_invalid_request_error_is_value_error() -> None:
    with pytest.raises(ValueError):
        resolve("")


def test_key_never_in_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("AZURE_API_KEY", SECRET)
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    for model, call_type in [("azure/d", "chat"), ("anthropic/c", "embedding"), ("nope", "chat")]:
        with pytest.raises(InvalidRequestError) as info:
            resolve(model, api_key=SECRET, call_type=call_type)  # type: ignore[arg-type]
        assert SECRET not in str(info.value)
        assert SECRET not in repr(info.value)
