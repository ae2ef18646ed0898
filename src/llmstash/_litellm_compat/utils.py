"""``litellm.utils`` under :func:`llmstash.install_as_litellm`: the helpers frameworks ask
LiteLLM before a call (what a model supports, what it costs, how many tokens a prompt is) and
after a stream (the response its chunks add up to).

LiteLLM answers the capability questions from its model map of thousands of models; llmstash
knows the OpenAI and Anthropic families it serves. Where a model is not one of those, the
answers are the conservative ones: it supports nothing optional (``False``), its parameters are
the plain OpenAI chat parameters, and ``get_model_info`` raises as LiteLLM does for a model it
has not mapped.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Final

from .. import _cost
from .._streaming import assemble_chunks
from ..exceptions import InvalidRequestError
from ..providers import _resolve
from ..providers._family import FAMILY
from ..types import ModelResponse, ModelResponseStream

__all__ = [
    "get_llm_provider",
    "get_model_info",
    "get_supported_openai_params",
    "stream_chunk_builder",
    "supports_function_calling",
    "supports_reasoning",
    "supports_response_schema",
    "supports_vision",
    "token_counter",
]

# Parameters of OpenAI's chat completions endpoint that LiteLLM lists for OpenAI models.
_OPENAI_PARAMS: Final = (
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "max_tokens",
    "max_completion_tokens",
    "modalities",
    "prediction",
    "n",
    "presence_penalty",
    "seed",
    "stop",
    "stream",
    "stream_options",
    "temperature",
    "top_p",
    "tools",
    "tool_choice",
    "function_call",
    "functions",
    "max_retries",
    "extra_headers",
    "parallel_tool_calls",
    "audio",
    "service_tier",
    "store",
    "response_format",
    "user",
)
# Reasoning models (o-series) take reasoning_effort and refuse the sampling penalties,
# logprobs and parallel_tool_calls.
_REASONING_DROPS: Final = frozenset(
    {"frequency_penalty", "presence_penalty", "logprobs", "top_logprobs", "top_p"}
)
_ANTHROPIC_PARAMS: Final = (
    "stream",
    "stop",
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "tools",
    "tool_choice",
    "extra_headers",
    "parallel_tool_calls",
    "response_format",
    "user",
    "reasoning_effort",
    "thinking",
)

_OPENAI_FAMILY = re.compile(r"(gpt-|chatgpt-|o\d)")
_O_SERIES = re.compile(r"o\d(?:$|-)")
_GPT5 = re.compile(r"gpt-5")
_TOOLS_OPENAI = re.compile(
    r"(gpt-4|gpt-3\.5-turbo|gpt-35-turbo|gpt-5|chatgpt-4o|o1(?!-mini|-preview)|o[34])"
)
_SCHEMA_OPENAI = re.compile(r"(gpt-4o|gpt-4\.1|gpt-5|o1(?!-mini|-preview)|o[34])")
_VISION_OPENAI = re.compile(
    r"(gpt-4o|gpt-4\.1|gpt-4-turbo|gpt-5|chatgpt-4o|o1(?!-mini|-preview)|o3(?!-mini)|o4)"
)
_CLAUDE_REASONING = re.compile(r"claude-(3-7-sonnet|(sonnet|opus|haiku)-4|4)")


def _split(model: str, custom_llm_provider: str | None) -> tuple[str, str | None]:
    """``(bare model name, provider)`` as LiteLLM names providers, ``None`` when unknown."""
    if not isinstance(model, str) or not model:
        raise InvalidRequestError(f"model must be a non-empty string, got {model!r}")
    prefix, sep, rest = model.partition("/")
    if sep and prefix in ("openai", "azure", "anthropic", "text-completion-openai"):
        provider = "openai" if prefix == "text-completion-openai" else prefix
        return rest, custom_llm_provider or provider
    if sep and prefix in FAMILY:  # groq/, mistral/, ollama/, ...: OpenAI-compatible APIs
        return rest, custom_llm_provider or prefix
    if custom_llm_provider:
        return model, custom_llm_provider
    if _OPENAI_FAMILY.match(model) or model.startswith("text-embedding-"):
        return model, "openai"
    if model.startswith("claude-"):
        return model, "anthropic"
    return model, None


def get_llm_provider(
    model: str,
    custom_llm_provider: str | None = None,
    api_base: str | None = None,
    api_key: str | None = None,
    litellm_params: Any = None,
) -> tuple[str, str, str | None, str | None]:
    """``(model, provider, api_key, api_base)`` as LiteLLM's ``get_llm_provider`` returns them:
    :func:`llmstash.get_llm_provider`'s answer (``litellm_params`` is accepted and not read).
    ``InvalidRequestError`` (a ``ValueError``) for a model whose provider llmstash cannot
    tell."""
    if not isinstance(model, str) or not model:
        raise InvalidRequestError(f"model must be a non-empty string, got {model!r}")
    return _resolve.get_llm_provider(model, custom_llm_provider, api_base, api_key)


def get_supported_openai_params(
    model: str,
    custom_llm_provider: str | None = None,
    request_type: str = "chat_completion",
) -> list[str] | None:
    """The OpenAI-style parameters a model takes, as LiteLLM lists them; ``None`` when the
    provider is unknown (as LiteLLM answers)."""
    bare, provider = _split(model, custom_llm_provider)
    if request_type == "embeddings":
        return ["dimensions", "encoding_format", "user"] if provider else None
    if provider in ("openai", "azure", "openai_like", "hosted_vllm", "lm_studio"):
        if _O_SERIES.match(bare) or _GPT5.match(bare):
            return [p for p in _OPENAI_PARAMS if p not in _REASONING_DROPS] + ["reasoning_effort"]
        return list(_OPENAI_PARAMS)
    if provider == "anthropic":
        return list(_ANTHROPIC_PARAMS)
    if provider is not None:
        return list(_OPENAI_PARAMS)
    return None


def _answer(model: str, custom_llm_provider: str | None, openai: re.Pattern[str]) -> bool:
    bare, provider = _split(model, custom_llm_provider)
    if provider in ("openai", "azure"):
        return openai.match(bare) is not None
    if provider == "anthropic":
        return bare.startswith("claude-3") or bare.startswith("claude-") and "-4" in bare
    return False


def supports_function_calling(model: str, custom_llm_provider: str | None = None) -> bool:
    """Whether the model takes ``tools``: OpenAI's GPT-3.5/4/4o/4.1/5 and o1/o3/o4 families,
    Anthropic's Claude 3 and 4; ``False`` for a model llmstash does not know."""
    return _answer(model, custom_llm_provider, _TOOLS_OPENAI)


def supports_response_schema(model: str, custom_llm_provider: str | None = None) -> bool:
    """Whether the model takes ``response_format={"type": "json_schema", ...}``: OpenAI's
    GPT-4o/4.1/5 and o1/o3/o4 families, Anthropic's Claude 3 and 4 (LiteLLM sends the schema
    to Anthropic as a tool; llmstash does too); ``False`` for a model llmstash does not know."""
    return _answer(model, custom_llm_provider, _SCHEMA_OPENAI)


def supports_vision(model: str, custom_llm_provider: str | None = None) -> bool:
    """Whether the model reads images: OpenAI's GPT-4o/4.1/4-turbo/5, o1, o3 and o4 families,
    Anthropic's Claude 3 and 4; ``False`` for a model llmstash does not know."""
    return _answer(model, custom_llm_provider, _VISION_OPENAI)


def supports_reasoning(model: str, custom_llm_provider: str | None = None) -> bool:
    """Whether the model reasons before answering (takes ``reasoning_effort``): OpenAI's
    o-series and GPT-5, Anthropic's Claude 3.7 Sonnet and Claude 4; ``False`` otherwise."""
    bare, provider = _split(model, custom_llm_provider)
    if provider in ("openai", "azure"):
        return _O_SERIES.match(bare) is not None or _GPT5.match(bare) is not None
    if provider == "anthropic":
        return _CLAUDE_REASONING.match(bare) is not None
    return False


if TYPE_CHECKING:
    model_cost: dict[str, dict[str, Any]]
    """LiteLLM's name for the price table, :data:`llmstash.model_cost`."""


def __getattr__(name: str) -> Any:
    if name == "model_cost":  # the one price table, read on first use
        return _cost._prices()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _table_key(model: str, bare: str) -> str | None:
    table = _cost._prices()
    for name in (bare, model):
        if name in table:
            return name
    for name in (bare, model):
        key = _cost._match(name, table)
        if key is not None:
            return key
    return None


def get_model_info(model: str, custom_llm_provider: str | None = None) -> dict[str, Any]:
    """What llmstash knows of a model, in LiteLLM's shape (``key``, ``litellm_provider``,
    ``mode``, prices per token, token limits where the price table has them, ``supports_*``).
    Raises ``Exception`` ("This model isn't mapped yet"), as LiteLLM does, for a model the
    price table (:data:`llmstash.model_cost`, extended by :func:`llmstash.register_model`)
    does not know."""
    bare, provider = _split(model, custom_llm_provider)
    key = _table_key(model, bare)
    if key is None:
        raise Exception(
            f"This model isn't mapped yet. model={model}, custom_llm_provider={provider}."
        )
    info: dict[str, Any] = {
        "key": key,
        "max_tokens": None,
        "max_input_tokens": None,
        "max_output_tokens": None,
        "supported_openai_params": get_supported_openai_params(model, provider),
        "supports_function_calling": supports_function_calling(model, provider),
        "supports_response_schema": supports_response_schema(model, provider),
        "supports_vision": supports_vision(model, provider),
        "supports_reasoning": supports_reasoning(model, provider),
    }
    info.update(_cost._prices()[key])
    return info


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            part.get("text", "") if isinstance(part, dict) else str(part) for part in content
        )
    return "" if content is None else str(content)


def token_counter(
    model: str = "",
    messages: Sequence[dict[str, Any]] | None = None,
    text: str | list[str] | None = None,
    **kwargs: Any,
) -> int:
    """An estimate of the tokens in ``messages`` or ``text``, not a tokenizer's count: four
    characters a token (OpenAI's rule of thumb for English), plus 3 tokens of chat framing a
    message and 3 for the reply's priming. Good for budgeting a prompt, not for billing."""
    pieces: list[str] = []
    framing = 0
    if text is not None:
        pieces.extend([text] if isinstance(text, str) else list(text))
    if messages:
        framing = 3 * len(messages) + 3
        for message in messages:
            pieces.append(_text_of(message.get("content")))
            if message.get("name"):
                pieces.append(str(message["name"]))
    return framing + sum(_count(piece) for piece in pieces)


def _count(text: str) -> int:
    return math.ceil(len(text) / 4)


def stream_chunk_builder(
    chunks: Iterable[ModelResponseStream | dict[str, Any]],
    messages: Any = None,
    start_time: Any = None,
    end_time: Any = None,
) -> ModelResponse | None:
    """The :class:`ModelResponse` a list of streamed chunks adds up to, as LiteLLM's
    ``stream_chunk_builder`` gives it: content, reasoning and tool-call fragments joined, the
    last finish reason, the usage of the chunk that carries it. ``None`` for no chunks (as
    LiteLLM)."""
    items = [
        chunk if isinstance(chunk, ModelResponseStream) else _chunk_from_dict(chunk)
        for chunk in chunks
    ]
    if not items:
        return None
    return assemble_chunks(items)


def _chunk_from_dict(chunk: Any) -> ModelResponseStream:
    import msgspec

    from ..types._models import decode_json

    if not isinstance(chunk, dict):
        raise InvalidRequestError(
            f"stream_chunk_builder takes streamed chunks, not {type(chunk).__name__}"
        )
    return decode_json(msgspec.json.encode(chunk), ModelResponseStream)
