"""Azure OpenAI: OpenAI's wire format under per-deployment URLs with an ``api-key`` header."""

from __future__ import annotations

from urllib.parse import quote

from .._config import DEFAULT_AZURE_API_VERSION
from ._base import Route
from .openai import OpenAIProvider

__all__ = ["AzureProvider"]


class AzureProvider(OpenAIProvider):
    """``POST {api_base}/openai/deployments/{deployment}/chat/completions?api-version=V`` (and
    ``/embeddings``), key in the ``api-key`` header. ``route.upstream_model`` is the deployment;
    it is also sent as ``model``, which Azure ignores."""

    name = "azure"

    def url(self, route: Route, endpoint: str) -> str:
        """The deployment's URL for ``endpoint``."""
        deployment = quote(route.upstream_model, safe="")
        return f"{route.api_base}/openai/deployments/{deployment}/{endpoint}"

    def query(self, route: Route) -> dict[str, str]:
        """``api-version``, which every Azure request needs."""
        return {"api-version": route.api_version or DEFAULT_AZURE_API_VERSION}

    def headers(self, route: Route) -> dict[str, str]:
        """The ``api-key`` header (none when there is no key)."""
        return {"api-key": route.api_key} if route.api_key else {}
