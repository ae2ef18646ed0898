"""Bad input fails fast with a clear InvalidRequestError, before any network I/O."""

from __future__ import annotations

import pytest

import llmstash
from llmstash.exceptions import InvalidRequestError

OK = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    ("model", "messages", "needle"),
    [
        (None, OK, "model must be a non-empty string"),
        ("", OK, "model must be a non-empty string"),
        ("   ", OK, "model must be a non-empty string"),
        ("gpt-4o-mini", None, "messages must be a non-empty list"),
        ("gpt-4o-mini", [], "messages must be a non-empty list"),
        ("gpt-4o-mini", "hello", "messages must be a non-empty list"),
        ("gpt-4o-mini", ["hello"], "messages[0] must be a dict"),
        ("gpt-4o-mini", [{"content": "x"}], "messages[0] has no 'role'"),
        ("gpt-4o-mini", [{"role": "user"}], "has no 'content'"),
    ],
)
async def test_bad_chat_input(provider, llm, model, messages, needle):
    with pytest.raises(InvalidRequestError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        await llmstash.acompletion(
            model=model, messages=messages, api_base=provider.openai_base, api_key="sk-x"
        )
    assert provider.request_count == 0


async def test_unknown_provider_prefix(llm, monkeypatch):
    with pytest.raises(InvalidRequestError, match="openai"):
        await llmstash.acompletion(model="nosuch/model-x", messages=OK)


async def test_missing_key_names_the_variable(llm, monkeypatch):
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_API_BASE"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(InvalidRequestError, match="OPENAI_API_KEY"):
        await llmstash.acompletion(model="gpt-4o-mini", messages=OK)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(InvalidRequestError, match="ANTHROPIC_API_KEY"):
        await llmstash.acompletion(model="claude-3-5-haiku-20241022", messages=OK)


async def test_azure_needs_a_base(llm, monkeypatch):
    monkeypatch.delenv("AZURE_API_BASE", raising=False)
    with pytest.raises(InvalidRequestError, match="AZURE_API_BASE"):
        await llmstash.acompletion(model="azure/my-deployment", messages=OK, api_key="k")


async def test_bad_cache_controls_and_embedding_input(provider, llm):
    with pytest.raises(InvalidRequestError, match="cache="):
        await llmstash.acompletion(model="gpt-4o-mini", messages=OK, cache="yes", mock_response="x")
    with pytest.raises(InvalidRequestError, match="ttl"):
        await llmstash.acompletion(model="gpt-4o-mini", messages=OK, ttl="soon", mock_response="x")
    for bad in (None, "", [], [""], [1.5], ["ok", None]):
        with pytest.raises(InvalidRequestError, match="input"):
            await llmstash.aembedding(
                model="text-embedding-3-small", input=bad, api_base=provider.openai_base
            )
    assert provider.request_count == 0


async def test_the_api_key_never_shows_in_errors(provider, llm):
    secret = "sk-very-secret-key-1234567890"
    provider.fail_next(status=401, body={"error": {"message": f"Incorrect API key: {secret}"}})
    with pytest.raises(llmstash.AuthenticationError) as info:
        await llmstash.acompletion(
            model="gpt-4o-mini",
            messages=OK,
            api_base=provider.openai_base,
            api_key=secret,
            num_retries=0,
        )
    exc = info.value
    for text in (str(exc), repr(exc), exc.message):
        assert secret not in text
    assert "Incorrect API key" in exc.message  # the provider's words arrive, its key does not
    assert exc.status_code == 401 and exc.llm_provider == "openai"


def test_mock_response_exception_is_raised():
    err = llmstash.RateLimitError("slow down", status_code=429)
    with pytest.raises(llmstash.RateLimitError):
        llmstash.completion(model="gpt-4o-mini", messages=OK, mock_response=err)


def test_bad_redis_settings_fail_at_construction_and_litellm_extras_are_ignored():
    with pytest.raises(InvalidRequestError, match="decode_responses"):
        llmstash.Cache(type="redis", host="127.0.0.1", port=6379, decode_responses=True)
    with pytest.raises(InvalidRequestError, match="no_such_option"):
        llmstash.Cache(type="redis", host="127.0.0.1", port=6379, no_such_option=1)
    cache = llmstash.Cache(type="redis", host="127.0.0.1", similarity_threshold=0.8)
    assert cache.type == "redis"


async def test_error_responses_do_not_carry_the_key(provider, llm):
    secret = "azure-secret-key-0123456789"
    provider.fail_next(status=401)
    with pytest.raises(llmstash.AuthenticationError) as info:
        await llmstash.acompletion(
            model="azure/dep",
            messages=OK,
            api_base=provider.azure_base,
            api_key=secret,
            api_version="2024-10-21",
            num_retries=0,
        )
    request = info.value.response.request
    assert request.headers["api-key"] == "***"
    assert secret not in str(request.headers)
    assert provider.requests[-1].headers["api-key"] == secret  # the real request carried it


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"api_base": 123}, "api_base"),
        ({"api_base": "localhost:8000/v1"}, "api_base"),
        ({"api_base": "not a url"}, "api_base"),
        ({"api_base": "http://[::1"}, "api_base"),
        ({"api_base": "http://h\x00/v1"}, "api_base"),
        ({"stream": "yes"}, "stream"),
        ({"stream_options": "x"}, "stream_options"),
        ({"api_key": ["sk"]}, "api_key"),
        ({"api_version": 2024}, "api_version"),
        ({"extra_body": [1]}, "extra_body"),
        ({"extra_headers": "x"}, "extra_headers"),
        ({"headers": "x"}, "headers"),
        ({"timeout": "abc"}, "timeout"),
        ({"timeout": float("nan")}, "timeout"),
        ({"timeout": -1}, "timeout"),
        ({"num_retries": "abc"}, "num_retries"),
        ({"num_retries": -1}, "num_retries"),
        ({"temperature": float("nan")}, "temperature"),
        ({"logit_bias": {"50256": float("-inf")}}, "logit_bias"),
        ({"fallbacks": "gpt-4o"}, "fallbacks"),
        ({"max_parallel_requests": 0}, "max_parallel_requests"),
        ({"input_cost_per_token": -1}, "input_cost_per_token"),
        ({"azure_ad_token_provider": "token"}, "azure_ad_token_provider"),
        ({"ttl": float("inf")}, "ttl"),
        ({"cache": {"s-maxage": float("nan")}}, "s-maxage"),
    ],
)
async def test_bad_argument_types_are_named_before_io(provider, llm, kwargs, named):
    llmstash.cache = llmstash.Cache()
    call = {"api_base": provider.openai_base, "api_key": "sk-x", **kwargs}
    with pytest.raises(InvalidRequestError, match=named):
        await llmstash.acompletion(model="gpt-4o-mini", messages=OK, **call)
    assert provider.request_count == 0


@pytest.mark.parametrize("cached", [True, False])
async def test_text_that_is_not_unicode_is_the_callers_mistake(provider, llm, cached):
    llmstash.cache = llmstash.Cache() if cached else None
    with pytest.raises(InvalidRequestError, match="Unicode|surrogate"):
        await llmstash.acompletion(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "broken \ud800 text"}],
            api_base=provider.openai_base,
            api_key="sk-x",
        )
    assert provider.request_count == 0


async def test_sdk_only_arguments_never_reach_the_provider(provider, llm, caplog):
    sdk_only = {
        "tags": ["a"],
        "mock_delay": 0.1,
        "litellm_metadata": {"x": 1},
        "deployment_id": "d",
        "metadata": {"user": "u"},
        "retry_strategy": "exponential_backoff_retry",
        "_skip_mcp_handler": True,
        "litellm_some_future_option": 1,
        "proxy_server_request": {},
        "stream_timeout": 5,
        "client_secret": "azure-client-secret-value",
        "aws_secret_access_key": "aws-secret-value",
        "base_model": "gpt-4o",
        "rpm": 10,
    }
    with caplog.at_level("WARNING", logger="llmstash"):
        r = await llmstash.acompletion(
            model="gpt-4o-mini",
            messages=OK,
            api_base=provider.openai_base,
            api_key="sk-x",
            temperature=0.5,
            **sdk_only,
        )
    assert r.choices[0].message.content
    body = provider.requests[-1].json
    assert body["temperature"] == 0.5
    assert not set(sdk_only) & set(body), body
    warned = [rec.getMessage() for rec in caplog.records]
    assert sum("litellm_some_future_option" in m for m in warned) == 1


async def test_token_ids_as_int_keys_are_cached(provider, llm):
    llmstash.cache = llmstash.Cache()
    kwargs = {
        "model": "gpt-4o-mini",
        "messages": OK,
        "api_base": provider.openai_base,
        "api_key": "sk-x",
        "logit_bias": {50256: -100},
    }
    await llmstash.acompletion(**kwargs)
    again = await llmstash.acompletion(**kwargs)
    assert again._hidden_params["cache_hit"] is True
    assert provider.requests[0].json["logit_bias"] == {"50256": -100}


@pytest.mark.parametrize("caching", [0, 1, "no", "yes"])
async def test_caching_takes_a_bool(provider, llm, caching):
    llmstash.cache = llmstash.Cache()
    with pytest.raises(InvalidRequestError, match="caching= takes True or False"):
        await llmstash.acompletion(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            api_base=provider.openai_base,
            api_key="sk-test",
            caching=caching,
        )
    assert provider.request_count == 0


@pytest.mark.parametrize(
    "url", ["http://user:hunter2-secret@127.0.0.1:1/0", "garbage", "ftp://:hunter2-secret@h/0"]
)
def test_a_bad_redis_url_says_what_is_wrong_without_its_password(url):
    with pytest.raises(InvalidRequestError) as info:
        llmstash.Cache(type="redis", url=url)
    text = str(info.value)
    assert "redis://, rediss://, unix://" in text  # redis-py's own words survive
    assert "hunter2" not in text


async def test_an_api_base_with_a_query_is_refused_without_showing_it(provider, llm):
    with pytest.raises(InvalidRequestError, match="must not carry a query string") as info:
        await llmstash.acompletion(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            api_base=provider.openai_base + "?key=hunter2-secret",
            api_key="sk-test",
        )
    assert "hunter2" not in str(info.value)
    assert provider.request_count == 0
