"""Provider adapters: OpenAI, Azure OpenAI, Anthropic and OpenAI-compatible servers.

:func:`resolve` picks the provider and :class:`Route` for a model string; each provider turns
OpenAI-shaped calls into its own HTTP requests, sends them with retries over the caller's
``httpx.AsyncClient``, and answers with OpenAI-shaped objects.
"""

from ._base import Provider, Route
from ._resolve import resolve
from .anthropic import AnthropicProvider
from .azure import AzureProvider
from .openai import OpenAIProvider
from .openai_compatible import OpenAICompatibleProvider

__all__ = [
    "AnthropicProvider",
    "AzureProvider",
    "OpenAICompatibleProvider",
    "OpenAIProvider",
    "Provider",
    "Route",
    "resolve",
]
