"""The fake provider as fixtures: one server for the whole run, reset before each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from llmstash.testing import FakeProvider


@pytest.fixture(scope="session")
def fake_provider() -> Iterator[FakeProvider]:
    """The fake provider server, started once per test run and stopped at its end."""
    with FakeProvider() as server:
        yield server


@pytest.fixture
def provider(fake_provider: FakeProvider) -> FakeProvider:
    """The session's fake provider with no count, records, injected failures, hangs, fixed
    reply or latency left over from earlier tests."""
    fake_provider.reset()
    fake_provider.latency = 0.0
    fake_provider.embedding_dim = 8
    return fake_provider
