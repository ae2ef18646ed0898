"""Single flight at its edges: fallbacks, failures shared with waiters, streams dropped
unread while holding a lease, a stalled streamed leader under a lease, embeddings whose leader
fails after the provider answered."""

from __future__ import annotations

import asyncio
import base64
import time
import uuid

import anyio
import httpx

import llmstash
from llmstash.integrations.custom_logger import CustomLogger

MSGS = [{"role": "user", "content": "edges"}]


def chat(provider, **kwargs):
    return llmstash.acompletion(
        model="gpt-4o-mini",
        messages=MSGS,
        api_base=provider.openai_base,
        api_key="sk-x",
        num_retries=0,
        **kwargs,
    )


async def test_waiters_of_a_fallback_answer_are_served_it_once(provider, llm):
    llmstash.cache = llmstash.Cache()
    provider.latency = 0.05
    provider.fail_next(503)
    results = await asyncio.gather(*(chat(provider, fallbacks=["gpt-4o"]) for _ in range(10)))
    assert provider.request_count == 2  # the failed first model, then one fallback request
    assert len({r.id for r in results}) == 1
    paid = [r for r in results if not r._hidden_params["cache_hit"]]
    assert len(paid) == 1
    again = await chat(provider, fallbacks=["gpt-4o"])
    assert again._hidden_params["cache_hit"] is False  # a fallback's answer was not stored


async def test_a_fallback_answer_is_priced_as_the_model_that_answered(provider, llm):
    provider.fail_next(503)
    r = await chat(provider, fallbacks=["gpt-4o"])
    direct = await llmstash.acompletion(
        model="gpt-4o", messages=MSGS, api_base=provider.openai_base, api_key="sk-x"
    )
    assert r.usage == direct.usage
    assert r._hidden_params["response_cost"] == direct._hidden_params["response_cost"]


async def test_each_waiter_that_shares_an_error_reports_its_failure(provider, llm):
    failures = []

    class Failures(CustomLogger):
        async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time):
            failures.append(kwargs["exception"])

    llmstash.cache = llmstash.Cache()
    llmstash.callbacks = [Failures()]
    provider.latency = 0.05
    provider.fail_next(400)
    results = await asyncio.gather(*(chat(provider) for _ in range(5)), return_exceptions=True)
    await llmstash.aflush_callbacks()
    assert provider.request_count == 1
    assert all(isinstance(r, llmstash.BadRequestError) for r in results)
    assert len(failures) == 5


def leased_cache(server) -> llmstash.Cache:
    """A Redis cache on ``server`` whose misses take a 5 s lease, in a namespace of its own."""
    return llmstash.Cache(
        type="redis",
        host=server.host,
        port=server.port,
        lease=5,
        namespace=f"edges-{uuid.uuid4().hex}",
    )


def stream_kwargs(provider) -> dict[str, object]:
    return {
        "model": "gpt-4o-mini",
        "messages": MSGS,
        "api_base": provider.openai_base,
        "api_key": "sk-x",
        "stream": True,
    }


async def test_a_stream_dropped_unread_releases_its_lease(provider, private_redis):
    cache = leased_cache(private_redis)
    async with llmstash.Client(cache=cache) as client:
        kwargs = stream_kwargs(provider)
        stream = await client.acompletion(**kwargs)
        async for _chunk in stream:
            break  # dropped: nothing stored, and the lease must go
        del stream, _chunk
        await asyncio.sleep(0.05)
        started = time.monotonic()
        again = await client.acompletion(**{**kwargs, "stream": False})
        assert time.monotonic() - started < 2  # not the 5 s lease
        assert again.choices[0].message.content
    await cache.aclose()


async def test_a_stalled_streamed_leader_does_not_make_waiters_wait_out_its_lease(
    provider, private_redis
):
    cache = leased_cache(private_redis)
    async with llmstash.Client(cache=cache) as client:
        kwargs = stream_kwargs(provider)
        first = await client.acompletion(**kwargs)  # opened, not read yet
        started = time.monotonic()
        second = await client.acompletion(**kwargs)  # waits for the stalled first, then alone
        assert time.monotonic() - started < 3  # ~1 s of stall, never the 5 s lease
        assert [c async for c in second]
        assert [c async for c in first]
    await cache.aclose()


async def test_embedding_waiters_never_hang_when_the_leader_fails_after_the_answer(llm):
    bad = base64.b64encode(b"\x00\x01\x02").decode()  # not a whole number of float32s

    async def handler(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.05)
        return httpx.Response(
            200,
            json={
                "object": "list",
                "model": "m",
                "data": [{"object": "embedding", "index": 0, "embedding": bad}],
                "usage": {"prompt_tokens": 1, "total_tokens": 1},
            },
        )

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        async with llmstash.Client(http_client=http, cache=llmstash.Cache()) as client:
            calls = [
                client.aembedding(
                    model="openai/m",
                    input=["x"],
                    api_base="http://local/v1",
                    api_key="k",
                    encoding_format="base64",
                    num_retries=0,
                )
                for _ in range(3)
            ]
            with anyio.fail_after(5):  # waiters must not wait on a leader that failed
                results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(r, llmstash.APIResponseValidationError) for r in results), results
