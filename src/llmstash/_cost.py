"""What calls cost in USD: the price table, LiteLLM's cost functions, and the pricing of calls.

The table (``_prices.json`` beside this module, dated by its ``"updated"`` field) holds the
standard-tier list prices, in USD per token, of the models the providers here serve: OpenAI's
chat, reasoning, completion and embedding models, Anthropic's Claude models, and the best-known
models of the OpenAI-compatible services under their LiteLLM names (``groq/…``,
``together_ai/…``, ``mistral/…``, ``deepseek/…``, ``xai/…``, ``gemini/…``, ``perplexity/…``,
``cerebras/…``). Entries have LiteLLM's shape (``input_cost_per_token``,
``output_cost_per_token``, ``cache_read_input_token_cost``, ``cache_creation_input_token_cost``,
``*_above_<N>k_tokens`` for long prompts, ``litellm_provider``, ``mode``, ``max_*_tokens``). It is
read on first use, once per process, and is :data:`model_cost`, the dict that
:func:`register_model` extends.

How a model string finds its entry: the string itself; else, after an ``openai/``,
``anthropic/``, ``azure/`` or ``text-completion-openai/`` prefix is removed, the rest; else a
model of the table followed by a version suffix (a date ``-2024-07-18`` / ``-20241022``, a
``-0613``-style snapshot, ``-latest`` or ``-0``), the longest such match. Anything else has no
price rather than a guessed one: ``o1-pro`` is not ``o1``, and an Azure deployment is priced if
it is named after a model (or by the model name Azure answers with, see :func:`price_usage`).

How tokens are priced: ``usage.prompt_tokens`` counts every prompt token, cached or not (as
OpenAI reports it, and as llmstash reports Anthropic's usage). Of those, the
``prompt_tokens_details.cached_tokens`` (or ``cache_read_input_tokens``) are priced at the
cache-read price and the ``prompt_tokens_details.cache_creation_tokens`` (or
``cache_creation_input_tokens``) at the cache-write price (Anthropic's 5-minute writes), each
falling back to the input price; the rest at the input price; completion tokens, reasoning tokens
included, at the output price. A prompt longer than a tier's threshold is priced, whole, at that
tier's prices when the entry has them.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from .exceptions import InvalidRequestError
from .types import Usage

__all__ = ["completion_cost", "cost_per_token", "model_cost", "register_model"]

_DATA_FILE: Final = os.path.join(os.path.dirname(__file__), "_prices.json")
_PREFIXES: Final = ("openai/", "anthropic/", "azure/", "text-completion-openai/")
_VERSION_SUFFIX: Final = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8}|\d{4}|latest|0)")
_TIER: Final = re.compile(r"input_cost_per_token_above_(\d+)k_tokens")
_TIERED_FROM: Final = 100_000
"""No tier in the table starts below this many prompt tokens: shorter prompts skip the search."""
_MEMO_LIMIT: Final = 4096
_SIZE_FIELDS: Final = ("max_tokens", "max_input_tokens", "max_output_tokens")


class _PriceTable(dict[str, dict[str, Any]]):
    """:data:`model_cost`: a plain dict of model name → entry, which forgets the memoised name
    matches whenever a model is added, replaced or removed."""

    def __setitem__(self, key: str, value: dict[str, Any]) -> None:
        super().__setitem__(key, value)
        _resolved.clear()

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        _resolved.clear()

    def update(self, *args: Any, **kwargs: Any) -> None:
        super().update(*args, **kwargs)
        _resolved.clear()

    def setdefault(self, key: str, default: Any = None) -> Any:
        _resolved.clear()
        return super().setdefault(key, default)

    def pop(self, key: str, *default: Any) -> Any:
        _resolved.clear()
        return super().pop(key, *default)

    def popitem(self) -> tuple[str, dict[str, Any]]:
        _resolved.clear()
        return super().popitem()

    def clear(self) -> None:
        super().clear()
        _resolved.clear()

    def __ior__(self, other: Any) -> _PriceTable:  # type: ignore[override,misc]
        super().update(other)
        _resolved.clear()
        return self


if TYPE_CHECKING:
    model_cost: _PriceTable
    """The price table (LiteLLM's name): model name → entry; read on first access."""

_table: _PriceTable | None = None
_updated: str | None = None
_resolved: dict[str, str | None] = {}
"""Model string → the table key that prices it (``None``: none), for strings not in the table."""


def _prices() -> _PriceTable:
    """The price table, read from the data file on first use."""
    global _table, _updated
    if _table is None:
        import msgspec  # a dependency already; decoding 120 KB takes about a millisecond

        with open(_DATA_FILE, "rb") as f:
            data = msgspec.json.decode(f.read())
        _updated = data["updated"]
        _table = _PriceTable(data["models"])
    return _table


def prices_updated() -> str:
    """The date (``YYYY-MM-DD``) of the list prices the shipped table holds."""
    _prices()
    assert _updated is not None
    return _updated


def __getattr__(name: str) -> Any:
    if name == "model_cost":
        return _prices()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _entry(model: str) -> dict[str, Any] | None:
    """The table entry that prices ``model`` (see the module docstring), or ``None``."""
    table = _table if _table is not None else _prices()
    found = table.get(model)
    if found is not None:
        return found
    try:
        key = _resolved[model]
    except KeyError:
        key = _match(model, table)
        if len(_resolved) >= _MEMO_LIMIT:
            _resolved.clear()
        _resolved[model] = key
    return None if key is None else table.get(key)


def _match(model: str, table: Mapping[str, Any]) -> str | None:
    names = [model]
    for prefix in _PREFIXES:
        if model.startswith(prefix) and len(model) > len(prefix):
            names.append(model[len(prefix) :])
            break
    for name in names[1:]:
        if name in table:
            return name
    for name in names:
        best = None
        for key in table:
            if (
                len(key) < len(name)
                and name.startswith(key)
                and (best is None or len(key) > len(best))
                and _VERSION_SUFFIX.fullmatch(name, len(key))
            ):
                best = key
        if best is not None:
            return best
    return None


def _field(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def token_counts(usage: Any) -> tuple[int, int, int, int]:
    """``(prompt, completion, cache_read, cache_write)`` tokens of a usage object: llmstash's
    :class:`~llmstash.types.Usage`, OpenAI's or LiteLLM's, or a dict of the same fields.
    ``prompt`` includes the cached tokens."""
    prompt = _field(usage, "prompt_tokens")
    completion = _field(usage, "completion_tokens")
    details = _field(usage, "prompt_tokens_details")
    read = _int(_field(details, "cached_tokens")) or _int(_field(usage, "cache_read_input_tokens"))
    write = _int(_field(details, "cache_creation_tokens")) or _int(
        _field(usage, "cache_creation_input_tokens")
    )
    if prompt is None and completion is None:  # Anthropic's or the Responses API's names
        completion = _field(usage, "output_tokens")
        prompt = _int(_field(usage, "input_tokens"))
        if _field(usage, "cache_read_input_tokens") is not None:  # Anthropic: input is uncached
            prompt += read + write
        else:
            read = read or _int(_field(_field(usage, "input_tokens_details"), "cached_tokens"))
    return _int(prompt), _int(completion), read, write


def _split(
    entry: Mapping[str, Any], prompt: int, completion: int, read: int, write: int
) -> tuple[float, float]:
    """``(prompt cost, completion cost)`` of these tokens at ``entry``'s prices."""
    get = entry.get
    tier = ""
    if prompt > _TIERED_FROM:
        best = 0
        for name in entry:
            m = _TIER.fullmatch(name)
            if m is not None and best < int(m[1]) * 1000 < prompt:
                best = int(m[1]) * 1000
        if best:
            tier = f"_above_{best // 1000}k_tokens"
    base = get("input_cost_per_token") or 0.0
    out = get("output_cost_per_token") or 0.0
    if tier:
        base = get("input_cost_per_token" + tier, base)
        out = get("output_cost_per_token" + tier, out)
    if read or write:
        read_price = get("cache_read_input_token_cost" + tier, get("cache_read_input_token_cost"))
        write_price = get(
            "cache_creation_input_token_cost" + tier, get("cache_creation_input_token_cost")
        )
        read_price = base if read_price is None else read_price
        write_price = base if write_price is None else write_price
        uncached = max(prompt - read - write, 0)
        return uncached * base + read * read_price + write * write_price, completion * out
    return prompt * base, completion * out


def price_usage(model: str, usage: Any, answered_by: str | None = None) -> float | None:
    """USD cost of ``usage`` at ``model``'s list prices, or ``None`` if the usage or the price
    is unknown. ``answered_by`` (the model named in the response) is tried when ``model`` has no
    price: Azure deployments and aliases answer with the model that served them."""
    if usage is None:
        return None
    table = _table if _table is not None else _prices()
    entry = table.get(model) or _entry(model)
    if entry is None and answered_by and answered_by != model:
        entry = _entry(answered_by)
    if entry is None:
        return None
    if (
        type(usage) is Usage
        and usage.prompt_tokens_details is None
        and usage.prompt_tokens <= _TIERED_FROM
    ):  # the common case, on every call's path: no cache discounts, no tiers
        return usage.prompt_tokens * (entry.get("input_cost_per_token") or 0.0) + (
            usage.completion_tokens * (entry.get("output_cost_per_token") or 0.0)
        )
    prompt_cost, completion_cost = _split(entry, *token_counts(usage))
    return prompt_cost + completion_cost


def custom_usage_cost(prices: tuple[float | None, float | None], usage: Any) -> float | None:
    """USD cost of ``usage`` at a call's own ``(input_cost_per_token, output_cost_per_token)``
    (a price not given counts as 0; cached tokens are priced as any prompt token)."""
    if usage is None:
        return None
    prompt, completion, _, _ = token_counts(usage)
    return prompt * (prices[0] or 0.0) + completion * (prices[1] or 0.0)


def _not_mapped(model: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"model {model!r} isn't mapped: llmstash knows no price for it. Register one with "
        f"llmstash.register_model({{{model!r}: {{'input_cost_per_token': ..., "
        "'output_cost_per_token': ...}}), or pass custom_cost_per_token={...}"
    )


def _custom_prices(custom: Any, where: str) -> tuple[float | None, float | None]:
    if not isinstance(custom, Mapping):
        raise InvalidRequestError(
            f"{where} must be a dict like {{'input_cost_per_token': 1e-06, "
            f"'output_cost_per_token': 2e-06}}, got {type(custom).__name__}"
        )
    return (
        _cost_value(custom.get("input_cost_per_token"), f"{where}['input_cost_per_token']"),
        _cost_value(custom.get("output_cost_per_token"), f"{where}['output_cost_per_token']"),
    )


def _cost_value(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise InvalidRequestError(f"{name} must be a number >= 0 (USD per token), got {value!r}")
    return float(value)


def _model_name(model: Any, custom_llm_provider: Any) -> str:
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequestError(f"model must be a non-empty string, got {model!r}")
    name: str = model.strip()
    if (
        isinstance(custom_llm_provider, str)
        and custom_llm_provider
        and not name.startswith(custom_llm_provider + "/")
    ):
        qualified = f"{custom_llm_provider}/{name}"
        if _entry(qualified) is not None:
            return qualified
    return name


def cost_per_token(
    model: str = "",
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
    *,
    cache_read_input_tokens: int = 0,
    cache_creation_input_tokens: int = 0,
    custom_llm_provider: str | None = None,
    custom_cost_per_token: Mapping[str, float] | None = None,
    usage_object: Any = None,
    **litellm_only: Any,
) -> tuple[float, float]:
    """``(prompt_cost, completion_cost)`` in USD for these token counts of ``model``, as
    LiteLLM's ``cost_per_token``.

    ``prompt_tokens`` counts every prompt token; ``cache_read_input_tokens`` and
    ``cache_creation_input_tokens`` say how many of them were read from or written to the
    provider's prompt cache, and are priced at its cache prices. ``usage_object`` (a
    response's ``usage``) may stand for all the counts. ``custom_cost_per_token``
    (``{"input_cost_per_token": ..., "output_cost_per_token": ...}``) replaces the table's
    prices; ``custom_llm_provider`` qualifies a bare model name (``"groq"`` + ``"llama-…"``).
    Other LiteLLM arguments (``region_name``, ``service_tier``, …) are accepted and ignored:
    standard-tier prices are used.

    Raises :class:`~llmstash.exceptions.InvalidRequestError` (a ``ValueError``) for a model
    with no known price ("isn't mapped") or counts that are not non-negative integers.
    """
    del litellm_only
    if usage_object is not None:
        prompt, completion, read, write = token_counts(usage_object)
    else:
        for value, name in (
            (prompt_tokens, "prompt_tokens"),
            (completion_tokens, "completion_tokens"),
            (cache_read_input_tokens, "cache_read_input_tokens"),
            (cache_creation_input_tokens, "cache_creation_input_tokens"),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidRequestError(f"{name} must be an integer >= 0, got {value!r}")
        prompt, completion = prompt_tokens, completion_tokens
        read, write = cache_read_input_tokens, cache_creation_input_tokens
    if custom_cost_per_token is not None:
        given = _custom_prices(custom_cost_per_token, "custom_cost_per_token")
        return prompt * (given[0] or 0.0), completion * (given[1] or 0.0)
    name = _model_name(model, custom_llm_provider)
    entry = _entry(name)
    if entry is None:
        raise _not_mapped(name)
    return _split(entry, prompt, completion, read, write)


def completion_cost(
    completion_response: Any = None,
    model: str | None = None,
    *,
    messages: Any = None,
    prompt: str = "",
    completion: str = "",
    custom_llm_provider: str | None = None,
    custom_cost_per_token: Mapping[str, float] | None = None,
    **litellm_only: Any,
) -> float:
    """USD cost of a call's tokens, from its response, as LiteLLM's ``completion_cost``.

    ``completion_response`` is what ``completion``/``acompletion``/``embedding`` returned (a
    stream once read to its end, or an OpenAI-shaped object or dict with ``model`` and
    ``usage``); it is priced by its usage:
    prompt and completion tokens, with cached prompt tokens at the provider's cache prices.
    ``model`` overrides the response's model name. The call's own ``input_cost_per_token`` /
    ``output_cost_per_token``, recorded on the response, win over the table, and
    ``custom_cost_per_token`` over both.

    This is what the tokens cost at list prices, whether or not the response came from the
    cache; what a call really spent is ``response._hidden_params["response_cost"]`` (0 on a
    hit). llmstash counts no tokens itself, so a response is needed: LiteLLM's
    ``prompt=``/``completion=`` strings are refused (use :func:`cost_per_token` with counts).
    Other LiteLLM arguments (``call_type``, ``region_name``, …) are accepted and ignored.

    Raises :class:`~llmstash.exceptions.InvalidRequestError` (a ``ValueError``) when the model
    "isn't mapped" (no known price; :func:`register_model` adds one), or when the response
    carries no usage. Calls themselves never fail for want of a price: their
    ``response_cost`` is ``None`` then.
    """
    del litellm_only
    if completion_response is None:
        if prompt or completion or messages:
            raise InvalidRequestError(
                "completion_cost() prices a response's usage; llmstash counts no tokens "
                "itself. Pass completion_response=..., or use cost_per_token(model=..., "
                "prompt_tokens=..., completion_tokens=...)"
            )
        raise InvalidRequestError("completion_cost() needs completion_response=...")
    if not isinstance(completion_response, Mapping) and not hasattr(completion_response, "usage"):
        assembled = getattr(completion_response, "response", None)  # a stream read to its end
        if assembled is not None:
            completion_response = assembled
    usage = _field(completion_response, "usage")
    if usage is None:
        raise InvalidRequestError(
            "the response carries no usage to price (a stream is priced once read to its end, "
            "and only if the provider reported usage: stream_options={'include_usage': True})"
        )
    if custom_cost_per_token is not None:
        return _checked(
            custom_usage_cost(_custom_prices(custom_cost_per_token, "custom_cost_per_token"), usage)
        )
    hidden = getattr(completion_response, "_hidden_params", None)
    recorded = hidden.get("custom_cost_per_token") if isinstance(hidden, Mapping) else None
    if recorded is not None and model is None:
        return _checked(custom_usage_cost(_custom_prices(recorded, "custom_cost_per_token"), usage))
    name = _model_name(
        model if model is not None else _field(completion_response, "model"), custom_llm_provider
    )
    cost = price_usage(name, usage)
    if cost is None:
        raise _not_mapped(name)
    return cost


def _checked(cost: float | None) -> float:
    assert cost is not None
    return cost


def register_model(model_cost: Mapping[str, Mapping[str, Any]] | str) -> dict[str, Any]:
    """Add models to the price table, or change their prices, as LiteLLM's ``register_model``.

    ``model_cost`` maps model names to entries in LiteLLM's shape::

        llmstash.register_model({
            "my-finetune": {
                "input_cost_per_token": 3e-06,
                "output_cost_per_token": 1.2e-05,
                "cache_read_input_token_cost": 3e-07,
                "litellm_provider": "openai",
                "max_tokens": 8192,
            },
        })

    An entry for a model already in the table updates it (fields not given are kept). It may
    also be the path of a JSON file of that shape (LiteLLM's ``model_prices_and_context_window``
    file works); a URL is refused, since llmstash never downloads prices. Prices are USD per
    token, numbers >= 0; everything is checked before anything changes. Returns
    :data:`model_cost`. Calls made afterwards are priced with the new entries.
    """
    if isinstance(model_cost, str):
        if model_cost.startswith(("http://", "https://")):
            raise InvalidRequestError(
                "register_model() does not download price tables: fetch the JSON yourself and "
                "pass the dict (or a local file's path)"
            )
        import msgspec

        try:
            with open(model_cost, "rb") as f:
                loaded = msgspec.json.decode(f.read())
        except (OSError, msgspec.DecodeError) as exc:
            raise InvalidRequestError(
                f"cannot read a price table from {model_cost!r}: {exc}"
            ) from None
        if not isinstance(loaded, dict):
            raise InvalidRequestError(f"{model_cost!r} holds no JSON object of models")
        loaded.pop("sample_spec", None)  # LiteLLM's file documents its fields under this key
        model_cost = loaded
    if not isinstance(model_cost, Mapping):
        raise InvalidRequestError(
            "register_model() takes a dict of model name -> prices, got "
            f"{type(model_cost).__name__}"
        )
    checked: dict[str, dict[str, Any]] = {}
    for name, entry in model_cost.items():
        if not isinstance(name, str) or not name.strip():
            raise InvalidRequestError(f"model names must be non-empty strings, got {name!r}")
        if not isinstance(entry, Mapping):
            raise InvalidRequestError(
                f"the entry for {name!r} must be a dict of prices, got {type(entry).__name__}"
            )
        for field, value in entry.items():
            if not isinstance(field, str):
                raise InvalidRequestError(f"the entry for {name!r} has a non-string key {field!r}")
            if ("cost" in field and not isinstance(value, Mapping)) or field.endswith("_per_token"):
                _cost_value(value, f"{name!r}: {field}")
            elif (
                field in _SIZE_FIELDS
                and value is not None
                and (isinstance(value, bool) or not isinstance(value, int) or value < 0)
            ):
                raise InvalidRequestError(
                    f"{name!r}: {field} must be an integer >= 0, got {value!r}"
                )
        checked[name.strip()] = dict(entry)
    table = _prices()
    for name, entry in checked.items():
        table[name] = {**table.get(name, {}), **entry}
    return table
