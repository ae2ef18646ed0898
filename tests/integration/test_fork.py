"""A process that made sync calls, then forked (gunicorn --preload, Celery prefork,
multiprocessing's "fork"), works in the child: the child gets a fresh loop thread and fresh
connections, and the parent keeps working. Real forked children, calling the fake provider."""

from __future__ import annotations

import asyncio
import multiprocessing
import sys
from multiprocessing.connection import Connection
from typing import Any

import pytest

import llmstash
from llmstash.testing import FakeProvider

pytestmark = [
    pytest.mark.skipif(sys.platform == "win32", reason="no fork on Windows"),
    # Python 3.12+ warns about forking a multi-threaded process; forking one is the point.
    pytest.mark.filterwarnings("ignore:.*multi-threaded.*fork.*:DeprecationWarning"),
]

MESSAGES = [{"role": "user", "content": "after the fork"}]
CHILD_TIMEOUT = 20.0


def _call(base: str, **kwargs: Any) -> str:
    response = llmstash.completion(
        model="gpt-4o-mini",
        messages=MESSAGES,
        api_base=base,
        api_key="sk-test",
        timeout=10,
        num_retries=0,
        **kwargs,
    )
    return str(response.choices[0].message.content)


def _sync_child(base: str, conn: Connection) -> None:
    try:
        first = _call(base)
        second = _call(base)
        conn.send(("ok", [first, second]))
    except BaseException as exc:  # report anything, the parent asserts
        conn.send(("error", repr(exc)))


def _async_child(base: str, conn: Connection) -> None:
    async def main() -> str:
        response = await llmstash.acompletion(
            model="gpt-4o-mini",
            messages=MESSAGES,
            api_base=base,
            api_key="sk-test",
            timeout=10,
            num_retries=0,
        )
        return str(response.choices[0].message.content)

    try:
        conn.send(("ok", [asyncio.run(main()), _call(base)]))
    except BaseException as exc:
        conn.send(("error", repr(exc)))


def _run_child(target: Any, base: str) -> tuple[str, Any]:
    ctx = multiprocessing.get_context("fork")
    parent_end, child_end = ctx.Pipe(duplex=False)
    process = ctx.Process(target=target, args=(base, child_end), daemon=True)
    process.start()
    child_end.close()
    process.join(CHILD_TIMEOUT)
    if process.is_alive():
        process.kill()
        process.join()
        pytest.fail(f"the forked child hung for {CHILD_TIMEOUT} s in its first llmstash call")
    assert process.exitcode == 0
    assert parent_end.poll(5), "the child reported nothing"
    result: tuple[str, Any] = parent_end.recv()
    return result


def test_sync_call_in_a_forked_child(provider: FakeProvider, sync_llm: None) -> None:
    assert _call(provider.openai_base) == "Echo: after the fork"  # the loop thread starts
    status, value = _run_child(_sync_child, provider.openai_base)
    assert status == "ok", value
    assert value == ["Echo: after the fork"] * 2
    # the parent's loop thread and connections are untouched by the child
    assert _call(provider.openai_base) == "Echo: after the fork"
    assert provider.request_count == 4


def test_async_then_sync_calls_in_a_forked_child(provider: FakeProvider, sync_llm: None) -> None:
    assert _call(provider.openai_base, stream=False)
    asyncio.run(  # a default client of another loop exists in the parent as well
        llmstash.acompletion(
            model="gpt-4o-mini", messages=MESSAGES, api_base=provider.openai_base, api_key="k"
        )
    )
    status, value = _run_child(_async_child, provider.openai_base)
    assert status == "ok", value
    assert value == ["Echo: after the fork"] * 2
    assert _call(provider.openai_base) == "Echo: after the fork"


def test_forked_child_delivers_its_callback_events(provider: FakeProvider, sync_llm: None) -> None:
    """The child's hooks run on its own loop thread; its events are delivered."""
    from llmstash.integrations.custom_logger import CustomLogger

    class Count(CustomLogger):
        def __init__(self) -> None:
            self.n = 0

        def log_success_event(self, *args: Any) -> None:
            self.n += 1

    counter = Count()
    llmstash.callbacks = [counter]
    _call(provider.openai_base)
    llmstash.flush_callbacks()
    assert counter.n == 1

    def child(base: str, conn: Connection) -> None:
        try:
            _call(base)
            llmstash.flush_callbacks()
            conn.send(("ok", counter.n))
        except BaseException as exc:
            conn.send(("error", repr(exc)))

    status, value = _run_child(child, provider.openai_base)
    assert (status, value) == ("ok", 2)
