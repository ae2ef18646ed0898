"""Request preparation: pure functions from a call's arguments to a :class:`Request`.

Nothing here does I/O or touches the cache. One table, :data:`llmstash._params.PARAMS`, says
what each argument a LiteLLM user may pass is for: the engine's own settings and cache
controls, SDK-only arguments that never reach a provider, and everything else, which is the
provider's. Bad argument types
fail here with :class:`InvalidRequestError`, naming the argument, before any network I/O.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import httpx

from ._config import DEFAULT_NUM_RETRIES, DEFAULT_TIMEOUT
from ._params import PARAMS
from .caching import Cache
from .caching._settings import check_number, check_ttl
from .exceptions import InvalidRequestError
from .types import Message, to_builtins

__all__ = [
    "CallSettings",
    "Controls",
    "Request",
    "check_inputs",
    "check_messages",
    "check_model",
    "prepare",
]

logger = logging.getLogger("llmstash")


class CallSettings:
    """The settings one call runs with: a Client's own, or LiteLLM-style module globals."""

    __slots__ = (
        "cache",
        "callbacks",
        "failure_callback",
        "num_retries",
        "success_callback",
        "timeout",
    )

    def __init__(
        self,
        cache: Cache | None = None,
        callbacks: Sequence[Any] = (),
        success_callback: Sequence[Callable[..., Any]] = (),
        failure_callback: Sequence[Callable[..., Any]] = (),
        num_retries: int | None = None,
        timeout: float | None = None,
    ) -> None:
        self.cache = cache
        self.callbacks = callbacks
        self.success_callback = success_callback
        self.failure_callback = failure_callback
        self.num_retries = num_retries
        self.timeout = timeout

    @property
    def has_hooks(self) -> bool:
        """Whether any callback may want to hear about a call."""
        return bool(self.callbacks or self.success_callback or self.failure_callback)


class Controls:
    """The per-call cache controls (``cache={...}`` and ``ttl=``), parsed once."""

    __slots__ = ("max_age", "namespace", "no_cache", "no_store", "raw", "ttl", "use_cache")

    def __init__(self, raw: Mapping[str, Any] | None, ttl: Any) -> None:
        self.raw = raw
        """The ``cache=`` dict as given (custom key functions receive it)."""
        get = raw.get if raw else _nothing
        self.no_cache = bool(get("no-cache"))
        self.no_store = bool(get("no-store"))
        self.use_cache = bool(get("use-cache"))
        namespace = get("namespace")
        self.namespace = str(namespace) if namespace else None
        if raw and "ttl" in raw:
            ttl = raw["ttl"]
        self.ttl = check_ttl(ttl, "ttl")
        max_age = get("s-maxage", get("s_maxage"))
        self.max_age = check_ttl(max_age, "cache={'s-maxage': ...}")


def _nothing(name: str, default: Any = None) -> Any:
    return default


_NO_CONTROLS: Final = Controls(None, None)


class Request:
    """A validated call: what to ask, of whom, and how to treat the answer.

    Attributes not set for a call keep the class-level defaults below (setting only what a
    call has keeps preparation cheap on the hit path)."""

    params: dict[str, Any]
    """What goes to the provider."""
    messages: list[dict[str, Any]] | None = None
    inputs: list[Any] | None = None
    payload_name: str | None = None
    """For the Responses API and text completion: ``"input"`` or ``"prompt"``."""
    payload: Any = None
    stream = False
    wants_usage = False
    """The caller asked for the usage chunk (``stream_options.include_usage``)."""
    api_base: str | None = None
    api_key: str | None = None
    api_version: str | None = None
    azure_ad_token: str | None = None
    azure_ad_token_provider: Callable[[], Any] | None = None
    timeout: float = DEFAULT_TIMEOUT
    num_retries: int = DEFAULT_NUM_RETRIES
    metadata: Any = None
    mock_response: Any = None
    cache: Cache | None = None
    controls: Controls
    ttl: float | None = None
    fallbacks: Sequence[Any] = ()
    max_parallel_requests: int | None = None
    prices: tuple[float | None, float | None] | None = None

    def __init__(self, call_type: str, is_async: bool, model: str) -> None:
        self.call_type = call_type
        self.is_async = is_async
        self.model = model

    def key_params(self) -> dict[str, Any]:
        """The provider parameters, plus the server and API version when the caller named
        them: the same model name on two servers is two models."""
        if self.api_base is None and self.api_version is None:
            return self.params
        extra: dict[str, Any] = dict(self.params)
        if self.api_base is not None:
            extra["api_base"] = self.api_base.rstrip("/")
        if self.api_version is not None:
            extra["api_version"] = self.api_version
        return extra


_NAMES: Final = frozenset(PARAMS)


def prepare(
    settings: CallSettings, call_type: str, is_async: bool, model: Any, kwargs: dict[str, Any]
) -> Request:
    """Split ``kwargs`` by :data:`PARAMS` and validate everything but messages or input.
    An argument set to ``None`` counts as not passed."""
    req = Request(call_type, is_async, check_model(model))
    # One pass: a call has a handful of arguments, and this runs on every cache hit.
    params: dict[str, Any] = {}
    ours: dict[str, Any] = {}
    for name, value in kwargs.items():
        if value is not None:
            if name in _NAMES:
                ours[name] = value
            else:
                params[name] = value
    caching = None
    controls = _NO_CONTROLS
    if ours:
        caching, controls = _read_engine_args(req, ours, params)
    if params:
        _check_provider_params(params)
        options = params.get("stream_options")
        if options is not None:
            req.wants_usage = isinstance(options, Mapping) and options.get("include_usage") is True
    req.params = params
    if settings.timeout is not None and _TIMEOUTS.isdisjoint(ours):
        req.timeout = _timeout(None, settings.timeout)
    if settings.num_retries is not None and _RETRIES.isdisjoint(ours):
        req.num_retries = _retries(None, settings.num_retries)
    req.controls = controls
    cache = settings.cache
    if cache is not None and caching is not False and call_type in cache.supported_call_types:
        if cache.mode == "default_on" or caching is True or controls.use_cache:
            req.cache = cache
            req.ttl = controls.ttl if controls.ttl is not None else cache.ttl
    return req


_TIMEOUTS: Final = frozenset({"timeout", "request_timeout"})
_RETRIES: Final = frozenset({"num_retries", "max_retries"})


def _read_engine_args(
    req: Request, ours: dict[str, Any], params: dict[str, Any]
) -> tuple[Any, Controls]:
    """The engine's own arguments present in a call (``ours``), checked; returns ``caching``
    and the cache controls."""
    given = ours
    if "stream" in ours:
        stream = given["stream"]
        if not isinstance(stream, bool):
            raise InvalidRequestError(f"stream must be True or False, got {stream!r}")
        req.stream = stream
    if "mock_response" in ours:
        req.mock_response = given["mock_response"]
    if "api_base" in ours or "base_url" in ours:
        base = _optional_str(given.get("api_base", given.get("base_url")), "api_base")
        if base is not None and base not in _good_bases:
            _check_base(base)
        req.api_base = base
    if "api_key" in ours:
        req.api_key = _optional_str(given["api_key"], "api_key")
    if "api_version" in ours:
        req.api_version = _optional_str(given["api_version"], "api_version")
    if "azure_ad_token" in ours:
        req.azure_ad_token = _optional_str(given["azure_ad_token"], "azure_ad_token")
    if "azure_ad_token_provider" in ours:
        provider = given["azure_ad_token_provider"]
        if not callable(provider):
            raise InvalidRequestError(
                "azure_ad_token_provider must be a callable returning a token"
            )
        req.azure_ad_token_provider = provider
    if "metadata" in ours:
        req.metadata = given["metadata"]
    if "custom_llm_provider" in ours:
        hint = given["custom_llm_provider"]
        if "/" not in req.model and hint in ("openai", "azure", "anthropic"):
            req.model = f"{hint}/{req.model}"
        elif isinstance(hint, str) and not req.model.startswith(hint + "/"):
            from .providers._family import FAMILY

            if hint in FAMILY:  # as LiteLLM: "meta-llama/x" + "together_ai" -> "together_ai/..."
                req.model = f"{hint}/{req.model}"
    if "fallbacks" in ours:
        fallbacks = given["fallbacks"]
        if not isinstance(fallbacks, (list, tuple)) or not all(
            isinstance(f, str) or (isinstance(f, Mapping) and isinstance(f.get("model"), str))
            for f in fallbacks
        ):
            raise InvalidRequestError(
                "fallbacks must be a list of model names (or of dicts with a 'model')"
            )
        req.fallbacks = list(fallbacks)
    if "max_parallel_requests" in ours:
        req.max_parallel_requests = check_number(
            given["max_parallel_requests"], "max_parallel_requests", minimum=1, integer=True
        )
    if "input_cost_per_token" in ours or "output_cost_per_token" in ours:
        req.prices = (
            _price(given.get("input_cost_per_token"), "input_cost_per_token"),
            _price(given.get("output_cost_per_token"), "output_cost_per_token"),
        )
    if "headers" in ours or "organization" in ours:
        _lift_headers(params, given.get("headers"), given.get("organization"))
    if not _TIMEOUTS.isdisjoint(ours):
        req.timeout = _timeout(given.get("timeout", given.get("request_timeout")), None)
    if not _RETRIES.isdisjoint(ours):
        req.num_retries = _retries(given.get("num_retries", given.get("max_retries")), None)
    raw_controls = given.get("cache")
    if raw_controls is not None and not isinstance(raw_controls, Mapping):
        raise InvalidRequestError("cache= takes a dict of controls, e.g. {'no-cache': True}")
    ttl = given.get("ttl")
    controls = Controls(raw_controls, ttl) if raw_controls or ttl is not None else _NO_CONTROLS
    caching = given.get("caching")
    if caching is not None and not isinstance(caching, bool):
        raise InvalidRequestError(
            f"caching= takes True or False (or None for the cache's mode), got {caching!r}"
        )
    return caching, controls


_good_bases: set[str] = set()


def _check_base(base: str) -> None:
    """``base`` must be an http(s) URL that parses; remembered once it does (most programs
    name a handful of servers, and parsing costs more than a whole cache hit)."""
    if not base.lower().startswith(("http://", "https://")):
        raise InvalidRequestError(f"api_base must be an http:// or https:// URL, got {base[:80]!r}")
    try:
        httpx.URL(base)
    except (httpx.InvalidURL, ValueError):
        raise InvalidRequestError(f"api_base is not a valid URL: {base[:80]!r}") from None
    if len(_good_bases) < 256:
        _good_bases.add(base)


def _optional_str(value: Any, name: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise InvalidRequestError(f"{name} must be a string, got {type(value).__name__}")


def _price(value: Any, name: str) -> float | None:
    """A per-call price in USD per token, or ``None``."""
    price = check_number(value, name, minimum=0, allow_none=True)
    return None if price is None else float(price)


def _timeout(value: Any, default: float | None) -> float:
    if value is None:
        value = default if default is not None else DEFAULT_TIMEOUT
    if isinstance(value, httpx.Timeout):
        value = value.read or DEFAULT_TIMEOUT
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise InvalidRequestError(f"timeout must be a positive number of seconds, got {value!r}")
    return float(value)


def _retries(value: Any, default: int | None) -> int:
    if value is None:
        value = default if default is not None else DEFAULT_NUM_RETRIES
    number: int = check_number(value, "num_retries", minimum=0, integer=True)
    return number


def _lift_headers(params: dict[str, Any], headers: Any, organization: Any) -> None:
    """LiteLLM's ``headers=`` and ``organization=`` become HTTP headers of the request."""
    extra = params.get("extra_headers")
    if extra is not None and not isinstance(extra, Mapping):
        raise InvalidRequestError("extra_headers must be a dict of header names to values")
    if headers is not None and not isinstance(headers, Mapping):
        raise InvalidRequestError("headers must be a dict of header names to values")
    merged = dict(extra or {})
    merged.update(headers or {})
    if organization:
        merged.setdefault("OpenAI-Organization", str(organization))
    if merged:
        params["extra_headers"] = merged


_SDK_PREFIXES: Final = ("litellm_", "_litellm", "mock_")
_PLAIN: Final = frozenset({str, int, bool, type(None)})
_warned: set[str] = set()


def _check_provider_params(params: dict[str, Any]) -> None:
    """Shapes the provider parameters must have; a pydantic model class as
    ``response_format`` becomes its JSON schema."""
    extra_headers = params.get("extra_headers")
    if extra_headers is not None and not isinstance(extra_headers, Mapping):
        raise InvalidRequestError("extra_headers must be a dict of header names to values")
    extra_body = params.get("extra_body")
    if extra_body is not None and not isinstance(extra_body, Mapping):
        raise InvalidRequestError("extra_body must be a dict of extra JSON fields")
    options = params.get("stream_options")
    if options is not None and not isinstance(options, Mapping):
        raise InvalidRequestError("stream_options must be a dict, e.g. {'include_usage': True}")
    fmt = params.get("response_format")
    if isinstance(fmt, type) and hasattr(fmt, "model_json_schema"):
        params["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": fmt.__name__, "schema": fmt.model_json_schema()},
        }
    for name in [n for n in params if n.startswith(_SDK_PREFIXES)]:
        # LiteLLM's own arguments that llmstash does not know: no provider accepts them.
        del params[name]
        if name not in _warned:
            _warned.add(name)
            logger.warning(
                "llmstash: ignoring %r, a LiteLLM-only argument llmstash does not use", name
            )
    for name, value in params.items():
        if not _finite(value):
            raise InvalidRequestError(
                f"{name} holds a NaN or infinite number, which JSON cannot carry"
            )


def _finite(value: Any) -> bool:
    if type(value) in _PLAIN:
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, Mapping):
        return all(_finite(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(_finite(v) for v in value)
    return True


def check_model(model: Any) -> str:
    """``model`` if it is a non-empty string."""
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequestError(
            f"model must be a non-empty string such as 'gpt-4o-mini', got {model!r}"
        )
    return model


def check_messages(messages: Any) -> list[dict[str, Any]]:
    """Messages as plain dicts (message objects, pydantic models and mappings converted)."""
    if not isinstance(messages, (list, tuple)) or not messages:
        raise InvalidRequestError(
            "messages must be a non-empty list of {'role': ..., 'content': ...} dicts"
        )
    out: list[dict[str, Any]] = []
    for i, msg in enumerate(messages):
        if type(msg) is not dict:
            if isinstance(msg, Message) or hasattr(msg, "__struct_fields__"):
                msg = {k: v for k, v in to_builtins(msg).items() if v is not None}
            elif hasattr(msg, "model_dump"):
                msg = {k: v for k, v in msg.model_dump().items() if v is not None}
            elif isinstance(msg, Mapping):
                msg = dict(msg)
            else:
                raise InvalidRequestError(
                    f"messages[{i}] must be a dict with 'role' and 'content', "
                    f"got {type(msg).__name__}"
                )
        role = msg.get("role")
        if not isinstance(role, str) or not role:
            raise InvalidRequestError(f"messages[{i}] has no 'role' (user, system, assistant...)")
        if "content" not in msg and not msg.get("tool_calls") and not msg.get("function_call"):
            raise InvalidRequestError(f"messages[{i}] (role {role!r}) has no 'content'")
        out.append(msg)
    return out


def check_inputs(value: Any) -> list[Any]:
    """Embedding input as a list of strings (or of token-id lists)."""
    if isinstance(value, str):
        if not value:
            raise InvalidRequestError("input must not be empty")
        return [value]
    if isinstance(value, (list, tuple)) and value:
        if all(isinstance(v, int) for v in value):
            return [list(value)]  # one tokenized input
        for i, v in enumerate(value):
            ok = (
                isinstance(v, str)
                and v
                or (isinstance(v, list) and v and all(isinstance(t, int) for t in v))
            )
            if not ok:
                raise InvalidRequestError(
                    f"input[{i}] must be a non-empty string (or a list of token ids)"
                )
        return list(value)
    raise InvalidRequestError("input must be a non-empty string or a list of strings")
