"""Test helpers for code that calls LLM providers.

:class:`FakeProvider` is a real HTTP server on 127.0.0.1 that speaks the OpenAI, Azure OpenAI
and Anthropic wire formats, answers deterministically, counts and records the requests it
receives, and fails or hangs on demand::

    from llmstash.testing import FakeProvider

    with FakeProvider() as server:
        ...  # point the client at server.openai_base, server.azure_base or server.anthropic_base
        assert server.request_count == 1

``python -m llmstash.testing --port 0 --latency-ms 0`` runs one in the foreground.
"""

from llmstash.testing._server import FakeProvider, RecordedRequest

__all__ = ["FakeProvider", "RecordedRequest"]
