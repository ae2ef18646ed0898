"""Model string + arguments + environment → provider and :class:`Route`.

The one place provider environment variables are read, at call time, so that a variable set
after import (or changed between calls) is honoured. Every mistake it can see is raised here as
:class:`InvalidRequestError`, before any I/O, and no message ever holds the key.
"""

from __future__ import annotations

import functools
import os
from typing import Literal
from urllib.parse import urlsplit

from .._config import DEFAULT_AZURE_API_VERSION
from ..exceptions import InvalidRequestError
from ._base import Provider, Route
from .azure import AzureProvider
from .openai import OpenAIProvider
from .openai_compatible import OpenAICompatibleProvider

__all__ = ["ANTHROPIC_API_BASE", "OPENAI_API_BASE", "resolve"]

OPENAI_API_BASE = "https://api.openai.com/v1"
ANTHROPIC_API_BASE = "https://api.anthropic.com"

_OPENAI = OpenAIProvider()
_AZURE = AzureProvider()
_COMPATIBLE = OpenAICompatibleProvider()

_PREFIXES = ("openai", "azure", "anthropic")
_OPENAI_NAMES = ("gpt-", "chatgpt-", "text-embedding-")
# Azure OpenAI's own hosts: a key is required there, unlike at a proxy or test server.
_AZURE_HOSTS = (".openai.azure.com", ".cognitiveservices.azure.com", ".services.ai.azure.com")


@functools.cache
def _anthropic() -> Provider:
    # Imported on first use: callers of OpenAI-shaped APIs only do not pay for the translation.
    from .anthropic import AnthropicProvider

    return AnthropicProvider()


def _env(name: str) -> str | None:
    return os.environ.get(name) or None


def _base(value: str) -> str:
    return value.rstrip("/")


def _is_openai_name(model: str) -> bool:
    return model.startswith(_OPENAI_NAMES) or (
        len(model) > 1 and model[0] == "o" and model[1].isdigit()
    )


def _no_key(model: str, env_var: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"no API key for model {model!r}: pass api_key=... or set the {env_var} "
        "environment variable"
    )


def resolve(
    model: str,
    *,
    api_base: str | None = None,
    api_key: str | None = None,
    api_version: str | None = None,
    call_type: Literal["chat", "embedding"] = "chat",
) -> tuple[Provider, Route]:
    """The provider and route for one call.

    - ``openai/<m>``, ``gpt-*``, ``chatgpt-*``, ``text-embedding-*``, ``o1``/``o3``/``o4``...:
      OpenAI. Base: ``api_base``, ``OPENAI_BASE_URL``, ``OPENAI_API_BASE``, else
      ``https://api.openai.com/v1``; key: ``api_key`` or ``OPENAI_API_KEY``.
    - ``azure/<deployment>``: Azure OpenAI. Base (required): ``api_base`` or ``AZURE_API_BASE``;
      version: ``api_version``, ``AZURE_API_VERSION``, else ``DEFAULT_AZURE_API_VERSION``;
      key: ``api_key`` or ``AZURE_API_KEY``.
    - ``anthropic/<m>``, ``claude-*``: Anthropic. Base: ``api_base``, ``ANTHROPIC_API_BASE``,
      ``ANTHROPIC_BASE_URL``, else ``https://api.anthropic.com``; key: ``api_key`` or
      ``ANTHROPIC_API_KEY``. Chat only.
    - Any other model with an explicit ``api_base``: an OpenAI-compatible server, asked for the
      model string as given (``"meta-llama/Llama-3.1-8B"`` stays whole).

    A key is required for the public OpenAI and Anthropic endpoints and Azure's own hosts; a
    custom base (a proxy, a local server) may go without one.
    """
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequestError(f"model must be a non-empty string, got {model!r}")
    if call_type not in ("chat", "embedding"):
        raise InvalidRequestError(f"call_type must be 'chat' or 'embedding', got {call_type!r}")
    model = model.strip()
    prefix, sep, rest = model.partition("/")
    if sep and prefix in _PREFIXES:
        if not rest:
            raise InvalidRequestError(f"model {model!r} names no model after {prefix + '/'!r}")
    elif _is_openai_name(model):
        prefix, rest = "openai", model
    elif model.startswith("claude-"):
        prefix, rest = "anthropic", model
    elif api_base:
        return _COMPATIBLE, Route(
            provider=_COMPATIBLE.name,
            model=model,
            upstream_model=model,
            api_base=_base(api_base),
            api_key=api_key or None,
            api_version=api_version,
        )
    else:
        known = ", ".join(f"{p}/" for p in _PREFIXES)
        raise InvalidRequestError(
            f"cannot tell which provider serves model {model!r}: prefix it with one of {known} "
            "(or use a gpt-*, o*, text-embedding-* or claude-* name), or pass api_base=... for "
            "an OpenAI-compatible server"
        )

    if prefix == "openai":
        explicit = api_base or _env("OPENAI_BASE_URL") or _env("OPENAI_API_BASE")
        base = _base(explicit or OPENAI_API_BASE)
        key = api_key or _env("OPENAI_API_KEY")
        if key is None and base == OPENAI_API_BASE:
            raise _no_key(model, "OPENAI_API_KEY")
        return _OPENAI, Route(
            provider=_OPENAI.name, model=model, upstream_model=rest, api_base=base, api_key=key
        )

    if prefix == "azure":
        explicit = api_base or _env("AZURE_API_BASE")
        if not explicit:
            raise InvalidRequestError(
                f"model {model!r} needs the Azure resource URL: pass api_base=... or set the "
                "AZURE_API_BASE environment variable"
            )
        base = _base(explicit)
        key = api_key or _env("AZURE_API_KEY")
        host = (urlsplit(base).hostname or "").lower()
        if key is None and host.endswith(_AZURE_HOSTS):
            raise _no_key(model, "AZURE_API_KEY")
        version = api_version or _env("AZURE_API_VERSION") or DEFAULT_AZURE_API_VERSION
        return _AZURE, Route(
            provider=_AZURE.name,
            model=model,
            upstream_model=rest,
            api_base=base,
            api_key=key,
            api_version=version,
        )

    if call_type == "embedding":
        raise InvalidRequestError(
            f"model {model!r} is served by Anthropic, which has no embeddings API"
        )
    explicit = api_base or _env("ANTHROPIC_API_BASE") or _env("ANTHROPIC_BASE_URL")
    base = _base(explicit or ANTHROPIC_API_BASE)
    key = api_key or _env("ANTHROPIC_API_KEY")
    if key is None and base == ANTHROPIC_API_BASE:
        raise _no_key(model, "ANTHROPIC_API_KEY")
    provider = _anthropic()
    return provider, Route(
        provider=provider.name, model=model, upstream_model=rest, api_base=base, api_key=key
    )
