"""Named defaults and the ``NOT_GIVEN`` sentinel. Environment variables are read in
``providers/_resolve.py`` (providers) and ``caching/__init__.py`` (Redis), nowhere else."""

from __future__ import annotations

import enum
from typing import Final, Literal

__all__ = [
    "DEFAULT_ANTHROPIC_MAX_TOKENS",
    "DEFAULT_ANTHROPIC_VERSION",
    "DEFAULT_AZURE_API_VERSION",
    "DEFAULT_BREAKER_RESET",
    "DEFAULT_BREAKER_THRESHOLD",
    "DEFAULT_CACHE_LOOKUP_TIMEOUT",
    "DEFAULT_CACHE_WRITE_TIMEOUT",
    "DEFAULT_CALLBACK_TIMEOUT",
    "DEFAULT_EXIT_FLUSH_TIMEOUT",
    "DEFAULT_MAX_PENDING_EVENTS",
    "DEFAULT_MEMORY_MAX_BYTES",
    "DEFAULT_MEMORY_MAX_SIZE",
    "DEFAULT_NUM_RETRIES",
    "DEFAULT_RETRY_BASE_DELAY",
    "DEFAULT_RETRY_MAX_DELAY",
    "DEFAULT_TIMEOUT",
    "NOT_GIVEN",
    "NotGiven",
]


class NotGiven(enum.Enum):
    """Type of :data:`NOT_GIVEN`: "the caller did not pass this", distinct from ``None``."""

    NOT_GIVEN = "NOT_GIVEN"

    def __repr__(self) -> str:
        return "NOT_GIVEN"

    def __bool__(self) -> Literal[False]:
        return False


NOT_GIVEN: Final = NotGiven.NOT_GIVEN

DEFAULT_TIMEOUT: Final = 600.0
"""Seconds a provider request may take (connect, read, write), as openai-python."""
DEFAULT_NUM_RETRIES: Final = 2
"""Retries after the first attempt, on 408/409/429/5xx and connection errors."""
DEFAULT_RETRY_BASE_DELAY: Final = 0.5
DEFAULT_RETRY_MAX_DELAY: Final = 8.0

DEFAULT_AZURE_API_VERSION: Final = "2024-10-21"
DEFAULT_ANTHROPIC_VERSION: Final = "2023-06-01"
DEFAULT_ANTHROPIC_MAX_TOKENS: Final = 4096
"""Anthropic requires ``max_tokens``; this is sent when the caller gives none."""

DEFAULT_CACHE_LOOKUP_TIMEOUT: Final = 0.05
"""Seconds a cache lookup may take before the call goes on to the provider as a miss."""
DEFAULT_CACHE_WRITE_TIMEOUT: Final = 0.1
"""Seconds a missed call waits for its cache write to be acknowledged (write-through); after
that the call returns and the write finishes in the background, counted as given up on."""
DEFAULT_BREAKER_THRESHOLD: Final = 5
"""Consecutive backend failures after which the circuit breaker opens."""
DEFAULT_BREAKER_RESET: Final = 2.0
"""Seconds an open breaker waits before letting one probe through."""

DEFAULT_MEMORY_MAX_SIZE: Final = 100_000
"""Entries the in-memory cache keeps before evicting the least recently used."""
DEFAULT_MEMORY_MAX_BYTES: Final = 512 * 1024 * 1024
"""Bytes of stored values the in-memory cache keeps before evicting (512 MiB)."""

DEFAULT_CALLBACK_TIMEOUT: Final = 30.0
"""Seconds one callback hook may run before it is cancelled (async) or abandoned (sync)."""
DEFAULT_MAX_PENDING_EVENTS: Final = 10_000
"""Callback events that may wait at once; beyond it new events are dropped and counted."""
DEFAULT_EXIT_FLUSH_TIMEOUT: Final = 5.0
"""Seconds the interpreter waits at exit for pending callback events of sync calls."""
