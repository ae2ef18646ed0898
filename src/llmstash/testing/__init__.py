"""Test helpers for code that calls LLM providers.

:class:`FakeProvider` is a real HTTP server on 127.0.0.1 that speaks the OpenAI, Azure OpenAI
and Anthropic wire formats, answers deterministically, counts and records the requests it
receives, and fails or hangs on demand::

    from llmstash.testing import FakeProvider

    with FakeProvider() as server:
        ...  # point the client at server.openai_base, server.azure_base or server.anthropic_base
        assert server.request_count == 1

What a test can set and what a request can trigger (logprobs, Anthropic thinking, vendor extra
fields, model lists) is listed in :class:`FakeProvider`'s docstring. The helpers below give the
values the fake produces, so tests can state what they expect:

- :func:`thinking_text` ``(question)``: the thinking text of an Anthropic answer with thinking;
- :func:`thinking_signature` ``(text)``: the ``signature`` of that thinking block;
- :data:`REDACTED_THINKING_TRIGGER`: put it in a user message to get a ``redacted_thinking``
  block too;
- :func:`token_logprobs` ``(text, top)``: the ``logprobs.content`` entries of an OpenAI answer;
- :data:`VENDOR_EXTRAS`: a ready set for :meth:`FakeProvider.set_extra_fields`;
- :data:`DEFAULT_MODELS`: what ``GET /v1/models`` lists by default.

``python -m llmstash.testing --port 0 --latency-ms 0`` runs one in the foreground.
"""

from llmstash.testing._server import DEFAULT_MODELS, VENDOR_EXTRAS, FakeProvider, RecordedRequest
from llmstash.testing._wire import (
    REDACTED_THINKING_TRIGGER,
    thinking_signature,
    thinking_text,
    token_logprobs,
)

__all__ = [
    "DEFAULT_MODELS",
    "REDACTED_THINKING_TRIGGER",
    "VENDOR_EXTRAS",
    "FakeProvider",
    "RecordedRequest",
    "thinking_signature",
    "thinking_text",
    "token_logprobs",
]
