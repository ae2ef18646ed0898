"""Azure OpenAI: OpenAI's wire format under per-deployment URLs, or under ``/openai/v1`` for the
v1 API, authenticated by an ``api-key`` header or an Azure AD (Entra ID) bearer token."""

from __future__ import annotations

from urllib.parse import quote

from .._config import DEFAULT_AZURE_API_VERSION
from ._base import Route
from .openai import OpenAIProvider

__all__ = ["AzureProvider"]

_V1_VERSIONS = ("v1", "preview")
"""``api_version`` values that select the v1 API (``/openai/v1/...``, model in the body)."""


def _version(route: Route) -> str:
    return route.api_version or DEFAULT_AZURE_API_VERSION


class AzureProvider(OpenAIProvider):
    """Azure OpenAI.

    - Dated versions: ``POST {api_base}/openai/deployments/{deployment}/chat/completions
      ?api-version=V`` (and ``/embeddings``).
    - ``api_version="v1"``: ``POST {api_base}/openai/v1/chat/completions`` with no
      ``api-version``; ``"preview"``: the same with ``api-version=preview``. The deployment is
      the body's ``model``.
    - The Responses API: ``POST {api_base}/openai/responses?api-version=V`` for a dated
      version (the deployment is the body's ``model``), ``/openai/v1/responses`` for ``v1`` and
      ``preview``. Text completion: ``.../deployments/{deployment}/completions``.

    ``route.upstream_model`` is the deployment, always sent as ``model`` too (the dated routes
    ignore it). Credentials: the key in the ``api-key`` header, else an Azure AD token as
    ``Authorization: Bearer`` (a token provider's token is set per attempt by the sender).
    """

    name = "azure"

    def url(self, route: Route, endpoint: str) -> str:
        """The URL for ``endpoint`` (``"chat/completions"``, ``"embeddings"``)."""
        if _version(route).lower() in _V1_VERSIONS:
            return f"{route.api_base}/openai/v1/{endpoint}"
        if endpoint == "responses":
            # The Responses API has no deployment in its path: the deployment is the body's
            # ``model``, under a dated (preview) api-version.
            return f"{route.api_base}/openai/responses"
        deployment = quote(route.upstream_model, safe="")
        return f"{route.api_base}/openai/deployments/{deployment}/{endpoint}"

    def query(self, route: Route) -> dict[str, str] | None:
        """``api-version``: the dated version, ``preview``, or none for ``v1``."""
        version = _version(route)
        if version.lower() == "v1":
            return None
        if version.lower() == "preview":
            return {"api-version": "preview"}
        return {"api-version": version}

    def headers(self, route: Route) -> dict[str, str]:
        """``api-key`` with a key, else ``Authorization: Bearer`` with a fixed Azure AD token;
        nothing otherwise."""
        if route.api_key:
            return {"api-key": route.api_key}
        if route.azure_ad_token:
            return {"authorization": f"Bearer {route.azure_ad_token}"}
        return {}
