"""The seam between the Client and the provider adapters.

A provider turns (route, messages, params) into HTTP requests, sends them over the Client's
``httpx.AsyncClient`` with retries, and turns the answers into OpenAI-shaped objects. It knows
nothing of caching or callbacks.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol

import httpx
import msgspec

from ..types import EmbeddingResponse, ModelResponse, ModelResponseStream

__all__ = ["Provider", "Route"]


class Route(msgspec.Struct, frozen=True, kw_only=True):
    """Where one call goes: resolved from the model string, arguments and environment."""

    provider: str
    """``"openai"``, ``"azure"``, ``"anthropic"`` or ``"openai_compatible"``."""
    model: str
    """The model string as the caller passed it (``"azure/chatgpt-v-2"``)."""
    upstream_model: str
    """What the provider is asked for (a model name, or an Azure deployment)."""
    api_base: str
    """Base URL in the provider's own convention (OpenAI's includes ``/v1``)."""
    api_key: str | None = None
    """Never shown by ``repr``."""
    api_version: str | None = None

    def __repr__(self) -> str:
        return (
            f"Route(provider={self.provider!r}, model={self.model!r}, "
            f"upstream_model={self.upstream_model!r}, api_base={self.api_base!r}, "
            f"api_key={'***' if self.api_key else None}, api_version={self.api_version!r})"
        )


class Provider(Protocol):
    """One provider's wire format. Implementations are stateless and shared."""

    name: str

    async def chat(
        self,
        http: httpx.AsyncClient,
        route: Route,
        messages: Sequence[dict[str, Any]],
        params: dict[str, Any],
        *,
        timeout: float,
        num_retries: int,
    ) -> ModelResponse:
        """One chat completion, retried on 429/5xx/connection errors."""
        ...

    def chat_stream(
        self,
        http: httpx.AsyncClient,
        route: Route,
        messages: Sequence[dict[str, Any]],
        params: dict[str, Any],
        *,
        timeout: float,
        num_retries: int,
    ) -> AsyncIterator[ModelResponseStream]:
        """A streamed chat completion; retried only before the first byte. The HTTP response
        is closed when the iterator finishes, fails or is closed early."""
        ...

    async def embed(
        self,
        http: httpx.AsyncClient,
        route: Route,
        inputs: Sequence[str],
        params: dict[str, Any],
        *,
        timeout: float,
        num_retries: int,
    ) -> EmbeddingResponse:
        """Embeddings for ``inputs``; ``data[i].index == i``."""
        ...
