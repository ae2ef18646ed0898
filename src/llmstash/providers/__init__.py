"""Provider adapters: OpenAI, Azure OpenAI, Anthropic and OpenAI-compatible servers.

:func:`resolve` picks the provider and :class:`Route` for a model string; each provider turns
OpenAI-shaped calls into its own HTTP requests, sends them with retries over the caller's
``httpx.AsyncClient``, and answers with OpenAI-shaped objects.
"""

from typing import TYPE_CHECKING, Any

from ._base import Provider, Route, TokenProvider
from ._resolve import resolve
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
    "TokenProvider",
    "resolve",
]

if TYPE_CHECKING:
    from .anthropic import AnthropicProvider


def __getattr__(name: str) -> Any:
    # The Anthropic adapter loads on first use (see _resolve._anthropic).
    if name == "AnthropicProvider":
        from .anthropic import AnthropicProvider

        return AnthropicProvider
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
