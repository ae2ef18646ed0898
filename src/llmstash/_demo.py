"""``llmstash demo`` (and ``make demo``, ``examples/quickstart.py``): a call, the same call
again from the cache, a stream, embeddings, and what the cache counted.

With OPENAI_API_KEY set it calls OpenAI. Without it, it starts llmstash's fake
OpenAI-compatible server on 127.0.0.1 with ~300 ms of latency, so you can see what the cache
saves without an account.
"""

from __future__ import annotations

import os
import time
from typing import Any

import llmstash
from llmstash.caching import Cache
from llmstash.integrations.custom_logger import CustomLogger


class PrintLogger(CustomLogger):
    """Reports every call: was it a cache hit, what did it cost."""

    async def async_log_success_event(
        self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        cost = kwargs.get("response_cost")
        print(
            f"    [callback] {kwargs['call_type']}: cache_hit={kwargs['cache_hit']} "
            f"cost={'n/a' if cost is None else f'${cost:.6f}'}"
        )


async def main() -> None:
    """Run the demo."""
    fake = None
    if os.environ.get("OPENAI_API_KEY"):
        target: dict[str, Any] = {}
        print("Using the OpenAI API (OPENAI_API_KEY is set).")
    else:
        from llmstash.testing import FakeProvider

        fake = FakeProvider(latency=0.3).start()
        target = {"api_base": fake.openai_base, "api_key": "sk-demo"}
        print(f"No OPENAI_API_KEY: using the fake provider at {fake.url} (300 ms latency).")

    cache = llmstash.cache = Cache()  # in memory; Cache(type="redis", ...) for a fleet
    llmstash.callbacks = [PrintLogger()]
    messages = [{"role": "user", "content": "In one sentence, why cache LLM responses?"}]

    try:
        for attempt in ("first call (miss)", "same call again (hit)"):
            t0 = time.perf_counter()
            r = await llmstash.acompletion(model="gpt-4o-mini", messages=messages, **target)
            ms = (time.perf_counter() - t0) * 1000
            print(f"{attempt}: {ms:8.3f} ms  -> {r.choices[0].message.content!r}")
            await llmstash.aflush_callbacks()

        llmstash.callbacks = []  # keep the timing loop quiet
        times = []
        for _ in range(1000):
            t0 = time.perf_counter()
            await llmstash.acompletion(model="gpt-4o-mini", messages=messages, **target)
            times.append(time.perf_counter() - t0)
        times.sort()
        print(f"1,000 more hits: median {times[500] * 1e6:.1f} µs per call")
        llmstash.callbacks = [PrintLogger()]

        print("streamed, from the cache:", end=" ")
        stream = await llmstash.acompletion(
            model="gpt-4o-mini", messages=messages, stream=True, **target
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                print(chunk.choices[0].delta.content, end="", flush=True)
        print()
        await llmstash.aflush_callbacks()

        emb_model = "text-embedding-3-small"
        await llmstash.aembedding(model=emb_model, input=["apple", "banana"], **target)
        await llmstash.aflush_callbacks()
        t0 = time.perf_counter()
        e = await llmstash.aembedding(
            model=emb_model, input=["banana", "cherry", "apple"], **target
        )
        ms = (time.perf_counter() - t0) * 1000
        print(
            f"embeddings: 3 inputs, 2 from the cache, 1 sent: {ms:.1f} ms; "
            f"{len(e.data)} vectors of {len(e.data[0].embedding)} floats"
        )
        await llmstash.aflush_callbacks()

        s = cache.stats()
        print(
            f"cache stats: {s.hits} hits, {s.misses} misses {s.miss_reasons}, "
            f"{s.tokens_saved} tokens and ${s.cost_saved_usd:.6f} saved, "
            f"~{s.provider_time_saved_s:.1f} s of provider time"
        )
    finally:
        llmstash.callbacks = []
        llmstash.cache = None
        if fake is not None:
            fake.stop()
