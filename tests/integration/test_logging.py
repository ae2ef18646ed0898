"""DEBUG lines: one per call (outcome, reason, short key, model, namespace, timings) and one
per provider attempt (method, URL without query or secrets, status, duration, retry number);
nothing when DEBUG is off; ``turn_on_debug()`` and ``LLMSTASH_LOG=debug`` turn them on."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import llmstash
from llmstash import _log
from llmstash.caching import Cache

SECRET = "sk-secret-key-for-logs-0123456789"


def chat(provider: Any, **extra: Any) -> dict[str, Any]:
    return {
        "model": "openai/gpt-4o-mini",
        "messages": [{"role": "user", "content": "log me"}],
        "api_base": provider.openai_base,
        "api_key": SECRET,
        **extra,
    }


def lines(caplog: pytest.LogCaptureFixture, marker: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if marker in r.getMessage()]


async def test_a_line_per_call_and_per_provider_attempt(provider, llm, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="llmstash")
    llmstash.cache = Cache(namespace="logs")
    await llmstash.acompletion(**chat(provider))
    await llmstash.acompletion(**chat(provider))
    calls = lines(caplog, "llmstash call:")
    assert len(calls) == 2
    assert "miss (absent)" in calls[0] and " hit " in calls[1]
    key = llmstash.cache.get_cache_key(**chat(provider))
    for line in calls:
        assert f"key={key[-12:]}" in line
        assert "model=openai/gpt-4o-mini" in line and "namespace=logs" in line
        assert "lookup=" in line and "total=" in line
    attempts = lines(caplog, "llmstash provider:")
    assert len(attempts) == 1  # the hit asked no provider
    assert f"POST {provider.openai_base}/chat/completions -> 200" in attempts[0]
    assert "(retry 0)" in attempts[0]
    text = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert SECRET not in text


async def test_retries_are_numbered_and_azure_query_is_not_logged(provider, llm, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="llmstash")
    provider.fail_next(503, retry_after=0)
    await llmstash.acompletion(**chat(provider, num_retries=2, cache={"no-cache": True}))
    attempts = lines(caplog, "llmstash provider:")
    assert [a.split("(retry ")[1] for a in attempts] == ["0)", "1)"]
    assert "-> 503" in attempts[0] and "-> 200" in attempts[1]
    caplog.clear()
    await llmstash.acompletion(
        model="azure/my-deployment",
        messages=[{"role": "user", "content": "azure"}],
        api_base=provider.url,
        api_key=SECRET,
        api_version="2024-10-21",
    )
    (attempt,) = lines(caplog, "llmstash provider:")
    assert "/openai/deployments/my-deployment/chat/completions -> 200" in attempt
    assert "api-version" not in attempt and "?" not in attempt
    assert SECRET not in caplog.text


async def test_nothing_is_logged_when_debug_is_off(provider, llm, caplog) -> None:
    caplog.set_level(logging.INFO, logger="llmstash")
    llmstash.cache = Cache()
    await llmstash.acompletion(**chat(provider))
    await llmstash.acompletion(**chat(provider))
    assert caplog.records == []


async def test_failed_calls_are_logged_with_the_error(provider, llm, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="llmstash")
    llmstash.cache = Cache()
    provider.fail_next(400)
    with pytest.raises(llmstash.BadRequestError):
        await llmstash.acompletion(**chat(provider))
    (line,) = lines(caplog, "llmstash call:")
    assert "miss (absent)" in line and "error=BadRequestError" in line


def test_turn_on_debug_adds_one_stderr_handler() -> None:
    logger = logging.getLogger("llmstash")
    saved_level, saved_handlers = logger.level, list(logger.handlers)
    try:
        llmstash.turn_on_debug()
        llmstash.turn_on_debug()
        added = [h for h in logger.handlers if h not in saved_handlers]
        assert len(added) == 1 and isinstance(added[0], logging.StreamHandler)
        assert logger.isEnabledFor(logging.DEBUG)
    finally:
        for handler in list(logger.handlers):
            if handler not in saved_handlers:
                logger.removeHandler(handler)
        logger.setLevel(saved_level)
        _log._handler = None


def test_no_handler_by_default() -> None:
    code = "import logging, llmstash; print(len(logging.getLogger('llmstash').handlers))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "0"


def test_env_turns_debug_on_in_a_fresh_process(provider) -> None:
    code = (
        "import llmstash, sys\n"
        "llmstash.cache = llmstash.Cache()\n"
        f"llmstash.completion(model='openai/gpt-4o-mini', api_base=sys.argv[1], api_key={SECRET!r},"
        " messages=[{'role': 'user', 'content': 'env'}])\n"
    )
    for value, expect in (("debug", True), ("", False)):
        env = {**os.environ, "LLMSTASH_LOG": value}
        out = subprocess.run(
            [sys.executable, "-c", code, provider.openai_base],
            capture_output=True,
            text=True,
            timeout=30,
            env=env,
        )
        assert out.returncode == 0, out.stderr
        assert ("llmstash call:" in out.stderr) is expect, out.stderr
        assert ("llmstash provider: POST" in out.stderr) is expect
        assert SECRET not in out.stderr


async def test_responses_and_text_completion_lines_time_their_lookups(
    provider, llm, caplog, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG, logger="llmstash")
    llmstash.cache = Cache(type="disk", disk_cache_dir=str(tmp_path), lookup_timeout=5.0)
    base = {"api_base": provider.openai_base, "api_key": SECRET}
    for _ in range(2):
        await llmstash.aresponses(model="gpt-4o-mini", input="log me", **base)
        await llmstash.atext_completion(model="gpt-3.5-turbo-instruct", prompt="log me", **base)
    await llmstash.aresponses(model="gpt-4o-mini", input="log me", cache={"no-cache": True}, **base)
    calls = lines(caplog, "llmstash call:")
    assert len(calls) == 5
    assert "aresponses miss (absent)" in calls[0] and "atext_completion hit" in calls[3]
    assert "aresponses miss (no-cache)" in calls[4]
    for line in calls[:4]:
        assert "lookup=-" not in line and " ms total=" in line
    await llmstash.cache.aclose()
    assert SECRET not in caplog.text
