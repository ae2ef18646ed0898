"""Shared fixtures. Provider fixtures live in ``tests/_fixtures_provider.py``, Redis fixtures in
``tests/_fixtures_redis.py``; both are loaded here as plugins."""

from __future__ import annotations

import pytest

pytest_plugins = ["tests._fixtures_provider", "tests._fixtures_redis"]


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    # redis.asyncio runs on asyncio only.
    return "asyncio"
