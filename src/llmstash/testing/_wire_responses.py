"""The fake provider's Responses API (``/v1/responses``) and legacy completions
(``/v1/completions``): request checks and answers, plain and as SSE streams. Pure functions."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import msgspec

from ._wire import InvalidRequest, pieces, words

__all__ = [
    "completions_answer",
    "completions_body",
    "completions_stream",
    "responses_answer",
    "responses_body",
    "responses_stream",
]


def _encode(data: Any) -> bytes:
    return msgspec.json.encode(data)


def _input_text(value: Any) -> str:
    """The words of an ``input`` (a string or input items) or of an item's content."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return " ".join(_input_text(v) for v in value)
    if isinstance(value, dict):
        if "content" in value:
            return _input_text(value["content"])
        if isinstance(value.get("text"), str):
            return str(value["text"])
        if isinstance(value.get("output"), str):
            return str(value["output"])
    return ""


def _question(value: Any) -> str:
    """The last user text of an ``input``."""
    if isinstance(value, str):
        return value
    for item in reversed(value):
        if isinstance(item, dict) and item.get("role", "user") == "user" and "content" in item:
            return _input_text(item["content"])
    return _input_text(value[-1])


def _forced_tool(body: Mapping[str, Any]) -> str | None:
    """The function tool the request forces (``tool_choice`` ``"required"`` or a named
    function), else ``None``."""
    names = [
        t["name"]
        for t in body.get("tools") or ()
        if isinstance(t, dict) and t.get("type") == "function" and isinstance(t.get("name"), str)
    ]
    choice = body.get("tool_choice")
    if choice == "required" and names:
        return str(names[0])
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = choice.get("name")
        if name not in names:
            raise InvalidRequest(f"Tool choice '{name}' not found in 'tools'.", param="tool_choice")
        return str(name)
    return None


def responses_answer(
    body: Mapping[str, Any], *, model: str | None, reply: str | None
) -> dict[str, Any]:
    """Check a Responses API request and build the whole ``response`` object it gets.

    The answer echoes the last user text (``"Echo: ..."``, or ``reply``); a forced function
    tool gives a ``function_call`` item instead; ``reasoning`` with a ``summary`` adds a
    ``reasoning`` item first. Tokens are words. The request's ``instructions``, ``tools``,
    ``tool_choice``, ``reasoning``, ``text``, ``store``, ``previous_response_id``, ``metadata``,
    ``temperature`` and ``top_p`` are echoed, as the real API does."""
    if model is None:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise InvalidRequest("Missing required parameter: 'model'.", param="model")
    given = body.get("input")
    if not (isinstance(given, str) and given) and not (isinstance(given, list) and given):
        raise InvalidRequest("Missing required parameter: 'input'.", param="input")
    previous = body.get("previous_response_id")
    if previous is not None and not (isinstance(previous, str) and previous.startswith("resp")):
        raise InvalidRequest(
            f"Invalid 'previous_response_id': '{previous}'. Expected an ID that begins with "
            "'resp'.",
            param="previous_response_id",
        )
    instructions = body.get("instructions")
    input_tokens = words(_input_text(given)) + words(
        instructions if isinstance(instructions, str) else ""
    )
    question = _question(given)
    output: list[dict[str, Any]] = []
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict) and reasoning.get("summary"):
        output.append(
            {
                "id": "rs_" + uuid.uuid4().hex,
                "type": "reasoning",
                "summary": [{"type": "summary_text", "text": "Thinking about: " + question}],
            }
        )
    tool = _forced_tool(body)
    if tool is not None:
        output.append(
            {
                "id": "fc_" + uuid.uuid4().hex,
                "type": "function_call",
                "status": "completed",
                "arguments": json.dumps({"query": question}, ensure_ascii=False),
                "call_id": "call_" + uuid.uuid4().hex,
                "name": tool,
            }
        )
        said = output[-1]["arguments"]
    else:
        said = reply if reply is not None else "Echo: " + question
        output.append(
            {
                "id": "msg_" + uuid.uuid4().hex,
                "type": "message",
                "status": "completed",
                "role": "assistant",
                "content": [
                    {"type": "output_text", "text": said, "annotations": [], "logprobs": []}
                ],
            }
        )
    output_tokens = words(said)
    reasoning_tokens = words(output[0]["summary"][0]["text"]) if len(output) > 1 else 0
    return {
        "id": "resp_" + uuid.uuid4().hex,
        "object": "response",
        "created_at": int(time.time()),
        "status": "completed",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": instructions,
        "max_output_tokens": body.get("max_output_tokens"),
        "model": model,
        "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": previous,
        "reasoning": reasoning
        if isinstance(reasoning, dict)
        else {"effort": None, "summary": None},
        "service_tier": "default",
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": body.get("text", {"format": {"type": "text"}}),
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools", []),
        "top_p": body.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": output_tokens + reasoning_tokens,
            "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
            "total_tokens": input_tokens + output_tokens + reasoning_tokens,
        },
        "user": body.get("user"),
        "metadata": body.get("metadata", {}),
    }


def responses_body(answer: Mapping[str, Any]) -> bytes:
    """The body of a plain Responses API answer."""
    return _encode(answer)


def responses_stream(answer: Mapping[str, Any]) -> Iterator[bytes]:
    """The SSE events of a streamed Responses API answer, as OpenAI sends them: each with an
    ``event:`` line naming its ``type`` and a ``sequence_number`` counting from 0;
    ``response.created``, ``response.in_progress``, per output item ``output_item.added`` ...
    ``output_item.done`` (text in word-piece ``output_text.delta`` events, function arguments
    in ``function_call_arguments.delta`` pieces, a reasoning summary in
    ``reasoning_summary_text.delta`` pieces), then ``response.completed``. No ``[DONE]``."""
    sequence = 0

    def event(kind: str, **fields: Any) -> bytes:
        nonlocal sequence
        data = {"type": kind, "sequence_number": sequence, **fields}
        sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + _encode(data) + b"\n\n"

    start = {**answer, "status": "in_progress", "output": [], "usage": None}
    yield event("response.created", response=start)
    yield event("response.in_progress", response=start)
    for index, item in enumerate(answer["output"]):
        item_id = item["id"]
        kind = item["type"]
        if kind == "message":
            yield event(
                "response.output_item.added",
                output_index=index,
                item={**item, "status": "in_progress", "content": []},
            )
            for part_index, part in enumerate(item["content"]):
                where = {"item_id": item_id, "output_index": index, "content_index": part_index}
                yield event("response.content_part.added", **where, part={**part, "text": ""})
                for piece in pieces(part["text"]):
                    yield event("response.output_text.delta", **where, delta=piece, logprobs=[])
                yield event("response.output_text.done", **where, text=part["text"], logprobs=[])
                yield event("response.content_part.done", **where, part=part)
        elif kind == "function_call":
            yield event(
                "response.output_item.added",
                output_index=index,
                item={**item, "status": "in_progress", "arguments": ""},
            )
            for piece in pieces(item["arguments"]):
                yield event(
                    "response.function_call_arguments.delta",
                    item_id=item_id,
                    output_index=index,
                    delta=piece,
                )
            yield event(
                "response.function_call_arguments.done",
                item_id=item_id,
                output_index=index,
                arguments=item["arguments"],
            )
        elif kind == "reasoning":
            yield event(
                "response.output_item.added", output_index=index, item={**item, "summary": []}
            )
            for summary_index, part in enumerate(item["summary"]):
                where = {"item_id": item_id, "output_index": index, "summary_index": summary_index}
                yield event(
                    "response.reasoning_summary_part.added", **where, part={**part, "text": ""}
                )
                for piece in pieces(part["text"]):
                    yield event("response.reasoning_summary_text.delta", **where, delta=piece)
                yield event("response.reasoning_summary_text.done", **where, text=part["text"])
                yield event("response.reasoning_summary_part.done", **where, part=part)
        else:  # pragma: no cover - the fake makes no other items
            yield event("response.output_item.added", output_index=index, item=item)
        yield event("response.output_item.done", output_index=index, item=item)
    yield event("response.completed", response=dict(answer))


def completions_answer(
    body: Mapping[str, Any], *, model: str | None, reply: str | None
) -> tuple[str, str, int]:
    """Check a (legacy) completions request: the model, the completion text (``"Echo: "``
    and the prompt's last line, or ``reply``) and the prompt's tokens (words)."""
    if model is None:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise InvalidRequest("you must provide a model parameter", param="model")
    prompt = body.get("prompt")
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        text = " ".join(prompt)
    elif isinstance(prompt, str):
        text = prompt
    elif isinstance(prompt, list) and prompt and all(isinstance(p, int) for p in prompt):
        text = " ".join(str(p) for p in prompt)
    else:
        raise InvalidRequest("Missing required parameter: 'prompt'.", param="prompt")
    lines = text.strip().splitlines() or [""]
    said = reply if reply is not None else "Echo: " + lines[-1]
    return model, said, words(text)


def _text_logprobs(text: str, offset: int) -> dict[str, Any]:
    tokens = pieces(text)
    positions = []
    at = offset
    for token in tokens:
        positions.append(at)
        at += len(token)
    return {
        "tokens": tokens,
        "token_logprobs": [-0.01 * (i + 1) for i in range(len(tokens))],
        "top_logprobs": [{t: -0.01 * (i + 1)} for i, t in enumerate(tokens)],
        "text_offset": positions,
    }


def completions_body(model: str, said: str, prompt_tokens: int, body: Mapping[str, Any]) -> bytes:
    """A ``text_completion`` body (``logprobs`` filled when the request asks for them)."""
    logprobs = _text_logprobs(said, 0) if body.get("logprobs") is not None else None
    completion = words(said)
    return _encode(
        {
            "id": "cmpl-" + uuid.uuid4().hex,
            "object": "text_completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"text": said, "index": 0, "logprobs": logprobs, "finish_reason": "stop"}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion,
                "total_tokens": prompt_tokens + completion,
            },
            "system_fingerprint": None,
        }
    )


def completions_stream(
    model: str, said: str, prompt_tokens: int, body: Mapping[str, Any]
) -> Iterator[bytes]:
    """The SSE chunks of a streamed text completion: one per word piece, the last with
    ``finish_reason: "stop"`` and empty text, a usage chunk (no choices) for
    ``stream_options.include_usage``, then ``[DONE]``."""
    head = {
        "id": "cmpl-" + uuid.uuid4().hex,
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": None,
    }
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    want_logprobs = body.get("logprobs") is not None

    def chunk(text: str, finish_reason: str | None, logprobs: Any) -> bytes:
        choice = {"text": text, "index": 0, "logprobs": logprobs, "finish_reason": finish_reason}
        data: dict[str, Any] = {**head, "choices": [choice]}
        if include_usage:
            data["usage"] = None
        return b"data: " + _encode(data) + b"\n\n"

    offset = 0
    for piece in pieces(said):
        yield chunk(piece, None, _text_logprobs(piece, offset) if want_logprobs else None)
        offset += len(piece)
    yield chunk("", "stop", None)
    if include_usage:
        completion = words(said)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": prompt_tokens + completion,
        }
        yield b"data: " + _encode({**head, "choices": [], "usage": usage}) + b"\n\n"
    yield b"data: [DONE]\n\n"
