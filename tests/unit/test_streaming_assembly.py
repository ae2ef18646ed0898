from __future__ import annotations

import json
from typing import Any

import pytest
from openai.types.chat import ChatCompletionChunk

from llmstash._streaming import assemble_chunks, response_to_chunks
from llmstash.exceptions import ServiceUnavailableError
from llmstash.providers import Route
from llmstash.providers._sse import ServerSentEvent, SSEDecoder
from llmstash.providers.anthropic import StreamParser, parse_messages_response
from llmstash.providers.openai import parse_stream_event
from llmstash.types import (
    ChatCompletionMessageToolCall,
    Choices,
    Function,
    Message,
    ModelResponse,
    ModelResponseStream,
    Usage,
)
from llmstash.types._models import decode_json

ROUTE = Route(
    provider="anthropic",
    model="anthropic/claude-x",
    upstream_model="claude-x",
    api_base="http://x",
    api_key="sk-ant-stream-SECRET",
)


def chunk(delta: dict[str, Any], index: int = 0, **extra: Any) -> ModelResponseStream:
    raw = {
        "id": extra.pop("id", "chatcmpl-9"),
        "object": "chat.completion.chunk",
        "created": extra.pop("created", 1700000000),
        "model": extra.pop("model", "gpt-4o"),
        "choices": extra.pop(
            "choices",
            [{"index": index, "delta": delta, "finish_reason": extra.pop("finish_reason", None)}],
        ),
        **extra,
    }
    return decode_json(json.dumps(raw), ModelResponseStream)


def test_assemble_text() -> None:
    usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    resp = assemble_chunks(
        [
            chunk({"role": "assistant", "content": ""}),
            chunk({"content": "Hel"}),
            chunk({"content": "lo"}),
            chunk({}, finish_reason="stop"),
            chunk({}, choices=[], usage=usage),
        ]
    )
    assert resp.id == "chatcmpl-9"
    assert resp.model == "gpt-4o"
    assert resp.created == 1700000000
    assert resp.object == "chat.completion"
    assert resp.choices[0].message.content == "Hello"
    assert resp.choices[0].message.role == "assistant"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage == Usage(prompt_tokens=3, completion_tokens=2, total_tokens=5)


def test_assemble_tool_call_fragments_by_index() -> None:
    resp = assemble_chunks(
        [
            chunk({"role": "assistant", "content": None}),
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "call_a",
                            "type": "function",
                            "function": {"name": "weather", "arguments": ""},
                        }
                    ]
                }
            ),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}),
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": 1,
                            "id": "call_b",
                            "type": "function",
                            "function": {"name": "time", "arguments": "{}"},
                        }
                    ]
                }
            ),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": ' "Paris"}'}}]}),
            chunk({}, finish_reason="tool_calls"),
        ]
    )
    msg = resp.choices[0].message
    assert msg.content is None
    assert msg.tool_calls == [
        ChatCompletionMessageToolCall(
            id="call_a", function=Function(name="weather", arguments='{"city": "Paris"}')
        ),
        ChatCompletionMessageToolCall(id="call_b", function=Function(name="time", arguments="{}")),
    ]
    assert resp.choices[0].finish_reason == "tool_calls"


def test_assemble_several_choices_and_azure_filter_chunk() -> None:
    resp = assemble_chunks(
        [
            chunk({}, id="", model="", created=0, choices=[]),
            chunk({"role": "assistant", "content": "a"}, index=1),
            chunk({"role": "assistant", "content": "b"}, index=0),
            chunk({"content": "c"}, index=1, finish_reason="length"),
            chunk({}, index=0, finish_reason="stop"),
        ]
    )
    assert resp.id == "chatcmpl-9"
    assert resp.model == "gpt-4o"
    assert resp.created == 1700000000
    assert [(c.index, c.message.content, c.finish_reason) for c in resp.choices] == [
        (0, "b", "stop"),
        (1, "ac", "length"),
    ]


def test_assemble_reasoning_and_refusal() -> None:
    resp = assemble_chunks(
        [
            chunk({"role": "assistant", "reasoning_content": "think "}),
            chunk({"reasoning_content": "hard"}),
            chunk({"refusal": "I can't"}),
        ]
    )
    msg = resp.choices[0].message
    assert msg.reasoning_content == "think hard"
    assert msg.refusal == "I can't"
    assert msg.content is None


def test_assemble_empty_is_an_error() -> None:
    with pytest.raises(ValueError):
        assemble_chunks([])


ROUND_TRIP = [
    ModelResponse(
        id="r1",
        created=1,
        model="m",
        choices=[Choices(message=Message(content="Hello there"))],
        usage=Usage(prompt_tokens=1, completion_tokens=2, total_tokens=3),
        system_fingerprint="fp",
    ),
    ModelResponse(
        id="r2",
        created=2,
        model="m",
        choices=[
            Choices(
                message=Message(
                    content=None,
                    tool_calls=[
                        ChatCompletionMessageToolCall(
                            id="c1", function=Function(name="f", arguments='{"x": 1}')
                        ),
                        ChatCompletionMessageToolCall(
                            id="c2", function=Function(name="g", arguments="{}")
                        ),
                    ],
                ),
                finish_reason="tool_calls",
            )
        ],
    ),
    ModelResponse(
        id="r3",
        created=3,
        model="m",
        choices=[
            Choices(
                index=0, message=Message(content="", reasoning_content="why"), finish_reason="stop"
            ),
            Choices(index=1, message=Message(content="two"), finish_reason="length"),
        ],
        usage=Usage(prompt_tokens=4, completion_tokens=5, total_tokens=9),
    ),
    ModelResponse(id="r4", created=4, model="m", choices=[]),
    ModelResponse(
        id="r5",
        created=5,
        model="m",
        choices=[
            Choices(
                message=Message(
                    content="Hi",
                    annotations=[{"type": "url_citation", "url_citation": {"url": "u"}}],
                    model_extra={"reasoning": "think", "x_vendor": {"a": [1, None]}},
                ),
                logprobs={
                    "content": [
                        {"token": "H", "logprob": -0.1, "bytes": [72], "top_logprobs": []},
                        {"token": "i", "logprob": -0.2, "bytes": [105], "top_logprobs": []},
                    ],
                    "refusal": None,
                },
                model_extra={"content_filter_results": {"hate": {"filtered": False}}},
            )
        ],
        usage=Usage(
            prompt_tokens=1,
            completion_tokens=2,
            total_tokens=3,
            prompt_tokens_details={"cached_tokens": 0},
            model_extra={"x_usage": 7},
        ),
        service_tier="default",
        model_extra={"citations": ["https://a.example"], "prompt_filter_results": []},
    ),
    ModelResponse(
        id="r6",
        created=6,
        model="claude",
        choices=[
            Choices(
                message=Message(
                    content="Answer",
                    reasoning_content="step onestep two",
                    thinking_blocks=[
                        {"type": "thinking", "thinking": "step one", "signature": "sig-1"},
                        {"type": "redacted_thinking", "data": "opaque"},
                        {"type": "thinking", "thinking": "step two", "signature": "sig-2"},
                    ],
                    tool_calls=[
                        ChatCompletionMessageToolCall(
                            id="t1", function=Function(name="f", arguments="{}")
                        )
                    ],
                ),
                finish_reason="tool_calls",
            )
        ],
        usage=Usage(prompt_tokens=4, completion_tokens=5, total_tokens=9),
    ),
]


@pytest.mark.parametrize("resp", ROUND_TRIP, ids=lambda r: r.id)
def test_round_trip(resp: ModelResponse) -> None:
    chunks = response_to_chunks(resp)
    assert all(isinstance(c, ModelResponseStream) for c in chunks)
    assert all(c.usage is None for c in chunks[:-1])
    assert chunks[-1].usage == resp.usage
    assert assemble_chunks(chunks) == resp
    assert assemble_chunks(chunks).model_dump() == resp.model_dump()


def test_stream_logprobs_are_concatenated() -> None:
    def lp(token: str) -> dict[str, Any]:
        return {"content": [{"token": token, "logprob": -1.0, "bytes": None, "top_logprobs": []}]}

    resp = assemble_chunks(
        [
            chunk({"role": "assistant", "content": ""}),
            chunk(
                {"content": "a"},
                choices=[{"index": 0, "delta": {"content": "a"}, "logprobs": lp("a")}],
            ),
            chunk(
                {"content": "b"},
                choices=[{"index": 0, "delta": {"content": "b"}, "logprobs": lp("b")}],
            ),
            chunk({}, finish_reason="stop"),
        ]
    )
    tokens = [t["token"] for t in resp.choices[0].logprobs["content"]]
    assert tokens == ["a", "b"]


def test_stream_extras_concatenate_text_and_keep_response_fields() -> None:
    resp = assemble_chunks(
        [
            chunk({"role": "assistant", "reasoning": "thin"}, citations=["u1"]),
            chunk({"reasoning": "king"}, citations=["u1"]),
            chunk({"content": "ok"}, citations=["u1"]),
            chunk({}, finish_reason="stop", citations=["u1"]),
        ]
    )
    assert resp.choices[0].message.reasoning == "thinking"
    assert resp.citations == ["u1"]
    assert resp.model_dump()["citations"] == ["u1"]


def test_replayed_chunks_look_like_openai() -> None:
    chunks = response_to_chunks(ROUND_TRIP[0])
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content == ""
    assert chunks[1].choices[0].delta.content == "Hello there"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage == ROUND_TRIP[0].usage
    for c in chunks:
        ChatCompletionChunk.model_validate(c.model_dump())


# provider streams → chunks → assembled --------------------------------------------------------


def events(text: str) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    return decoder.feed(text) + decoder.flush()


def anthropic_stream() -> str:
    def ev(kind: str, **data: Any) -> str:
        return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n"

    return "".join(
        [
            ev(
                "message_start",
                message={
                    "id": "msg_s",
                    "type": "message",
                    "role": "assistant",
                    "model": "claude-x-2025",
                    "content": [],
                    "stop_reason": None,
                    "usage": {"input_tokens": 12, "output_tokens": 1},
                },
            ),
            ev("ping"),
            ev("content_block_start", index=0, content_block={"type": "thinking", "thinking": ""}),
            ev("content_block_delta", index=0, delta={"type": "thinking_delta", "thinking": "hm"}),
            ev("content_block_delta", index=0, delta={"type": "signature_delta", "signature": "s"}),
            ev("content_block_stop", index=0),
            ev("content_block_start", index=1, content_block={"type": "text", "text": ""}),
            ev("content_block_delta", index=1, delta={"type": "text_delta", "text": "Let me "}),
            ev("content_block_delta", index=1, delta={"type": "text_delta", "text": "check."}),
            ev("content_block_stop", index=1),
            ev(
                "content_block_start",
                index=2,
                content_block={"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {}},
            ),
            ev(
                "content_block_delta",
                index=2,
                delta={"type": "input_json_delta", "partial_json": '{"city": '},
            ),
            ev(
                "content_block_delta",
                index=2,
                delta={"type": "input_json_delta", "partial_json": '"Paris"}'},
            ),
            ev("content_block_stop", index=2),
            ev(
                "message_delta",
                delta={"stop_reason": "tool_use", "stop_sequence": None},
                usage={"output_tokens": 30},
            ),
            ev("message_stop"),
        ]
    )


def run_anthropic(text: str) -> list[ModelResponseStream]:
    parse = StreamParser(ROUTE)
    out: list[ModelResponseStream] = []
    for event in events(text):
        items = parse(event)
        if items is None:
            break
        out.extend(items)
    return out


def test_anthropic_stream_chunks() -> None:
    chunks = run_anthropic(anthropic_stream())
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.id == "msg_s" and c.model == "claude-x-2025" for c in chunks)
    tool_start = next(c for c in chunks if c.choices[0].delta.tool_calls)
    call = tool_start.choices[0].delta.tool_calls[0]  # type: ignore[index]
    assert (call.index, call.id, call.type) == (0, "toolu_1", "function")
    last = chunks[-1]
    assert last.choices[0].finish_reason == "tool_calls"
    assert last.usage == Usage(prompt_tokens=12, completion_tokens=30, total_tokens=42)
    assert all(c.usage is None for c in chunks[:-1])


def test_anthropic_stream_assembles_like_the_plain_response() -> None:
    assembled = assemble_chunks(run_anthropic(anthropic_stream()))
    plain = parse_messages_response(
        json.dumps(
            {
                "id": "msg_s",
                "model": "claude-x-2025",
                "content": [
                    {"type": "thinking", "thinking": "hm", "signature": "s"},
                    {"type": "text", "text": "Let me check."},
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "weather",
                        "input": {"city": "Paris"},
                    },
                ],
                "stop_reason": "tool_use",
                "usage": {"input_tokens": 12, "output_tokens": 30},
            }
        ).encode(),
        ROUTE,
    )
    a, p = assembled.choices[0].message, plain.choices[0].message
    assert a.content == p.content == "Let me check."
    assert a.reasoning_content == p.reasoning_content == "hm"
    assert a.tool_calls is not None and p.tool_calls is not None
    assert a.tool_calls[0].id == p.tool_calls[0].id
    assert json.loads(a.tool_calls[0].function.arguments) == json.loads(
        p.tool_calls[0].function.arguments
    )
    assert assembled.choices[0].finish_reason == plain.choices[0].finish_reason
    assert assembled.usage == plain.usage


def test_anthropic_error_event_raises_mapped_error() -> None:
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    text = f"event: error\ndata: {json.dumps(error)}\n\n"
    with pytest.raises(ServiceUnavailableError, match="Overloaded") as info:
        run_anthropic(text)
    assert info.value.llm_provider == "anthropic"
    assert info.value.response is None


def test_openai_stream_events_assemble() -> None:
    text = (
        "".join(
            f"data: {json.dumps(c.model_dump())}\n\n" for c in response_to_chunks(ROUND_TRIP[1])
        )
        + "data: [DONE]\n\n"
    )
    openai_route = Route(
        provider="openai", model="gpt-4o", upstream_model="gpt-4o", api_base="http://x"
    )
    chunks: list[ModelResponseStream] = []
    for event in events(text):
        items = parse_stream_event(event, openai_route)
        if items is None:
            break
        chunks.extend(items)
    assert assemble_chunks(chunks) == ROUND_TRIP[1]
