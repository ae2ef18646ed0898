"""Model string + arguments + environment → provider and :class:`Route`.

The one place provider environment variables are read, at call time, so that a variable set
after import (or changed between calls) is honoured. Every mistake it can see is raised here as
:class:`InvalidRequestError`, before any I/O, and no message ever holds the key.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Literal
from urllib.parse import urlsplit

from .._config import DEFAULT_AZURE_API_VERSION
from ..exceptions import InvalidRequestError
from ._base import Provider, Route, TokenProvider
from ._family import FAMILY, Family
from ._http import clean_secret
from .azure import AzureProvider
from .openai import OpenAIProvider
from .openai_compatible import OpenAICompatibleProvider

__all__ = ["ANTHROPIC_API_BASE", "OPENAI_API_BASE", "get_llm_provider", "resolve"]

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


def _base(value: Any, name: str = "api_base") -> str:
    if not isinstance(value, str):
        raise InvalidRequestError(f"{name} must be a URL string, got {type(value).__name__}")
    if "?" in value or "#" in value:
        # The endpoint's path is appended to the base, so a query would end up mid-path; the
        # query itself is not shown (it may hold a key).
        raise InvalidRequestError(
            f"{name} must not carry a query string or fragment: give the base URL only "
            "(e.g. https://host/v1); the endpoint path is appended to it"
        )
    return value.strip().rstrip("/")


def _anthropic_base(value: str) -> str:
    """The root URL: an Anthropic base may be given as the root, the root + ``/v1`` or the full
    ``/v1/messages`` URL, and the adapter appends ``/v1/messages`` once."""
    for suffix in ("/v1/messages", "/v1"):
        if value.endswith(suffix):
            return value[: -len(suffix)].rstrip("/")
    return value


def _azure_base(value: str) -> tuple[str, bool]:
    """The resource root, and whether the base named the v1 API (``.../openai/v1``, the
    ``base_url`` Azure's docs give the openai client)."""
    if value.endswith("/openai/v1"):
        return value[: -len("/openai/v1")], True
    if value.endswith("/openai"):
        return value[: -len("/openai")], False
    return value, False


def _key(value: Any, env_var: str | None) -> str | None:
    """The key from the argument, else the environment variable, stripped (see
    :func:`clean_secret`); an empty argument falls back to the environment."""
    key = clean_secret(value, "api_key")
    if key is None and env_var is not None:
        key = clean_secret(_env(env_var), f"the {env_var} environment variable")
    return key


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
    azure_ad_token: str | None = None,
    azure_ad_token_provider: TokenProvider | None = None,
) -> tuple[Provider, Route]:
    """The provider and route for one call.

    - ``openai/<m>``, ``text-completion-openai/<m>`` (LiteLLM's name for text completion
      models), ``gpt-*``, ``chatgpt-*``, ``text-embedding-*``, ``o1``/``o3``/``o4``...:
      OpenAI. Base: ``api_base``, ``OPENAI_BASE_URL``, ``OPENAI_API_BASE``, else
      ``https://api.openai.com/v1``; key: ``api_key`` or ``OPENAI_API_KEY``.
    - ``azure/<deployment>``: Azure OpenAI. Base (required): ``api_base`` or ``AZURE_API_BASE``
      (the resource root; a trailing ``/openai`` or ``/openai/v1`` is understood);
      version: ``api_version``, ``AZURE_API_VERSION``, else ``DEFAULT_AZURE_API_VERSION``
      (``"v1"`` and ``"preview"`` select the ``/openai/v1/...`` routes). Credential, the first
      given of: ``api_key`` (``api-key`` header), ``azure_ad_token``, ``azure_ad_token_provider``
      (``Authorization: Bearer``; the provider is called for every request), the
      ``AZURE_API_KEY`` and ``AZURE_AD_TOKEN`` environment variables.
    - ``anthropic/<m>``, ``claude-*``: Anthropic. Base: ``api_base``, ``ANTHROPIC_API_BASE``,
      ``ANTHROPIC_BASE_URL``, else ``https://api.anthropic.com``; the root, the root + ``/v1``
      and the full ``/v1/messages`` URL all work. Key: ``api_key`` or ``ANTHROPIC_API_KEY``.
      Chat only.
    - ``groq/``, ``together_ai/``, ``mistral/``, ``deepseek/``, ``openrouter/``,
      ``fireworks_ai/``, ``xai/``, ``perplexity/``, ``gemini/``, ``ollama/``, ``ollama_chat/``,
      ``hosted_vllm/``, ``lm_studio/``: the OpenAI-compatible family (``_family.FAMILY``), asked
      for the model without its prefix. Base: ``api_base``, the provider's ``<NAME>_API_BASE``
      variable(s), else its public (or local) default; key: ``api_key``, else its
      ``<NAME>_API_KEY`` variable(s), sent as ``Authorization: Bearer``.
    - Any other model with an explicit ``api_base``: an OpenAI-compatible server, asked for the
      model string as given (``"meta-llama/Llama-3.1-8B"`` stays whole).

    A key is required for the public OpenAI and Anthropic endpoints and Azure's own hosts (where
    an Azure AD token will do); a custom base (a proxy, a local server) may go without one.
    Keys and tokens are stripped of surrounding whitespace; one with a control or non-ASCII
    character inside is refused, never shown.
    """
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequestError(f"model must be a non-empty string, got {model!r}")
    if call_type not in ("chat", "embedding"):
        raise InvalidRequestError(f"call_type must be 'chat' or 'embedding', got {call_type!r}")
    model = model.strip()
    prefix, sep, rest = model.partition("/")
    if sep and prefix == "text-completion-openai":  # LiteLLM's name for OpenAI's /completions
        prefix = "openai"
    if sep and (prefix in _PREFIXES or prefix in FAMILY):
        if not rest:
            raise InvalidRequestError(f"model {model!r} names no model after {prefix + '/'!r}")
        family = FAMILY.get(prefix)
        if family is not None:
            return _family_route(family, model, rest, api_base, api_key, api_version, call_type)
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
            api_key=_key(api_key, None),
            api_version=api_version,
        )
    else:
        known = ", ".join(f"{p}/" for p in (*_PREFIXES, *FAMILY))
        raise InvalidRequestError(
            f"cannot tell which provider serves model {model!r}: prefix it with one of {known} "
            "(or use a gpt-*, o*, text-embedding-* or claude-* name), or pass api_base=... for "
            "an OpenAI-compatible server"
        )

    if prefix == "openai":
        explicit = api_base or _env("OPENAI_BASE_URL") or _env("OPENAI_API_BASE")
        base = _base(explicit or OPENAI_API_BASE)
        key = _key(api_key, "OPENAI_API_KEY")
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
        base, names_v1 = _azure_base(_base(explicit))
        if azure_ad_token_provider is not None and not callable(azure_ad_token_provider):
            raise InvalidRequestError(
                "azure_ad_token_provider must be a function returning a token, got "
                f"{type(azure_ad_token_provider).__name__}"
            )
        # One credential is sent: the first of the arguments, else of the environment.
        key = clean_secret(api_key, "api_key")
        token = None if key else clean_secret(azure_ad_token, "azure_ad_token")
        token_provider = None if key or token else azure_ad_token_provider
        if key is None and token is None and token_provider is None:
            key = clean_secret(_env("AZURE_API_KEY"), "the AZURE_API_KEY environment variable")
            if key is None:
                token = clean_secret(
                    _env("AZURE_AD_TOKEN"), "the AZURE_AD_TOKEN environment variable"
                )
        host = (urlsplit(base).hostname or "").lower()
        if key is None and token is None and token_provider is None and host.endswith(_AZURE_HOSTS):
            raise InvalidRequestError(
                f"no credential for model {model!r}: pass api_key=..., azure_ad_token=... or "
                "azure_ad_token_provider=..., or set the AZURE_API_KEY or AZURE_AD_TOKEN "
                "environment variable"
            )
        version = (
            api_version
            or _env("AZURE_API_VERSION")
            or ("v1" if names_v1 else DEFAULT_AZURE_API_VERSION)
        )
        if not isinstance(version, str):
            raise InvalidRequestError(f"api_version must be a string, got {type(version).__name__}")
        return _AZURE, Route(
            provider=_AZURE.name,
            model=model,
            upstream_model=rest,
            api_base=base,
            api_key=key,
            api_version=version.strip(),
            azure_ad_token=token,
            azure_ad_token_provider=token_provider,
        )

    if call_type == "embedding":
        raise InvalidRequestError(
            f"model {model!r} is served by Anthropic, which has no embeddings API"
        )
    explicit = api_base or _env("ANTHROPIC_API_BASE") or _env("ANTHROPIC_BASE_URL")
    base = _anthropic_base(_base(explicit or ANTHROPIC_API_BASE))
    key = _key(api_key, "ANTHROPIC_API_KEY")
    if key is None and base == ANTHROPIC_API_BASE:
        raise _no_key(model, "ANTHROPIC_API_KEY")
    provider = _anthropic()
    return provider, Route(
        provider=provider.name, model=model, upstream_model=rest, api_base=base, api_key=key
    )


def _family_route(
    family: Family,
    model: str,
    rest: str,
    api_base: str | None,
    api_key: str | None,
    api_version: str | None,
    call_type: str,
) -> tuple[Provider, Route]:
    """A route to a member of the OpenAI-compatible family (see ``_family.FAMILY``)."""
    if call_type == "embedding" and not family.embeddings:
        raise InvalidRequestError(
            f"model {model!r} is served by {family.title}, which has no embeddings API"
        )
    explicit = api_base or next((v for v in map(_env, family.base_env) if v), None)
    if explicit is None and family.default_base is None:
        raise InvalidRequestError(
            f"model {model!r} needs the server's URL: pass api_base=... or set the "
            f"{family.base_env[0]} environment variable"
        )
    base = family.base(_base(explicit if explicit is not None else family.default_base))
    key = clean_secret(api_key, "api_key")
    for name in family.key_env:
        if key is not None:
            break
        key = clean_secret(_env(name), f"the {name} environment variable")
    if key is None and family.key_required and base == family.default_base:
        raise _no_key(model, " or ".join(family.key_env[:2]))
    return _COMPATIBLE, Route(
        provider=family.prefix,
        model=model,
        upstream_model=family.upstream(rest),
        api_base=base,
        api_key=key,
        api_version=api_version,
    )


def get_llm_provider(
    model: str,
    custom_llm_provider: str | None = None,
    api_base: str | None = None,
    api_key: str | None = None,
) -> tuple[str, str, str | None, str | None]:
    """LiteLLM's ``get_llm_provider``: ``(model, custom_llm_provider, dynamic_api_key,
    api_base)`` for a model string — the model name the provider is asked for, the provider
    (``"openai"``, ``"azure"``, ``"anthropic"``, ``"groq"``, ... or ``"openai_compatible"``),
    the key found (argument or environment; ``None`` if none) and the base URL the call would
    use. ``custom_llm_provider`` names the provider of a model given without its prefix.
    Raises :class:`InvalidRequestError` (a ``ValueError``) for a model no provider serves.
    No I/O; a missing key or server URL is not an error here (``None`` in its place).
    """
    if custom_llm_provider and not model.startswith(custom_llm_provider + "/"):
        model = f"{custom_llm_provider}/{model}"
    try:
        _, route = resolve(model, api_base=api_base, api_key=api_key)
    except InvalidRequestError:
        # Name the provider all the same: a missing key or server URL is the call's business,
        # not the lookup's.
        try:
            _, route = resolve(model, api_base=api_base, api_key="unused")
        except InvalidRequestError:
            prefix, sep, rest = model.strip().partition("/")
            if sep and rest and (prefix in _PREFIXES or prefix in FAMILY):
                return rest, prefix, None, api_base
            raise
        return route.upstream_model, route.provider, None, route.api_base
    return route.upstream_model, route.provider, route.api_key, route.api_base
