"""completion_cost / embedding_cost: the price table and how model strings are matched."""

from __future__ import annotations

import pytest

from llmstash._cost import completion_cost, embedding_cost
from llmstash.types import Usage

MILLION = Usage(prompt_tokens=1_000_000, completion_tokens=1_000_000, total_tokens=2_000_000)


@pytest.mark.parametrize(
    ("model", "expected"),
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
        ("o3-mini-2025-01-31", 1.10 + 4.40),
        ("o4-mini", 1.10 + 4.40),
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
    ],
)
def test_known_chat_models(model: str, expected: float) -> None:
    assert completion_cost(model, MILLION) == pytest.approx(expected)


@pytest.mark.parametrize(
    "model",
    [
        "azure/chatgpt-v-2",
        "o1-pro",
        "o3",
        "gpt-4o-audio-preview",
        "gpt-3.5-turbo-16k",
        "gpt-3.5-turbo-1106",
        "chatgpt-4o-latest",
        "groq/llama-3.1-8b-instant",
        "openrouter/openai/gpt-4o",
        "text-embedding-3-small",
        "",
    ],
)
def test_unknown_chat_models_are_not_guessed(model: str) -> None:
    assert completion_cost(model, MILLION) is None


def test_prompt_and_completion_tokens_have_their_own_prices() -> None:
    usage = Usage(prompt_tokens=1200, completion_tokens=300, total_tokens=1500)
    assert completion_cost("gpt-4o-mini", usage) == pytest.approx(
        1200 * 0.15 / 1e6 + 300 * 0.60 / 1e6
    )
    assert completion_cost("gpt-4o-mini", Usage()) == 0.0


def test_no_usage_no_cost() -> None:
    assert completion_cost("gpt-4o", None) is None
    assert embedding_cost("text-embedding-3-small", None) is None


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
    assert embedding_cost(model, usage) == pytest.approx(per_million / 2)


@pytest.mark.parametrize("model", ["gpt-4o", "text-embedding-3-small-v2", "azure/my-embedder"])
def test_unknown_embedding_models(model: str) -> None:
    assert embedding_cost(model, MILLION) is None
