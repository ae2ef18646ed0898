"""Costs: the dated price table, how model strings find their prices, cached-token discounts,
long-prompt tiers, and LiteLLM's completion_cost / cost_per_token / register_model / model_cost."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import llmstash
from llmstash import _cost
from llmstash._cost import price_usage, prices_updated, token_counts
from llmstash.exceptions import InvalidRequestError
from llmstash.types import Choices, EmbeddingResponse, Message, ModelResponse, Usage

M = 1e-6
MILLION = Usage(prompt_tokens=1_000_000, completion_tokens=1_000_000, total_tokens=2_000_000)


@pytest.fixture(autouse=True)
def _fresh_table() -> Iterator[None]:
    """Each test sees the shipped table, whatever an earlier one registered."""
    _cost._table = None
    _cost._resolved.clear()
    llmstash.__dict__.pop("model_cost", None)
    yield
    _cost._table = None
    _cost._resolved.clear()
    llmstash.__dict__.pop("model_cost", None)


def response(model: str, usage: Usage | None) -> ModelResponse:
    return ModelResponse(
        id="chatcmpl-1",
        choices=[Choices(message=Message(content="hi"), finish_reason="stop")],
        created=0,
        model=model,
        usage=usage,
    )


def test_the_table_is_dated_and_in_litellms_shape() -> None:
    assert re.fullmatch(r"20\d\d-\d\d-\d\d", prices_updated())
    assert prices_updated() >= "2026-12-01"
    table = llmstash.model_cost
    assert isinstance(table, dict) and len(table) > 300
    for name, entry in table.items():
        assert entry["input_cost_per_token"] >= 0, name
        assert entry["output_cost_per_token"] >= 0, name
        assert entry["litellm_provider"], name
        assert entry["mode"] in ("chat", "completion", "embedding", "responses"), name
    for name in (
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-4.1",
        "gpt-4.1-mini",
        "gpt-4.1-nano",
        "o1",
        "o3",
        "o3-mini",
        "o4-mini",
        "gpt-5",
        "gpt-5-mini",
        "gpt-5-nano",
        "text-embedding-3-small",
        "text-embedding-3-large",
        "text-embedding-ada-002",
        "claude-3-5-sonnet",
        "claude-3-5-haiku",
        "claude-3-7-sonnet",
        "claude-sonnet-4",
        "claude-opus-4",
        "claude-opus-4-1",
        "claude-sonnet-4-5",
        "claude-haiku-4-5",
        "claude-opus-4-5",
    ):
        assert name in table, name
    for prefix in ("groq/", "together_ai/", "mistral/", "deepseek/", "xai/", "gemini/"):
        assert any(name.startswith(prefix) for name in table), prefix


def test_the_package_ships_the_data_file() -> None:
    data = json.loads(Path(_cost._DATA_FILE).read_text())
    assert data["updated"] == prices_updated()
    assert data["unit"] == "USD per token"


@pytest.mark.parametrize(
    ("model", "per_million"),
    [
        ("gpt-4o", 2.50 + 10.00),
        ("gpt-4o-2024-08-06", 2.50 + 10.00),
        ("gpt-4o-2024-05-13", 5.00 + 15.00),
        ("gpt-4o-mini", 0.15 + 0.60),
        ("gpt-4o-mini-2024-07-18", 0.15 + 0.60),
        ("openai/gpt-4o-mini", 0.15 + 0.60),
        ("gpt-4.1", 2.00 + 8.00),
        ("gpt-4.1-mini-2025-04-14", 0.40 + 1.60),
        ("gpt-4.1-nano", 0.10 + 0.40),
        ("o1", 15.00 + 60.00),
        ("o1-2024-12-17", 15.00 + 60.00),
        ("o1-mini", 1.10 + 4.40),
        ("o3", 2.00 + 8.00),
        ("o3-mini-2025-01-31", 1.10 + 4.40),
        ("o4-mini", 1.10 + 4.40),
        ("gpt-5", 1.25 + 10.00),
        ("gpt-5-mini-2025-08-07", 0.25 + 2.00),
        ("gpt-3.5-turbo", 0.50 + 1.50),
        ("gpt-3.5-turbo-0125", 0.50 + 1.50),
        ("azure/gpt-4o", 2.50 + 10.00),
        ("azure/gpt-35-turbo", 0.50 + 1.50),
        ("claude-3-5-sonnet-20241022", 3.00 + 15.00),
        ("anthropic/claude-3-5-sonnet-latest", 3.00 + 15.00),
        ("claude-3-5-haiku-20241022", 0.80 + 4.00),
        ("claude-3-7-sonnet-20250219", 3.00 + 15.00),
        ("claude-sonnet-4-20250514", 3.00 + 15.00),
        ("claude-sonnet-4-0", 3.00 + 15.00),
        ("claude-opus-4-20250514", 15.00 + 75.00),
        ("claude-opus-4-1-20250805", 15.00 + 75.00),
        ("claude-3-haiku-20240307", 0.25 + 1.25),
        ("anthropic/claude-3-opus-20240229", 15.00 + 75.00),
        ("claude-sonnet-4-5-20250929", 3.00 + 15.00),
        ("anthropic/claude-haiku-4-5", 1.00 + 5.00),
        ("claude-opus-4-5-20251101", 5.00 + 25.00),
    ],
)
def test_known_models(model: str, per_million: float) -> None:
    assert price_usage(model, MILLION) == pytest.approx(per_million)
    prompt, completion = llmstash.cost_per_token(
        model=model, prompt_tokens=1_000_000, completion_tokens=1_000_000
    )
    assert prompt + completion == pytest.approx(per_million)


@pytest.mark.parametrize(
    "model",
    [
        "azure/chatgpt-v-2",
        "o1-pro-mini",
        "gpt-4o-audio",
        "chatgpt-4o-latest",
        "groq/llama-3.1-8b-instant",
        "openrouter/openai/gpt-4o",
        "gpt-4o-mini-v2",
        "claude-3-5-sonnet-foo",
        "my-model",
    ],
)
def test_unknown_models_are_not_guessed(model: str) -> None:
    assert price_usage(model, MILLION) is None
    with pytest.raises(InvalidRequestError, match="isn't mapped"):
        llmstash.cost_per_token(model=model, prompt_tokens=1, completion_tokens=1)
    with pytest.raises(InvalidRequestError, match="register_model"):
        llmstash.completion_cost(completion_response=response(model, MILLION))


def test_the_answering_model_prices_a_deployment_not_named_after_one() -> None:
    usage = Usage(prompt_tokens=1000, completion_tokens=100, total_tokens=1100)
    assert price_usage("azure/chatgpt-v-2", usage) is None
    assert price_usage("azure/chatgpt-v-2", usage, "gpt-4o-2024-08-06") == pytest.approx(
        1000 * 2.5 * M + 100 * 10 * M
    )
    # The model asked for wins when it has a price.
    assert price_usage("gpt-4o-mini", usage, "gpt-4o") == pytest.approx(
        1000 * 0.15 * M + 100 * 0.6 * M
    )


def test_prompt_and_completion_tokens_have_their_own_prices() -> None:
    usage = Usage(prompt_tokens=1200, completion_tokens=300, total_tokens=1500)
    assert price_usage("gpt-4o-mini", usage) == pytest.approx(1200 * 0.15 * M + 300 * 0.60 * M)
    assert price_usage("gpt-4o-mini", Usage()) == 0.0
    assert price_usage("gpt-4o", None) is None
    assert llmstash.cost_per_token(
        model="gpt-4o-mini", prompt_tokens=1200, completion_tokens=300
    ) == pytest.approx((1200 * 0.15 * M, 300 * 0.60 * M))


@pytest.mark.parametrize(
    ("model", "per_million"),
    [
        ("text-embedding-3-small", 0.02),
        ("openai/text-embedding-3-large", 0.13),
        ("azure/text-embedding-ada-002", 0.10),
    ],
)
def test_embedding_models(model: str, per_million: float) -> None:
    usage = Usage(prompt_tokens=500_000, total_tokens=500_000)
    assert price_usage(model, usage) == pytest.approx(per_million / 2)
    embedded = EmbeddingResponse(data=[], model=model, usage=usage)
    assert llmstash.completion_cost(completion_response=embedded) == pytest.approx(per_million / 2)


def test_openai_cached_prompt_tokens_are_priced_at_the_cache_read_price() -> None:
    usage = Usage(
        prompt_tokens=10_000,
        completion_tokens=1_000,
        total_tokens=11_000,
        prompt_tokens_details={"cached_tokens": 8_000},
    )
    expected = 2_000 * 0.15 * M + 8_000 * 0.075 * M + 1_000 * 0.60 * M
    assert price_usage("gpt-4o-mini", usage) == pytest.approx(expected)
    assert llmstash.completion_cost(
        completion_response=response("gpt-4o-mini-2024-07-18", usage)
    ) == pytest.approx(expected)
    # Less than the undiscounted price, which the same counts without details would cost.
    plain = Usage(prompt_tokens=10_000, completion_tokens=1_000, total_tokens=11_000)
    assert price_usage("gpt-4o-mini", plain) == pytest.approx(10_000 * 0.15 * M + 1_000 * 0.6 * M)
    # The same through cost_per_token and through a dict-shaped usage.
    assert sum(
        llmstash.cost_per_token(
            model="gpt-4o-mini",
            prompt_tokens=10_000,
            completion_tokens=1_000,
            cache_read_input_tokens=8_000,
        )
    ) == pytest.approx(expected)
    as_dict = {
        "prompt_tokens": 10_000,
        "completion_tokens": 1_000,
        "prompt_tokens_details": {"cached_tokens": 8_000},
    }
    assert price_usage("gpt-4o-mini", as_dict) == pytest.approx(expected)


def test_anthropic_cache_reads_and_writes_have_their_own_prices() -> None:
    # llmstash reports Anthropic's usage with prompt_tokens = input + cache read + cache write.
    usage = Usage(
        prompt_tokens=100 + 5_000 + 2_000,
        completion_tokens=400,
        total_tokens=7_500,
        prompt_tokens_details={"cached_tokens": 5_000, "cache_creation_tokens": 2_000},
    )
    expected = 100 * 3 * M + 5_000 * 0.30 * M + 2_000 * 3.75 * M + 400 * 15 * M
    assert price_usage("claude-sonnet-4-5-20250929", usage) == pytest.approx(expected)
    # LiteLLM's Usage carries the write count at the top level.
    litellm_shaped = {
        "prompt_tokens": 7_100,
        "completion_tokens": 400,
        "prompt_tokens_details": {"cached_tokens": 5_000},
        "cache_creation_input_tokens": 2_000,
        "cache_read_input_tokens": 5_000,
    }
    assert price_usage("claude-sonnet-4-5", litellm_shaped) == pytest.approx(expected)
    # Anthropic's own usage: input_tokens excludes the cached ones.
    raw = {
        "input_tokens": 100,
        "output_tokens": 400,
        "cache_read_input_tokens": 5_000,
        "cache_creation_input_tokens": 2_000,
    }
    assert token_counts(raw) == (7_100, 400, 5_000, 2_000)
    assert price_usage("claude-sonnet-4-5", raw) == pytest.approx(expected)
    assert sum(
        llmstash.cost_per_token(
            model="anthropic/claude-sonnet-4-5",
            prompt_tokens=7_100,
            completion_tokens=400,
            cache_read_input_tokens=5_000,
            cache_creation_input_tokens=2_000,
        )
    ) == pytest.approx(expected)


def test_a_long_prompt_is_priced_at_its_tier() -> None:
    llmstash.register_model(
        {
            "tiered": {
                "input_cost_per_token": 1 * M,
                "output_cost_per_token": 2 * M,
                "input_cost_per_token_above_200k_tokens": 3 * M,
                "output_cost_per_token_above_200k_tokens": 4 * M,
                "litellm_provider": "openai",
            }
        }
    )
    assert llmstash.cost_per_token(
        model="tiered", prompt_tokens=200_000, completion_tokens=10
    ) == pytest.approx((0.2, 20 * M))
    assert llmstash.cost_per_token(
        model="tiered", prompt_tokens=200_001, completion_tokens=10
    ) == pytest.approx((200_001 * 3 * M, 40 * M))


def test_register_model_adds_and_updates_prices() -> None:
    with pytest.raises(InvalidRequestError, match="isn't mapped"):
        llmstash.cost_per_token(model="my-finetune", prompt_tokens=1)
    returned = llmstash.register_model(
        {
            "my-finetune": {
                "max_tokens": 8192,
                "input_cost_per_token": 0.00002,
                "output_cost_per_token": 0.00006,
                "litellm_provider": "openai",
                "mode": "chat",
            }
        }
    )
    assert returned is llmstash.model_cost
    assert llmstash.model_cost["my-finetune"]["max_tokens"] == 8192
    assert llmstash.cost_per_token(
        model="my-finetune", prompt_tokens=10, completion_tokens=5
    ) == pytest.approx((10 * 0.00002, 5 * 0.00006))
    # A dated snapshot of it is priced too, and so is a response naming it.
    assert price_usage("my-finetune-2026-01-01", MILLION) == pytest.approx(80.0)
    # Updating keeps the fields not given.
    llmstash.register_model({"gpt-4o-mini": {"input_cost_per_token": 1 * M}})
    entry = llmstash.model_cost["gpt-4o-mini"]
    assert entry["input_cost_per_token"] == 1 * M
    assert entry["output_cost_per_token"] == 0.6 * M
    assert price_usage("openai/gpt-4o-mini", MILLION) == pytest.approx(1.0 + 0.6)


def test_model_cost_is_the_table_lookups_read() -> None:
    table = llmstash.model_cost
    assert table is _cost.model_cost is llmstash.model_cost
    assert price_usage("brand-new-2026-05-05", MILLION) is None
    table["brand-new"] = {"input_cost_per_token": 1 * M, "output_cost_per_token": 1 * M}
    assert price_usage("brand-new-2026-05-05", MILLION) == pytest.approx(2.0)
    del table["brand-new"]
    assert price_usage("brand-new-2026-05-05", MILLION) is None


def test_register_model_from_a_json_file(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(
        json.dumps(
            {
                "sample_spec": {"input_cost_per_token": "documentation, not a model"},
                "file-model": {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6},
            }
        )
    )
    llmstash.register_model(str(path))
    assert "sample_spec" not in llmstash.model_cost
    assert price_usage("file-model", MILLION) == pytest.approx(3.0)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("https://example.com/prices.json", "does not download"),
        ("/no/such/file.json", "cannot read"),
        (["gpt-4o"], "takes a dict"),
        ({"": {"input_cost_per_token": 1e-6}}, "non-empty"),
        ({"x": 3}, "must be a dict"),
        ({"x": {"input_cost_per_token": -1}}, "input_cost_per_token must be a number >= 0"),
        ({"x": {"output_cost_per_token": "0.1"}}, "output_cost_per_token"),
        ({"x": {"input_cost_per_token": float("nan")}}, "input_cost_per_token"),
        ({"x": {"input_cost_per_token": True}}, "input_cost_per_token"),
        ({"x": {"max_tokens": -5}}, "max_tokens must be an integer"),
    ],
)
def test_register_model_refuses_bad_input_and_changes_nothing(given: Any, message: str) -> None:
    before = dict(llmstash.model_cost)
    with pytest.raises(InvalidRequestError, match=message):
        llmstash.register_model({"ok-model": {"input_cost_per_token": 1e-6}, **given}) if (
            isinstance(given, dict)
        ) else llmstash.register_model(given)
    assert llmstash.model_cost == before
    assert "ok-model" not in llmstash.model_cost


def test_completion_cost_honours_custom_prices() -> None:
    usage = Usage(prompt_tokens=100, completion_tokens=10, total_tokens=110)
    r = response("azure/chatgpt-v-2", usage)
    custom = {"input_cost_per_token": 0.005, "output_cost_per_token": 1}
    assert llmstash.completion_cost(
        completion_response=r, custom_cost_per_token=custom
    ) == pytest.approx(100 * 0.005 + 10 * 1)
    assert llmstash.cost_per_token(
        model="anything", prompt_tokens=100, completion_tokens=10, custom_cost_per_token=custom
    ) == pytest.approx((0.5, 10.0))
    # A model given explicitly overrides the response's.
    assert llmstash.completion_cost(completion_response=r, model="gpt-4o") == pytest.approx(
        100 * 2.5 * M + 10 * 10 * M
    )
    with pytest.raises(InvalidRequestError, match="custom_cost_per_token"):
        llmstash.completion_cost(completion_response=r, custom_cost_per_token=[1, 2])  # type: ignore[arg-type]


def test_completion_cost_of_dicts_and_providers() -> None:
    as_dict = {"model": "gpt-4o", "usage": {"prompt_tokens": 1000, "completion_tokens": 100}}
    assert llmstash.completion_cost(as_dict) == pytest.approx(1000 * 2.5 * M + 100 * 10 * M)
    groq = next(name for name in llmstash.model_cost if name.startswith("groq/"))
    bare = groq.split("/", 1)[1]
    assert llmstash.cost_per_token(
        model=bare, custom_llm_provider="groq", prompt_tokens=10
    ) == llmstash.cost_per_token(model=groq, prompt_tokens=10)
    # LiteLLM-only arguments are accepted and ignored.
    assert llmstash.completion_cost(as_dict, call_type="completion", region_name="us") > 0


def test_completion_cost_explains_what_it_cannot_do() -> None:
    with pytest.raises(InvalidRequestError, match="counts no tokens"):
        llmstash.completion_cost(model="gpt-4o", prompt="Hey!", completion="How's it going?")
    with pytest.raises(InvalidRequestError, match="needs completion_response"):
        llmstash.completion_cost()
    with pytest.raises(InvalidRequestError, match="no usage"):
        llmstash.completion_cost(completion_response=response("gpt-4o", None))
    with pytest.raises(InvalidRequestError, match="model must be"):
        llmstash.completion_cost(completion_response=response("", MILLION))
    with pytest.raises(InvalidRequestError, match="prompt_tokens must be an integer"):
        llmstash.cost_per_token(model="gpt-4o", prompt_tokens=-1)
    with pytest.raises(InvalidRequestError, match="completion_tokens must be an integer"):
        llmstash.cost_per_token(model="gpt-4o", completion_tokens=1.5)  # type: ignore[arg-type]


def test_cost_per_token_takes_a_usage_object() -> None:
    usage = Usage(
        prompt_tokens=1_000,
        completion_tokens=10,
        total_tokens=1_010,
        prompt_tokens_details={"cached_tokens": 1_000},
    )
    assert llmstash.cost_per_token(model="gpt-4o", usage_object=usage) == pytest.approx(
        (1_000 * 1.25 * M, 10 * 10 * M)
    )


def test_lookups_are_memoised_and_bounded() -> None:
    price_usage("gpt-4o-mini-2024-07-18-x", MILLION)
    assert "gpt-4o-mini-2024-07-18-x" in _cost._resolved
    for i in range(_cost._MEMO_LIMIT + 10):
        price_usage(f"unknown-{i}", MILLION)
    assert len(_cost._resolved) <= _cost._MEMO_LIMIT
