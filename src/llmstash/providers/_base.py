"""The seam between the Client and the provider adapters.

A provider turns (route, messages, params) into HTTP requests, sends them over the Client's
``httpx.AsyncClient`` with retries, and turns the answers into OpenAI-shaped objects. It knows
nothing of caching or callbacks.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeAlias

import httpx
import msgspec

from ..types import EmbeddingResponse, ModelResponse, ModelResponseStream

__all__ = ["Provider", "Route", "TokenProvider"]

TokenProvider: TypeAlias = Callable[[], str] | Callable[[], Awaitable[str]]
"""A function returning a bearer token (Azure AD / Entra ID), sync or async; called for every
request so that it can refresh the token."""


class Route(msgspec.Struct, frozen=True, kw_only=True):
    """Where one call goes: resolved from the model string, arguments and environment."""

    provider: str
    """``"openai"``, ``"azure"``, ``"anthropic"``, ``"openai_compatible"``, or the prefix of a
    member of the OpenAI-compatible family (``"groq"``, ``"ollama"``, ...)."""
    model: str
    """The model string as the caller passed it (``"azure/chatgpt-v-2"``)."""
    upstream_model: str
    """What the provider is asked for (a model name, or an Azure deployment)."""
    api_base: str
    """Base URL in the provider's own convention (OpenAI's includes ``/v1``)."""
    api_key: str | None = None
    """Never shown by ``repr``."""
    api_version: str | None = None
    azure_ad_token: str | None = None
    """An Azure AD (Entra ID) token sent as ``Authorization: Bearer``; never shown by ``repr``."""
    azure_ad_token_provider: TokenProvider | None = None
    """Called for every request (each attempt) for a fresh Azure AD token."""

    def __repr__(self) -> str:
        auth = ""
        if self.azure_ad_token:
            auth += ", azure_ad_token=***"
        if self.azure_ad_token_provider is not None:
            auth += f", azure_ad_token_provider={self.azure_ad_token_provider!r}"
        return (
            f"Route(provider={self.provider!r}, model={self.model!r}, "
            f"upstream_model={self.upstream_model!r}, api_base={self.api_base!r}, "
            f"api_key={'***' if self.api_key else None}, api_version={self.api_version!r}"
            f"{auth})"
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
