"""The Responses API and text completion, cached as chat is.

Both call types go through the same steps as chat — prepare → key → lookup → single flight →
provider → store → report — with the same controls, key rules, write-through and callbacks;
what differs is described by a :class:`_Kind`: the provider method, the payload argument
(``input`` or ``prompt``), the stored entry kinds, and how a stream and a whole answer relate.

Which entry serves which call (never a poorer answer than the provider would give):

- a plain call is served by a plain entry, or by a stream entry: a Responses stream ends with
  ``response.completed`` (or ``response.incomplete``), which carries the whole answer; a text
  completion stream is assembled (text per choice, logprobs, usage), but only when it holds the
  usage, which llmstash asks the provider for whenever a stream will be stored;
- a streamed call is served by a stream entry only, replayed event for event (sequence numbers,
  item ids and delta boundaries as the provider sent them). A plain entry cannot be turned
  into the stream the provider would have sent, so a streamed call that finds one calls the
  provider, and its stream entry — which serves both modes — replaces the plain one.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any, Final

from . import _sync
from ._client import _fall_back_or_raise, _not_unicode, _target_model, _targets
from ._flight import LEAD, take_lease
from ._mocks import MIDWAY_TEXT, STREAM_ERROR, _fail_midway, _stream_error, _words, mock_error
from ._outcome import Call, fail, succeed
from ._request import CallSettings, Request, prepare
from ._streams import _Stream
from .caching._cache import NEEDS_IO
from .caching._codec import (
    Entry,
    ResponsesEntry,
    ResponsesStreamEntry,
    TextCompletionEntry,
    TextCompletionStreamEntry,
    decode,
    encode_responses,
    encode_responses_stream,
    encode_text_completion,
    encode_text_completion_stream,
)
from .caching._keys import _prefix as _key_prefix
from .caching._keys import canonical_json, key_headers
from .caching._stats import GARBAGE, NO_CACHE, Miss
from .exceptions import CacheDataError, InvalidRequestError, UnsupportedParamsError
from .providers import resolve
from .providers._family import FAMILY
from .types._json import (
    JSONObject,
    ResponsesAPIResponse,
    ResponsesAPIStreamEvent,
    TextCompletionResponse,
)

if TYPE_CHECKING:
    from ._client import Client

__all__ = ["EventStream", "SyncEventStream", "run"]

logger = logging.getLogger("llmstash")

_FINAL_EVENTS: Final = ("response.completed", "response.incomplete")
"""Events that end a Responses stream with a whole answer (stored; a ``response.failed``
stream is not)."""


class _Kind:
    """What distinguishes one call type (the Responses API, text completion) from another."""

    name: str
    """The LiteLLM call type of the sync function (``"responses"``, ``"text_completion"``)."""
    arg: str
    """The payload argument: ``"input"`` or ``"prompt"``."""
    plain_method: str
    stream_method: str
    support_flag: str

    def check(self, payload: Any) -> Any:
        raise NotImplementedError

    def encode_plain(self, response: Any, now: float, ttl: float | None, model: str) -> bytes:
        raise NotImplementedError

    def encode_stream(self, items: list[Any], now: float, ttl: float | None, model: str) -> bytes:
        raise NotImplementedError

    def plain_of(self, entry: Entry) -> Any:
        """The whole answer an entry gives a plain call, or ``None``."""
        raise NotImplementedError

    def stream_of(self, entry: Entry) -> list[Any] | None:
        """The items an entry replays to a streamed call, or ``None``."""
        raise NotImplementedError

    def finished(self, items: list[Any]) -> bool:
        """Whether a stream ended with a whole answer (else it is neither stored nor shared)."""
        raise NotImplementedError

    def assemble(self, items: list[Any]) -> Any:
        """The whole answer of a finished stream (reported to success callbacks)."""
        raise NotImplementedError

    def mock(self, req: Request, payload: Any, text: str | None = None) -> Any:
        """The answer ``mock_response`` stands for (an error it stands for is raised, as
        :func:`~llmstash._mocks.mock_error` reads it); ``text`` answers that text instead."""
        raise NotImplementedError

    def mock_stream(self, response: Any) -> list[Any]:
        raise NotImplementedError

    def stream_params(self, req: Request, storing: bool) -> dict[str, Any]:
        return req.params

    def visible(self, item: Any, req: Request) -> bool:
        """Whether the caller sees ``item`` (a usage chunk it did not ask for is hidden)."""
        return True


class _Responses(_Kind):
    name = "responses"
    arg = "input"
    plain_method = "responses"
    stream_method = "responses_stream"
    support_flag = "supports_responses"

    def check(self, payload: Any) -> Any:
        if isinstance(payload, str) and payload:
            return payload
        if isinstance(payload, (list, tuple)) and payload:
            return [_plain(item, f"input[{i}]") for i, item in enumerate(payload)]
        raise InvalidRequestError(
            "input must be a non-empty string or a non-empty list of input items "
            "(e.g. [{'role': 'user', 'content': '...'}])"
        )

    def encode_plain(self, response: Any, now: float, ttl: float | None, model: str) -> bytes:
        return encode_responses(response, now, ttl, model=model)

    def encode_stream(self, items: list[Any], now: float, ttl: float | None, model: str) -> bytes:
        return encode_responses_stream(items, now, ttl, model=model)

    def plain_of(self, entry: Entry) -> Any:
        if isinstance(entry, ResponsesEntry):
            return entry.response
        if isinstance(entry, ResponsesStreamEntry):
            return _final_response(entry.events)
        return None

    def stream_of(self, entry: Entry) -> list[Any] | None:
        if isinstance(entry, ResponsesStreamEntry) and _final_response(entry.events) is not None:
            return entry.events
        return None

    def finished(self, items: list[Any]) -> bool:
        return _final_response(items) is not None

    def assemble(self, items: list[Any]) -> Any:
        return _final_response(items)

    def mock(self, req: Request, payload: Any, text: str | None = None) -> Any:
        mock = req.mock_response
        if text is None:
            error = mock_error(mock, req.model)
            if error is not None:
                raise error
            if isinstance(mock, ResponsesAPIResponse):
                return ResponsesAPIResponse(mock.model_dump())
            text = str(mock)
        prompt = _words(payload) if isinstance(payload, str) else _words(_text_of(payload))
        output = _words(text)
        params = req.params
        return ResponsesAPIResponse(
            {
                "id": f"resp_mock{uuid.uuid4().hex}",
                "object": "response",
                "created_at": int(time.time()),
                "status": "completed",
                "model": req.model,
                "output": [
                    {
                        "type": "message",
                        "id": f"msg_mock{uuid.uuid4().hex}",
                        "status": "completed",
                        "role": "assistant",
                        "content": [{"type": "output_text", "text": text, "annotations": []}],
                    }
                ],
                "parallel_tool_calls": params.get("parallel_tool_calls", True),
                "tool_choice": params.get("tool_choice", "auto"),
                "tools": params.get("tools", []),
                "instructions": params.get("instructions"),
                "previous_response_id": params.get("previous_response_id"),
                "usage": {
                    "input_tokens": prompt,
                    "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                    "output_tokens": output,
                    "output_tokens_details": {"reasoning_tokens": 0},
                    "total_tokens": prompt + output,
                },
            }
        )

    def mock_stream(self, response: Any) -> list[Any]:
        return response_to_events(response)


class _TextCompletion(_Kind):
    name = "text_completion"
    arg = "prompt"
    plain_method = "text_completion"
    stream_method = "text_completion_stream"
    support_flag = "supports_text_completion"

    def check(self, payload: Any) -> Any:
        if isinstance(payload, str) and payload:
            return payload
        if isinstance(payload, (list, tuple)) and payload:
            ok = all(
                (isinstance(p, str) and p)
                or (isinstance(p, int) and not isinstance(p, bool))
                or (isinstance(p, list) and p and all(isinstance(t, int) for t in p))
                for p in payload
            )
            if ok:
                return list(payload)
        raise InvalidRequestError(
            "prompt must be a non-empty string, a list of strings, or token ids"
        )

    def encode_plain(self, response: Any, now: float, ttl: float | None, model: str) -> bytes:
        return encode_text_completion(response, now, ttl, model=model)

    def encode_stream(self, items: list[Any], now: float, ttl: float | None, model: str) -> bytes:
        return encode_text_completion_stream(items, now, ttl, model=model)

    def plain_of(self, entry: Entry) -> Any:
        if isinstance(entry, TextCompletionEntry):
            return entry.response
        if isinstance(entry, TextCompletionStreamEntry):
            if not any(c._data.get("usage") for c in entry.chunks):
                return None  # a plain answer has usage; one without it would be poorer
            return assemble_text_chunks(entry.chunks)
        return None

    def stream_of(self, entry: Entry) -> list[Any] | None:
        if isinstance(entry, TextCompletionStreamEntry) and self.finished(entry.chunks):
            return entry.chunks
        return None

    def finished(self, items: list[Any]) -> bool:
        return any(
            isinstance(c, dict) and c.get("finish_reason")
            for item in items
            for c in item._data.get("choices") or ()
        )

    def assemble(self, items: list[Any]) -> Any:
        return assemble_text_chunks(items)

    def mock(self, req: Request, payload: Any, text: str | None = None) -> Any:
        mock = req.mock_response
        if text is None:
            error = mock_error(mock, req.model)
            if error is not None:
                raise error
            if isinstance(mock, TextCompletionResponse):
                return TextCompletionResponse(mock.model_dump())
            text = str(mock)
        prompt = _words(payload) if isinstance(payload, str) else _words(_text_of(payload))
        completion = _words(text)
        return TextCompletionResponse(
            {
                "id": f"cmpl-mock{uuid.uuid4().hex}",
                "object": "text_completion",
                "created": int(time.time()),
                "model": req.model,
                "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": "stop"}],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                },
            }
        )

    def mock_stream(self, response: Any) -> list[Any]:
        data = response._data
        head = {k: v for k, v in data.items() if k not in ("choices", "usage")}
        chunks = [
            TextCompletionResponse({**head, "choices": [dict(choice)]})
            for choice in data.get("choices") or ()
        ]
        if data.get("usage") is not None:
            chunks.append(TextCompletionResponse({**head, "choices": [], "usage": data["usage"]}))
        return chunks

    def stream_params(self, req: Request, storing: bool) -> dict[str, Any]:
        if not storing or req.wants_usage:
            return req.params
        # Ask for usage so that a plain call served from this entry has it; the caller, who did
        # not ask, does not see the usage chunk.
        options = dict(req.params.get("stream_options") or {})
        options["include_usage"] = True
        return {**req.params, "stream_options": options}

    def visible(self, item: Any, req: Request) -> bool:
        return req.wants_usage or bool(item._data.get("choices")) or not item._data.get("usage")


RESPONSES: Final = _Responses()
TEXT_COMPLETION: Final = _TextCompletion()


def _plain(item: Any, where: str) -> Any:
    """An input item as plain JSON (pydantic models and llmstash objects dumped)."""
    if isinstance(item, JSONObject):
        return item.model_dump()
    if hasattr(item, "model_dump") and not isinstance(item, type):
        return item.model_dump(exclude_none=True)
    if isinstance(item, (dict, str)):
        return item
    raise InvalidRequestError(f"{where} must be a dict (an input item), got {type(item).__name__}")


def _text_of(payload: Any) -> str:
    if isinstance(payload, str):
        return payload
    if isinstance(payload, dict):
        content = payload.get("content")
        return _text_of(content) if content is not None else str(payload.get("text") or "")
    if isinstance(payload, list):
        return " ".join(_text_of(p) for p in payload)
    return ""


def _final_response(events: list[Any]) -> ResponsesAPIResponse | None:
    """The whole answer a finished Responses stream carries in its last event."""
    if not events:
        return None
    last = events[-1]._data
    if last.get("type") in _FINAL_EVENTS and isinstance(last.get("response"), dict):
        return ResponsesAPIResponse(last["response"])
    return None


def response_to_events(response: ResponsesAPIResponse) -> list[ResponsesAPIStreamEvent]:
    """A whole Responses answer as the typed event stream the API sends for it (used for
    mocked streams): ``response.created``, ``response.in_progress``, per output item its
    ``output_item.added``, per text part ``content_part.added``/``output_text.delta`` (one
    delta)/``output_text.done``/``content_part.done``, ``output_item.done``; then
    ``response.completed``; numbered from 0."""
    data = response.model_dump()
    events: list[dict[str, Any]] = []

    def emit(kind: str, **fields: Any) -> None:
        events.append({"type": kind, "sequence_number": len(events), **fields})

    start = {**data, "status": "in_progress", "output": [], "usage": None}
    emit("response.created", response=start)
    emit("response.in_progress", response=start)
    for index, item in enumerate(data.get("output") or ()):
        item_id = item.get("id")
        if item.get("type") == "message":
            emit(
                "response.output_item.added",
                output_index=index,
                item={**item, "status": "in_progress", "content": []},
            )
            for part_index, part in enumerate(item.get("content") or ()):
                where = {"item_id": item_id, "output_index": index, "content_index": part_index}
                if part.get("type") == "output_text":
                    emit(
                        "response.content_part.added",
                        **where,
                        part={**part, "text": ""},
                    )
                    emit("response.output_text.delta", **where, delta=part["text"], logprobs=[])
                    emit("response.output_text.done", **where, text=part["text"], logprobs=[])
                else:
                    emit("response.content_part.added", **where, part=part)
                emit("response.content_part.done", **where, part=part)
        else:
            emit("response.output_item.added", output_index=index, item=item)
        emit("response.output_item.done", output_index=index, item=item)
    emit(
        "response.completed" if data.get("status") != "incomplete" else "response.incomplete",
        response=data,
    )
    return [ResponsesAPIStreamEvent(e) for e in events]


def assemble_text_chunks(chunks: list[TextCompletionResponse]) -> TextCompletionResponse:
    """The whole text completion a stream adds up to: per choice index its text joined,
    its last ``finish_reason``, its ``logprobs`` lists concatenated; the usage chunk's usage;
    the first chunk's id, created, model and other top-level fields."""
    if not chunks:
        raise ValueError("no chunks to assemble")
    head = {k: v for k, v in chunks[0]._data.items() if k not in ("choices", "usage")}
    choices: dict[int, dict[str, Any]] = {}
    usage = None
    for chunk in chunks:
        data = chunk._data
        for key, value in data.items():
            if key not in ("choices", "usage") and key not in head:
                head[key] = value
        if data.get("usage") is not None:
            usage = data["usage"]
        for piece in data.get("choices") or ():
            if not isinstance(piece, dict):
                continue
            index = piece.get("index", 0)
            choice = choices.get(index)
            if choice is None:
                choice = choices[index] = {
                    "text": "",
                    "index": index,
                    "logprobs": None,
                    "finish_reason": None,
                }
            for key, value in piece.items():
                if key == "text":
                    choice["text"] += value or ""
                elif key == "logprobs":
                    choice["logprobs"] = _join_logprobs(choice["logprobs"], value)
                elif key == "finish_reason":
                    if value is not None:
                        choice["finish_reason"] = value
                elif key != "index":
                    choice[key] = value
    body = {**head, "object": "text_completion"}
    body["choices"] = [choices[i] for i in sorted(choices)]
    if usage is not None:
        body["usage"] = usage
    return TextCompletionResponse(body)


def _join_logprobs(into: Any, more: Any) -> Any:
    if more is None:
        return into
    if into is None:
        return {k: list(v) if isinstance(v, list) else v for k, v in more.items()}
    for key, value in more.items():
        if isinstance(value, list) and isinstance(into.get(key), list):
            into[key].extend(value)
        else:
            into[key] = value
    return into


@functools.lru_cache(maxsize=256)
def _serves(model: str, api_base: str | None, api_version: str | None, flag: str) -> str | None:
    """The provider serving ``model``, when it lacks the API ``flag`` names; else ``None``.
    Resolved for naming only (no key needed, no request made)."""
    provider, route = resolve(
        model, api_base=api_base, api_key="unused", api_version=api_version, call_type="chat"
    )
    return None if _offers(provider, route.provider, flag) else route.provider


def _offers(provider: Any, name: str, flag: str) -> bool:
    """Whether the provider serving a route (``name``: a family prefix such as ``groq``, or an
    adapter's name) offers the API ``flag`` names."""
    family = FAMILY.get(name)
    if family is not None:
        return family.responses if flag == "supports_responses" else family.text_completion
    return bool(getattr(provider, flag, False))


def _check_provider(kind: _Kind, req: Request) -> None:
    """A clear error, before any I/O, for a provider without this API (Anthropic)."""
    try:
        lacking = _serves(req.model, req.api_base, req.api_version, kind.support_flag)
    except InvalidRequestError:
        return  # resolving again at call time raises the same error, with the caller's key
    if lacking is not None:
        what = "the Responses API" if kind is RESPONSES else "text completion"
        raise UnsupportedParamsError(
            f"{lacking} does not offer {what}; use completion()/acompletion() for model "
            f"{req.model!r}, or an OpenAI or Azure model",
            model=req.model,
            llm_provider=lacking,
        )


def _key(cache: Any, kind: _Kind, req: Request, payload: Any) -> str:
    """The cache key: ``get_cache_key(model=..., input/prompt=..., **params, cache=...)`` when
    replaced; else the default key of the model, payload and every provider parameter, in a
    key space of its own per call type (a Responses call and an embedding of the same text are
    two entries)."""
    controls = req.controls.raw
    if "get_cache_key" in cache.__dict__:
        return str(
            cache.get_cache_key(
                model=req.model, **{kind.arg: payload}, **req.key_params(), cache=controls
            )
        )
    # As make_key would, without its cleaning: the engine's parameters are clean already (no
    # None at the top level, no llmstash or SDK arguments, headers merged into extra_headers).
    fields: dict[str, Any] = {"model": req.model, kind.arg: payload, "llmstash_api": kind.name}
    params = req.key_params()
    if params:
        fields.update(params)
        fields.pop("stream_options", None)
        if "extra_headers" in params:
            headers = key_headers(params["extra_headers"])
            if headers:
                fields["extra_headers"] = headers
            else:
                del fields["extra_headers"]
    digest = hashlib.sha256(canonical_json(fields)).hexdigest()
    return _key_prefix(cache._namespace(controls)) + digest


async def run(
    client: Client,
    kind: _Kind,
    settings: CallSettings,
    is_async: bool,
    model: Any,
    payload: Any,
    kwargs: dict[str, Any],
) -> Any:
    """One Responses API or text completion call (plain: the answer; ``stream=True``: an
    :class:`EventStream`)."""
    try:
        start = time.time()
        client._check_open()
        req = prepare(settings, ("a" if is_async else "") + kind.name, is_async, model, kwargs)
        payload = kind.check(payload)
        req.payload_name, req.payload = kind.arg, payload
        options = req.params.get("stream_options")
        req.wants_usage = bool(isinstance(options, dict) and options.get("include_usage"))
        call = Call(req, settings, client._dispatcher, start)
        _check_provider(kind, req)
        cache = req.cache
        if cache is not None:
            try:
                key = call.key = _key(cache, kind, req, payload)
            except UnicodeEncodeError:
                raise _not_unicode() from None
            if not req.controls.no_cache:
                max_age = req.controls.max_age
                if call.debug:
                    looked = time.perf_counter()
                entry = cache.probe_nowait(key, max_age)
                if entry is NEEDS_IO:
                    entry = await cache.aprobe(key, max_age)
                if call.debug:
                    call.lookup_s = time.perf_counter() - looked
                if isinstance(entry, Miss):
                    call.miss = entry
                else:
                    served = _serve(client, kind, call, entry)
                    if served is not None:
                        return served
                    call.miss = GARBAGE  # an entry that cannot serve this call
                shared = await client._follow(call, key)
                if isinstance(shared, bytes):
                    served = _serve(client, kind, call, _decode(shared), coalesced=True)
                    if served is not None:
                        return served
                elif shared is LEAD:
                    client._flights.lead(call)
                else:
                    call.alone = True
            else:
                call.miss = NO_CACHE
        if req.stream:
            return await _stream_miss(client, kind, call, payload)
        return await _plain_miss(client, kind, call, payload)
    finally:
        if client._dispatcher.backlogged:
            await client._dispatcher.pace()


def _decode(data: bytes) -> Entry | None:
    try:
        return decode(data)
    except CacheDataError:
        return None


def _serve(
    client: Client, kind: _Kind, call: Call, entry: Entry | None, *, coalesced: bool = False
) -> Any:
    """A hit in the caller's mode, or ``None`` when the entry cannot serve this call."""
    if entry is None:
        return None
    try:
        if call.req.stream:
            items = kind.stream_of(entry)
            if items is None:
                return None
            client._name_route(call, "chat")
            return EventStream(client, kind, call, _replay(items), hit=True, coalesced=coalesced)
        response = kind.plain_of(entry)
    except Exception as exc:
        logger.warning("llmstash cache: ignoring entry %s (%s)", call.key, exc)
        return None
    if response is None:
        return None
    client._name_route(call, "chat")
    return succeed(call, response, hit=True, coalesced=coalesced)


def _encode_entry(kind: _Kind, entry: Entry) -> bytes | None:
    """Bytes for an entry another process stored, for this process's waiters."""
    ttl = entry.expires_at - entry.stored_at if entry.expires_at else None
    if isinstance(entry, (ResponsesEntry, TextCompletionEntry)):
        return kind.encode_plain(entry.response, entry.stored_at, ttl, "")
    if isinstance(entry, ResponsesStreamEntry):
        return kind.encode_stream(entry.events, entry.stored_at, ttl, "")
    if isinstance(entry, TextCompletionStreamEntry):
        return kind.encode_stream(entry.chunks, entry.stored_at, ttl, "")
    return None


def _provider(client: Client, kind: _Kind, call: Call, payload: Any, target: Any) -> Any:
    provider, route = client._route(call, "chat", payload, target)
    if not _offers(provider, route.provider, kind.support_flag):
        raise UnsupportedParamsError(
            f"{route.provider} does not offer {kind.name}",
            model=route.model,
            llm_provider=route.provider,
        )
    return provider, route


async def _plain_miss(client: Client, kind: _Kind, call: Call, payload: Any) -> Any:
    req, key, cache = call.req, call.key, call.req.cache
    leased = False
    data: bytes | None = None
    answered_by = req.model
    try:
        if req.mock_response is not None:
            response = kind.mock(req, payload)
        else:
            if key is not None and cache is not None and cache.lease is not None and not call.alone:
                leased, entry = await take_lease(cache, key)
                if entry is not None:
                    served = _serve(client, kind, call, entry)
                    if served is not None:
                        client._flights.land(call, _encode_entry(kind, entry))
                        return served
            response = None
            for attempt, target in enumerate(_targets(req)):
                provider, route = _provider(client, kind, call, payload, target)
                try:
                    async with client._slot(route.model, req.max_parallel_requests):
                        response = await getattr(provider, kind.plain_method)(
                            client.http,
                            route,
                            payload,
                            req.params,
                            timeout=req.timeout,
                            num_retries=req.num_retries,
                        )
                    answered_by = _target_model(target)
                    break
                except Exception as exc:
                    _fall_back_or_raise(req, attempt, route, exc)
        if key is not None:
            data = kind.encode_plain(response, time.time(), req.ttl, req.model)
    except BaseException as exc:
        client._flights.land(call, exc)
        if leased:
            await cache.arelease_lease(key)  # type: ignore[union-attr, arg-type]
        fail(call, exc)
        raise
    client._flights.land(call, data)
    if data is not None and cache is not None and key is not None:
        if answered_by == req.model and not req.controls.no_store:
            await cache.astore(
                {key: data},
                req.ttl,
                model=req.model,
                namespace=req.controls.namespace or cache.namespace,
            )
        if leased:
            await cache.arelease_lease(key)
    return succeed(call, response, hit=False, model=answered_by)


async def _stream_miss(client: Client, kind: _Kind, call: Call, payload: Any) -> EventStream:
    req, key, cache = call.req, call.key, call.req.cache
    leased = False
    try:
        source: AsyncIterator[Any]
        if req.mock_response is not None:
            mock = req.mock_response
            if isinstance(mock, str) and mock.startswith(STREAM_ERROR):
                # As for chat: the first half of a mocked answer's items, then a 529.
                items = kind.mock_stream(kind.mock(req, payload, MIDWAY_TEXT))
                source = _fail_midway(items[: max(1, len(items) // 2)], _stream_error(req.model))
            else:
                source = _replay(kind.mock_stream(kind.mock(req, payload)))
        else:
            if key is not None and cache is not None and cache.lease is not None:
                entry = None
                if not call.alone:
                    leased, entry = await take_lease(cache, key)
                if entry is not None:
                    served = _serve(client, kind, call, entry)
                    if served is not None:
                        client._flights.land(call, _encode_entry(kind, entry))
                        return served  # type: ignore[no-any-return]
            source = _ask_stream(client, kind, call, payload)
    except BaseException as exc:
        client._flights.land(call, exc)
        if leased:
            await cache.arelease_lease(key)  # type: ignore[union-attr, arg-type]
        fail(call, exc)
        raise
    stream = EventStream(client, kind, call, source, hit=False, leased=leased)
    await stream._prime()
    return stream


async def _ask_stream(client: Client, kind: _Kind, call: Call, payload: Any) -> AsyncIterator[Any]:
    """The provider's events, trying ``fallbacks`` before the first one."""
    req, cache = call.req, call.req.cache
    storing = cache is not None and not req.controls.no_store
    for attempt, target in enumerate(_targets(req)):
        provider, route = _provider(client, kind, call, payload, target)
        async with client._slot(route.model, req.max_parallel_requests):
            source = getattr(provider, kind.stream_method)(
                client.http,
                route,
                payload,
                kind.stream_params(req, storing),
                timeout=req.timeout,
                num_retries=req.num_retries,
            )
            try:
                try:
                    first = await source.__anext__()
                except StopAsyncIteration:
                    return
                except Exception as exc:
                    _fall_back_or_raise(req, attempt, route, exc)
                    continue
                call.answered_by = _target_model(target)
                yield first
                async for item in source:
                    yield item
                return
            finally:
                await source.aclose()


async def _replay(items: list[Any]) -> AsyncIterator[Any]:
    for item in items:
        yield item


class EventStream(_Stream[Any]):
    """An async iterator of a streamed Responses API answer's typed events
    (:class:`~llmstash.types.ResponsesAPIStreamEvent`) or of text completion chunks
    (:class:`~llmstash.types.TextCompletionResponse`), fresh or replayed from the cache.

    Read to its end, a miss is stored and success callbacks fire with the whole answer
    (``stream.response``); closed early (``await stream.aclose()``), nothing is stored and the
    HTTP response is closed."""

    def __init__(
        self,
        client: Client,
        kind: _Kind,
        call: Call,
        source: AsyncIterator[Any],
        *,
        hit: bool,
        coalesced: bool = False,
        leased: bool = False,
    ) -> None:
        super().__init__(client, call, source, hit=hit, coalesced=coalesced, leased=leased)
        self._kind = kind
        self.response: Any = None
        """The whole answer, once the stream has been read to its end."""

    async def _next_for_caller(self) -> Any:
        while True:
            item = await self._source.__anext__()
            self._chunks.append(item)
            if self._kind.visible(item, self._call.req):
                return item

    async def _finish(self) -> None:
        if self._done:
            return
        self._done = True
        client, kind, call, items = self._client, self._kind, self._call, self._chunks
        cache, key, req = call.req.cache, call.key, call.req
        answered_by = call.answered_by or req.model
        if self._hit or not kind.finished(items) or key is None or cache is None:
            client._flights.land(call, None)
        else:
            data = kind.encode_stream(items, time.time(), req.ttl, req.model)
            client._flights.land(call, data)
            if not req.controls.no_store and answered_by == req.model:
                await cache.astore(
                    {key: data},
                    req.ttl,
                    model=req.model,
                    namespace=req.controls.namespace or cache.namespace,
                )
        if self._leased and cache is not None and key is not None:
            await cache.arelease_lease(key)
        if not items or not kind.finished(items):
            return
        try:
            response = kind.assemble(items)
        except Exception as exc:  # items that replay but do not add up (a hostile entry)
            logger.warning("llmstash: a stream's events do not add up (%s)", exc)
            return
        self.response = succeed(
            call, response, hit=self._hit, coalesced=self._coalesced, model=answered_by
        )


class SyncEventStream:
    """The sync iterator ``responses(..., stream=True)`` and ``text_completion(...,
    stream=True)`` return: an :class:`EventStream` driven on llmstash's sync loop."""

    def __init__(self, stream: EventStream) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        try:
            return _sync.run(self._stream.__anext__)
        except StopAsyncIteration:
            raise StopIteration from None

    @property
    def response(self) -> Any:
        """The whole answer, once the stream has been read to its end."""
        return self._stream.response

    @property
    def cache_hit(self) -> bool:
        """Whether this stream replays a cached entry."""
        return self._stream.cache_hit

    def close(self) -> None:
        """Stop early: close the HTTP response; nothing is stored."""
        _sync.run(self._stream.aclose)

    def __enter__(self) -> SyncEventStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def sync_call(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` on the sync loop; a stream comes back as a :class:`SyncEventStream`."""
    result = _sync.run(fn)
    return SyncEventStream(result) if isinstance(result, EventStream) else result
