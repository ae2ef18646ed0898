"""An Anthropic base URL may be the root, the root + ``/v1`` or the full ``/v1/messages`` URL,
given as ``api_base`` or in the environment: every form requests ``/v1/messages`` exactly once.
Real requests to the fake provider."""

from __future__ import annotations

import pytest

import llmstash
from llmstash.providers import resolve
from llmstash.testing import FakeProvider

MESSAGES = [{"role": "user", "content": "what is a cache?"}]
SUFFIXES = ["", "/", "/v1", "/v1/", "/v1/messages", "/v1/messages/"]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_API_BASE", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("suffix", SUFFIXES)
async def test_api_base_forms(llm: None, provider: FakeProvider, suffix: str) -> None:
    response = await llmstash.acompletion(
        model="anthropic/claude-3-5-haiku",
        messages=MESSAGES,
        api_base=provider.url + suffix,
        api_key="sk-ant-test",
    )
    assert response.choices[0].message.content == "Echo: what is a cache?"
    assert [r.path for r in provider.requests] == ["/v1/messages"]


@pytest.mark.parametrize("env", ["ANTHROPIC_API_BASE", "ANTHROPIC_BASE_URL"])
@pytest.mark.parametrize("suffix", SUFFIXES)
async def test_environment_forms(
    llm: None, provider: FakeProvider, monkeypatch: pytest.MonkeyPatch, env: str, suffix: str
) -> None:
    monkeypatch.setenv(env, provider.url + suffix)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test\n")
    async for _ in await llmstash.acompletion(
        model="claude-3-5-haiku", messages=MESSAGES, stream=True
    ):
        pass
    assert [r.path for r in provider.requests] == ["/v1/messages"]


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_route_base_is_the_root(suffix: str) -> None:
    _, route = resolve("claude-x", api_base="https://proxy.example/anthropic" + suffix, api_key="k")
    assert route.api_base == "https://proxy.example/anthropic"
