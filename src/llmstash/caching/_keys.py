"""Cache keys: a pure function of what changes the answer.

``fields that change the answer → canonical JSON (sorted keys, no None) → SHA-256 →
"{namespace}:llmstash:v1:{digest}"``. The API key, timeouts, retries, callbacks, metadata, cache
controls and ``stream`` never enter it: the same question asked by two tenants, with two
timeouts, streamed or not, is one entry.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

__all__ = ["IGNORED_PARAMS", "KEY_VERSION", "canonical_json", "make_input_keys", "make_key"]

KEY_VERSION = "v1"

IGNORED_PARAMS: frozenset[str] = frozenset(
    {
        # credentials and versions that do not change the answer (a named server does:
        # "api_base" is part of the key)
        "api_key",
        "api_version",
        "organization",
        "extra_headers",
        # transport
        "timeout",
        "request_timeout",
        "num_retries",
        "max_retries",
        "stream",
        "stream_options",
        # llmstash / LiteLLM controls
        "caching",
        "cache",
        "ttl",
        "mock_response",
        "metadata",
        "callbacks",
        "success_callback",
        "failure_callback",
        "litellm_call_id",
        "litellm_logging_obj",
        "logger_fn",
        "proxy_server_request",
        "custom_llm_provider",
    }
)


def _enc_hook(obj: Any) -> Any:
    # Pydantic models and classes (response_format=MyModel is common), then anything else by
    # its type and repr: unusual, but never an error on the key path.
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        return dump()
    schema = getattr(obj, "model_json_schema", None)
    if callable(schema):
        return {"__schema__": schema()}
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=repr)
    return f"{type(obj).__module__}.{type(obj).__qualname__}:{obj!r}"


_encoder = msgspec.json.Encoder(enc_hook=_enc_hook, order="sorted")


def _drop_none(value: Any) -> Any:
    if type(value) is dict:
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if type(value) is list:
        return [_drop_none(v) for v in value]
    return value


def canonical_json(fields: dict[str, Any]) -> bytes:
    """Canonical bytes for ``fields``: sorted keys at every level, ``None`` values dropped."""
    data = _encoder.encode(fields)
    # Nested None values are rare; only when the JSON could hold one is the tree rewritten.
    if b"null" in data:
        data = _encoder.encode(_drop_none(fields))
    return data


def _prefix(namespace: str | None) -> str:
    return f"{namespace}:llmstash:{KEY_VERSION}:" if namespace else f"llmstash:{KEY_VERSION}:"


def make_key(kwargs: dict[str, Any], namespace: str | None = None) -> str:
    """The default cache key for a call's keyword arguments.

    An embedding input is hashed after the other fields (``fields | "\n" | input``), so that
    :func:`make_input_keys` can hash the shared part once for a batch of inputs.
    """
    fields = {k: v for k, v in kwargs.items() if k not in IGNORED_PARAMS and v is not None}
    if isinstance(fields.get("api_base"), str):
        fields["api_base"] = fields["api_base"].rstrip("/")
    if "input" in fields:
        item = fields.pop("input")
        return make_input_keys(fields, [item], namespace)[0]
    return _prefix(namespace) + hashlib.sha256(canonical_json(fields)).hexdigest()


def make_input_keys(
    kwargs: dict[str, Any], inputs: list[Any], namespace: str | None = None
) -> list[str]:
    """``make_key(kwargs | {"input": x})`` for every ``x`` of ``inputs``, sharing the work."""
    fields = {k: v for k, v in kwargs.items() if k not in IGNORED_PARAMS and v is not None}
    fields.pop("input", None)
    if isinstance(fields.get("api_base"), str):
        fields["api_base"] = fields["api_base"].rstrip("/")
    base = hashlib.sha256(canonical_json(fields))
    base.update(b"\n")
    prefix = _prefix(namespace)
    keys = []
    for item in inputs:
        h = base.copy()
        h.update(_encoder.encode(item))
        keys.append(prefix + h.hexdigest())
    return keys
