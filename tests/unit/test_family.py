"""The OpenAI-compatible family table and ``get_llm_provider``: env vars, bases, keys."""

from __future__ import annotations

import pytest

import llmstash
from llmstash.exceptions import InvalidRequestError
from llmstash.providers import OpenAICompatibleProvider, resolve
from llmstash.providers._family import FAMILY

SECRET = "sk-family-SECRET-0123456789"
ALL_ENV = sorted({n for f in FAMILY.values() for n in (*f.base_env, *f.key_env)}) + [
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_API_BASE",
    "ANTHROPIC_API_KEY",
    "AZURE_API_KEY",
    "AZURE_API_BASE",
]

# LiteLLM's names, checked against its provider code: prefix -> (default base, key variables).
EXPECTED = {
    "groq": ("https://api.groq.com/openai/v1", ("GROQ_API_KEY",)),
    "together_ai": (
        "https://api.together.xyz/v1",
        ("TOGETHER_API_KEY", "TOGETHER_AI_API_KEY", "TOGETHERAI_API_KEY", "TOGETHER_AI_TOKEN"),
    ),
    "mistral": ("https://api.mistral.ai/v1", ("MISTRAL_API_KEY", "MISTRAL_AZURE_API_KEY")),
    "deepseek": ("https://api.deepseek.com", ("DEEPSEEK_API_KEY",)),
    "openrouter": ("https://openrouter.ai/api/v1", ("OPENROUTER_API_KEY",)),
    "fireworks_ai": (
        "https://api.fireworks.ai/inference/v1",
        ("FIREWORKS_API_KEY", "FIREWORKS_AI_API_KEY", "FIREWORKSAI_API_KEY", "FIREWORKS_AI_TOKEN"),
    ),
    "xai": ("https://api.x.ai/v1", ("XAI_API_KEY",)),
    "perplexity": ("https://api.perplexity.ai", ("PERPLEXITYAI_API_KEY", "PERPLEXITY_API_KEY")),
    "gemini": (
        "https://generativelanguage.googleapis.com/v1beta/openai",
        ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
    ),
    "ollama": ("http://localhost:11434/v1", ("OLLAMA_API_KEY",)),
    "ollama_chat": ("http://localhost:11434/v1", ("OLLAMA_API_KEY",)),
    "hosted_vllm": (None, ("HOSTED_VLLM_API_KEY",)),
    "lm_studio": ("http://localhost:1234/v1", ("LM_STUDIO_API_KEY",)),
}
LOCAL = {"ollama", "ollama_chat", "hosted_vllm", "lm_studio"}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ALL_ENV:
        monkeypatch.delenv(name, raising=False)


def test_the_table_names_litellms_prefixes_bases_and_key_variables() -> None:
    assert set(FAMILY) == set(EXPECTED)
    for prefix, (base, keys) in EXPECTED.items():
        family = FAMILY[prefix]
        assert family.default_base == base, prefix
        assert family.key_env == keys, prefix
        assert family.base_env[0].endswith("_API_BASE"), prefix
        assert family.key_required is (prefix not in LOCAL), prefix


@pytest.mark.parametrize("prefix", sorted(set(FAMILY) - {"hosted_vllm"}))
def test_each_prefix_defaults_to_its_public_endpoint(
    monkeypatch: pytest.MonkeyPatch, prefix: str
) -> None:
    family = FAMILY[prefix]
    monkeypatch.setenv(family.key_env[-1], SECRET)  # the last of the names is honoured too
    provider, route = resolve(f"{prefix}/some-model")
    assert isinstance(provider, OpenAICompatibleProvider)
    assert route.provider == prefix
    assert route.model == f"{prefix}/some-model"
    assert route.api_base == family.default_base
    assert route.api_key == SECRET
    assert SECRET not in repr(route)


@pytest.mark.parametrize("prefix", sorted(set(FAMILY) - LOCAL))
def test_a_hosted_provider_without_a_key_is_refused(prefix: str) -> None:
    with pytest.raises(InvalidRequestError, match=FAMILY[prefix].key_env[0]):
        resolve(f"{prefix}/m")


@pytest.mark.parametrize("prefix", sorted(LOCAL - {"hosted_vllm"}))
def test_a_local_server_needs_no_key(prefix: str) -> None:
    _, route = resolve(f"{prefix}/m")
    assert route.api_key is None


def test_vllm_needs_its_url() -> None:
    with pytest.raises(InvalidRequestError, match="HOSTED_VLLM_API_BASE"):
        resolve("hosted_vllm/m")
    _, route = resolve("hosted_vllm/m", api_base="http://gpu-box:8000/v1/")
    assert route.api_base == "http://gpu-box:8000/v1"


def test_first_key_variable_wins_and_the_argument_beats_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TOGETHERAI_API_KEY", "sk-later-name")
    monkeypatch.setenv("TOGETHER_API_KEY", "sk-first-name")
    assert resolve("together_ai/m")[1].api_key == "sk-first-name"
    assert resolve("together_ai/m", api_key=" sk-arg ")[1].api_key == "sk-arg"


def test_a_custom_base_may_go_without_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROQ_API_BASE", "http://proxy.internal/groq/v1")
    _, route = resolve("groq/m")
    assert route.api_base == "http://proxy.internal/groq/v1"
    assert route.api_key is None


@pytest.mark.parametrize(
    ("prefix", "given", "base"),
    [
        ("ollama", "http://box:11434", "http://box:11434/v1"),
        ("ollama", "http://box:11434/", "http://box:11434/v1"),
        ("ollama", "http://box:11434/v1", "http://box:11434/v1"),
        ("mistral", "https://mistral.example", "https://mistral.example/v1"),
        ("gemini", "https://g.example", "https://g.example/v1beta/openai"),
        ("gemini", "https://g.example/custom/openai/", "https://g.example/custom/openai"),
        ("deepseek", "https://d.example", "https://d.example"),
        ("lm_studio", "http://localhost:1234", "http://localhost:1234/v1"),
    ],
)
def test_a_bare_server_root_gets_the_providers_path(
    monkeypatch: pytest.MonkeyPatch, prefix: str, given: str, base: str
) -> None:
    monkeypatch.setenv(FAMILY[prefix].base_env[0], given)
    assert resolve(f"{prefix}/m", api_key="k")[1].api_base == base
    monkeypatch.delenv(FAMILY[prefix].base_env[0])
    assert resolve(f"{prefix}/m", api_key="k", api_base=given)[1].api_base == base


def test_model_names_sent() -> None:
    assert resolve("openrouter/meta-llama/llama-3-8b", api_key="k")[1].upstream_model == (
        "meta-llama/llama-3-8b"
    )
    fw = "fireworks_ai/llama-v3p1-8b-instruct"
    assert resolve(fw, api_key="k")[1].upstream_model == (
        "accounts/fireworks/models/llama-v3p1-8b-instruct"
    )
    full = "fireworks_ai/accounts/me/models/tuned"
    assert resolve(full, api_key="k")[1].upstream_model == "accounts/me/models/tuned"


def test_embeddings_only_where_the_provider_serves_them() -> None:
    assert resolve("mistral/mistral-embed", api_key="k", call_type="embedding")[1].provider == (
        "mistral"
    )
    for prefix in ("groq", "deepseek", "xai", "perplexity"):
        with pytest.raises(InvalidRequestError, match="no embeddings API"):
            resolve(f"{prefix}/m", api_key="k", call_type="embedding")


def test_an_empty_model_after_the_prefix_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match="names no model"):
        resolve("groq/", api_key="k")


def test_an_unknown_prefix_lists_the_family() -> None:
    with pytest.raises(InvalidRequestError, match="groq/") as info:
        resolve("nosuch/m")
    assert "lm_studio/" in str(info.value)


def test_get_llm_provider_gives_litellms_tuple(monkeypatch: pytest.MonkeyPatch) -> None:
    assert llmstash.get_llm_provider("groq/llama-3.1-8b-instant") == (
        "llama-3.1-8b-instant",
        "groq",
        None,
        "https://api.groq.com/openai/v1",
    )
    monkeypatch.setenv("GROQ_API_KEY", SECRET)
    assert llmstash.get_llm_provider("groq/m")[2] == SECRET
    assert llmstash.get_llm_provider("gpt-4o-mini")[:2] == ("gpt-4o-mini", "openai")
    assert llmstash.get_llm_provider("claude-sonnet-4-5")[1] == "anthropic"
    assert llmstash.get_llm_provider("llama3", custom_llm_provider="ollama_chat") == (
        "llama3",
        "ollama_chat",
        None,
        "http://localhost:11434/v1",
    )
    assert llmstash.get_llm_provider("my-model", api_base="http://x/v1")[1] == "openai_compatible"
    assert llmstash.get_llm_provider("azure/dep", api_base="https://r.openai.azure.com")[:2] == (
        "dep",
        "azure",
    )
    assert llmstash.get_llm_provider("azure/dep") == ("dep", "azure", None, None)
    assert llmstash.get_llm_provider("hosted_vllm/q") == ("q", "hosted_vllm", None, None)
    with pytest.raises(InvalidRequestError):
        llmstash.get_llm_provider("no-such-model")
    with pytest.raises(InvalidRequestError):
        llmstash.get_llm_provider("nosuch/model")


def test_model_dump_json_indents_as_pydantic_and_drops_nones() -> None:
    from openai.types.chat import ChatCompletion

    from llmstash.types import Choices, EmbeddingResponse, Message, ModelResponse

    r = ModelResponse(
        id="chatcmpl-1", choices=[Choices(message=Message(content="é"))], created=1, model="m"
    )
    theirs = ChatCompletion.model_validate(r.model_dump())
    assert (
        r.model_dump_json(indent=2).splitlines()[:3]
        == theirs.model_dump_json(indent=2).splitlines()[:3]
    )
    assert "\n" not in r.model_dump_json()
    assert "null" in r.model_dump_json()
    assert "null" not in r.model_dump_json(exclude_none=True)
    assert '"é"' in r.model_dump_json()
    e = EmbeddingResponse(data=[], model="m")
    assert e.model_dump_json(indent=4).startswith("{\n    ")
