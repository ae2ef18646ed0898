"""Cache keys: a pure function of what changes the answer.

``fields that change the answer → canonical JSON (sorted keys) → SHA-256 →
"{namespace}:llmstash:v2:{digest}"``. The API key, timeouts, retries, callbacks, metadata, cache
controls and ``stream`` never enter it: the same question asked by two tenants, with two
timeouts, streamed or not, is one entry.

A parameter set to ``None`` at the top level counts as not passed; ``None`` nested inside a
value (a JSON schema's ``"default": null``) is part of the key. HTTP headers sent with the call
(``extra_headers``, LiteLLM's ``headers=``, ``organization=``) are part of the key — a tenant
header or ``anthropic-beta`` can change the answer — except credentials and tracing/transport
headers, listed in :data:`KEY_EXCLUDED_HEADERS`. Header names are compared case-insensitively.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

from .._params import NOT_IN_KEY

__all__ = [
    "IGNORED_PARAMS",
    "KEY_EXCLUDED_HEADERS",
    "KEY_VERSION",
    "canonical_json",
    "chat_key",
    "make_input_keys",
    "make_key",
]

KEY_VERSION = "v2"

IGNORED_PARAMS: frozenset[str] = NOT_IN_KEY
"""Arguments that never enter a key (credentials, transport, llmstash and LiteLLM controls):
the call-argument table of ``llmstash._params`` less what changes the answer."""

KEY_EXCLUDED_HEADERS: frozenset[str] = frozenset(
    {
        # credentials
        "authorization",
        "proxy-authorization",
        "api-key",
        "x-api-key",
        "cookie",
        # tracing and request identity
        "traceparent",
        "tracestate",
        "baggage",
        "sentry-trace",
        "b3",
        "x-b3-traceid",
        "x-b3-spanid",
        "x-b3-parentspanid",
        "x-b3-sampled",
        "x-amzn-trace-id",
        "x-cloud-trace-context",
        "x-request-id",
        "x-correlation-id",
        "request-id",
        "idempotency-key",
        "x-stainless-retry-count",
        "x-stainless-timeout",
        # transport
        "user-agent",
        "accept",
        "accept-encoding",
        "connection",
        "content-length",
        "content-type",
        "host",
        "keep-alive",
    }
)
"""Headers that never enter a key: credentials, tracing and transport. Every other header
sent with a call is part of its key (lower-cased name, value as given)."""


def key_headers(headers: Any) -> dict[str, str] | None:
    """The part of ``headers`` that belongs in a key: lower-cased names, minus
    :data:`KEY_EXCLUDED_HEADERS`; ``None`` when nothing is left."""
    if not headers:
        return None
    items = headers.items() if hasattr(headers, "items") else headers
    kept = {
        str(name).lower(): str(value)
        for name, value in items
        if str(name).lower() not in KEY_EXCLUDED_HEADERS
    }
    return kept or None


def _enc_hook(obj: Any) -> Any:
    # Pydantic models and classes (response_format=MyModel is common), then anything else by
    # its type and repr: unusual, but never an error on the key path.
    if isinstance(obj, type):
        schema = getattr(obj, "model_json_schema", None)
        if callable(schema):
            return {"__schema__": schema()}
    else:
        dump = getattr(obj, "model_dump", None)
        if callable(dump):
            return dump()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=repr)
    return f"{type(obj).__module__}.{type(obj).__qualname__}:{obj!r}"


_encoder = msgspec.json.Encoder(enc_hook=_enc_hook, order="sorted")


def _str_keys(value: Any) -> Any:
    """``value`` with every dict key a string (``logit_bias={50256: -100}`` keys as JSON
    would send it: ``{"50256": -100}``)."""
    if isinstance(value, dict):
        return {str(k): _str_keys(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_str_keys(v) for v in value]
    return value


def canonical_json(fields: dict[str, Any]) -> bytes:
    """Canonical bytes for ``fields``: sorted keys at every level. A message's own keys set
    to ``None`` (``"tool_calls": None``, as message objects dump) count as absent; ``None``
    anywhere else is significant."""
    try:
        data = _encoder.encode(fields)
    except TypeError:
        # Sorting needs string keys; non-string keys are rare (token ids in logit_bias).
        fields = _str_keys(fields)
        data = _encoder.encode(fields)
    # Nulls are rare: only then are the messages looked at again.
    if b"null" in data and type(fields.get("messages")) is list:
        messages = [
            {k: v for k, v in m.items() if v is not None} if type(m) is dict else m
            for m in fields["messages"]
        ]
        data = _encoder.encode({**fields, "messages": messages})
    return data


def _key_fields(kwargs: dict[str, Any]) -> dict[str, Any]:
    fields = {k: v for k, v in kwargs.items() if k not in IGNORED_PARAMS and v is not None}
    if "base_url" in fields:
        fields.setdefault("api_base", fields.pop("base_url"))
    if isinstance(fields.get("api_base"), str):
        fields["api_base"] = fields["api_base"].rstrip("/")
    if "extra_headers" in fields or "headers" in fields or "organization" in fields:
        # As a call sends them: headers= over extra_headers=.
        headers = dict(key_headers(fields.pop("extra_headers", None)) or {})
        headers.update(key_headers(fields.pop("headers", None)) or {})
        organization = fields.pop("organization", None)
        if organization:
            headers.setdefault("openai-organization", str(organization))
        if headers:
            fields["extra_headers"] = headers
    return fields


_prefixes: dict[str | None, str] = {}


def _prefix(namespace: str | None) -> str:
    prefix = _prefixes.get(namespace)
    if prefix is None:
        prefix = f"{namespace}:llmstash:{KEY_VERSION}:" if namespace else f"llmstash:{KEY_VERSION}:"
        if len(_prefixes) < 1024:
            _prefixes[namespace] = prefix
    return prefix


def chat_key(
    model: str, messages: list[Any], params: dict[str, Any], namespace: str | None = None
) -> str:
    """``make_key({"model": model, "messages": messages, **params})`` for provider parameters
    the engine has already cleaned (no ``None`` values, no llmstash or SDK arguments, headers
    merged into ``extra_headers``, ``api_base`` without a trailing slash): the hit path's key."""
    fields: dict[str, Any] = {"model": model, "messages": messages}
    if params:
        fields.update(params)
        if "stream_options" in params:
            del fields["stream_options"]
        if "extra_headers" in params:
            headers = key_headers(params["extra_headers"])
            if headers:
                fields["extra_headers"] = headers
            else:
                del fields["extra_headers"]
    return _prefix(namespace) + hashlib.sha256(canonical_json(fields)).hexdigest()


def make_key(kwargs: dict[str, Any], namespace: str | None = None) -> str:
    """The default cache key for a call's keyword arguments.

    An embedding input is hashed after the other fields (``fields | "\n" | input``), so that
    :func:`make_input_keys` can hash the shared part once for a batch of inputs.
    """
    fields = _key_fields(kwargs)
    if "input" in fields:
        item = fields.pop("input")
        return make_input_keys(fields, [item], namespace)[0]
    return _prefix(namespace) + hashlib.sha256(canonical_json(fields)).hexdigest()


def make_input_keys(
    kwargs: dict[str, Any], inputs: list[Any], namespace: str | None = None
) -> list[str]:
    """``make_key(kwargs | {"input": x})`` for every ``x`` of ``inputs``, sharing the work."""
    fields = _key_fields(kwargs)
    fields.pop("input", None)
    base = hashlib.sha256(canonical_json(fields))
    base.update(b"\n")
    prefix = _prefix(namespace)
    keys = []
    for item in inputs:
        h = base.copy()
        h.update(_encoder.encode(item))
        keys.append(prefix + h.hexdigest())
    return keys
