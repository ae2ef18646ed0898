"""What keeps a slow or dead backend off the caller's path: a latency budget on every
backend operation and a consecutive-failure circuit breaker, with log lines once per burst."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

__all__ = ["Breaker", "Guard", "describe"]

logger = logging.getLogger("llmstash")


class Breaker:
    """Consecutive-failure circuit breaker: opens after ``threshold`` failures in a row, then
    lets one probe through every ``reset`` seconds until a call succeeds."""

    __slots__ = ("clock", "failures", "opened_at", "reset", "threshold")

    def __init__(self, threshold: int, reset: float, clock: Callable[[], float]) -> None:
        self.threshold = threshold
        self.reset = reset
        self.clock = clock
        self.failures = 0
        self.opened_at: float | None = None

    @property
    def is_open(self) -> bool:
        return self.opened_at is not None

    def allow(self) -> bool:
        if self.opened_at is None:
            return True
        now = self.clock()
        if now - self.opened_at >= self.reset:
            self.opened_at = now  # one probe per reset window
            return True
        return False

    def success(self) -> None:
        self.failures = 0
        self.opened_at = None

    def failure(self) -> bool:
        """Record a failure; True when this one opened the breaker."""
        self.failures += 1
        if self.failures >= self.threshold:
            was_closed = self.opened_at is None
            self.opened_at = self.clock()
            return was_closed
        return False


class Guard:
    """The breaker plus the budgets, and the log lines a failing backend earns: one when it
    starts failing, one when the breaker opens, one when it answers again."""

    __slots__ = ("breaker", "failing", "lookup_timeout", "write_timeout")

    def __init__(
        self, lookup_timeout: float, write_timeout: float, threshold: int, reset: float
    ) -> None:
        self.lookup_timeout = lookup_timeout
        self.write_timeout = write_timeout
        self.breaker = Breaker(threshold, reset, time.monotonic)
        self.failing = False

    def allow(self) -> bool:
        return self.breaker.allow()

    def ok(self) -> None:
        if self.failing:
            logger.warning("llmstash cache: backend answering again; caching resumed")
            self.failing = False
        self.breaker.success()

    def fail(self, what: str, exc: BaseException | None) -> None:
        opened = self.breaker.failure()
        if not self.failing:
            self.failing = True
            logger.warning(
                "llmstash cache: %s failed (%s); treating as a miss until it recovers",
                what,
                describe(exc),
            )
        if opened:
            logger.warning(
                "llmstash cache: %d consecutive failures; pausing cache use for %.1fs",
                self.breaker.failures,
                self.breaker.reset,
            )


def describe(exc: BaseException | None) -> str:
    """A short description of a backend error for a log line."""
    if exc is None:
        return "unknown error"
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:200]
