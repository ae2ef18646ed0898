"""llmstash under LiteLLM's import names, for libraries that ``import litellm`` themselves.

:func:`install` (public as :func:`llmstash.install_as_litellm`) puts a module named ``litellm``
in ``sys.modules`` whose names are llmstash's, completed with the LiteLLM helpers frameworks use
(this package's modules), and registers the submodules under LiteLLM's paths. Nothing here is
imported by ``import llmstash``.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
import threading
import types
from typing import Any, Final

__all__ = ["LITELLM_MODULES", "install", "install_as_litellm", "installed"]

# Settings LiteLLM has and llmstash does not read, with LiteLLM's defaults: frameworks read
# (and set) them; a value set through the `litellm` module lands on `llmstash`.
_SETTING_DEFAULTS: Final[dict[str, Any]] = {
    "set_verbose": False,
    "suppress_debug_info": False,
    "telemetry": True,
    "drop_params": False,
    "modify_params": False,
    "api_key": None,
    "api_base": None,
    "openai_key": None,
    "anthropic_key": None,
    "azure_key": None,
    "max_budget": 0.0,
    "turn_off_message_logging": False,
    "log_raw_request_response": False,
    "return_response_headers": False,
    "add_function_to_prompt": False,
    "enable_json_schema_validation": False,
    "model_alias_map": {},
    "input_callback": [],
    "service_callback": [],
    "_async_success_callback": [],
    "_async_failure_callback": [],
}

# LiteLLM error names that code enumerates (`[n for n in dir(litellm) if n.endswith("Error")]`)
# and then looks up. Listed by dir(): the ones such code already expects of LiteLLM (a name it
# does not know fails a strict check). Reachable by name but not listed: the rest of LiteLLM's
# error names that llmstash defines. llmstash's own error names (LLMStashError, CacheError, ...)
# are neither: the module speaks LiteLLM only.
_LISTED_ERRORS: Final = frozenset(
    {
        "APIConnectionError",
        "APIError",
        "APIResponseValidationError",
        "AuthenticationError",
        "AzureOpenAIError",
        "BadRequestError",
        "BudgetExceededError",
        "ContentPolicyViolationError",
        "ContextWindowExceededError",
        "InternalServerError",
        "InvalidRequestError",
        "JSONSchemaValidationError",
        "NotFoundError",
        "OpenAIError",
        "RateLimitError",
        "RouterRateLimitError",
        "ServiceUnavailableError",
        "UnprocessableEntityError",
        "UnsupportedParamsError",
    }
)
_UNLISTED_ERRORS: Final = frozenset({"BadGatewayError", "PermissionDeniedError"})
_LLMSTASH_ONLY: Final = frozenset(
    {
        "APIStatusError",
        "APITimeoutError",
        "AsyncStream",
        "CacheBackend",
        "CacheError",
        "Client",
        "FloatVector",
        "LLMStashError",
        "MemoryBackend",
        "SyncStream",
        "install_as_litellm",
        "providers",
        "testing",
    }
)

# Each LiteLLM module path and the module that serves it ("" for the `litellm` module itself).
LITELLM_MODULES: Final[dict[str, str]] = {
    "litellm.caching": "llmstash.caching",
    "litellm.caching.caching": "llmstash.caching",
    "litellm.integrations": "llmstash.integrations",
    "litellm.integrations.custom_logger": "llmstash.integrations.custom_logger",
    "litellm.exceptions": "llmstash._litellm_compat.exceptions",
    # The response types' own module: their annotations resolve in its namespace once their
    # __module__ names this path (see install()).
    "litellm.types.utils": "llmstash.types._models",
    "litellm.utils": "llmstash._litellm_compat.utils",
    "litellm._logging": "llmstash._litellm_compat._logging",
}
"""The submodules :func:`install` registers, and the llmstash module behind each (``litellm``
itself and the ``litellm.types`` package are made by :func:`install`)."""

_lock = threading.Lock()
_module: types.ModuleType | None = None


def _helpers() -> dict[str, Any]:
    """LiteLLM's top-level helper names, from this package's modules."""
    from .. import types as response_types
    from . import _logging, exceptions, utils

    names: dict[str, Any] = {}
    for module in (exceptions, response_types, utils):
        for name in module.__all__:
            names[name] = getattr(module, name)
    names["verbose_logger"] = _logging.verbose_logger
    return names


class _LiteLLMModule(types.ModuleType):
    """The ``litellm`` module: reads resolve to llmstash's names first (so settings such as
    ``litellm.cache`` are llmstash's), then LiteLLM's helpers, then LiteLLM's setting defaults;
    writes land on ``llmstash``, where its calls read them."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        sub = sys.modules.get(f"litellm.{name}")
        if sub is not None:
            return sub
        import llmstash

        try:
            return getattr(llmstash, name)
        except AttributeError:
            pass
        helpers: dict[str, Any] = self.__dict__["_llmstash_helpers"]
        if name in helpers:
            return helpers[name]
        if name in _SETTING_DEFAULTS:
            value = _SETTING_DEFAULTS[name]
            return value.copy() if isinstance(value, (list, dict)) else value
        raise AttributeError(f"module 'litellm' (llmstash) has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("__") or name == "_llmstash_helpers":
            super().__setattr__(name, value)
            return
        import llmstash

        setattr(llmstash, name, value)

    def __delattr__(self, name: str) -> None:
        import llmstash

        delattr(llmstash, name)

    def __dir__(self) -> list[str]:
        import llmstash

        helpers: dict[str, Any] = self.__dict__["_llmstash_helpers"]
        names = set(dir(llmstash)) | set(helpers) | set(_SETTING_DEFAULTS)
        names |= {n.split(".")[1] for n in LITELLM_MODULES} | {"types"}
        return sorted(
            n
            for n in names
            if n not in _LLMSTASH_ONLY
            and not n.startswith("__")
            and (not n.endswith("Error") or n in _LISTED_ERRORS)
        )


_RENAMED: Final = (
    "ChatCompletionDeltaToolCall",
    "ChatCompletionMessageToolCall",
    "Choices",
    "Delta",
    "Embedding",
    "EmbeddingResponse",
    "Function",
    "Message",
    "ModelResponse",
    "ModelResponseStream",
    "StreamingChoices",
    "Usage",
)


def _package(name: str, doc: str) -> types.ModuleType:
    module = types.ModuleType(name, doc)
    module.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=True)
    module.__path__ = []
    module.__package__ = name
    return module


def installed() -> bool:
    """Whether :func:`install` has run in this process."""
    return _module is not None and sys.modules.get("litellm") is _module


def install() -> types.ModuleType:
    """Register llmstash as ``litellm`` (see :func:`llmstash.install_as_litellm`)."""
    global _module
    with _lock:
        current = sys.modules.get("litellm")
        if current is not None and current is _module:
            return current
        if current is not None or any(n.startswith("litellm.") for n in sys.modules):
            raise RuntimeError(
                "llmstash.install_as_litellm() must run before anything imports litellm: the "
                "real litellm is already imported in this process, and code holding it would "
                "keep using it. Call install_as_litellm() first thing, before importing the "
                "framework."
            )
        top = _package("litellm", "llmstash, serving code written for LiteLLM.")
        top.__class__ = _LiteLLMModule
        top.__dict__["_llmstash_helpers"] = _helpers()
        modules: dict[str, types.ModuleType] = {"litellm": top}
        types_pkg = _package("litellm.types", "LiteLLM's types, as llmstash serves them.")
        modules["litellm.types"] = types_pkg
        for name, target in LITELLM_MODULES.items():
            modules[name] = importlib.import_module(target)
        types_pkg.utils = modules["litellm.types.utils"]  # type: ignore[attr-defined]
        # Frameworks recognise LiteLLM's objects by their class's module (a stream listener
        # checks `type(chunk).__module__.startswith("litellm")`; a restricted unpickler trusts
        # `litellm.types.*`): the response types now live at litellm.types.utils too.
        from .. import types as response_types

        for name in _RENAMED:
            getattr(response_types, name).__module__ = "litellm.types.utils"
        sys.modules.update(modules)
        _module = top
        return top


def install_as_litellm() -> None:
    """Serve code that does ``import litellm`` with llmstash, as PyMySQL's
    ``install_as_MySQLdb()`` serves code written for MySQLdb. Opt-in, for frameworks that call
    LiteLLM themselves (dspy, openai-agents, smolagents, ...)::

        import llmstash

        llmstash.install_as_litellm()  # first, before the framework is imported
        llmstash.cache = llmstash.Cache(type="redis", host="localhost", port=6379)
        import dspy  # dspy's LiteLLM engine now calls llmstash

    After it, ``import litellm`` gives a module whose calls (``completion``,
    ``acompletion``, ``embedding``, ...), settings (``litellm.cache = ...`` sets
    ``llmstash.cache``), response types and errors are llmstash's, with the LiteLLM helpers
    frameworks use: ``litellm.types.utils``, ``litellm.exceptions`` (with LiteLLM's extra error
    names), ``litellm.caching``, ``litellm.integrations.custom_logger``, ``litellm.utils``,
    ``litellm._logging``, ``get_supported_openai_params``, ``supports_function_calling`` /
    ``supports_reasoning`` / ``supports_response_schema`` / ``supports_vision``,
    ``get_model_info``, ``model_cost``, ``get_llm_provider``, ``token_counter`` and
    ``stream_chunk_builder``. llmstash's response classes report ``litellm.types.utils`` as
    their module from then on, since frameworks recognise LiteLLM's objects by it.

    Calling it again does nothing. It raises ``RuntimeError`` if the real ``litellm`` (or any
    ``litellm.*`` module) is already imported: code holding it would go on using it.

    Limits: only what llmstash serves is there (no Router, proxy, or LiteLLM's other
    providers; ``responses`` / ``aresponses`` and ``text_completion`` / ``atext_completion``
    are llmstash's); capability helpers know the OpenAI and
    Anthropic model families and answer ``False`` for other models; a ``litellm.*`` module
    that is not listed above raises ``ModuleNotFoundError``. The compatibility table in the
    README lists what each framework does and does not get.
    """
    install()
