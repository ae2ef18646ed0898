"""A Client outlives event loops: reused across asyncio.run calls (in a real subprocess, as a
script would), it works on each; shared by two running loops at once, it says so."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
import uuid

import pytest

import llmstash
from llmstash.exceptions import ClientClosedError, EventLoopMismatchError

MSGS = [{"role": "user", "content": "loops"}]


@pytest.mark.parametrize("cache", ["local", "redis"])
def test_a_client_reused_across_asyncio_run(provider, redis_url, cache) -> None:
    namespace = f"loops-{uuid.uuid4().hex}"
    made = (
        "Cache()"
        if cache == "local"
        else f"Cache(url={redis_url!r}, type='redis', namespace={namespace!r})"
    )
    script = textwrap.dedent(
        f"""
        import asyncio, os, llmstash
        from llmstash import Cache
        client = llmstash.Client(cache={made})
        async def ask(i):
            r = await client.acompletion(
                model="gpt-4o-mini", messages=[{{"role": "user", "content": f"q{{i % 3}}"}}],
                api_base={provider.openai_base!r}, api_key="sk-x",
            )
            return r._hidden_params["cache_hit"]
        fds = []
        hits = []
        for i in range(30):
            hits.append(asyncio.run(ask(i)))
            fds.append(len(os.listdir("/proc/self/fd")))
        print(sum(hits), fds[9], fds[-1])
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    hits, fds_early, fds_late = map(int, out.stdout.split())
    assert hits == 27  # 3 questions asked 10 times each: 3 misses
    assert provider.request_count == 3
    assert fds_late <= fds_early + 2  # each loop's connections closed with it


async def test_two_running_loops_get_a_clear_error(provider) -> None:
    client = llmstash.Client()
    kwargs = {
        "model": "gpt-4o-mini",
        "messages": MSGS,
        "api_base": provider.openai_base,
        "api_key": "sk-x",
    }
    await client.acompletion(**kwargs)
    errors: list[BaseException] = []

    def other_thread() -> None:
        try:
            asyncio.run(client.acompletion(**kwargs))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join(10)
    await client.aclose()
    assert len(errors) == 1 and isinstance(errors[0], EventLoopMismatchError)
    assert isinstance(errors[0], ClientClosedError)
    assert "another running event loop" in str(errors[0])


def test_a_callers_http_client_of_an_ended_loop_is_refused(provider) -> None:
    import httpx

    async def first() -> llmstash.Client:
        http = httpx.AsyncClient()
        client = llmstash.Client(http_client=http)
        await client.acompletion(
            model="gpt-4o-mini", messages=MSGS, api_base=provider.openai_base, api_key="sk-x"
        )
        await http.aclose()  # the caller's to close, on the loop it belongs to
        return client

    client = asyncio.run(first())

    async def second() -> None:
        with pytest.raises(EventLoopMismatchError, match="http_client"):
            await client.acompletion(
                model="gpt-4o-mini", messages=MSGS, api_base=provider.openai_base, api_key="sk-x"
            )

    asyncio.run(second())


def test_a_client_per_request_on_one_loop_is_freed_and_the_loop_ends_cleanly(provider) -> None:
    script = textwrap.dedent(
        f"""
        import asyncio, gc, weakref, llmstash
        refs = []
        async def main():
            for i in range(1100):
                async with llmstash.Client() as client:
                    await client.acompletion(
                        model="gpt-4o-mini", messages=[{{"role": "user", "content": "q"}}],
                        api_base={provider.openai_base!r}, api_key="sk-x", mock_response="m",
                    )
                refs.append(weakref.ref(client))
                del client
            gc.collect()
            print(sum(r() is not None for r in refs))
        asyncio.run(main())
        loop = asyncio.new_event_loop()
        loop.run_until_complete(main())
        loop.close()
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["0", "0"]  # closed clients are not kept alive by their loop
    assert "Traceback" not in out.stderr, out.stderr[-2000:]
