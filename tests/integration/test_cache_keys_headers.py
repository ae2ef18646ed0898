"""Headers are part of the key (DESIGN §4.1): calls that differ only in ``extra_headers`` (a
tenant header, ``anthropic-beta``), LiteLLM's ``headers=`` or ``organization=`` are separate
entries; credentials and tracing/transport headers are not part of the key, so a different
``traceparent`` still hits. Real HTTP to the fake provider."""

from __future__ import annotations

from typing import Any

import pytest

import llmstash
from llmstash.testing import FakeProvider

pytestmark = pytest.mark.parametrize(
    "any_cache", ["local", pytest.param("redis", marks=pytest.mark.redis)], indirect=True
)

KEY = "sk-test-key-123456"


def openai_kwargs(provider: FakeProvider, text: str = "keyed by headers", **extra: Any):
    return {
        "model": "openai/gpt-4o-mini",
        "messages": [{"role": "user", "content": text}],
        "api_base": provider.openai_base,
        "api_key": KEY,
        **extra,
    }


def claude_kwargs(provider: FakeProvider, text: str = "keyed by beta", **extra: Any):
    return {
        "model": "anthropic/claude-test",
        "messages": [{"role": "user", "content": text}],
        "api_base": provider.anthropic_base,
        "api_key": "sk-ant-headers-test",
        **extra,
    }


async def call(**kwargs: Any) -> Any:
    return await llmstash.acompletion(**kwargs)


async def test_a_tenant_header_in_extra_headers_separates_entries(provider, any_cache):
    a = await call(**openai_kwargs(provider, extra_headers={"X-Tenant": "acme"}))
    b = await call(**openai_kwargs(provider, extra_headers={"X-Tenant": "globex"}))
    assert provider.request_count == 2
    assert b._hidden_params["cache_hit"] is False
    assert a._hidden_params["cache_key"] != b._hidden_params["cache_key"]
    assert [r.headers.get("x-tenant") for r in provider.requests] == ["acme", "globex"]
    # and no header at all is a third entry
    c = await call(**openai_kwargs(provider))
    assert provider.request_count == 3 and c._hidden_params["cache_hit"] is False
    again = await call(**openai_kwargs(provider, extra_headers={"X-Tenant": "acme"}))
    assert again._hidden_params["cache_hit"] is True and again.id == a.id
    assert provider.request_count == 3


async def test_anthropic_beta_separates_entries(provider, any_cache):
    plain = await call(**claude_kwargs(provider))
    beta = await call(**claude_kwargs(provider, extra_headers={"anthropic-beta": "beta-2025"}))
    assert provider.request_count == 2
    assert beta._hidden_params["cache_hit"] is False
    assert beta.id != plain.id
    assert provider.requests[1].headers.get("anthropic-beta") == "beta-2025"
    other = await call(**claude_kwargs(provider, extra_headers={"anthropic-beta": "beta-2026"}))
    assert provider.request_count == 3 and other._hidden_params["cache_hit"] is False


async def test_litellm_headers_argument_separates_entries(provider, any_cache):
    a = await call(**openai_kwargs(provider, headers={"X-Tenant": "acme"}))
    b = await call(**openai_kwargs(provider, headers={"X-Tenant": "globex"}))
    assert provider.request_count == 2
    assert b._hidden_params["cache_hit"] is False
    assert a._hidden_params["cache_key"] != b._hidden_params["cache_key"]
    again = await call(**openai_kwargs(provider, headers={"X-Tenant": "acme"}))
    assert again._hidden_params["cache_hit"] is True and again.id == a.id
    assert provider.request_count == 2


async def test_organization_separates_entries(provider, any_cache):
    a = await call(**openai_kwargs(provider, organization="org-one"))
    b = await call(**openai_kwargs(provider, organization="org-two"))
    none = await call(**openai_kwargs(provider))
    assert provider.request_count == 3
    assert b._hidden_params["cache_hit"] is False and none._hidden_params["cache_hit"] is False
    assert len({a.id, b.id, none.id}) == 3
    again = await call(**openai_kwargs(provider, organization="org-one"))
    assert again._hidden_params["cache_hit"] is True and again.id == a.id


async def test_header_names_are_compared_case_insensitively(provider, any_cache):
    a = await call(**openai_kwargs(provider, extra_headers={"X-Tenant": "acme"}))
    b = await call(**openai_kwargs(provider, extra_headers={"x-tenant": "acme"}))
    assert provider.request_count == 1
    assert b._hidden_params["cache_hit"] is True and b.id == a.id


@pytest.mark.parametrize(
    ("name", "first", "second"),
    [
        (
            "traceparent",
            "00-" + "a" * 32 + "-" + "b" * 16 + "-01",
            "00-" + "c" * 32 + "-" + "d" * 16 + "-01",
        ),
        ("tracestate", "vendor=one", "vendor=two"),
        ("x-request-id", "req-1", "req-2"),
        ("User-Agent", "app/1.0", "app/2.0"),
        ("Authorization", f"Bearer {KEY}", "Bearer sk-another-tenant-key-99"),
    ],
)
async def test_credentials_and_tracing_headers_are_not_part_of_the_key(
    provider, any_cache, name, first, second
):
    a = await call(**openai_kwargs(provider, extra_headers={"X-Tenant": "acme", name: first}))
    b = await call(**openai_kwargs(provider, extra_headers={"X-Tenant": "acme", name: second}))
    assert provider.request_count == 1
    assert b._hidden_params["cache_hit"] is True
    assert b.id == a.id
    # the header still reached the provider on the miss
    assert provider.requests[0].headers.get(name.lower()) == first
    # and the same tenant without the header at all is that entry too
    c = await call(**openai_kwargs(provider, extra_headers={"X-Tenant": "acme"}))
    assert c._hidden_params["cache_hit"] is True and provider.request_count == 1


async def test_a_key_never_contains_a_credential_header(any_cache):
    secret = "sk-credential-in-a-header-0001"
    cache = any_cache
    kwargs = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "hi"}],
        "extra_headers": {"Authorization": f"Bearer {secret}", "api-key": secret},
    }
    key = cache.get_cache_key(**kwargs)
    assert secret not in key
    assert key == cache.get_cache_key(model="gpt-4o-mini", messages=kwargs["messages"])
