"""Servers that speak OpenAI's API at a custom base URL (vLLM, Ollama, LM Studio, proxies)."""

from __future__ import annotations

from .openai import OpenAIProvider

__all__ = ["OpenAICompatibleProvider"]


class OpenAICompatibleProvider(OpenAIProvider):
    """OpenAI's wire format at a custom base; the key is optional.

    One difference from :class:`OpenAIProvider`: embeddings are requested as JSON floats unless
    the caller passes ``encoding_format``, since not every such server knows base64.
    """

    name = "openai_compatible"
    default_embedding_format = None
