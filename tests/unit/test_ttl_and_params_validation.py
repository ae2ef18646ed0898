"""TTLs and parameter values that cannot be stored or hashed faithfully are refused up front
(DESIGN §4.1): a non-finite, negative, boolean or absurd ``ttl`` at ``Cache()`` or at the call,
and NaN/inf anywhere in a parameter, raise ``InvalidRequestError`` before any network I/O.
``None`` nested inside a parameter is part of the key."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

import llmstash
from llmstash.caching import Cache
from llmstash.exceptions import InvalidRequestError

MSGS = [{"role": "user", "content": "hi"}]
BAD_TTLS = [
    pytest.param(math.inf, id="inf"),
    pytest.param(-math.inf, id="-inf"),
    pytest.param(math.nan, id="nan"),
    pytest.param(1e16, id="1e16"),
    pytest.param(-1, id="-1"),
    pytest.param(True, id="True"),
    pytest.param("60", id="str"),
]
NAN, INF = math.nan, math.inf


@pytest.fixture(params=["local", "redis"])
async def installed_cache(
    request: pytest.FixtureRequest, free_tcp_port: int
) -> AsyncIterator[Cache]:
    """A cache installed as ``llmstash.cache``: in memory, or Redis at a port where nothing
    listens (a refusal must come before any I/O, so no server is needed)."""
    saved = llmstash.cache
    if request.param == "local":
        cache = Cache()
    else:
        cache = Cache(type="redis", host="127.0.0.1", port=free_tcp_port)
    llmstash.cache = cache
    try:
        yield cache
    finally:
        llmstash.cache = saved
        await cache.aclose()


@pytest.fixture
def sync_cache() -> Iterator[Cache]:
    """An in-memory cache installed as ``llmstash.cache``, for sync calls."""
    saved = llmstash.cache
    llmstash.cache = cache = Cache()
    try:
        yield cache
    finally:
        llmstash.cache = saved


@pytest.fixture
def unreachable(free_tcp_port_factory: Any) -> dict[str, Any]:
    """Call arguments naming a server that does not exist: any network I/O would raise an
    ``APIConnectionError``, not ``InvalidRequestError``."""
    return {
        "model": "openai/gpt-4o-mini",
        "messages": MSGS,
        "api_base": f"http://127.0.0.1:{free_tcp_port_factory()}/v1",
        "api_key": "sk-test-key-123456",
        "num_retries": 0,
        "timeout": 5,
    }


# ttl at Cache() ---------------------------------------------------------------------------------


@pytest.mark.parametrize("ttl", BAD_TTLS)
@pytest.mark.parametrize("cache_type", ["local", "redis"])
def test_cache_refuses_a_bad_ttl(cache_type, ttl):
    with pytest.raises(InvalidRequestError, match="ttl"):
        Cache(type=cache_type, ttl=ttl)


@pytest.mark.parametrize("ttl", BAD_TTLS)
@pytest.mark.parametrize("name", ["default_in_redis_ttl", "default_in_memory_ttl", "lease"])
def test_cache_refuses_other_bad_durations(name, ttl):
    with pytest.raises(InvalidRequestError, match=name):
        Cache(type="redis", host="127.0.0.1", **{name: ttl})


@pytest.mark.parametrize("ttl", [None, 0, 0.5, 60, 86400 * 365])
def test_cache_accepts_sensible_ttls(ttl):
    assert Cache(type="redis", host="127.0.0.1", ttl=ttl).ttl == ttl


# ttl at the call --------------------------------------------------------------------------------


@pytest.mark.parametrize("ttl", BAD_TTLS)
@pytest.mark.parametrize("how", ["ttl=", "cache=ttl"])
async def test_a_call_refuses_a_bad_ttl_before_io(installed_cache, unreachable, ttl, how):
    extra = {"ttl": ttl} if how == "ttl=" else {"cache": {"ttl": ttl}}
    with pytest.raises(InvalidRequestError, match="ttl"):
        await llmstash.acompletion(**unreachable, **extra)
    with pytest.raises(InvalidRequestError, match="ttl"):
        await llmstash.acompletion(**unreachable, **extra, stream=True)


@pytest.mark.parametrize("ttl", BAD_TTLS)
async def test_an_embedding_call_refuses_a_bad_ttl_before_io(installed_cache, unreachable, ttl):
    kwargs = {k: v for k, v in unreachable.items() if k != "messages"}
    kwargs["model"] = "openai/text-embedding-3-small"
    with pytest.raises(InvalidRequestError, match="ttl"):
        await llmstash.aembedding(**kwargs, input=["a"], ttl=ttl)


@pytest.mark.parametrize("ttl", [math.inf, math.nan, 1e16])
def test_a_sync_call_refuses_a_bad_ttl_before_io(sync_cache, unreachable, ttl):
    with pytest.raises(InvalidRequestError, match="ttl"):
        llmstash.completion(**unreachable, ttl=ttl)


# NaN and inf in parameters ----------------------------------------------------------------------


def schema_with(value: Any) -> dict[str, Any]:
    return {
        "type": "json_schema",
        "json_schema": {
            "name": "answer",
            "schema": {
                "type": "object",
                "properties": {"score": {"type": "number", "maximum": value}},
            },
        },
    }


NON_FINITE = [
    pytest.param({"temperature": NAN}, id="temperature nan"),
    pytest.param({"top_p": INF}, id="top_p inf"),
    pytest.param({"presence_penalty": -INF}, id="presence_penalty -inf"),
    pytest.param({"logit_bias": {"50256": INF}}, id="logit_bias value inf"),
    pytest.param({"logit_bias": {"50256": NAN}}, id="logit_bias value nan"),
    pytest.param({"response_format": schema_with(NAN)}, id="nested in response_format"),
    pytest.param(
        {
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "f",
                        "parameters": {"type": "object", "minimum": -INF},
                    },
                }
            ]
        },
        id="nested in tools",
    ),
    pytest.param({"extra_body": {"weights": [1.0, NAN]}}, id="in a list in extra_body"),
    pytest.param({"metadata_numbers": [INF]}, id="unknown provider parameter"),
]


@pytest.mark.parametrize("params", NON_FINITE)
async def test_non_finite_parameter_values_are_refused_before_io(
    installed_cache, unreachable, params
):
    with pytest.raises(InvalidRequestError):
        await llmstash.acompletion(**unreachable, **params)
    with pytest.raises(InvalidRequestError):
        await llmstash.acompletion(**unreachable, **params, stream=True)


@pytest.mark.parametrize("params", NON_FINITE[:2])
def test_non_finite_parameter_values_are_refused_by_sync_calls(sync_cache, unreachable, params):
    with pytest.raises(InvalidRequestError):
        llmstash.completion(**unreachable, **params)


async def test_non_finite_values_are_refused_without_a_cache(unreachable):
    saved, llmstash.cache = llmstash.cache, None
    try:
        with pytest.raises(InvalidRequestError):
            await llmstash.acompletion(**unreachable, temperature=NAN)
    finally:
        llmstash.cache = saved


async def test_non_finite_embedding_parameter_is_refused_before_io(installed_cache, unreachable):
    kwargs = {k: v for k, v in unreachable.items() if k != "messages"}
    kwargs["model"] = "openai/text-embedding-3-small"
    with pytest.raises(InvalidRequestError):
        await llmstash.aembedding(**kwargs, input=["a"], extra_body={"scale": INF})


# None inside a parameter ------------------------------------------------------------------------


def schema(default_null: bool) -> dict[str, Any]:
    prop: dict[str, Any] = {"type": ["string", "null"]}
    if default_null:
        prop["default"] = None
    return {
        "type": "json_schema",
        "json_schema": {
            "name": "answer",
            "schema": {"type": "object", "properties": {"note": prop}},
        },
    }


def test_none_nested_in_a_json_schema_changes_the_key():
    cache = Cache()
    with_null = cache.get_cache_key(
        model="gpt-4o-mini", messages=MSGS, response_format=schema(True)
    )
    without = cache.get_cache_key(model="gpt-4o-mini", messages=MSGS, response_format=schema(False))
    assert with_null != without


def test_none_nested_in_other_values_changes_the_key():
    cache = Cache()
    base = {"model": "gpt-4o-mini", "messages": MSGS}
    assert cache.get_cache_key(**base, extra_body={"a": None}) != cache.get_cache_key(
        **base, extra_body={}
    )
    assert cache.get_cache_key(**base, stop=["x", None]) != cache.get_cache_key(**base, stop=["x"])


def test_a_top_level_none_is_still_not_passed():
    cache = Cache()
    base = {"model": "gpt-4o-mini", "messages": MSGS}
    assert cache.get_cache_key(**base, temperature=None) == cache.get_cache_key(**base)


async def test_calls_differing_only_in_a_nested_none_are_separate_entries(installed_cache):
    common = {"model": "gpt-4o-mini", "messages": MSGS}
    a = await llmstash.acompletion(**common, response_format=schema(True), mock_response="a")
    b = await llmstash.acompletion(**common, response_format=schema(False), mock_response="b")
    assert a.choices[0].message.content == "a"
    assert b.choices[0].message.content == "b"  # not served the other call's entry
    assert b._hidden_params["cache_hit"] is False
    assert a._hidden_params["cache_key"] != b._hidden_params["cache_key"]
