"""The fake provider: a threaded HTTP/1.1 server on 127.0.0.1 that counts what it receives."""

from __future__ import annotations

import copy
import dataclasses
import functools
import re
import socket
import socketserver
import sys
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl

import msgspec

from llmstash.testing._wire import (
    ExtraFields,
    InvalidRequest,
    anthropic_answer,
    anthropic_error,
    anthropic_message,
    anthropic_model,
    anthropic_models,
    anthropic_stream,
    embeddings,
    openai_answer,
    openai_chat,
    openai_chat_stream,
    openai_error,
    openai_model,
    openai_models,
    reason_phrase,
)
from llmstash.testing._wire_responses import (
    completions_answer,
    completions_body,
    completions_stream,
    responses_answer,
    responses_body,
    responses_stream,
)

__all__ = ["DEFAULT_MODELS", "VENDOR_EXTRAS", "FakeProvider", "RecordedRequest"]

_OPENAI_PATHS = {
    "/v1/chat/completions": "chat",
    "/chat/completions": "chat",
    "/v1/embeddings": "embeddings",
    "/embeddings": "embeddings",
    "/v1/responses": "responses",
    "/responses": "responses",
    "/v1/completions": "completions",
    "/completions": "completions",
    # Where OpenAI-compatible providers serve the same API: OpenRouter, Fireworks AI, Gemini.
    "/api/v1/chat/completions": "chat",
    "/api/v1/embeddings": "embeddings",
    "/inference/v1/chat/completions": "chat",
    "/inference/v1/embeddings": "embeddings",
    "/v1beta/openai/chat/completions": "chat",
    "/v1beta/openai/embeddings": "embeddings",
}
_AZURE_PATH = re.compile(r"/openai/deployments/([^/]+)/(chat/completions|embeddings|completions)")
_AZURE_V1_PATHS = {
    "/openai/v1/chat/completions": "chat",
    "/openai/v1/embeddings": "embeddings",
    "/openai/v1/responses": "responses",
    "/openai/v1/completions": "completions",
}
_AZURE_RESPONSES_PATH = "/openai/responses"
"""Azure's Responses API under a dated api-version: the deployment is the body's model."""
_ANTHROPIC_PATH = "/v1/messages"
_MODELS_PATH = re.compile(r"(?:/v1)?/models(?:/([^/]+))?")
_ADMIN_PREFIX = "/_fake/"
_OPENAI_NO_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header "
    "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
)

DEFAULT_MODELS: tuple[str, ...] = (
    "gpt-4o-mini",
    "gpt-4o",
    "text-embedding-3-small",
    "claude-sonnet-4-5",
    "claude-haiku-4-5",
)
"""What ``GET /v1/models`` lists until :meth:`FakeProvider.set_models` says otherwise."""

VENDOR_EXTRAS: dict[str, dict[str, Any]] = {
    "response": {
        "citations": ["https://example.com/caching", "https://example.org/redis"],
        "service_tier": "default",
        "prompt_filter_results": [
            {
                "prompt_index": 0,
                "content_filter_results": {
                    "hate": {"filtered": False, "severity": "safe"},
                    "self_harm": {"filtered": False, "severity": "safe"},
                    "sexual": {"filtered": False, "severity": "safe"},
                    "violence": {"filtered": False, "severity": "safe"},
                },
            }
        ],
        "x_vendor": {"a": 1},
    },
    "message": {
        "annotations": [
            {
                "type": "url_citation",
                "url_citation": {
                    "url": "https://example.com/caching",
                    "title": "Caching",
                    "start_index": 0,
                    "end_index": 4,
                },
            }
        ],
        "reasoning_content": "The user wants an echo. I will echo.",
        "reasoning": "The user wants an echo. I will echo.",
        "x_vendor_message": {"b": 2},
    },
    "usage": {
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 8,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
        "x_vendor_usage": {"c": 3},
    },
}
"""A realistic set of vendor fields for :meth:`FakeProvider.set_extra_fields`
(``server.set_extra_fields(**VENDOR_EXTRAS)``): Perplexity's ``citations``, OpenAI's
``service_tier``, ``annotations`` and token details, Azure's ``prompt_filter_results``, vLLM's
``reasoning_content``, OpenRouter's ``reasoning``, and an unknown key at each level."""


@dataclasses.dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the fake provider received it.

    ``headers`` has lower-cased names; ``json`` is the decoded body, or ``None`` when the body
    is empty or not JSON.
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    json: Any


@dataclasses.dataclass(frozen=True, slots=True)
class _Settings:
    """What the test has set, as one request sees it."""

    reply: str | None
    extras: ExtraFields | None
    models: tuple[str, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class _Failure:
    status: int
    retry_after: float | None
    body: bytes | str | Mapping[str, Any] | None


class FakeProvider:
    """A real HTTP server on 127.0.0.1 speaking the OpenAI, Azure OpenAI and Anthropic formats.

    It answers chat completions (plain, streamed, with tool calls), embeddings, the Responses
    API (``/v1/responses``, Azure's ``/openai/responses`` and ``/openai/v1/responses``; plain
    and as the typed SSE event stream) and legacy text completions (``/v1/completions``)
    deterministically from the request, checks what the real services check (API keys,
    ``api-version``, ``anthropic-version``, Anthropic's ``max_tokens`` and roles) and answers
    mistakes with the provider's own error bodies. It counts and records every request, so a
    test can prove that a cache hit left the server at one request, and it can be told to fail
    or hang the next requests.

    Each connection is served by its own daemon thread with keep-alive, so 100+ concurrent
    clients are fine. ``latency`` (seconds, settable at any time) is added before every answer,
    before the first byte of a stream. ``port=0`` picks a free port. ``record=False`` keeps only
    the count, for long runs such as benchmarks.

    What a test can set (until :meth:`reset`): :meth:`set_reply`, :meth:`fail_next`,
    :meth:`hang_next`, :meth:`set_extra_fields` (vendor fields in OpenAI-format answers) and
    :meth:`set_models` (what ``GET /v1/models`` lists). ``extra_fields`` (a mapping with
    ``response``/``message``/``usage`` keys, as :data:`VENDOR_EXTRAS`) and ``models``
    (default :data:`DEFAULT_MODELS`) set them from the start, and :meth:`reset` returns to them.

    What a request can trigger:

    - OpenAI/Azure ``"logprobs": true`` (with ``top_logprobs``: 0-20 alternatives per token)
      gives ``choices[0].logprobs = {"content": [...], "refusal": null}``, one entry per token
      (``token``, ``logprob``, ``bytes``, ``top_logprobs``) with deterministic values; in a
      stream the role chunk carries ``{"content": [], "refusal": null}`` and each content chunk
      the entry of its one token. A tool-call answer has ``logprobs: null``.
    - A stream has ``"usage": null`` on each chunk and a final chunk with ``choices: []`` and
      the usage only when ``stream_options.include_usage`` is true.
    - Anthropic ``"thinking": {"type": "enabled", "budget_tokens": N}`` (or ``"adaptive"``)
      starts the answer to a user turn with a ``thinking`` block: text
      ``thinking_text(question)``, ``signature`` ``thinking_signature(text)`` (both from
      ``llmstash.testing``), its words counted in ``output_tokens``; a tool result is answered
      without new thinking, as the real API does. A user message containing
      ``REDACTED_THINKING_TRIGGER`` adds a ``redacted_thinking`` block after it. Streamed:
      ``content_block_start`` (``{"type": "thinking", "thinking": ""}``), ``thinking_delta``
      pieces, one ``signature_delta``, ``content_block_stop``; a redacted block comes whole in
      its ``content_block_start``. As the real API does, the fake refuses (400) a budget under
      1024 or not under ``max_tokens``, thinking with a forced ``tool_choice``, a thinking block
      sent back with a signature that does not match its text, and, with thinking on, a tool
      result whose assistant turn does not start with a thinking block.
    - ``GET /v1/models`` (or ``/models``) lists the models in OpenAI's format, or in Anthropic's
      (``type``, ``id``, ``display_name``, ``created_at``; ``has_more``, ``first_id``,
      ``last_id``; ``limit``/``after_id``/``before_id`` pagination) when the request has an
      ``anthropic-version`` header; ``GET /v1/models/{id}`` retrieves one (404 if unknown).
    - Anthropic accepts ``x-api-key`` or ``Authorization: Bearer`` (the official client's
      ``auth_token=``), and answers 401 without either.
    - The OpenAI format is also served where OpenAI-compatible providers serve it:
      ``/chat/completions`` and ``/embeddings`` under ``/v1`` (OpenAI, Together, Mistral, xAI,
      Ollama, vLLM, LM Studio), the root (DeepSeek, Perplexity), ``/openai/v1`` (Groq; Azure's
      v1 routes), ``/api/v1`` (OpenRouter), ``/inference/v1`` (Fireworks AI) and
      ``/v1beta/openai`` (Gemini). They ask for ``Authorization: Bearer`` unless
      ``require_auth`` is false, as a local server (Ollama, vLLM, LM Studio) does not.

    Limits: one choice per answer (``n`` is ignored), ``max_tokens`` never truncates, and tokens
    are whitespace-separated words.
    """

    def __init__(
        self,
        latency: float = 0.0,
        embedding_dim: int = 8,
        *,
        port: int = 0,
        record: bool = True,
        extra_fields: Mapping[str, Mapping[str, Any]] | None = None,
        models: Iterable[str] | None = None,
        require_auth: bool = True,
    ) -> None:
        self.latency = latency
        self.require_auth = require_auth
        """Whether OpenAI-format requests need ``Authorization: Bearer`` (settable at any
        time; :meth:`reset` restores the constructor's value). Azure and Anthropic routes
        always check their credentials."""
        self._base_require_auth = require_auth
        self.embedding_dim = embedding_dim
        self._port = port
        self._record = record
        self._lock = threading.Lock()
        self._count = 0
        self._requests: list[RecordedRequest] = []
        self._failures: deque[_Failure] = deque()
        self._hangs: deque[float] = deque()
        self._reply: str | None = None
        self._base_extras = _extra_fields(**(extra_fields or {}))
        self._base_models = DEFAULT_MODELS if models is None else tuple(models)
        self._extras = self._base_extras
        self._models = self._base_models
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> FakeProvider:
        """Bind 127.0.0.1 and serve from a daemon thread; return ``self``."""
        if self._httpd is not None:
            raise RuntimeError("FakeProvider is already running")
        self._stopping.clear()
        handler = functools.partial(_Handler, fake=self)
        self._httpd = _HTTPServer(("127.0.0.1", self._port), handler)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="llmstash-fake-provider",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, end open connections and hangs, and close the socket. Idempotent."""
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        self._httpd = self._thread = None
        self._stopping.set()
        httpd.shutdown()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        httpd.server_close()
        thread.join()

    def __enter__(self) -> FakeProvider:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``; the server must be running."""
        if self._httpd is None:
            raise RuntimeError("FakeProvider is not running; call start() first")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def openai_base(self) -> str:
        """The OpenAI base URL: ``url + "/v1"``, as OpenAI's own base includes ``/v1``."""
        return self.url + "/v1"

    @property
    def azure_base(self) -> str:
        """The Azure OpenAI base URL: the resource root, ``url``."""
        return self.url

    @property
    def anthropic_base(self) -> str:
        """The Anthropic base URL: the root, ``url`` (requests go to ``/v1/messages``)."""
        return self.url

    @property
    def request_count(self) -> int:
        """Requests received since creation or the last :meth:`reset`, whatever their answer."""
        with self._lock:
            return self._count

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the requests received, oldest first (empty when ``record=False``)."""
        with self._lock:
            return list(self._requests)

    def reset(self) -> None:
        """Clear the count, the records, pending failures and hangs and the fixed reply; put the
        extra fields, the model list and ``require_auth`` back as the constructor set them."""
        with self._lock:
            self._count = 0
            self._requests.clear()
            self._failures.clear()
            self._hangs.clear()
            self._reply = None
            self._extras = self._base_extras
            self._models = self._base_models
            self.require_auth = self._base_require_auth

    def fail_next(
        self,
        status: int = 429,
        count: int = 1,
        retry_after: float | None = None,
        body: bytes | str | Mapping[str, Any] | None = None,
    ) -> None:
        """Answer the next ``count`` requests with ``status``, whatever they ask.

        The body is in the format of the provider addressed (Anthropic: ``rate_limit_error``
        for 429, ``overloaded_error`` for 529, ``api_error`` for 500, ...), unless ``body`` is
        given: bytes or text sent as they are, a mapping encoded as JSON. ``retry_after``
        (seconds) sets the ``Retry-After`` header. Calls queue up in order.
        """
        with self._lock:
            self._failures.extend([_Failure(status, retry_after, body)] * count)

    def hang_next(self, seconds: float, count: int = 1) -> None:
        """Make the next ``count`` requests wait ``seconds`` before their answer (or until
        :meth:`stop`), for timeout tests."""
        with self._lock:
            self._hangs.extend([seconds] * count)

    def set_reply(self, text: str | None) -> None:
        """Answer every chat request with ``text``; ``None`` restores the echo.

        A request that calls a tool still gets its tool call.
        """
        with self._lock:
            self._reply = text

    def set_extra_fields(
        self,
        response: Mapping[str, Any] | None = None,
        message: Mapping[str, Any] | None = None,
        usage: Mapping[str, Any] | None = None,
    ) -> None:
        """Add vendor fields that llmstash's types do not know to every OpenAI/Azure chat answer,
        until called again (with nothing, to stop) or :meth:`reset`.

        ``response`` keys go at the top level (``citations``, ``service_tier``,
        ``prompt_filter_results``, ...), ``message`` keys in ``choices[0].message``
        (``annotations``, ``reasoning_content``, ``reasoning``, ...), ``usage`` keys in
        ``usage`` (``prompt_tokens_details``, ...); each replaces a key of the fake's own of the
        same name. In a stream, the ``response`` keys ride on every chunk (the usage chunk
        included); a text ``reasoning_content`` or ``reasoning`` is streamed in word pieces in
        deltas after the role chunk and before the content (one delta carrying both keys when
        their texts are equal, as vLLM sends them); the other ``message`` keys come whole in one
        delta after the content, before the finish chunk; the ``usage`` keys are in the usage
        chunk (sent only for ``stream_options.include_usage``). ``VENDOR_EXTRAS`` is a ready
        set: ``server.set_extra_fields(**VENDOR_EXTRAS)``. Embeddings and Anthropic answers are
        unchanged.
        """
        extras = _extra_fields(response, message, usage)
        with self._lock:
            self._extras = extras

    def set_models(self, ids: Iterable[str] | None) -> None:
        """Make ``GET /v1/models`` list ``ids`` (in order, both formats) until called again or
        :meth:`reset`; ``None`` restores the constructor's list."""
        models = self._base_models if ids is None else tuple(ids)
        with self._lock:
            self._models = models

    def _admit(self, request: RecordedRequest) -> tuple[float, _Failure | None, _Settings]:
        """Count and record a request; take what it must suffer (a hang, a failure) and the
        settings it is answered with."""
        with self._lock:
            self._count += 1
            if self._record:
                self._requests.append(request)
            hang = self._hangs.popleft() if self._hangs else 0.0
            failure = self._failures.popleft() if self._failures else None
            return hang, failure, _Settings(self._reply, self._extras, self._models)

    def _track(self, connection: socket.socket, is_open: bool) -> None:
        with self._lock:
            if is_open:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 1024

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the host's FQDN, which can stall on a poor resolver.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return  # the client went away, or stop() ended the connection
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def __init__(
        self,
        request: Any,
        client_address: Any,
        server: socketserver.BaseServer,
        *,
        fake: FakeProvider,
    ) -> None:
        self.fake = fake
        super().__init__(request, client_address, server)

    def log_message(self, format: str, *args: Any) -> None:
        """Stay silent: a line on stderr per request would cost more than the answer."""

    def setup(self) -> None:
        super().setup()
        self.fake._track(self.connection, True)

    def finish(self) -> None:
        self.fake._track(self.connection, False)
        super().finish()

    def do_POST(self) -> None:
        path, _, query = self.path.partition("?")
        body = self._read_body()
        if path.startswith(_ADMIN_PREFIX):
            self._admin(path)
            return
        request = RecordedRequest(
            method=self.command,
            path=path,
            query=dict(parse_qsl(query, keep_blank_values=True)),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
            json=_decode(body),
        )
        hang, failure, settings = self.fake._admit(request)
        if (hang and self.fake._stopping.wait(hang)) or (
            self.fake.latency and self.fake._stopping.wait(self.fake.latency)
        ):
            self.close_connection = True
            return
        anthropic = path.startswith(_ANTHROPIC_PATH) or (
            _MODELS_PATH.fullmatch(path) is not None and "anthropic-version" in request.headers
        )
        try:
            if failure is not None:
                self._fail(failure, anthropic)
            else:
                self._answer(request, settings)
        except InvalidRequest as exc:
            if anthropic:
                self._send(exc.status, anthropic_error(exc.status, exc.message))
            else:
                self._send(exc.status, openai_error(exc.status, exc.message, param=exc.param))

    do_GET = do_PUT = do_PATCH = do_DELETE = do_POST

    def _answer(self, request: RecordedRequest, settings: _Settings) -> None:
        headers = request.headers
        reply = settings.reply
        models = _MODELS_PATH.fullmatch(request.path)
        if models is not None:
            self._models(request, models.group(1), settings.models)
            return
        if request.path == _ANTHROPIC_PATH:
            _require_post(request)
            _require_anthropic_auth(headers)
            if not headers.get("anthropic-version"):
                raise InvalidRequest("anthropic-version: header is required")
            body = _json_object(request)
            answer = anthropic_answer(body, reply=reply)
            if body.get("stream") is True:
                self._stream(anthropic_stream(answer))
            else:
                self._send(200, anthropic_message(answer))
            return
        deployment = None
        endpoint = _OPENAI_PATHS.get(request.path)
        v1 = _AZURE_V1_PATHS.get(request.path)
        if v1 is not None:
            # Azure's v1 API: no api-version (or "preview"), the deployment named by "model".
            endpoint = v1
            _require_post(request)
            version = request.query.get("api-version")
            if version not in (None, "preview"):
                raise InvalidRequest(f"api-version {version!r} is not supported on /openai/v1")
            _require_azure_auth(headers)
            deployment = _json_object(request).get("model")
            if not isinstance(deployment, str) or not deployment:
                raise InvalidRequest("model (the deployment name) is required", param="model")
        elif request.path == _AZURE_RESPONSES_PATH:
            endpoint = "responses"
            _require_post(request)
            if "api-version" not in request.query:
                raise InvalidRequest("Resource not found", status=404)
            _require_azure_auth(headers)
            deployment = _json_object(request).get("model")
            if not isinstance(deployment, str) or not deployment:
                raise InvalidRequest("model (the deployment name) is required", param="model")
        elif endpoint is None:
            match = _AZURE_PATH.fullmatch(request.path)
            if match is None:
                raise InvalidRequest(f"Unknown path {request.path!r}.", status=404)
            deployment, endpoint = match.groups()
            _require_post(request)
            if "api-version" not in request.query:
                raise InvalidRequest("Resource not found", status=404)
            _require_azure_auth(headers)
        else:
            _require_post(request)
            if self.fake.require_auth and not _bearer(headers):
                raise InvalidRequest(_OPENAI_NO_KEY, status=401)
        body = _json_object(request)
        if endpoint == "embeddings":
            self._send(200, embeddings(body, model=deployment, default_dim=self.fake.embedding_dim))
            return
        if endpoint == "responses":
            response = responses_answer(body, model=deployment, reply=reply)
            if body.get("stream") is True:
                self._stream(responses_stream(response))
            else:
                self._send(200, responses_body(response))
            return
        if endpoint == "completions":
            model, said, prompt_tokens = completions_answer(body, model=deployment, reply=reply)
            if body.get("stream") is True:
                self._stream(completions_stream(model, said, prompt_tokens, body))
            else:
                self._send(200, completions_body(model, said, prompt_tokens, body))
            return
        answer = openai_answer(body, model=deployment, reply=reply)
        if body.get("stream") is True:
            options = body.get("stream_options")
            include_usage = isinstance(options, dict) and options.get("include_usage") is True
            self._stream(
                openai_chat_stream(answer, include_usage=include_usage, extras=settings.extras)
            )
        else:
            self._send(200, openai_chat(answer, settings.extras))

    def _models(self, request: RecordedRequest, model: str | None, ids: tuple[str, ...]) -> None:
        """``GET /v1/models`` and ``GET /v1/models/{id}``, in Anthropic's format when the
        request carries ``anthropic-version``."""
        if request.method != "GET":
            raise InvalidRequest(f"Method {request.method} not allowed.", status=405)
        anthropic = "anthropic-version" in request.headers
        if anthropic:
            _require_anthropic_auth(request.headers)
        elif not _bearer(request.headers):
            raise InvalidRequest(_OPENAI_NO_KEY, status=401)
        if model is None:
            body = anthropic_models(ids, request.query) if anthropic else openai_models(ids)
        elif model in ids:
            body = msgspec.json.encode(anthropic_model(model) if anthropic else openai_model(model))
        elif anthropic:
            raise InvalidRequest(f"model: {model}", status=404)
        else:
            raise InvalidRequest(f"The model '{model}' does not exist", status=404, param="model")
        self._send(200, body)

    def _fail(self, failure: _Failure, anthropic: bool) -> None:
        status = failure.status
        if isinstance(failure.body, bytes):
            body = failure.body
        elif isinstance(failure.body, str):
            body = failure.body.encode()
        elif failure.body is not None:
            body = msgspec.json.encode(failure.body)
        else:
            message = f"{reason_phrase(status)} (injected by FakeProvider)"
            body = anthropic_error(status, message) if anthropic else openai_error(status, message)
        headers = []
        if failure.retry_after is not None:
            headers.append(("Retry-After", f"{failure.retry_after:g}"))
        self._send(status, body, headers)

    def _admin(self, path: str) -> None:
        """Out-of-band control for a server in another process; neither counted nor recorded."""
        if path == "/_fake/stats":
            self._send(200, msgspec.json.encode({"request_count": self.fake.request_count}))
        elif path == "/_fake/reset":
            self.fake.reset()
            self._send(200, b"{}")
        else:
            self._send(404, openai_error(404, f"Unknown path {path!r}."))

    def _read_body(self) -> bytes:
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";", 1)[0], 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(chunks)
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes, headers: Iterable[tuple[str, str]] = ()) -> None:
        lines = [
            f"HTTP/1.1 {status} {reason_phrase(status)}",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
        ]
        lines.extend(f"{name}: {value}" for name, value in headers)
        if self.close_connection:
            lines.append("Connection: close")
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)

    def _stream(self, events: Iterator[bytes]) -> None:
        """Send SSE events as chunked transfer encoding, one write per event, so each reaches
        the client as it is produced and the connection stays open for the next request."""
        head = (
            "HTTP/1.1 200 OK\r\n"
            "Content-Type: text/event-stream; charset=utf-8\r\n"
            "Cache-Control: no-cache\r\n"
            "Transfer-Encoding: chunked\r\n"
        )
        if self.close_connection:
            head += "Connection: close\r\n"
        self.wfile.write(head.encode("latin-1") + b"\r\n")
        for event in events:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
        self.wfile.write(b"0\r\n\r\n")


def _decode(body: bytes) -> Any:
    if not body:
        return None
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None


def _json_object(request: RecordedRequest) -> dict[str, Any]:
    if not isinstance(request.json, dict):
        raise InvalidRequest("We could not parse the JSON body of your request.")
    return request.json


def _require_azure_auth(headers: Any) -> None:
    if not (headers.get("api-key") or _bearer(headers)):
        raise InvalidRequest(
            "Access denied due to missing subscription key. Make sure to include the "
            "subscription key in the api-key header.",
            status=401,
        )


def _require_post(request: RecordedRequest) -> None:
    if request.method != "POST":
        raise InvalidRequest(f"Method {request.method} not allowed.", status=405)


def _bearer(headers: Mapping[str, str]) -> bool:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and bool(token.strip())


def _require_anthropic_auth(headers: Mapping[str, str]) -> None:
    """Anthropic takes ``x-api-key``, or ``Authorization: Bearer`` (an OAuth/auth token)."""
    if not (headers.get("x-api-key") or _bearer(headers)):
        raise InvalidRequest("x-api-key header is required", status=401)


def _extra_fields(
    response: Mapping[str, Any] | None = None,
    message: Mapping[str, Any] | None = None,
    usage: Mapping[str, Any] | None = None,
) -> ExtraFields | None:
    """Private copies of the extra fields, or ``None`` when there are none."""
    if not (response or message or usage):
        return None
    return ExtraFields(
        copy.deepcopy(dict(response or {})),
        copy.deepcopy(dict(message or {})),
        copy.deepcopy(dict(usage or {})),
    )
