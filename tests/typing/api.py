"""Never run: type-checked by mypy to keep the public API pleasant to use as users write it."""

from __future__ import annotations

import llmstash
from llmstash import Client, ModelResponse
from llmstash.caching import Cache
from llmstash.exceptions import APIError, RateLimitError
from llmstash.integrations.custom_logger import CustomLogger


class MyLogger(CustomLogger):
    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):  # type: ignore[no-untyped-def]
        self.hits = kwargs["cache_hit"]


async def user_code() -> str | None:
    llmstash.cache = Cache(type="redis", host="localhost", port="6379", password=None)
    llmstash.cache = Cache()
    llmstash.callbacks = [MyLogger()]
    r: ModelResponse = await llmstash.acompletion(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "hi"}],
        caching=True,
        temperature=0.2,
        cache={"ttl": 60, "namespace": "team-a"},
    )
    content: str | None = r.choices[0].message.content
    _ = r["choices"][0]["message"]["content"]
    e = await llmstash.aembedding(model="text-embedding-3-small", input=["a", "b"])
    first: float = e.data[0].embedding[0]
    _ = first
    async with Client(cache=Cache(max_size=1000)) as client:
        await client.acompletion(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    try:
        llmstash.completion(model="claude-3-5-haiku-20241022", messages=[])
    except RateLimitError as exc:
        _ = exc.status_code
    except APIError as exc:
        _ = (exc.llm_provider, exc.model)
    await llmstash.aflush_callbacks()
    llmstash.disable_cache()
    return content


async def responses_code() -> str:
    r = await llmstash.aresponses(model="gpt-4o-mini", input="hi", instructions="be brief")
    text: str = r.output_text
    t = await llmstash.atext_completion(model="gpt-3.5-turbo-instruct", prompt="hi")
    _ = t.choices[0].text
    try:
        llmstash.responses(model="claude-sonnet-4-5", input="hi")
    except llmstash.UnsupportedParamsError as exc:
        _ = exc.status_code
    return text


def cost_code(r: ModelResponse) -> float:
    from llmstash.integrations.opentelemetry import OpenTelemetryLogger

    llmstash.callbacks = ["otel", OpenTelemetryLogger(capture_content=False)]
    llmstash.register_model({"my-model": {"input_cost_per_token": 1e-6, "max_tokens": 8192}})
    price: float = llmstash.model_cost["my-model"]["input_cost_per_token"]
    prompt_usd, completion_usd = llmstash.cost_per_token(
        model="gpt-4o-mini", prompt_tokens=10, completion_tokens=5
    )
    total: float = llmstash.completion_cost(completion_response=r) + prompt_usd + completion_usd
    return total + price
