"""install_as_litellm() and the LiteLLM helpers it serves (the frameworks themselves are driven
in tests/frameworks). Installing changes the process for good, so those tests run in a child."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

import msgspec
import pytest

import llmstash
from llmstash._litellm_compat import utils
from llmstash._streaming import response_to_chunks
from llmstash.exceptions import InvalidRequestError
from llmstash.types import (
    ChatCompletionMessageToolCall,
    Choices,
    Function,
    Message,
    ModelResponse,
    Usage,
)

# The error names aider looks up on litellm; it refuses any other *Error name dir() lists.
AIDER_ERRORS = [
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
    "Timeout",
]


def _child(script: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_install_serves_litellm_paths_and_settings() -> None:
    out = _child(
        f"""
        import json, sys, llmstash
        lazy = "llmstash._litellm_compat" in sys.modules
        llmstash.install_as_litellm()
        llmstash.install_as_litellm()  # idempotent
        import litellm
        from litellm.types.utils import ModelResponse, ModelResponseStream, Choices
        from litellm.caching.caching import Cache
        from litellm.integrations.custom_logger import CustomLogger
        from litellm.exceptions import BudgetExceededError, ContextWindowExceededError
        from litellm._logging import verbose_logger, _disable_debugging
        from litellm.utils import get_supported_openai_params
        litellm.cache = litellm.Cache()
        litellm.drop_params = True
        errors = [n for n in dir(litellm) if n.endswith("Error")]
        looked_up = [getattr(litellm, n).__name__ for n in {AIDER_ERRORS!r}]
        try:
            import litellm.router
            router = "imported"
        except ModuleNotFoundError:
            router = "missing"
        r = litellm.completion(model="gpt-4o-mini", messages=[{{"role": "user", "content": "x"}}],
                               mock_response="hi", retry_strategy="exponential_backoff_retry")
        print(json.dumps({{
            "lazy": lazy,
            "same_cache": llmstash.cache is litellm.cache and isinstance(llmstash.cache, Cache),
            "drop_params": llmstash.drop_params,
            "errors": errors,
            "looked_up": looked_up,
            "router": router,
            "module": ModelResponseStream.__module__,
            "isinstance": isinstance(r, litellm.types.utils.ModelResponse)
                          and isinstance(r.choices[0], Choices),
            "cw": ContextWindowExceededError is llmstash.ContextWindowExceededError,
            "defaults": [litellm.set_verbose, litellm.suppress_debug_info],
            "completion": litellm.completion is llmstash.completion,
        }}))
        """
    )
    assert out["lazy"] is False, "import llmstash must not load the compat package"
    assert out["same_cache"] is True
    assert out["drop_params"] is True
    assert set(out["errors"]) <= set(AIDER_ERRORS)  # type: ignore[arg-type]
    assert "LLMStashError" not in out["errors"]  # type: ignore[operator]
    assert len(out["looked_up"]) == len(AIDER_ERRORS)  # type: ignore[arg-type]
    assert out["router"] == "missing"
    assert out["module"] == "litellm.types.utils"
    assert out["isinstance"] is True
    assert out["cw"] is True
    assert out["defaults"] == [False, False]
    assert out["completion"] is True


def test_install_refuses_after_the_real_litellm() -> None:
    out = _child(
        """
        import json, sys, types, llmstash
        sys.modules["litellm"] = types.ModuleType("litellm")
        try:
            llmstash.install_as_litellm()
            print(json.dumps({"raised": None}))
        except RuntimeError as exc:
            print(json.dumps({"raised": str(exc)}))
        """
    )
    assert "already imported" in str(out["raised"])


def test_responses_accept_object_setattr_outside_equality_and_encoding() -> None:
    def make() -> ModelResponse:
        return ModelResponse(id="r", choices=[Choices()], created=1, usage=Usage(total_tokens=3))

    marked = make()
    object.__setattr__(marked, "cache_hit", True)
    assert marked.cache_hit is True
    assert marked == make()
    assert msgspec.json.encode(marked) == msgspec.json.encode(make())
    assert "cache_hit" not in marked.model_dump()
    with pytest.raises(TypeError):  # the nested types keep msgspec's own setattr
        object.__setattr__(Message(), "x", 1)


def test_stream_chunk_builder_reassembles_a_stream() -> None:
    call = ChatCompletionMessageToolCall(
        id="call_1", function=Function(name="lookup", arguments='{"q": "cats"}')
    )
    resp = ModelResponse(
        id="r",
        choices=[
            Choices(message=Message(content="Hello there", tool_calls=[call]), finish_reason="x")
        ],
        created=5,
        model="gpt-4o-mini",
        usage=Usage(prompt_tokens=2, completion_tokens=3, total_tokens=5),
    )
    chunks = response_to_chunks(resp)
    built = utils.stream_chunk_builder(chunks)
    assert built == resp
    as_dicts = utils.stream_chunk_builder([c.model_dump() for c in chunks])
    assert as_dicts == resp
    assert utils.stream_chunk_builder([]) is None


def test_capabilities_are_conservative_for_unknown_models() -> None:
    assert utils.supports_function_calling("openai/gpt-4o-mini") is True
    assert utils.supports_function_calling("openai/my-local-model") is False
    assert utils.supports_reasoning("o3-mini") is True
    assert utils.supports_vision("o3-mini") is False
    assert utils.get_supported_openai_params("some-model") is None
    assert "thinking" in (utils.get_supported_openai_params("anthropic/claude-sonnet-4-0") or [])
    assert "top_p" not in (utils.get_supported_openai_params("o3-mini") or [])
    info = utils.get_model_info("openai/gpt-4o-mini-2024-07-18")
    assert info["key"] == "gpt-4o-mini-2024-07-18" and info["litellm_provider"] == "openai"
    assert utils.get_model_info("openai/gpt-4o-mini-2099-01-01")["key"] == "gpt-4o-mini"
    assert info["input_cost_per_token"] == pytest.approx(0.15e-6)
    with pytest.raises(Exception, match="isn't mapped"):
        utils.get_model_info("openai/unknown-model")
    with pytest.raises(InvalidRequestError):
        utils.get_llm_provider("mystery-model")


@pytest.mark.parametrize(
    ("model", "kwargs"),
    [
        ("anthropic/claude-3-5-haiku", {}),
        ("gpt-4o-mini", {"api_key": "sk-given"}),
        ("groq/llama-3.1-8b-instant", {}),
        ("llama-3.1-8b-instant", {"custom_llm_provider": "groq"}),
        ("ollama/llama3", {}),
        ("my-model", {"api_base": "http://127.0.0.1:9/v1"}),
    ],
)
def test_get_llm_provider_is_llmstash_s(model: str, kwargs: dict[str, Any]) -> None:
    # litellm.utils.get_llm_provider and litellm.get_llm_provider (llmstash's) agree.
    assert utils.get_llm_provider(model, **kwargs) == llmstash.get_llm_provider(model, **kwargs)


def test_capability_helpers_know_the_provider_prefixes() -> None:
    assert utils.get_supported_openai_params("groq/llama-3.1-8b-instant") is not None
    assert "tools" in (utils.get_supported_openai_params("mistral/mistral-small") or [])
    assert utils.get_supported_openai_params("unknown/some-model") is None


def test_token_counter_counts_messages_and_text() -> None:
    one = utils.token_counter(messages=[{"role": "user", "content": "hello world"}])
    two = utils.token_counter(
        messages=[{"role": "user", "content": "hello world"}, {"role": "user", "content": "x"}]
    )
    assert 6 < one < two
    assert utils.token_counter(text="abcd" * 10) == 10
