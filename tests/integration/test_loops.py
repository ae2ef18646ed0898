"""A default client dies with its event loop however the loop ends: ``loop.close()`` without
``asyncio.run`` (and without ``shutdown_asyncgens``) closes the loop's default client and its
sockets too. File descriptors are counted from ``/proc``; calls go to the fake provider over
real HTTP."""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

import llmstash
from llmstash import _api
from llmstash.caching import Cache
from llmstash.integrations.custom_logger import CustomLogger
from llmstash.testing import FakeProvider

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts /proc fds")

T = TypeVar("T")
LOOPS = 100


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def in_thread(fn: Callable[[], T]) -> T:
    """Run ``fn`` in a thread of its own: the test runner's event loop is not involved."""
    result: list[T] = []
    errors: list[BaseException] = []

    def main() -> None:
        try:
            result.append(fn())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=main)
    thread.start()
    thread.join(120)
    if errors:
        raise errors[0]
    return result[0]


def loop_per_call(kwargs: dict[str, Any], count: int) -> tuple[int, int, int]:
    """``count`` times: a new loop, one call run to completion, ``loop.close()``. The fds open
    before and after, and the default clients alive at the end."""

    def once() -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(llmstash.acompletion(**kwargs))
        finally:
            loop.close()

    once()  # warm up: imports, the server's first connection
    gc.collect()
    before = open_fds()
    for _ in range(count):
        once()
    gc.collect()
    return before, open_fds(), len(_api._clients)


def call_kwargs(provider: FakeProvider) -> dict[str, Any]:
    return {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "loop.close()"}],
        "api_base": provider.openai_base,
        "api_key": "sk-test",
    }


def test_loop_close_releases_the_default_client(provider: FakeProvider, sync_llm: None) -> None:
    before, after, alive = in_thread(lambda: loop_per_call(call_kwargs(provider), LOOPS))
    # The fake server lives in this process: a leaked client socket is two fds here.
    assert after - before <= 4, f"{after - before} file descriptors leaked over {LOOPS} loops"
    assert alive <= 1
    assert not [loop for loop in _api._clients if loop.is_closed()]
    assert provider.request_count == LOOPS + 1


def test_loop_close_delivers_pending_callback_events(
    provider: FakeProvider, sync_llm: None
) -> None:
    """The client's pending events are flushed before its loop closes, as ``asyncio.run``
    does, instead of being destroyed with the loop."""
    seen: list[str] = []

    class Recorder(CustomLogger):
        async def async_log_success_event(self, kwargs: Any, *args: Any) -> None:
            await asyncio.sleep(0.01)
            seen.append(kwargs["model"])

    llmstash.callbacks = [Recorder()]
    in_thread(lambda: loop_per_call(call_kwargs(provider), 10))
    assert seen == ["gpt-4o-mini"] * 11


def test_loop_close_with_a_redis_cache(
    provider: FakeProvider, sync_llm: None, redis_url: str
) -> None:
    """Per loop, the default client and the cache's connections of that loop are closed."""
    cache = Cache(type="redis", url=redis_url, namespace=f"test-loops-{os.getpid()}")
    llmstash.cache = cache
    try:
        before, after, alive = in_thread(lambda: loop_per_call(call_kwargs(provider), 50))
    finally:
        llmstash.cache = None

        async def cleanup() -> None:
            await cache.aclear()
            await cache.aclose()

        in_thread(lambda: asyncio.run(cleanup()))
    assert after - before <= 6, f"{after - before} file descriptors leaked over 50 loops"
    assert alive <= 1
    assert provider.request_count == 1  # one miss; every other loop is a hit


def test_a_client_of_a_closed_loop_is_not_reused(provider: FakeProvider, sync_llm: None) -> None:
    def run() -> tuple[Any, Any]:
        clients = []
        for _ in range(2):
            loop = asyncio.new_event_loop()
            loop.run_until_complete(llmstash.acompletion(**call_kwargs(provider)))
            clients.append(_api._clients.get(loop))
            loop.close()
            assert _api._clients.get(loop) is None
        return clients[0], clients[1]

    first, second = in_thread(run)
    assert first is not None and second is not None and first is not second


class SealedLoop(asyncio.SelectorEventLoop):
    """A loop whose ``close`` cannot be replaced on the instance (as uvloop's)."""

    @property
    def close(self) -> Callable[[], None]:
        return lambda: asyncio.SelectorEventLoop.close(self)


@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_loops_whose_close_cannot_be_wrapped_are_swept(
    provider: FakeProvider, sync_llm: None
) -> None:
    """Fallback: the next call on a new loop forgets the clients of loops closed since, so
    neither they nor their loops stay alive."""

    def run() -> tuple[int, int]:
        closed_after_each = []
        for _ in range(5):
            loop = SealedLoop()
            loop.run_until_complete(llmstash.acompletion(**call_kwargs(provider)))
            loop.close()
            closed_after_each.append(sum(1 for lp in _api._clients if lp.is_closed()))
        asyncio.run(llmstash.acompletion(**call_kwargs(provider)))  # sweeps the last one
        # Their sockets are closed by the garbage collector (with a ResourceWarning, the loop
        # having been closed under them): collect here, not in some later test.
        gc.collect()
        return max(closed_after_each), sum(1 for lp in _api._clients if lp.is_closed())

    most_closed, closed_at_the_end = in_thread(run)
    assert most_closed <= 1
    assert closed_at_the_end == 0
