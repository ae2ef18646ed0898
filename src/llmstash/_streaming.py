"""Streams and whole responses, turned into each other without loss. Pure functions, no I/O.

A streamed miss is stored as its chunks; a plain call served from that entry needs the
assembled :class:`ModelResponse` (:func:`assemble_chunks`), and a streamed call served from a
plain entry needs chunks (:func:`response_to_chunks`). The two are inverses: what one produces,
the other turns back into an equal object. Kept across the conversion:

- content, refusal, reasoning text, tool calls and the legacy ``function_call``, per choice;
- ``logprobs`` (the per-token lists are concatenated in order);
- Anthropic thinking blocks with their signatures (``thinking_blocks``), redacted ones too;
- ``usage`` (a stream carries it on a chunk of its own, as OpenAI's ``include_usage`` does);
- fields the types do not declare (``model_extra``) at the response, choice and message level:
  in a stream, text pieces of a message field are concatenated and lists extended (vLLM's
  ``reasoning``, ``annotations``), other values and response-level fields (Perplexity's
  ``citations``, repeated on every chunk) keep their last value.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .types import (
    ChatCompletionDeltaToolCall,
    ChatCompletionMessageToolCall,
    Choices,
    Delta,
    Function,
    Message,
    ModelResponse,
    ModelResponseStream,
    StreamingChoices,
    Usage,
)

__all__ = ["assemble_chunks", "response_to_chunks"]

_MESSAGE_FIELDS = frozenset(Message.__struct_fields__) - {"model_extra"}


class _ToolCallParts:
    __slots__ = ("arguments", "id", "name", "type")

    def __init__(self) -> None:
        self.id: str | None = None
        self.type: str | None = None
        self.name: str | None = None
        self.arguments: list[str] = []


class _ChoiceParts:
    __slots__ = (
        "blocks",
        "content",
        "extra",
        "finish_reason",
        "function_args",
        "function_name",
        "logprobs",
        "message_extra",
        "open_block",
        "reasoning",
        "refusal",
        "role",
        "saw_content",
        "tool_calls",
    )

    def __init__(self) -> None:
        self.role = "assistant"
        self.content: list[str] = []
        self.saw_content = False
        self.reasoning: list[str] = []
        self.refusal: list[str] = []
        self.tool_calls: dict[int, _ToolCallParts] = {}
        self.function_name: str | None = None
        self.function_args: list[str] | None = None
        self.finish_reason: str | None = None
        self.logprobs: dict[str, Any] | None = None
        self.blocks: list[dict[str, Any]] = []
        self.open_block: dict[str, Any] | None = None
        self.message_extra: dict[str, Any] = {}
        self.extra: dict[str, Any] = {}

    def add(self, choice: StreamingChoices) -> None:
        delta = choice.delta
        if delta.role:
            self.role = delta.role
        if delta.content is not None:
            self.saw_content = True
            if delta.content:
                self.content.append(delta.content)
        if delta.reasoning_content:
            self.reasoning.append(delta.reasoning_content)
        if delta.refusal:
            self.refusal.append(delta.refusal)
        if delta.thinking_blocks:
            for block in delta.thinking_blocks:
                self._add_block(block)
        if delta.tool_calls:
            for frag in delta.tool_calls:
                call = self.tool_calls.get(frag.index)
                if call is None:
                    call = self.tool_calls[frag.index] = _ToolCallParts()
                if frag.id:
                    call.id = frag.id
                if frag.type:
                    call.type = frag.type
                if frag.function is not None:
                    if frag.function.name:
                        call.name = frag.function.name
                    if frag.function.arguments:
                        call.arguments.append(frag.function.arguments)
        if delta.function_call is not None:
            if delta.function_call.name:
                self.function_name = delta.function_call.name
            if self.function_args is None:
                self.function_args = []
            if delta.function_call.arguments:
                self.function_args.append(delta.function_call.arguments)
        if delta.model_extra:
            _merge_pieces(self.message_extra, delta.model_extra)
        if choice.logprobs is not None:
            self._add_logprobs(choice.logprobs)
        if choice.model_extra:
            self.extra.update(choice.model_extra)
        if choice.finish_reason is not None:
            self.finish_reason = choice.finish_reason

    def _add_block(self, block: Any) -> None:
        if not isinstance(block, dict):
            return
        if block.get("type") != "thinking":
            self.open_block = None
            self.blocks.append(dict(block))
            return
        current = self.open_block
        if current is None:
            current = self.open_block = {"type": "thinking", "thinking": "", "signature": None}
            self.blocks.append(current)
        current["thinking"] += block.get("thinking") or ""
        if block.get("signature") is not None:
            current["signature"] = block["signature"]
            self.open_block = None  # a signature closes its block

    def _add_logprobs(self, logprobs: Any) -> None:
        if not isinstance(logprobs, dict):
            self.logprobs = logprobs
            return
        if self.logprobs is None:
            self.logprobs = {}
        for name, value in logprobs.items():
            if isinstance(value, list):
                have = self.logprobs.get(name)
                self.logprobs[name] = [*have, *value] if isinstance(have, list) else list(value)
            elif name not in self.logprobs or value is not None:
                self.logprobs[name] = value

    def choice(self, index: int) -> Choices:
        tool_calls = [
            ChatCompletionMessageToolCall(
                id=call.id or "",
                type=call.type or "function",
                function=Function(name=call.name, arguments="".join(call.arguments)),
            )
            for _, call in sorted(self.tool_calls.items())
        ] or None
        text = "".join(self.content)
        if not text and (tool_calls or not self.saw_content):
            content = None
        else:
            content = text
        declared = {k: v for k, v in self.message_extra.items() if k in _MESSAGE_FIELDS}
        undeclared = {k: v for k, v in self.message_extra.items() if k not in _MESSAGE_FIELDS}
        message = Message(
            content=content,
            role=self.role,
            tool_calls=tool_calls,
            function_call=(
                Function(name=self.function_name, arguments="".join(self.function_args))
                if self.function_args is not None
                else None
            ),
            refusal="".join(self.refusal) or None,
            reasoning_content="".join(self.reasoning) or None,
            thinking_blocks=self.blocks or None,
            model_extra=undeclared or None,
            **declared,
        )
        return Choices(
            index=index,
            message=message,
            finish_reason=self.finish_reason,
            logprobs=self.logprobs,
            model_extra=self.extra or None,
        )


def _merge_pieces(into: dict[str, Any], extra: dict[str, Any]) -> None:
    for name, value in extra.items():
        have = into.get(name)
        if isinstance(value, str) and isinstance(have, str):
            into[name] = have + value
        elif isinstance(value, list) and isinstance(have, list):
            into[name] = [*have, *value]
        else:
            into[name] = value


def assemble_chunks(chunks: Sequence[ModelResponseStream]) -> ModelResponse:
    """The :class:`ModelResponse` a stream adds up to.

    Per choice index: content, reasoning and refusal text concatenated; tool-call fragments
    merged by their ``index`` (id, name, then the argument pieces in order); thinking blocks
    rebuilt (a signature closes its block); logprobs concatenated; the last ``finish_reason``
    seen. ``usage`` comes from the last chunk that carries it; ``id``, ``model``, ``created``
    and ``system_fingerprint`` from the first chunk that has them (Azure may open with an empty
    content-filter chunk). Raises ``ValueError`` for an empty sequence.
    """
    if not chunks:
        raise ValueError("cannot assemble a response from zero chunks")
    first = chunks[0]
    resp_id, model, created, fingerprint = first.id, first.model, first.created, None
    tier = first.service_tier
    usage: Usage | None = None
    extra: dict[str, Any] = {}
    parts: dict[int, _ChoiceParts] = {}
    for chunk in chunks:
        if not resp_id and chunk.id:
            resp_id = chunk.id
        if not model and chunk.model:
            model = chunk.model
        if not created and chunk.created:
            created = chunk.created
        if fingerprint is None and chunk.system_fingerprint:
            fingerprint = chunk.system_fingerprint
        if tier is None and chunk.service_tier:
            tier = chunk.service_tier
        if chunk.usage is not None:
            usage = chunk.usage
        if chunk.model_extra:
            extra.update(chunk.model_extra)
        for choice in chunk.choices:
            acc = parts.get(choice.index)
            if acc is None:
                acc = parts[choice.index] = _ChoiceParts()
            acc.add(choice)
    return ModelResponse(
        id=resp_id,
        choices=[acc.choice(index) for index, acc in sorted(parts.items())],
        created=created,
        model=model,
        usage=usage,
        system_fingerprint=fingerprint,
        service_tier=tier,
        model_extra=extra or None,
    )


def response_to_chunks(resp: ModelResponse) -> list[ModelResponseStream]:
    """A whole response replayed as a stream that :func:`assemble_chunks` turns back into it.

    For each choice: a role chunk (``content=""`` when the message has content, as OpenAI
    opens its streams), its thinking blocks (text, then signature) or reasoning, one content
    chunk carrying the choice's logprobs, a refusal chunk, one chunk per tool call (id, name and
    all arguments), then a finish chunk. ``usage`` rides on a last chunk of its own with no
    choices, as OpenAI sends it to callers who ask for ``include_usage``. The response's
    undeclared fields ride on every chunk (as Perplexity sends ``citations``), the message's on
    the content chunk.
    """

    def chunk(
        index: int, delta: Delta, finish_reason: str | None = None, logprobs: Any = None
    ) -> ModelResponseStream:
        choice = StreamingChoices(
            index=index, delta=delta, finish_reason=finish_reason, logprobs=logprobs
        )
        return _chunk(resp, [choice])

    out: list[ModelResponseStream] = []
    for choice in resp.choices:
        msg = choice.message
        i = choice.index
        out.append(chunk(i, Delta(role=msg.role, content="" if msg.content is not None else None)))
        if msg.thinking_blocks:
            for block in msg.thinking_blocks:
                out.extend(chunk(i, delta) for delta in _block_deltas(block))
        elif msg.reasoning_content:
            out.append(chunk(i, Delta(reasoning_content=msg.reasoning_content)))
        carried = dict(msg.model_extra or {})
        for name in ("annotations", "audio"):
            if getattr(msg, name) is not None:
                carried[name] = getattr(msg, name)
        if msg.content or carried or choice.logprobs is not None:
            delta = Delta(content=msg.content or None, model_extra=carried or None)
            out.append(chunk(i, delta, logprobs=choice.logprobs))
        if msg.refusal:
            out.append(chunk(i, Delta(refusal=msg.refusal)))
        if msg.function_call is not None:
            out.append(chunk(i, Delta(function_call=msg.function_call)))
        for n, call in enumerate(msg.tool_calls or ()):
            frag = ChatCompletionDeltaToolCall(
                index=n,
                id=call.id,
                type=call.type,
                function=Function(name=call.function.name, arguments=call.function.arguments),
            )
            out.append(chunk(i, Delta(tool_calls=[frag])))
        finish = StreamingChoices(
            index=i,
            delta=Delta(),
            finish_reason=choice.finish_reason,
            model_extra=choice.model_extra,
        )
        out.append(_chunk(resp, [finish]))
    if resp.usage is not None or not out:
        last = _chunk(resp, [])
        last.usage = resp.usage
        out.append(last)
    return out


def _block_deltas(block: Any) -> list[Delta]:
    if not isinstance(block, dict) or block.get("type") != "thinking":
        return [Delta(thinking_blocks=[block])]
    text = block.get("thinking") or ""
    deltas = [
        Delta(
            reasoning_content=text or None, thinking_blocks=[{"type": "thinking", "thinking": text}]
        )
    ]
    if block.get("signature") is not None:
        signed = {"type": "thinking", "thinking": "", "signature": block["signature"]}
        deltas.append(Delta(thinking_blocks=[signed]))
    return deltas


def _chunk(resp: ModelResponse, choices: list[StreamingChoices]) -> ModelResponseStream:
    # Response-level fields ride on every chunk, declared or not, as providers send them.
    return ModelResponseStream(
        id=resp.id,
        choices=choices,
        created=resp.created,
        model=resp.model,
        system_fingerprint=resp.system_fingerprint,
        service_tier=resp.service_tier,
        model_extra=dict(resp.model_extra) if resp.model_extra else None,
    )
