"""OpenTelemetry for llmstash calls: one span per call and the GenAI client metrics.

Install the extra (``pip install "llmstash[otel]"``: the OpenTelemetry API only; bring the SDK
and an exporter), then either name LiteLLM's integration::

    llmstash.callbacks = ["otel"]

which uses the global tracer and meter providers, or register a logger of your own::

    from llmstash.integrations.opentelemetry import OpenTelemetryLogger

    llmstash.callbacks = [OpenTelemetryLogger(tracer_provider=tp, meter_provider=mp)]

Spans follow the OpenTelemetry semantic conventions for generative AI client calls: kind CLIENT,
named ``"{gen_ai.operation.name} {gen_ai.request.model}"`` (``chat gpt-4o-mini``), with
``gen_ai.operation.name`` (``chat``, ``embeddings``, ``text_completion``),
``gen_ai.provider.name`` and ``gen_ai.system``, ``gen_ai.request.model``, the request
parameters (``gen_ai.request.temperature``, ``.max_tokens``, ``.top_p``, ...),
``gen_ai.response.model``, ``gen_ai.response.id``, ``gen_ai.response.finish_reasons``,
``gen_ai.usage.input_tokens`` / ``output_tokens``, ``server.address`` / ``server.port``; and
llmstash's own ``llmstash.cache.hit``, ``llmstash.cache.namespace``, ``llmstash.cache.key``,
``llmstash.response_cost`` (USD, when known) and ``llmstash.stream``. A failed call's span has
status ERROR, ``error.type`` (the exception's class name) and the exception as an event.

A span starts and ends when the call did (it is recorded after the call, off the caller's
path) and is a child of the span that was current where the call was made, for async and sync
calls alike (a sync call's work, on llmstash's event-loop thread, runs in a copy of its caller's
context).

Message content is not recorded unless asked for: ``OpenTelemetryLogger(capture_content=True)``
(or, for the ``"otel"`` logger, the environment variable
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``) adds ``gen_ai.input.messages`` and
``gen_ai.output.messages`` as JSON strings in the conventions' shape.

Metrics, from the logger's meter: histogram ``gen_ai.client.operation.duration`` (s), histogram
``gen_ai.client.token.usage`` (``{token}``, by ``gen_ai.token.type`` ``input`` / ``output``;
cache hits are recorded too, with ``llmstash.cache.hit=true``: filter on it for the tokens
providers billed), and counter ``llmstash.cache.lookups`` by ``llmstash.cache.outcome``
(``hit`` / ``miss``), for calls that consulted a cache.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final
from urllib.parse import urlsplit

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from .._cost import _field
from .custom_logger import CustomLogger

__all__ = ["OpenTelemetryLogger"]

_SCOPE: Final = "llmstash"
_CAPTURE_ENV: Final = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"

_OPERATIONS: Final = {
    "completion": "chat",
    "acompletion": "chat",
    "embedding": "embeddings",
    "aembedding": "embeddings",
    "text_completion": "text_completion",
    "atext_completion": "text_completion",
    "responses": "chat",  # the Responses API is OpenAI's chat; the conventions name no other
    "aresponses": "chat",
}
_PROVIDERS: Final = {
    "openai": "openai",
    "openai_compatible": "openai",
    "azure": "azure.ai.openai",
    "anthropic": "anthropic",
    "gemini": "gcp.gemini",
    "mistral": "mistral_ai",
    "xai": "x_ai",
    "groq": "groq",
    "deepseek": "deepseek",
    "perplexity": "perplexity",
}
"""llmstash's (LiteLLM's) provider names → the conventions' ``gen_ai.provider.name`` values;
others are given as they are."""
_REQUEST_PARAMS: Final = (
    ("temperature", "gen_ai.request.temperature"),
    ("top_p", "gen_ai.request.top_p"),
    ("top_k", "gen_ai.request.top_k"),
    ("max_tokens", "gen_ai.request.max_tokens"),
    ("max_completion_tokens", "gen_ai.request.max_tokens"),
    ("frequency_penalty", "gen_ai.request.frequency_penalty"),
    ("presence_penalty", "gen_ai.request.presence_penalty"),
    ("seed", "gen_ai.request.seed"),
    ("n", "gen_ai.request.choice.count"),
)
_DURATION_BUCKETS: Final = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
_TOKEN_BUCKETS: Final = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # fmt: skip


def _ns(moment: Any) -> int | None:
    """Nanoseconds since the epoch of a hook's ``datetime`` (naive ones are local time, as
    llmstash makes them)."""
    if isinstance(moment, datetime):
        return int(moment.timestamp() * 1_000_000) * 1000
    return None


@functools.lru_cache(maxsize=64)
def _server(base: str) -> tuple[str | None, int | None]:
    """Host and port of a base URL (no user, password or path: nothing secret)."""
    try:
        parts = urlsplit(base)
        return parts.hostname, parts.port
    except ValueError:
        return None, None


def _provider(kwargs: Mapping[str, Any]) -> str:
    name = kwargs.get("custom_llm_provider")
    model = kwargs.get("model") or ""
    if not isinstance(name, str) or not name:
        prefix, sep, _ = model.partition("/")
        if sep:
            name = prefix
        elif model.startswith("claude-"):
            name = "anthropic"
        else:
            name = "openai"
    return _PROVIDERS.get(name, name)


def _request_model(model: str) -> str:
    prefix, sep, rest = model.partition("/")
    return rest if sep and prefix in ("openai", "anthropic", "azure") else model


def _namespace(kwargs: Mapping[str, Any], response: Any) -> str | None:
    given = kwargs.get("cache_namespace")
    if isinstance(given, str):
        return given or None
    key = kwargs.get("cache_key")
    if not isinstance(key, str):
        hidden = getattr(response, "_hidden_params", None)
        keys = hidden.get("cache_keys") if isinstance(hidden, Mapping) else None
        key = keys[0] if isinstance(keys, list) and keys and isinstance(keys[0], str) else None
    if key is None:
        return None
    namespace, sep, _ = key.partition(":llmstash:")
    return namespace if sep and namespace else None


def _consulted_cache(kwargs: Mapping[str, Any], response: Any) -> bool:
    """Whether the call had a cache to look in (it has a key, or keys for its inputs)."""
    if isinstance(kwargs.get("cache_key"), str):
        return True
    hidden = getattr(response, "_hidden_params", None)
    return isinstance(hidden, Mapping) and bool(hidden.get("cache_keys"))


def _parts(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    parts: list[dict[str, Any]] = []
    if isinstance(content, Sequence):
        for item in content:
            kind = _field(item, "type")
            if kind in ("text", "input_text", "output_text"):  # chat, Responses API
                parts.append({"type": "text", "content": _field(item, "text")})
            else:
                parts.append({"type": str(kind or "unknown")})
    return parts


def _tool_calls(message: Any) -> list[dict[str, Any]]:
    calls = _field(message, "tool_calls") or ()
    out = []
    for call in calls:
        function = _field(call, "function")
        out.append(
            {
                "type": "tool_call",
                "id": _field(call, "id"),
                "name": _field(function, "name"),
                "arguments": _field(function, "arguments"),
            }
        )
    return out


def _input_messages(kwargs: Mapping[str, Any]) -> str | None:
    messages = kwargs.get("messages")
    if isinstance(messages, Sequence) and not isinstance(messages, str):
        out = []
        for message in messages:
            entry: dict[str, Any] = {
                "role": _field(message, "role"),
                "parts": _parts(_field(message, "content")) + _tool_calls(message),
            }
            if entry["role"] == "tool":
                entry["parts"] = [
                    {
                        "type": "tool_call_response",
                        "id": _field(message, "tool_call_id"),
                        "response": _field(message, "content"),
                    }
                ]
            out.append(entry)
        return json.dumps(out, default=str, ensure_ascii=False)
    inputs = kwargs.get("input")
    if inputs is None:
        inputs = kwargs.get("prompt")  # a text completion
    if isinstance(inputs, Sequence) and inputs and all(isinstance(x, Mapping) for x in inputs):
        # The Responses API's input items: messages (and tool outputs, named by type).
        return json.dumps(
            [
                {"role": x.get("role"), "parts": _parts(x.get("content"))}
                if "role" in x
                else {"role": "tool", "parts": [{"type": str(x.get("type") or "unknown")}]}
                for x in inputs
            ],
            default=str,
            ensure_ascii=False,
        )
    if inputs is not None:
        items = [inputs] if isinstance(inputs, str) else list(inputs)
        parts = [{"type": "text", "content": x} if isinstance(x, str) else {"type": "tokens"}
                 for x in items]  # fmt: skip
        return json.dumps([{"role": "user", "parts": parts}], default=str, ensure_ascii=False)
    return None


def _output_messages(response: Any) -> str | None:
    choices = _field(response, "choices")
    if not choices:
        return _response_output(_field(response, "output"))
    out = []
    for choice in choices:
        message = _field(choice, "message")
        text = _field(choice, "text")  # a text completion's choice
        parts = _parts(text) if isinstance(text, str) and message is None else []
        out.append(
            {
                "role": _field(message, "role") or "assistant",
                "parts": parts + _parts(_field(message, "content")) + _tool_calls(message),
                "finish_reason": _field(choice, "finish_reason"),
            }
        )
    return json.dumps(out, default=str, ensure_ascii=False)


def _response_output(items: Any) -> str | None:
    """A Responses API answer's ``output`` items as GenAI output messages."""
    if not isinstance(items, Sequence) or not items:
        return None
    parts: list[dict[str, Any]] = []
    for item in items:
        kind = _field(item, "type")
        if kind == "message":
            parts.extend(_parts(_field(item, "content")))
        elif kind == "function_call":
            parts.append(
                {
                    "type": "tool_call",
                    "id": _field(item, "call_id"),
                    "name": _field(item, "name"),
                    "arguments": _field(item, "arguments"),
                }
            )
        else:
            parts.append({"type": str(kind or "unknown")})
    return json.dumps([{"role": "assistant", "parts": parts}], default=str, ensure_ascii=False)


class OpenTelemetryLogger(CustomLogger):
    """A callback handler that records each llmstash call as an OpenTelemetry span and in the
    GenAI client metrics (see the module documentation for names and attributes).

    ``tracer_provider`` and ``meter_provider`` default to the global ones (those set with
    ``trace.set_tracer_provider``/``metrics.set_meter_provider``, resolved when first used).
    ``capture_content=True`` records messages and answers on the spans; ``None`` reads the
    ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` environment variable.
    """

    def __init__(
        self,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        capture_content: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        from .. import __version__

        if capture_content is None:
            capture_content = os.environ.get(_CAPTURE_ENV, "").strip().lower() in ("1", "true")
        self.capture_content = capture_content
        self._tracer = trace.get_tracer(_SCOPE, __version__, tracer_provider=tracer_provider)
        meter = metrics.get_meter(_SCOPE, __version__, meter_provider=meter_provider)
        self._duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self._tokens = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used",
            explicit_bucket_boundaries_advisory=_TOKEN_BUCKETS,
        )
        self._lookups = meter.create_counter(
            "llmstash.cache.lookups",
            unit="{lookup}",
            description="Cache lookups made by llmstash calls, by outcome (hit or miss)",
        )

    def log_success_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: datetime, end_time: datetime
    ) -> None:
        """Record a successful sync call."""
        self._record(kwargs, response_obj, start_time, end_time, None)

    async def async_log_success_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: datetime, end_time: datetime
    ) -> None:
        """Record a successful async call."""
        self._record(kwargs, response_obj, start_time, end_time, None)

    def log_failure_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: datetime, end_time: datetime
    ) -> None:
        """Record a failed sync call."""
        self._record(kwargs, None, start_time, end_time, kwargs.get("exception"))

    async def async_log_failure_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: datetime, end_time: datetime
    ) -> None:
        """Record a failed async call."""
        self._record(kwargs, None, start_time, end_time, kwargs.get("exception"))

    def _record(
        self,
        kwargs: Mapping[str, Any],
        response: Any,
        start_time: Any,
        end_time: Any,
        error: Any,
    ) -> None:
        operation = _OPERATIONS.get(str(kwargs.get("call_type")), "chat")
        model = _request_model(str(kwargs.get("model") or ""))
        provider = _provider(kwargs)
        common: dict[str, Any] = {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": provider,
            "gen_ai.request.model": model,
        }
        base = kwargs.get("api_base")
        if isinstance(base, str) and base:
            host, port = _server(base)
            if host:
                common["server.address"] = host
                if port is not None:
                    common["server.port"] = port
        hit = bool(kwargs.get("cache_hit"))
        namespace = _namespace(kwargs, response)
        attributes = dict(common)
        attributes["gen_ai.system"] = provider
        params = kwargs.get("optional_params")
        if isinstance(params, Mapping):
            for name, attribute in _REQUEST_PARAMS:
                value = params.get(name)
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    attributes[attribute] = value
            stop = params.get("stop")
            if isinstance(stop, str):
                attributes["gen_ai.request.stop_sequences"] = [stop]
            elif isinstance(stop, Sequence) and all(isinstance(s, str) for s in stop):
                attributes["gen_ai.request.stop_sequences"] = list(stop)
            encoding = params.get("encoding_format")
            if isinstance(encoding, str):
                attributes["gen_ai.request.encoding_formats"] = [encoding]
        attributes["llmstash.cache.hit"] = hit
        attributes["llmstash.stream"] = bool(kwargs.get("stream"))
        key = kwargs.get("cache_key")
        if isinstance(key, str):
            attributes["llmstash.cache.key"] = key
        if namespace is not None:
            attributes["llmstash.cache.namespace"] = namespace
        cost = kwargs.get("response_cost")
        if isinstance(cost, (int, float)) and not isinstance(cost, bool):
            attributes["llmstash.response_cost"] = float(cost)
        input_tokens = output_tokens = None
        response_model = None
        if response is not None:
            response_model = _field(response, "model")
            if isinstance(response_model, str) and response_model:
                attributes["gen_ai.response.model"] = response_model
            response_id = _field(response, "id")
            if isinstance(response_id, str) and response_id:
                attributes["gen_ai.response.id"] = response_id
            reasons = [
                r for c in _field(response, "choices") or () if (r := _field(c, "finish_reason"))
            ]
            if reasons:
                attributes["gen_ai.response.finish_reasons"] = [str(r) for r in reasons]
            usage = _field(response, "usage")
            if usage is not None:
                # Chat and text completion name them prompt/completion; the Responses API
                # input/output.
                input_tokens = _field(usage, "prompt_tokens")
                if input_tokens is None:
                    input_tokens = _field(usage, "input_tokens")
                output_tokens = _field(usage, "completion_tokens")
                if output_tokens is None:
                    output_tokens = _field(usage, "output_tokens")
                if isinstance(input_tokens, int):
                    attributes["gen_ai.usage.input_tokens"] = input_tokens
                if isinstance(output_tokens, int) and operation != "embeddings":
                    attributes["gen_ai.usage.output_tokens"] = output_tokens
            hidden = getattr(response, "_hidden_params", None)
            if isinstance(hidden, Mapping) and hidden.get("coalesced"):
                attributes["llmstash.cache.coalesced"] = True
        error_type = None
        if error is not None:
            error_type = type(error).__qualname__
            attributes["error.type"] = error_type
        if self.capture_content:
            given = _input_messages(kwargs)
            if given is not None:
                attributes["gen_ai.input.messages"] = given
            answered = _output_messages(response)
            if answered is not None:
                attributes["gen_ai.output.messages"] = answered

        start_ns = _ns(start_time)
        end_ns = _ns(end_time)
        span = self._tracer.start_span(
            f"{operation} {model}" if model else operation,
            context=otel_context.get_current(),
            kind=SpanKind.CLIENT,
            attributes=attributes,
            start_time=start_ns,
        )
        if error is not None:
            if isinstance(error, BaseException):
                span.record_exception(error, timestamp=end_ns)
            span.set_status(Status(StatusCode.ERROR, f"{error_type}: {error}"[:500]))
        span.end(end_time=end_ns)

        # Metrics: low-cardinality attributes only.
        measured = dict(common)
        measured["llmstash.cache.hit"] = hit
        if isinstance(response_model, str) and response_model:
            measured["gen_ai.response.model"] = response_model
        if error_type is not None:
            measured["error.type"] = error_type
        if start_ns is not None and end_ns is not None:
            self._duration.record(max(end_ns - start_ns, 0) / 1e9, measured)
        if isinstance(input_tokens, int):
            self._tokens.record(input_tokens, {**measured, "gen_ai.token.type": "input"})
        if isinstance(output_tokens, int) and operation != "embeddings":
            self._tokens.record(output_tokens, {**measured, "gen_ai.token.type": "output"})
        if _consulted_cache(kwargs, response):
            lookup = dict(common)
            lookup["llmstash.cache.outcome"] = "hit" if hit else "miss"
            if namespace is not None:
                lookup["llmstash.cache.namespace"] = namespace
            self._lookups.add(1, lookup)


_default: OpenTelemetryLogger | None = None


def default_logger() -> OpenTelemetryLogger:
    """The logger ``llmstash.callbacks = ["otel"]`` stands for (global providers; one per
    process)."""
    global _default
    if _default is None:
        _default = OpenTelemetryLogger()
    return _default
