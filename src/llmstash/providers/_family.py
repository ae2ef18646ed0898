"""The OpenAI-compatible provider family: one table row per model prefix.

Each row names what LiteLLM users already set — the prefix (``groq/``), the environment
variables for the key and the base URL, in LiteLLM's order of precedence — and how the
provider's server is reached. Every member speaks OpenAI's Chat Completions wire format with a
bearer key, so one adapter serves them all; :func:`resolve` reads this table.
"""

from __future__ import annotations

import dataclasses
from typing import Final
from urllib.parse import urlsplit

__all__ = ["FAMILY", "Family", "asks_stream_usage"]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Family:
    """How one model prefix reaches its provider."""

    prefix: str
    """The model prefix without its slash (``"groq"``); also the ``custom_llm_provider``."""
    title: str
    """The provider's name, for messages and docs."""
    default_base: str | None
    """The base URL (OpenAI's convention: ``/chat/completions`` is appended); ``None`` when
    the server has no well-known address (a base must then be given)."""
    base_env: tuple[str, ...]
    """Environment variables for the base URL, first set wins."""
    key_env: tuple[str, ...]
    """Environment variables for the API key, first set wins."""
    key_required: bool = True
    """Whether a call to ``default_base`` needs a key (local servers do not); a custom base
    (a proxy, a test server) may always go without one."""
    embeddings: bool = False
    """Whether the provider serves ``/embeddings``."""
    responses: bool = False
    """Whether the provider serves OpenAI's Responses API (``/responses``)."""
    text_completion: bool = False
    """Whether the provider serves legacy text completion (``/completions``)."""
    root_suffix: str = ""
    """Appended to a base given as a bare server root (no path): ``"/v1"`` for servers that
    serve OpenAI's API under ``/v1`` (Ollama, vLLM, LM Studio, Mistral), Gemini's
    ``"/v1beta/openai"``. A base with a path is used as given."""
    stream_usage: bool = True
    """Whether ``stream_options={"include_usage": true}`` may be sent to ask a stream for its
    usage. Mistral refuses the field (422) and sends the usage unasked."""
    model_prefix: str = ""
    """Prepended to the model name sent, unless it already starts with it (Fireworks'
    ``accounts/fireworks/models/``)."""

    def base(self, value: str) -> str:
        """``value`` (stripped of a trailing slash) with :attr:`root_suffix` added to a bare
        server root."""
        value = value.rstrip("/")
        if self.root_suffix and not urlsplit(value).path.strip("/"):
            value += self.root_suffix
        return value

    def upstream(self, name: str) -> str:
        """The model name the provider is asked for."""
        if self.model_prefix and not name.startswith(self.model_prefix.split("/", 1)[0] + "/"):
            return self.model_prefix + name
        return name


FAMILY: Final[dict[str, Family]] = {
    f.prefix: f
    for f in (
        Family(
            prefix="groq",
            title="Groq",
            default_base="https://api.groq.com/openai/v1",
            base_env=("GROQ_API_BASE",),
            key_env=("GROQ_API_KEY",),
        ),
        Family(
            prefix="together_ai",
            title="Together AI",
            default_base="https://api.together.xyz/v1",
            base_env=("TOGETHER_AI_API_BASE",),
            key_env=(
                "TOGETHER_API_KEY",
                "TOGETHER_AI_API_KEY",
                "TOGETHERAI_API_KEY",
                "TOGETHER_AI_TOKEN",
            ),
            embeddings=True,
        ),
        Family(
            prefix="mistral",
            title="Mistral AI",
            default_base="https://api.mistral.ai/v1",
            base_env=("MISTRAL_API_BASE", "MISTRAL_AZURE_API_BASE"),
            key_env=("MISTRAL_API_KEY", "MISTRAL_AZURE_API_KEY"),
            embeddings=True,
            root_suffix="/v1",
            stream_usage=False,
        ),
        Family(
            prefix="deepseek",
            title="DeepSeek",
            default_base="https://api.deepseek.com",
            base_env=("DEEPSEEK_API_BASE",),
            key_env=("DEEPSEEK_API_KEY",),
        ),
        Family(
            prefix="openrouter",
            title="OpenRouter",
            default_base="https://openrouter.ai/api/v1",
            base_env=("OPENROUTER_API_BASE",),
            key_env=("OPENROUTER_API_KEY",),
            embeddings=True,
        ),
        Family(
            prefix="fireworks_ai",
            title="Fireworks AI",
            default_base="https://api.fireworks.ai/inference/v1",
            base_env=("FIREWORKS_API_BASE", "FIREWORKS_AI_API_BASE"),
            key_env=(
                "FIREWORKS_API_KEY",
                "FIREWORKS_AI_API_KEY",
                "FIREWORKSAI_API_KEY",
                "FIREWORKS_AI_TOKEN",
            ),
            embeddings=True,
            model_prefix="accounts/fireworks/models/",
        ),
        Family(
            prefix="xai",
            title="xAI",
            default_base="https://api.x.ai/v1",
            base_env=("XAI_API_BASE",),
            key_env=("XAI_API_KEY",),
        ),
        Family(
            prefix="perplexity",
            title="Perplexity",
            default_base="https://api.perplexity.ai",
            base_env=("PERPLEXITY_API_BASE",),
            key_env=("PERPLEXITYAI_API_KEY", "PERPLEXITY_API_KEY"),
        ),
        Family(
            prefix="gemini",
            title="Google Gemini (OpenAI-compatible endpoint)",
            default_base="https://generativelanguage.googleapis.com/v1beta/openai",
            base_env=("GEMINI_API_BASE",),
            key_env=("GEMINI_API_KEY", "GOOGLE_API_KEY"),
            embeddings=True,
            root_suffix="/v1beta/openai",
        ),
        Family(
            prefix="ollama",
            title="Ollama (OpenAI-compatible endpoint)",
            default_base="http://localhost:11434/v1",
            base_env=("OLLAMA_API_BASE",),
            key_env=("OLLAMA_API_KEY",),
            key_required=False,
            embeddings=True,
            root_suffix="/v1",
            text_completion=True,
        ),
        Family(
            prefix="ollama_chat",
            title="Ollama (OpenAI-compatible endpoint)",
            default_base="http://localhost:11434/v1",
            base_env=("OLLAMA_API_BASE",),
            key_env=("OLLAMA_API_KEY",),
            key_required=False,
            embeddings=True,
            root_suffix="/v1",
        ),
        Family(
            prefix="hosted_vllm",
            title="vLLM",
            default_base=None,
            base_env=("HOSTED_VLLM_API_BASE",),
            key_env=("HOSTED_VLLM_API_KEY",),
            key_required=False,
            embeddings=True,
            responses=True,
            text_completion=True,
            root_suffix="/v1",
        ),
        Family(
            prefix="lm_studio",
            title="LM Studio",
            default_base="http://localhost:1234/v1",
            base_env=("LM_STUDIO_API_BASE",),
            key_env=("LM_STUDIO_API_KEY",),
            key_required=False,
            embeddings=True,
            root_suffix="/v1",
            text_completion=True,
        ),
    )
}
"""Every prefix of the family, by prefix."""


def asks_stream_usage(provider: str) -> bool:
    """Whether a stream to ``provider`` (a :attr:`Route.provider`) may be asked for its usage
    with OpenAI's ``stream_options``: not Anthropic (another wire format) nor a family member
    that refuses the field."""
    family = FAMILY.get(provider)
    return provider != "anthropic" and (family is None or family.stream_usage)
