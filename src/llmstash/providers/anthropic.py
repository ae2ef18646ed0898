"""Anthropic's Messages API, called with OpenAI-shaped input and answered in OpenAI's shape.

Request translation (:func:`messages_body`):

- ``system``/``developer`` messages become the top-level ``system``; ``tool`` messages become
  ``tool_result`` blocks in a user turn; assistant ``tool_calls`` become ``tool_use`` blocks and
  ``thinking_blocks`` are sent back first; consecutive turns of one role are merged.
- ``image_url`` parts become image blocks (``data:`` URLs as base64, others as URL sources);
  parts already in Anthropic's shape (``image``, ``document``, ...) pass through.
- ``tools``, ``tool_choice`` and ``parallel_tool_calls=False`` are translated; ``stop`` becomes
  ``stop_sequences``; ``user`` becomes ``metadata.user_id``; ``max_tokens`` (or
  ``max_completion_tokens``) defaults to ``DEFAULT_ANTHROPIC_MAX_TOKENS``, raised above the
  thinking budget when thinking is on; ``reasoning_effort`` low/medium/high turns on thinking
  with a 1024/2048/4096-token budget unless ``thinking`` is given.
- Dropped, since the answer stays valid without them: ``seed``, ``frequency_penalty``,
  ``presence_penalty``, ``logit_bias``, ``logprobs``, ``top_logprobs``, ``stream_options``,
  ``store``, ``service_tier``, ``prompt_cache_key``, ``safety_identifier``, ``verbosity``,
  ``n=1`` and ``response_format={"type": "text"}``.
- Refused before any I/O, since dropping them would silently change the answer: ``n > 1``,
  JSON ``response_format``, legacy ``functions``/``function_call``.
- Anything else (``temperature``, ``top_p``, ``top_k``, ``metadata``, ``thinking``, newer
  Anthropic fields) is sent as given.
"""

from __future__ import annotations

import random
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from typing import Any

import anyio
import httpx
import msgspec

from .._config import DEFAULT_ANTHROPIC_MAX_TOKENS, DEFAULT_ANTHROPIC_VERSION
from ..exceptions import InvalidRequestError
from ..types import (
    ChatCompletionDeltaToolCall,
    ChatCompletionMessageToolCall,
    Choices,
    Delta,
    EmbeddingResponse,
    Function,
    Message,
    ModelResponse,
    ModelResponseStream,
    StreamingChoices,
    Usage,
)
from ._base import Route
from ._http import EventParser, Sender, build_post, event_error, invalid_body, split_extras
from ._sse import ServerSentEvent

__all__ = [
    "AnthropicProvider",
    "StreamParser",
    "messages_body",
    "parse_messages_response",
]

_DROPPED = frozenset(
    {
        "seed",
        "frequency_penalty",
        "presence_penalty",
        "logit_bias",
        "logprobs",
        "top_logprobs",
        "stream_options",
        "store",
        "service_tier",
        "prompt_cache_key",
        "safety_identifier",
        "verbosity",
    }
)
_TRANSLATED = frozenset(
    {
        "max_tokens",
        "max_completion_tokens",
        "stop",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "user",
        "reasoning_effort",
        "n",
        "response_format",
        "stream",
    }
)
_EFFORT_BUDGET = {"low": 1024, "medium": 2048, "high": 4096}
_STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def _invalid(message: str) -> InvalidRequestError:
    return InvalidRequestError(f"anthropic: {message}")


def _image_block(part: Mapping[str, Any]) -> dict[str, Any]:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, Mapping) else image
    if not isinstance(url, str) or not url:
        raise _invalid("an image_url part needs a url")
    if url.startswith("data:"):
        header, sep, data = url.partition(",")
        if not sep or not header.endswith(";base64"):
            raise _invalid("image data URLs must be base64 (data:<media type>;base64,<data>)")
        media_type = header[5:].split(";", 1)[0]
        source = {"type": "base64", "media_type": media_type, "data": data}
    else:
        source = {"type": "url", "url": url}
    return {"type": "image", "source": source}


def _block(part: Any) -> dict[str, Any]:
    if isinstance(part, str):
        return {"type": "text", "text": part}
    if not isinstance(part, Mapping):
        raise _invalid(f"content parts must be objects, not {type(part).__name__}")
    kind = part.get("type")
    if kind == "text":
        block: dict[str, Any] = {"type": "text", "text": part.get("text", "")}
    elif kind == "image_url":
        block = _image_block(part)
    else:
        return dict(part)
    if "cache_control" in part:
        block["cache_control"] = part["cache_control"]
    return block


def _blocks(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if isinstance(content, Sequence):
        return [_block(part) for part in content]
    raise _invalid(f"message content must be a string or a list, not {type(content).__name__}")


def _tool_input(call: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    function = call.get("function") or {}
    name = function.get("name")
    arguments = function.get("arguments") or "{}"
    if not isinstance(name, str) or not name:
        raise _invalid("an assistant tool call needs a function name")
    try:
        value = msgspec.json.decode(arguments) if isinstance(arguments, str) else arguments
    except msgspec.DecodeError:
        value = None
    if not isinstance(value, dict):
        raise _invalid(f"the arguments of tool call {name!r} must be a JSON object")
    return name, value


def _assistant_content(msg: Mapping[str, Any]) -> str | list[dict[str, Any]]:
    content = msg.get("content")
    tool_calls = msg.get("tool_calls")
    thinking = msg.get("thinking_blocks")
    if isinstance(content, str) and not tool_calls and not thinking:
        return content
    blocks = [dict(b) for b in thinking or ()]
    blocks.extend(_blocks(content))
    for call in tool_calls or ():
        name, arguments = _tool_input(call)
        blocks.append({"type": "tool_use", "id": call.get("id"), "name": name, "input": arguments})
    return blocks


def _convert_messages(
    messages: Sequence[Mapping[str, Any]],
) -> tuple[str | list[dict[str, Any]] | None, list[dict[str, Any]]]:
    system: list[Any] = []
    out: list[dict[str, Any]] = []
    for msg in messages:
        role = msg.get("role")
        content: str | list[dict[str, Any]]
        if role in ("system", "developer"):
            system.append(msg.get("content"))
            continue
        if role == "user":
            raw = msg.get("content")
            content = raw if isinstance(raw, str) else _blocks(raw)
        elif role == "assistant":
            content = _assistant_content(msg)
        elif role == "tool":
            tool_call_id = msg.get("tool_call_id")
            if not tool_call_id:
                raise _invalid("a tool message needs a tool_call_id")
            raw = msg.get("content")
            result = {
                "type": "tool_result",
                "tool_use_id": tool_call_id,
                "content": raw if isinstance(raw, str) else _blocks(raw),
            }
            role, content = "user", [result]
        else:
            raise _invalid(f"unsupported message role {role!r}")
        if out and out[-1]["role"] == role:
            previous = out[-1]["content"]
            if isinstance(previous, str):
                previous = out[-1]["content"] = _blocks(previous)
            previous.extend(_blocks(content) if isinstance(content, str) else content)
        else:
            out.append({"role": role, "content": content})
    if not system:
        return None, out
    if all(isinstance(s, str) for s in system):
        return "\n\n".join(system), out
    return [b for s in system for b in _blocks(s)], out


def _tool(tool: Mapping[str, Any]) -> dict[str, Any]:
    function = tool.get("function")
    if tool.get("type") != "function" or not isinstance(function, Mapping):
        return dict(tool)
    out: dict[str, Any] = {
        "name": function.get("name"),
        "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
    }
    if function.get("description"):
        out["description"] = function["description"]
    if "cache_control" in tool:
        out["cache_control"] = tool["cache_control"]
    return out


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    result: dict[str, Any] | None
    if choice is None:
        result = None
    elif choice == "auto":
        result = {"type": "auto"}
    elif choice in ("required", "any"):
        result = {"type": "any"}
    elif choice == "none":
        result = {"type": "none"}
    elif isinstance(choice, Mapping) and choice.get("type") == "function":
        result = {"type": "tool", "name": (choice.get("function") or {}).get("name")}
    elif isinstance(choice, Mapping):
        result = dict(choice)
    else:
        raise _invalid(f"unsupported tool_choice {choice!r}")
    if parallel is False and (result is None or result.get("type") != "none"):
        result = result or {"type": "auto"}
        result["disable_parallel_tool_use"] = True
    return result


def messages_body(
    route: Route, messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any], *, stream: bool
) -> dict[str, Any]:
    """The Messages API body for an OpenAI-shaped call (the translation is in the module doc).

    Raises :class:`InvalidRequestError` for what Anthropic cannot do as asked.
    """
    if params.get("n") not in (None, 1):
        raise _invalid("n > 1 is not supported; make separate calls")
    response_format = params.get("response_format")
    if response_format is not None and (
        not isinstance(response_format, Mapping) or response_format.get("type") != "text"
    ):
        raise _invalid(
            "response_format is not supported; describe the JSON in the prompt or use tools"
        )
    if params.get("functions") is not None or params.get("function_call") is not None:
        raise _invalid("legacy functions/function_call are not supported; use tools")
    system, converted = _convert_messages(messages)
    body: dict[str, Any] = {
        key: value
        for key, value in params.items()
        if key not in _DROPPED and key not in _TRANSLATED and value is not None
    }
    body["model"] = route.upstream_model
    body["messages"] = converted
    if system is not None:
        body["system"] = system
    effort = params.get("reasoning_effort")
    if "thinking" not in body and effort in _EFFORT_BUDGET:
        body["thinking"] = {"type": "enabled", "budget_tokens": _EFFORT_BUDGET[effort]}
    max_tokens = params.get("max_tokens") or params.get("max_completion_tokens")
    if max_tokens is None:
        max_tokens = DEFAULT_ANTHROPIC_MAX_TOKENS
        thinking = body.get("thinking")
        budget = thinking.get("budget_tokens") if isinstance(thinking, Mapping) else None
        if isinstance(budget, int) and budget >= max_tokens:
            max_tokens += budget
    body["max_tokens"] = max_tokens
    stop = params.get("stop")
    if stop is not None:
        body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if params.get("tools"):
        body["tools"] = [_tool(t) for t in params["tools"]]
    tool_choice = _tool_choice(params.get("tool_choice"), params.get("parallel_tool_calls"))
    if tool_choice is not None:
        body["tool_choice"] = tool_choice
    if params.get("user") is not None:
        body["metadata"] = {**(body.get("metadata") or {}), "user_id": params["user"]}
    if stream:
        body["stream"] = True
    return body


class _Block(msgspec.Struct):
    type: str
    text: str | None = None
    id: str | None = None
    name: str | None = None
    input: msgspec.Raw = msgspec.Raw()
    thinking: str | None = None
    signature: str | None = None
    data: str | None = None


class _Usage(msgspec.Struct):
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None


class _Message(msgspec.Struct):
    id: str
    model: str = ""
    content: list[_Block] = msgspec.field(default_factory=list)
    stop_reason: str | None = None
    usage: _Usage = msgspec.field(default_factory=_Usage)


def _usage(start: _Usage, end: _Usage | None = None) -> Usage:
    def pick(name: str) -> int:
        later = getattr(end, name, None) if end is not None else None
        value = later if later else getattr(start, name)
        return value or 0

    cache_read = pick("cache_read_input_tokens")
    cache_write = pick("cache_creation_input_tokens")
    prompt = pick("input_tokens") + cache_read + cache_write
    completion = pick("output_tokens")
    details: dict[str, int] | None = None
    if cache_read or cache_write:
        details = {"cached_tokens": cache_read, "cache_creation_tokens": cache_write}
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        prompt_tokens_details=details,
    )


def _finish_reason(stop_reason: str | None) -> str | None:
    if stop_reason is None:
        return None
    return _STOP_REASONS.get(stop_reason, "stop")


def parse_messages_response(body: bytes, route: Route) -> ModelResponse:
    """A Messages API body as an OpenAI-shaped :class:`ModelResponse`.

    Text blocks are joined into ``content``; ``tool_use`` blocks become ``tool_calls``
    (arguments as the JSON Anthropic sent); ``thinking`` blocks become ``reasoning_content``
    and, verbatim with their signatures, ``thinking_blocks``.
    """
    try:
        msg = msgspec.json.decode(body, type=_Message)
    except msgspec.DecodeError as exc:
        raise invalid_body(body, route, exc) from exc
    texts: list[str] = []
    reasoning: list[str] = []
    thinking_blocks: list[dict[str, Any]] = []
    tool_calls: list[ChatCompletionMessageToolCall] = []
    for block in msg.content:
        if block.type == "text":
            texts.append(block.text or "")
        elif block.type == "tool_use":
            arguments = bytes(block.input).decode() or "{}"
            tool_calls.append(
                ChatCompletionMessageToolCall(
                    id=block.id or "", function=Function(name=block.name, arguments=arguments)
                )
            )
        elif block.type == "thinking":
            reasoning.append(block.thinking or "")
            thinking_blocks.append(
                {"type": "thinking", "thinking": block.thinking, "signature": block.signature}
            )
        elif block.type == "redacted_thinking":
            thinking_blocks.append({"type": "redacted_thinking", "data": block.data})
    message = Message(
        content="".join(texts) if texts else None,
        tool_calls=tool_calls or None,
        reasoning_content="".join(reasoning) if reasoning else None,
        thinking_blocks=thinking_blocks or None,
    )
    return ModelResponse(
        id=msg.id,
        choices=[Choices(message=message, finish_reason=_finish_reason(msg.stop_reason) or "stop")],
        created=int(time.time()),
        model=msg.model or route.upstream_model,
        usage=_usage(msg.usage),
    )


class _Delta(msgspec.Struct):
    type: str = ""
    text: str | None = None
    partial_json: str | None = None
    thinking: str | None = None
    signature: str | None = None
    stop_reason: str | None = None


class _Event(msgspec.Struct):
    type: str
    index: int = 0
    message: _Message | None = None
    content_block: _Block | None = None
    delta: _Delta | None = None
    usage: _Usage | None = None
    error: Any = None


class StreamParser:
    """Turns one Messages API stream's events into OpenAI-shaped chunks (one instance per
    stream; it remembers the message id, the input usage and the tool-call indexes).

    ``message_start`` gives the role chunk; text and tool-input deltas give content and
    tool-call chunks (tool calls numbered from 0 in order); ``message_delta`` gives the finish
    chunk, carrying ``finish_reason`` and the usage; ``message_stop`` ends the stream; an
    ``error`` event raises the error it describes.

    Thinking blocks travel whole, so that the assembled message has the thinking blocks of the
    plain answer, signatures included:

    - a ``thinking_delta`` gives ``Delta(reasoning_content=text,
      thinking_blocks=[{"type": "thinking", "thinking": text}])``;
    - a ``signature_delta`` gives ``Delta(thinking_blocks=[{"type": "thinking", "thinking": "",
      "signature": sig}])``, which closes the current thinking block;
    - a ``redacted_thinking`` block start gives ``Delta(thinking_blocks=[{"type":
      "redacted_thinking", "data": data}])``.
    """

    __slots__ = ("_created", "_id", "_model", "_next_tool", "_route", "_tools", "_usage")

    def __init__(self, route: Route) -> None:
        self._route = route
        self._id = ""
        self._model = route.upstream_model
        self._created = int(time.time())
        self._usage = _Usage()
        self._tools: dict[int, int] = {}
        self._next_tool = 0

    def _chunk(
        self, delta: Delta, finish_reason: str | None = None, usage: Usage | None = None
    ) -> tuple[ModelResponseStream]:
        choice = StreamingChoices(delta=delta, finish_reason=finish_reason)
        return (
            ModelResponseStream(
                id=self._id, choices=[choice], created=self._created, model=self._model, usage=usage
            ),
        )

    def __call__(self, event: ServerSentEvent) -> Sequence[ModelResponseStream] | None:
        """The chunks for one event; ``None`` once the message is complete."""
        if not event.data:
            return ()
        try:
            ev = msgspec.json.decode(event.data, type=_Event)
        except msgspec.DecodeError as exc:
            raise invalid_body(event.data, self._route, exc) from exc
        kind = ev.type
        if kind == "content_block_delta" and ev.delta is not None:
            delta = ev.delta
            if delta.type == "text_delta" and delta.text:
                return self._chunk(Delta(content=delta.text))
            if delta.type == "input_json_delta" and delta.partial_json:
                call = ChatCompletionDeltaToolCall(
                    index=self._tools.get(ev.index, 0),
                    function=Function(arguments=delta.partial_json),
                )
                return self._chunk(Delta(tool_calls=[call]))
            if delta.type == "thinking_delta" and delta.thinking:
                thinking = {"type": "thinking", "thinking": delta.thinking}
                return self._chunk(
                    Delta(reasoning_content=delta.thinking, thinking_blocks=[thinking])
                )
            if delta.type == "signature_delta" and delta.signature is not None:
                signed = {"type": "thinking", "thinking": "", "signature": delta.signature}
                return self._chunk(Delta(thinking_blocks=[signed]))
            return ()
        if kind == "message_start" and ev.message is not None:
            self._id = ev.message.id
            self._model = ev.message.model or self._model
            self._usage = ev.message.usage
            return self._chunk(Delta(role="assistant", content=""))
        if kind == "content_block_start" and ev.content_block is not None:
            block = ev.content_block
            if block.type == "tool_use":
                index = self._tools[ev.index] = self._next_tool
                self._next_tool += 1
                call = ChatCompletionDeltaToolCall(
                    index=index,
                    id=block.id,
                    type="function",
                    function=Function(name=block.name, arguments=""),
                )
                return self._chunk(Delta(tool_calls=[call]))
            if block.type == "text" and block.text:
                return self._chunk(Delta(content=block.text))
            if block.type == "redacted_thinking":
                redacted = {"type": "redacted_thinking", "data": block.data}
                return self._chunk(Delta(thinking_blocks=[redacted]))
            return ()
        if kind == "message_delta":
            stop_reason = ev.delta.stop_reason if ev.delta is not None else None
            return self._chunk(
                Delta(), _finish_reason(stop_reason) or "stop", _usage(self._usage, ev.usage)
            )
        if kind == "message_stop":
            return None
        if kind == "error":
            raise event_error({"error": ev.error}, self._route)
        return ()


class AnthropicProvider:
    """Anthropic's Messages API: ``POST {api_base}/v1/messages`` with ``x-api-key`` and
    ``anthropic-version`` headers. Chat only; embeddings are refused.

    ``sleep`` and ``rand`` are injected into the retry loop (tests pass fakes).
    """

    name = "anthropic"

    def __init__(
        self,
        *,
        sleep: Callable[[float], Awaitable[Any]] = anyio.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._sender = Sender(sleep=sleep, rand=rand)

    def _request(
        self,
        http: httpx.AsyncClient,
        route: Route,
        messages: Sequence[Mapping[str, Any]],
        params: Mapping[str, Any],
        *,
        stream: bool,
        timeout: float,
    ) -> httpx.Request:
        rest, extra_headers, extra_body = split_extras(params)
        body = messages_body(route, messages, rest, stream=stream)
        body.update(extra_body)
        headers = {"anthropic-version": DEFAULT_ANTHROPIC_VERSION}
        if route.api_key:
            headers["x-api-key"] = route.api_key
        headers.update(extra_headers)
        return build_post(http, f"{route.api_base}/v1/messages", headers, body, timeout=timeout)

    async def chat(
        self,
        http: httpx.AsyncClient,
        route: Route,
        messages: Sequence[dict[str, Any]],
        params: dict[str, Any],
        *,
        timeout: float,  # noqa: ASYNC109 - the Provider protocol: an httpx timeout per request
        num_retries: int,
    ) -> ModelResponse:
        """One message, retried on 408/409/429/5xx (529 included) and connection errors."""
        request = self._request(http, route, messages, params, stream=False, timeout=timeout)
        response = await self._sender.send(http, request, route, num_retries=num_retries)
        return parse_messages_response(response.content, route)

    def chat_stream(
        self,
        http: httpx.AsyncClient,
        route: Route,
        messages: Sequence[dict[str, Any]],
        params: dict[str, Any],
        *,
        timeout: float,
        num_retries: int,
    ) -> AsyncGenerator[ModelResponseStream, None]:
        """A streamed message as OpenAI-shaped chunks. The request is built (and a bad
        parameter raised) at once; nothing is sent until the first ``__anext__``."""
        request = self._request(http, route, messages, params, stream=True, timeout=timeout)

        def new_parser() -> EventParser[ModelResponseStream]:
            return StreamParser(route)

        return self._sender.stream(http, request, route, new_parser, num_retries=num_retries)

    async def embed(
        self,
        http: httpx.AsyncClient,
        route: Route,
        inputs: Sequence[str],
        params: dict[str, Any],
        *,
        timeout: float,  # noqa: ASYNC109 - the Provider protocol: an httpx timeout per request
        num_retries: int,
    ) -> EmbeddingResponse:
        """Always raises :class:`InvalidRequestError`: Anthropic has no embeddings API."""
        raise _invalid("Anthropic has no embeddings API")
