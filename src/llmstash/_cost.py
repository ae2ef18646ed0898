"""What a call costs in USD, from a small table of list prices.

Prices are USD per 1M tokens, ``(input, output)``, as listed on OpenAI's and Anthropic's
pricing pages (platform.openai.com/docs/pricing, docs.anthropic.com/en/docs/about-claude/pricing)
in August 2025. They are standard (not batch or priority) prices of the
tokens counted in :class:`~llmstash.types.Usage`: discounts for cached prompt tokens and
surcharges for cache writes are not applied, so for calls that use prompt caching the figure is
an upper bound (OpenAI) or an estimate (Anthropic).

A model string is priced when, after an ``openai/``, ``anthropic/`` or ``azure/`` prefix is
removed, it is a model of the table or one followed by a version suffix: a date
(``gpt-4o-mini-2024-07-18``, ``claude-3-5-sonnet-20241022``), ``-latest`` or ``-0``
(``claude-sonnet-4-0``). The longest such match wins. Anything else is unknown and priced
``None``, rather than guessed: ``o1-pro`` is not ``o1``, and an Azure deployment is priced only
if it is named after a model. Azure's list prices for global deployments are OpenAI's.
"""

from __future__ import annotations

import functools
import re
from typing import Final

from .types import Usage

__all__ = ["completion_cost", "embedding_cost"]

_CHAT_PRICES: Final[dict[str, tuple[float, float]]] = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-2024-05-13": (5.00, 15.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "o1": (15.00, 60.00),
    "o1-mini": (1.10, 4.40),
    "o3-mini": (1.10, 4.40),
    "o4-mini": (1.10, 4.40),
    "gpt-3.5-turbo": (0.50, 1.50),
    "gpt-3.5-turbo-0125": (0.50, 1.50),
    "gpt-35-turbo": (0.50, 1.50),
    "claude-3-haiku": (0.25, 1.25),
    "claude-3-opus": (15.00, 75.00),
    "claude-3-5-haiku": (0.80, 4.00),
    "claude-3-5-sonnet": (3.00, 15.00),
    "claude-3-7-sonnet": (3.00, 15.00),
    "claude-sonnet-4": (3.00, 15.00),
    "claude-opus-4": (15.00, 75.00),
    "claude-opus-4-1": (15.00, 75.00),
}
"""Chat models: USD per 1M ``(prompt, completion)`` tokens."""

_EMBEDDING_PRICES: Final[dict[str, float]] = {
    "text-embedding-3-small": 0.02,
    "text-embedding-3-large": 0.13,
    "text-embedding-ada-002": 0.10,
}
"""Embedding models: USD per 1M input tokens."""

_CHAT_MODELS: Final = tuple(_CHAT_PRICES)
_EMBEDDING_MODELS: Final = tuple(_EMBEDDING_PRICES)
_PROVIDER_PREFIXES: Final = ("openai/", "anthropic/", "azure/")
_VERSION_SUFFIX: Final = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8}|latest|0)")


def completion_cost(model: str, usage: Usage | None) -> float | None:
    """USD cost of a chat completion's tokens, or ``None`` if the model or usage is unknown."""
    if usage is None:
        return None
    prices = _chat_prices(model)
    if prices is None:
        return None
    prompt, completion = prices
    return (usage.prompt_tokens * prompt + usage.completion_tokens * completion) / 1_000_000


def embedding_cost(model: str, usage: Usage | None) -> float | None:
    """USD cost of an embedding call's input tokens, or ``None`` if the model or usage is
    unknown."""
    if usage is None:
        return None
    price = _EMBEDDING_PRICES.get(_table_name(model, _EMBEDDING_MODELS) or "")
    if price is None:
        return None
    return usage.prompt_tokens * price / 1_000_000


@functools.lru_cache(maxsize=512)
def _chat_prices(model: str) -> tuple[float, float] | None:
    """The chat price table's entry for ``model`` (memoised by model name alone: the table is
    fixed, and hashing it with every lookup would cost more than the lookup)."""
    return _CHAT_PRICES.get(_table_name(model, _CHAT_MODELS) or "")


@functools.lru_cache(maxsize=512)
def _table_name(model: str, known: tuple[str, ...]) -> str | None:
    """The entry of ``known`` that prices ``model``, by the rules of the module docstring."""
    name = model
    for prefix in _PROVIDER_PREFIXES:
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    if name in known:
        return name
    matches = [
        entry
        for entry in known
        if name.startswith(entry) and _VERSION_SUFFIX.fullmatch(name, len(entry))
    ]
    return max(matches, key=len, default=None)
