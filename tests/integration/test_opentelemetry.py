"""OpenTelemetry: spans and metrics of real calls, read back with the SDK's in-memory span
exporter and metric reader: a miss and its hit, a stream, an embedding, an error, content off
and on, the parent span, the ``"otel"`` string in a fresh process, and no import cost."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import llmstash
from llmstash.caching import Cache
from llmstash.exceptions import RateLimitError
from llmstash.integrations.custom_logger import CustomLogger
from llmstash.integrations.opentelemetry import OpenTelemetryLogger
from llmstash.testing import FakeProvider


@dataclass
class Telemetry:
    exporter: InMemorySpanExporter
    reader: InMemoryMetricReader
    tracer_provider: TracerProvider
    meter_provider: MeterProvider

    def logger(self, **kwargs: Any) -> OpenTelemetryLogger:
        return OpenTelemetryLogger(
            tracer_provider=self.tracer_provider, meter_provider=self.meter_provider, **kwargs
        )

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def points(self, name: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        found = []
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        found.extend(metric.data.data_points)
        return found


@pytest.fixture
def otel() -> Iterator[Telemetry]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    yield Telemetry(exporter, reader, tracer_provider, meter_provider)
    tracer_provider.shutdown()
    meter_provider.shutdown()


def chat(provider: FakeProvider, **kwargs: Any) -> dict[str, Any]:
    return {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "What is the secret word? swordfish"}],
        "api_base": provider.openai_base,
        "api_key": "sk-fake",
        "num_retries": 0,
        **kwargs,
    }


class Kwargs(CustomLogger):
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    async def async_log_success_event(
        self, kwargs: dict[str, Any], response_obj: Any, start_time: Any, end_time: Any
    ) -> None:
        self.events.append(kwargs)


async def test_a_miss_and_its_hit(provider: FakeProvider, otel: Telemetry, llm: None) -> None:
    llmstash.cache = Cache(namespace="team-a")
    seen = Kwargs()
    llmstash.callbacks = [otel.logger(), seen]
    parent_tracer = otel.tracer_provider.get_tracer("test")
    with parent_tracer.start_as_current_span("request handler") as parent:
        miss = await llmstash.acompletion(**chat(provider, temperature=0.3, max_tokens=50))
        hit = await llmstash.acompletion(**chat(provider, temperature=0.3, max_tokens=50))
    await llmstash.aflush_callbacks()
    assert provider.request_count == 1

    spans = [s for s in otel.spans() if s.name != "request handler"]
    assert [s.name for s in spans] == ["chat gpt-4o-mini", "chat gpt-4o-mini"]
    miss_span, hit_span = spans
    for span, response in ((miss_span, miss), (hit_span, hit)):
        attrs = dict(span.attributes or {})
        assert span.kind is SpanKind.CLIENT
        assert span.parent is not None
        assert span.parent.span_id == parent.get_span_context().span_id
        assert span.context.trace_id == parent.get_span_context().trace_id
        assert attrs["gen_ai.operation.name"] == "chat"
        assert attrs["gen_ai.provider.name"] == "openai"
        assert attrs["gen_ai.system"] == "openai"
        assert attrs["gen_ai.request.model"] == "gpt-4o-mini"
        assert attrs["gen_ai.request.temperature"] == 0.3
        assert attrs["gen_ai.request.max_tokens"] == 50
        assert attrs["gen_ai.response.model"] == response.model
        assert attrs["gen_ai.response.id"] == response.id
        assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
        usage = response.usage
        assert usage is not None
        assert attrs["gen_ai.usage.input_tokens"] == usage.prompt_tokens > 0
        assert attrs["gen_ai.usage.output_tokens"] == usage.completion_tokens > 0
        assert attrs["llmstash.cache.namespace"] == "team-a"
        assert attrs["llmstash.cache.key"] == response._hidden_params["cache_key"]
        assert attrs["server.address"] == "127.0.0.1"
        assert isinstance(attrs["server.port"], int)
        assert attrs["llmstash.stream"] is False
        # No content unless asked for.
        assert "gen_ai.input.messages" not in attrs
        assert "gen_ai.output.messages" not in attrs
        assert not any("swordfish" in str(v) for v in attrs.values())
        assert span.status.status_code is StatusCode.UNSET
    assert dict(miss_span.attributes or {})["llmstash.cache.hit"] is False
    assert dict(hit_span.attributes or {})["llmstash.cache.hit"] is True
    assert dict(miss_span.attributes or {})["llmstash.response_cost"] > 0
    assert dict(hit_span.attributes or {})["llmstash.response_cost"] == 0.0

    # The span covers the call: its times are the call's own.
    miss_kwargs = seen.events[0]
    assert miss_span.start_time == int(miss_kwargs["start_time"].timestamp() * 1e6) * 1000
    assert miss_span.end_time == int(miss_kwargs["end_time"].timestamp() * 1e6) * 1000
    assert miss_span.start_time is not None and miss_span.end_time is not None
    assert miss_span.start_time <= miss_span.end_time

    durations = otel.points("gen_ai.client.operation.duration")
    assert sum(p.count for p in durations) == 2
    assert {p.attributes["llmstash.cache.hit"] for p in durations} == {True, False}
    assert all(p.attributes["gen_ai.request.model"] == "gpt-4o-mini" for p in durations)
    tokens = otel.points("gen_ai.client.token.usage")
    by_type = {}
    for p in tokens:
        if not p.attributes["llmstash.cache.hit"]:
            by_type[p.attributes["gen_ai.token.type"]] = p.sum
    usage = miss.usage
    assert usage is not None
    assert by_type == {"input": usage.prompt_tokens, "output": usage.completion_tokens}
    lookups = {
        p.attributes["llmstash.cache.outcome"]: p.value
        for p in otel.points("llmstash.cache.lookups")
    }
    assert lookups == {"hit": 1, "miss": 1}
    assert all(
        p.attributes["llmstash.cache.namespace"] == "team-a"
        for p in otel.points("llmstash.cache.lookups")
    )


async def test_no_cache_no_lookups(provider: FakeProvider, otel: Telemetry, llm: None) -> None:
    llmstash.callbacks = [otel.logger()]
    await llmstash.acompletion(**chat(provider))
    await llmstash.aflush_callbacks()
    [span] = otel.spans()
    assert "llmstash.cache.key" not in (span.attributes or {})
    assert otel.points("llmstash.cache.lookups") == []
    assert sum(p.count for p in otel.points("gen_ai.client.operation.duration")) == 1


async def test_a_stream(provider: FakeProvider, otel: Telemetry, llm: None) -> None:
    llmstash.cache = Cache()
    llmstash.callbacks = [otel.logger(capture_content=True)]
    text = []
    for _ in range(2):
        stream = await llmstash.acompletion(
            **chat(provider, stream=True, stream_options={"include_usage": True})
        )
        parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
        text.append("".join(parts))
    await llmstash.aflush_callbacks()
    assert provider.request_count == 1
    miss, hit = otel.spans()
    for span in (miss, hit):
        attrs = dict(span.attributes or {})
        assert span.name == "chat gpt-4o-mini"
        assert attrs["llmstash.stream"] is True
        assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
        assert attrs["gen_ai.usage.output_tokens"] > 0
        output = json.loads(attrs["gen_ai.output.messages"])
        assert output[0]["role"] == "assistant"
        assert output[0]["parts"] == [{"type": "text", "content": text[0]}]
    assert dict(miss.attributes or {})["llmstash.cache.hit"] is False
    assert dict(hit.attributes or {})["llmstash.cache.hit"] is True


async def test_an_embedding(provider: FakeProvider, otel: Telemetry, llm: None) -> None:
    llmstash.cache = Cache()
    llmstash.callbacks = [otel.logger(capture_content=True)]
    response = await llmstash.aembedding(
        model="openai/text-embedding-3-small",
        input=["first text", "second text"],
        api_base=provider.openai_base,
        api_key="sk-fake",
    )
    await llmstash.aflush_callbacks()
    [span] = otel.spans()
    attrs = dict(span.attributes or {})
    assert span.name == "embeddings text-embedding-3-small"
    assert attrs["gen_ai.operation.name"] == "embeddings"
    assert attrs["gen_ai.request.model"] == "text-embedding-3-small"
    assert response.usage is not None
    assert attrs["gen_ai.usage.input_tokens"] == response.usage.prompt_tokens > 0
    assert "gen_ai.usage.output_tokens" not in attrs
    assert json.loads(attrs["gen_ai.input.messages"])[0]["parts"] == [
        {"type": "text", "content": "first text"},
        {"type": "text", "content": "second text"},
    ]
    types = {p.attributes["gen_ai.token.type"] for p in otel.points("gen_ai.client.token.usage")}
    assert types == {"input"}
    assert {
        p.attributes["llmstash.cache.outcome"]: p.value
        for p in otel.points("llmstash.cache.lookups")
    } == {"miss": 1}


async def test_a_responses_call_and_a_text_completion(
    provider: FakeProvider, otel: Telemetry, llm: None
) -> None:
    llmstash.callbacks = [otel.logger()]
    answer = await llmstash.aresponses(
        model="gpt-4o-mini", input="hello", api_base=provider.openai_base, api_key="sk-fake"
    )
    text = await llmstash.atext_completion(
        model="gpt-3.5-turbo-instruct",
        prompt="hello",
        api_base=provider.openai_base,
        api_key="sk-fake",
    )
    await llmstash.aflush_callbacks()
    spans = {span.name: dict(span.attributes or {}) for span in otel.spans()}
    chat = spans["chat gpt-4o-mini"]
    assert chat["gen_ai.usage.input_tokens"] == answer.usage.input_tokens > 0
    assert chat["gen_ai.usage.output_tokens"] == answer.usage.output_tokens > 0
    completion = spans["text_completion gpt-3.5-turbo-instruct"]
    assert completion["gen_ai.usage.input_tokens"] == text.usage.prompt_tokens > 0
    types = [p.attributes["gen_ai.token.type"] for p in otel.points("gen_ai.client.token.usage")]
    assert sorted(types) == ["input", "input", "output", "output"]


async def test_an_error(provider: FakeProvider, otel: Telemetry, llm: None) -> None:
    llmstash.callbacks = [otel.logger()]
    provider.fail_next(429)
    with pytest.raises(RateLimitError):
        await llmstash.acompletion(**chat(provider, model="anthropic/claude-haiku-4-5",
                                          api_base=provider.anthropic_base))  # fmt: skip
    await llmstash.aflush_callbacks()
    [span] = otel.spans()
    attrs = dict(span.attributes or {})
    assert span.name == "chat claude-haiku-4-5"
    assert span.status.status_code is StatusCode.ERROR
    assert attrs["error.type"] == "RateLimitError"
    assert attrs["gen_ai.provider.name"] == "anthropic"
    assert "gen_ai.usage.input_tokens" not in attrs
    assert [e.name for e in span.events] == ["exception"]
    assert "sk-fake" not in json.dumps({k: str(v) for k, v in attrs.items()})
    assert "sk-fake" not in str(span.events[0].attributes)
    [point] = otel.points("gen_ai.client.operation.duration")
    assert point.attributes["error.type"] == "RateLimitError"


async def test_content_on(provider: FakeProvider, otel: Telemetry, llm: None) -> None:
    llmstash.callbacks = [otel.logger(capture_content=True)]
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "What is the secret word?"}]},
    ]
    response = await llmstash.acompletion(**chat(provider, messages=messages))
    await llmstash.aflush_callbacks()
    [span] = otel.spans()
    attrs = dict(span.attributes or {})
    assert json.loads(attrs["gen_ai.input.messages"]) == [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "user", "parts": [{"type": "text", "content": "What is the secret word?"}]},
    ]
    assert json.loads(attrs["gen_ai.output.messages"]) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": response.choices[0].message.content}],
            "finish_reason": "stop",
        }
    ]


def test_a_sync_call_is_a_child_of_the_callers_span(
    provider: FakeProvider, otel: Telemetry, sync_llm: None
) -> None:
    llmstash.callbacks = [otel.logger()]
    with otel.tracer_provider.get_tracer("test").start_as_current_span("handler") as parent:
        llmstash.completion(**chat(provider))
    llmstash.completion(**chat(provider))  # outside any span: a root span
    llmstash.flush_callbacks()
    inside, outside = (s for s in otel.spans() if s.name != "handler")
    assert inside.name == outside.name == "chat gpt-4o-mini"
    assert dict(inside.attributes or {})["gen_ai.usage.input_tokens"] > 0
    assert inside.parent is not None
    assert inside.parent.span_id == parent.get_span_context().span_id
    assert outside.parent is None


def test_the_otel_string_uses_the_global_providers_and_loads_lazily(
    fake_provider: FakeProvider,
) -> None:
    script = textwrap.dedent(
        f"""
        import asyncio, json, sys
        import llmstash
        assert not any(m.startswith("opentelemetry") for m in sys.modules), "eager import"
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        exporter = InMemorySpanExporter()
        tp = TracerProvider()
        tp.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(tp)
        reader = InMemoryMetricReader()
        metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))

        async def main():
            llmstash.callbacks = ["otel"]
            await llmstash.acompletion(
                model="gpt-4o-mini", messages=[{{"role": "user", "content": "hi"}}],
                api_base={fake_provider.openai_base!r}, api_key="sk-fake")
            await llmstash.aflush_callbacks()

        asyncio.run(main())
        names = [m.name for r in reader.get_metrics_data().resource_metrics
                 for s in r.scope_metrics for m in s.metrics]
        print(json.dumps({{"spans": [s.name for s in exporter.get_finished_spans()],
                           "metrics": sorted(names)}}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["spans"] == ["chat gpt-4o-mini"]
    assert result["metrics"] == ["gen_ai.client.operation.duration", "gen_ai.client.token.usage"]


def test_otel_without_the_api_installed_warns_once_and_calls_go_on() -> None:
    script = textwrap.dedent(
        """
        import json, logging, sys
        sys.modules["opentelemetry"] = None  # as if the extra were not installed
        import llmstash

        records = []
        handler = logging.Handler()
        handler.emit = records.append
        logging.getLogger("llmstash").addHandler(handler)
        llmstash.callbacks = ["otel"]
        answers = [
            llmstash.completion(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                                mock_response="fine").choices[0].message.content
            for _ in range(2)
        ]
        llmstash.flush_callbacks()
        print(json.dumps({"answers": answers, "logs": [r.getMessage() for r in records]}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["answers"] == ["fine", "fine"]
    assert result["logs"] == [
        "Callback 'otel' needs the OpenTelemetry API: pip install 'llmstash[otel]'. Ignored."
    ]


async def test_responses_and_text_completion(
    provider: FakeProvider, otel: Telemetry, llm: None
) -> None:
    llmstash.cache = Cache()
    llmstash.callbacks = [otel.logger(capture_content=True)]
    base = {"api_base": provider.openai_base, "api_key": "sk-fake"}
    answer = await llmstash.aresponses(
        model="gpt-4o-mini", input=[{"role": "user", "content": "hello"}], **base
    )
    stream = await llmstash.aresponses(model="gpt-4o-mini", input="streamed", stream=True, **base)
    async for _ in stream:
        pass
    text = await llmstash.atext_completion(model="gpt-3.5-turbo-instruct", prompt="hi", **base)
    await llmstash.aflush_callbacks()
    plain, streamed, completion = (dict(s.attributes or {}) for s in otel.spans())
    for attrs in (plain, streamed):
        assert attrs["gen_ai.operation.name"] == "chat"
        assert attrs["gen_ai.usage.input_tokens"] > 0 and attrs["gen_ai.usage.output_tokens"] > 0
        [said] = json.loads(attrs["gen_ai.output.messages"])
        assert said["role"] == "assistant" and said["parts"][0]["type"] == "text"
    assert json.loads(plain["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "hello"}]}
    ]
    assert answer.usage is not None
    assert plain["gen_ai.usage.input_tokens"] == answer.usage.input_tokens
    assert json.loads(plain["gen_ai.output.messages"])[0]["parts"][0]["content"] == (
        answer.output_text
    )
    assert completion["gen_ai.operation.name"] == "text_completion"
    assert json.loads(completion["gen_ai.input.messages"])[0]["parts"] == [
        {"type": "text", "content": "hi"}
    ]
    assert json.loads(completion["gen_ai.output.messages"])[0]["parts"] == [
        {"type": "text", "content": text.choices[0].text}
    ]
    types = {p.attributes["gen_ai.token.type"] for p in otel.points("gen_ai.client.token.usage")}
    assert types == {"input", "output"}
