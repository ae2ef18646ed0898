"""CallbackDispatcher and CustomLogger: concurrency, isolation, hook selection, bounds, flush."""

from __future__ import annotations

import gc
import logging
import threading
import time
import weakref
from datetime import datetime
from typing import Any

import anyio
import pytest
from anyio import wait_all_tasks_blocked
from anyio.from_thread import start_blocking_portal
from anyio.lowlevel import checkpoint

from llmstash._callbacks import CallbackDispatcher, all_dispatchers
from llmstash.integrations.custom_logger import CustomLogger

T0 = datetime(2025, 1, 1, 12, 0, 0)
T1 = datetime(2025, 1, 1, 12, 0, 1)


def kw(**extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "cache_hit": True, **extra}


class Recorder(CustomLogger):
    """Records every hook that fires, with its arguments and thread."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.threads: list[int] = []

    def _record(self, name: str, *args: Any) -> None:
        self.calls.append((name, args))
        self.threads.append(threading.get_ident())

    def log_pre_api_call(self, model, messages, kwargs):
        self._record("log_pre_api_call", model, messages, kwargs)

    def log_post_api_call(self, kwargs, response_obj, start_time, end_time):
        self._record("log_post_api_call", kwargs, response_obj, start_time, end_time)

    def log_stream_event(self, kwargs, response_obj, start_time, end_time):
        self._record("log_stream_event", kwargs, response_obj, start_time, end_time)

    def log_success_event(self, kwargs, response_obj, start_time, end_time):
        self._record("log_success_event", kwargs, response_obj, start_time, end_time)

    def log_failure_event(self, kwargs, response_obj, start_time, end_time):
        self._record("log_failure_event", kwargs, response_obj, start_time, end_time)

    async def async_log_pre_api_call(self, model, messages, kwargs):
        self._record("async_log_pre_api_call", model, messages, kwargs)

    async def async_log_stream_event(self, kwargs, response_obj, start_time, end_time):
        self._record("async_log_stream_event", kwargs, response_obj, start_time, end_time)

    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        self._record("async_log_success_event", kwargs, response_obj, start_time, end_time)

    async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time):
        self._record("async_log_failure_event", kwargs, response_obj, start_time, end_time)

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


class Sleeper(CustomLogger):
    def __init__(self) -> None:
        self.start = self.end = 0.0

    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        self.start = time.perf_counter()
        await anyio.sleep(0.05)
        self.end = time.perf_counter()


async def test_async_hooks_run_concurrently_after_success_returns() -> None:
    dispatcher = CallbackDispatcher()
    sleepers = [Sleeper(), Sleeper(), Sleeper()]

    dispatcher.success(sleepers, [], kw(), "response", T0, T1, is_async=True)

    assert [s.end for s in sleepers] == [0.0, 0.0, 0.0]
    assert dispatcher.pending == 1
    await dispatcher.aflush()
    assert dispatcher.pending == 0
    for s in sleepers:
        assert s.end > 0.0
        assert all(s.start < other.end for other in sleepers)


async def test_a_raising_hook_is_logged_and_isolated(caplog: pytest.LogCaptureFixture) -> None:
    class Boom(CustomLogger):
        async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
            raise RuntimeError("hook failed")

    caplog.set_level(logging.WARNING, logger="llmstash")
    dispatcher = CallbackDispatcher()
    recorder = Recorder()
    kwargs = kw(api_key="sk-must-not-be-logged")

    dispatcher.success([Boom(), recorder], [], kwargs, "response", T0, T1, is_async=True)
    await dispatcher.aflush()

    assert recorder.names == ["async_log_success_event"]
    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert "Boom.async_log_success_event" in record.getMessage()
    assert record.exc_info is not None
    assert "sk-must-not-be-logged" not in caplog.text


async def test_a_hanging_async_hook_is_cut_by_the_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Hang(CustomLogger):
        cancelled = False

        async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
            try:
                await anyio.sleep_forever()
            finally:
                Hang.cancelled = True

    caplog.set_level(logging.WARNING, logger="llmstash")
    dispatcher = CallbackDispatcher(hook_timeout=0.05)
    recorder = Recorder()

    dispatcher.success([Hang(), recorder], [], kw(), "response", T0, T1, is_async=True)
    await dispatcher.aflush()

    assert Hang.cancelled
    assert recorder.names == ["async_log_success_event"]
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert "Hang.async_log_success_event" in record.getMessage()


async def test_a_hanging_sync_hook_is_abandoned(caplog: pytest.LogCaptureFixture) -> None:
    release = threading.Event()
    finished = threading.Event()

    class Hang(CustomLogger):
        def log_success_event(self, kwargs, response_obj, start_time, end_time):
            release.wait(10)
            finished.set()

    caplog.set_level(logging.WARNING, logger="llmstash")
    dispatcher = CallbackDispatcher(hook_timeout=0.05)
    try:
        dispatcher.success([Hang()], [], kw(), "response", T0, T1, is_async=False)
        await dispatcher.aflush()
        assert not finished.is_set()
        assert dispatcher.pending == 0
        assert "Hang.log_success_event" in caplog.text
    finally:
        release.set()


async def test_sync_hooks_run_in_a_worker_thread() -> None:
    dispatcher = CallbackDispatcher()
    recorder = Recorder()

    dispatcher.success([recorder], [], kw(), "response", T0, T1, is_async=False)
    await dispatcher.aflush()

    assert recorder.names == ["log_success_event"]
    assert recorder.threads[0] != threading.get_ident()


@pytest.mark.parametrize(
    ("is_async", "expected"),
    [(True, "async_log_success_event"), (False, "log_success_event")],
)
async def test_success_fires_the_hooks_of_the_calls_kind(is_async: bool, expected: str) -> None:
    dispatcher = CallbackDispatcher()
    recorder = Recorder()
    kwargs = kw()

    dispatcher.success([recorder], [], kwargs, "response", T0, T1, is_async=is_async)
    await dispatcher.aflush()

    assert recorder.calls == [(expected, (kwargs, "response", T0, T1))]


@pytest.mark.parametrize(
    ("is_async", "expected"),
    [(True, "async_log_failure_event"), (False, "log_failure_event")],
)
async def test_failure_passes_no_response_and_the_exception_in_kwargs(
    is_async: bool, expected: str
) -> None:
    dispatcher = CallbackDispatcher()
    recorder = Recorder()
    error = ValueError("bad request")
    kwargs = kw(cache_hit=False)

    dispatcher.failure([recorder], [], kwargs, error, T0, T1, is_async=is_async)
    await dispatcher.aflush()

    assert recorder.calls == [(expected, (kwargs, None, T0, T1))]
    assert kwargs["exception"] is error


@pytest.mark.parametrize(
    ("is_async", "expected"),
    [(True, "async_log_stream_event"), (False, "log_stream_event")],
)
async def test_stream_events_pass_the_chunk(is_async: bool, expected: str) -> None:
    dispatcher = CallbackDispatcher()
    recorder = Recorder()
    kwargs = kw()

    dispatcher.stream_event([recorder], kwargs, "chunk", T0, T1, is_async=is_async)
    await dispatcher.aflush()

    assert recorder.calls == [(expected, (kwargs, "chunk", T0, T1))]


async def test_pre_call_prefers_the_async_hook_on_async_calls() -> None:
    class SyncOnly(CustomLogger):
        def __init__(self) -> None:
            self.seen: list[str] = []

        def log_pre_api_call(self, model, messages, kwargs):
            self.seen.append("log_pre_api_call")

    dispatcher = CallbackDispatcher()
    both, sync_only, messages, kwargs = Recorder(), SyncOnly(), [{"role": "user"}], kw()

    dispatcher.pre_call([both, sync_only], "gpt-4o", messages, kwargs, is_async=True)
    await dispatcher.aflush()
    assert both.calls == [("async_log_pre_api_call", ("gpt-4o", messages, kwargs))]
    assert sync_only.seen == ["log_pre_api_call"]

    dispatcher.pre_call([both], "gpt-4o", messages, kwargs, is_async=False)
    await dispatcher.aflush()
    assert both.names == ["async_log_pre_api_call", "log_pre_api_call"]


@pytest.mark.parametrize("is_async", [True, False])
async def test_post_api_call_fires_before_success_on_misses_only(is_async: bool) -> None:
    dispatcher = CallbackDispatcher()
    recorder = Recorder()
    success = "async_log_success_event" if is_async else "log_success_event"
    miss = kw(cache_hit=False, litellm_call_id="call-1")

    dispatcher.success([recorder], [], miss, "response", T0, T1, is_async=is_async)
    await dispatcher.aflush()
    assert recorder.calls[0] == ("log_post_api_call", (miss, "response", T0, T1))
    assert recorder.names == ["log_post_api_call", success]

    dispatcher.success([recorder], [], kw(), "response", T0, T1, is_async=is_async)
    await dispatcher.aflush()
    assert recorder.names == ["log_post_api_call", success, success]


async def test_events_of_one_call_run_in_order() -> None:
    gate = anyio.Event()
    order: list[str] = []

    class Slow(CustomLogger):
        async def async_log_pre_api_call(self, model, messages, kwargs):
            await gate.wait()
            order.append("pre")

        async def async_log_stream_event(self, kwargs, response_obj, start_time, end_time):
            order.append(response_obj)

        async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
            order.append("success")

    dispatcher = CallbackDispatcher()
    handler, kwargs = Slow(), kw(litellm_call_id="call-1")
    dispatcher.pre_call([handler], "gpt-4o", [], kwargs, is_async=True)
    dispatcher.stream_event([handler], kwargs, "chunk-1", T0, T1, is_async=True)
    dispatcher.stream_event([handler], kwargs, "chunk-2", T0, T1, is_async=True)
    dispatcher.success([handler], [], kwargs, "response", T0, T1, is_async=True)
    await wait_all_tasks_blocked()
    assert order == []

    gate.set()
    await dispatcher.aflush()
    assert order == ["pre", "chunk-1", "chunk-2", "success"]


async def test_plain_functions_sync_and_async() -> None:
    seen: list[tuple[str, int]] = []

    def sync_fn(kwargs, response_obj, start_time, end_time):
        seen.append(("sync", threading.get_ident()))

    async def async_fn(kwargs, response_obj, start_time, end_time):
        seen.append(("async", threading.get_ident()))

    dispatcher = CallbackDispatcher()
    dispatcher.success([], [sync_fn, async_fn], kw(), "response", T0, T1, is_async=True)
    dispatcher.failure([], [sync_fn], kw(), ValueError(), T0, T1, is_async=False)
    await dispatcher.aflush()

    loop_thread = threading.get_ident()
    assert sorted(name for name, _ in seen) == ["async", "sync", "sync"]
    assert all((thread == loop_thread) == (name == "async") for name, thread in seen)


async def test_a_callable_in_loggers_is_a_success_callback() -> None:
    seen: list[Any] = []

    async def on_success(kwargs, response_obj, start_time, end_time):
        seen.append(response_obj)

    dispatcher = CallbackDispatcher()
    dispatcher.pre_call([on_success], "gpt-4o", [], kw(), is_async=True)
    dispatcher.stream_event([on_success], kw(), "chunk", T0, T1, is_async=True)
    dispatcher.failure([on_success], [], kw(), ValueError(), T0, T1, is_async=True)
    dispatcher.success([on_success], [], kw(), "response", T0, T1, is_async=True)
    await dispatcher.aflush()

    assert seen == ["response"]


async def test_unknown_integrations_warn_once_per_name(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="llmstash")
    dispatcher = CallbackDispatcher()
    recorder = Recorder()
    functions: list[Any] = ["langfuse"]  # LiteLLM users write success_callback = ["langfuse"]

    for _ in range(3):
        dispatcher.success(["langfuse", recorder], functions, kw(), "r", T0, T1, is_async=True)
    dispatcher.failure(["langfuse", "sentry"], [], kw(), ValueError(), T0, T1, is_async=True)
    await dispatcher.aflush()

    assert recorder.names == ["async_log_success_event"] * 3
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2
    assert "'langfuse'" in messages[0]
    assert "'sentry'" in messages[1]


async def test_nothing_is_scheduled_when_no_hook_applies() -> None:
    dispatcher = CallbackDispatcher()

    dispatcher.success([], [], kw(), "response", T0, T1, is_async=True)
    dispatcher.success([CustomLogger()], [], kw(cache_hit=False), "r", T0, T1, is_async=True)
    dispatcher.pre_call([CustomLogger()], "gpt-4o", [], kw(), is_async=True)
    dispatcher.failure([CustomLogger()], [], kw(), ValueError(), T0, T1, is_async=False)

    assert dispatcher.pending == 0


async def test_events_beyond_max_pending_are_dropped_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gate = anyio.Event()

    class Blocked(CustomLogger):
        async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
            await gate.wait()

    caplog.set_level(logging.WARNING, logger="llmstash")
    dispatcher = CallbackDispatcher(max_pending=2)
    handler = Blocked()

    for _ in range(5):
        dispatcher.success([handler], [], kw(), "response", T0, T1, is_async=True)
    assert (dispatcher.pending, dispatcher.dropped) == (2, 3)
    assert len(caplog.records) == 1

    gate.set()
    await dispatcher.aflush()
    dispatcher.success([handler], [], kw(), "response", T0, T1, is_async=True)
    assert (dispatcher.pending, dispatcher.dropped) == (1, 3)
    assert "Dropped 3 callback events" in caplog.records[-1].getMessage()
    await dispatcher.aflush()


async def test_aflush_waits_for_events_reported_during_the_flush() -> None:
    dispatcher = CallbackDispatcher()
    recorder = Recorder()

    class Chain(CustomLogger):
        async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
            await checkpoint()
            dispatcher.success([recorder], [], kw(), "second", T0, T1, is_async=True)

    dispatcher.success([Chain()], [], kw(), "first", T0, T1, is_async=True)
    await dispatcher.aflush()

    assert recorder.names == ["async_log_success_event"]


async def test_aflush_returns_after_its_timeout() -> None:
    gate = anyio.Event()

    class Blocked(CustomLogger):
        async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
            await gate.wait()

    dispatcher = CallbackDispatcher()
    dispatcher.success([Blocked()], [], kw(), "response", T0, T1, is_async=True)
    await dispatcher.aflush(timeout=0.01)
    assert dispatcher.pending == 1

    gate.set()
    await dispatcher.aflush()
    assert dispatcher.pending == 0


async def test_aflush_from_another_event_loop() -> None:
    dispatcher = CallbackDispatcher()
    done = threading.Event()

    class Slow(CustomLogger):
        async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
            await anyio.sleep(0.02)
            done.set()

    async def report() -> None:
        dispatcher.success([Slow()], [], kw(), "response", T0, T1, is_async=True)

    with start_blocking_portal() as portal:
        portal.call(report)
        await dispatcher.aflush()
        assert done.is_set()


async def test_live_dispatchers_are_registered_weakly() -> None:
    dispatcher = CallbackDispatcher()
    dispatcher.success([Recorder()], [], kw(), "response", T0, T1, is_async=True)
    await dispatcher.aflush()
    assert dispatcher in all_dispatchers()

    ref = weakref.ref(dispatcher)
    del dispatcher
    gc.collect()
    assert ref() is None


def test_custom_logger_accepts_and_ignores_keyword_arguments() -> None:
    CustomLogger(message_logging=False, turn_off_message_logging=True)
