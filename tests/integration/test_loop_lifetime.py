"""asyncio.run() per call leaves nothing behind: the default Client closes with its loop."""

from __future__ import annotations

import asyncio
import gc
import os
import threading

import llmstash
from llmstash import _api


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_asyncio_run_per_call_does_not_leak(provider, sync_llm):
    kwargs = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "loop lifetime"}],
        "api_base": provider.openai_base,
        "api_key": "sk-test",
    }

    def run_calls() -> tuple[int, int]:
        # A thread of its own: the test runner's event loop is not involved.
        asyncio.run(llmstash.acompletion(**kwargs))
        gc.collect()
        before = _open_fds()
        for _ in range(20):
            asyncio.run(llmstash.acompletion(**kwargs))
        gc.collect()
        return before, _open_fds()

    result: list[tuple[int, int]] = []
    thread = threading.Thread(target=lambda: result.append(run_calls()))
    thread.start()
    thread.join(60)
    before, after = result[0]
    assert after - before <= 2  # sockets come and go with the server's keep-alive, not per loop
    assert not [loop for loop in _api._clients if loop.is_closed()]
    assert provider.request_count == 21
