"""The disk cache (DESIGN §4.4): ``Cache(type="disk")`` end to end over the fake provider, shared
by real processes (one writes, the other hits; both write at once with no lock error reaching
anyone), surviving restarts and a ``kill -9`` in the middle of a burst of writes, bounded in
bytes with least-recently-used eviction, and safe across ``fork``."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import textwrap
from pathlib import Path

import pytest

import llmstash
from llmstash.caching import Cache
from llmstash.caching._disk import FILE_NAME, DiskBackend, default_cache_dir
from llmstash.exceptions import InvalidRequestError
from llmstash.testing import FakeProvider
from tests._child import Child

BUDGETS = {"lookup_timeout": 5.0, "write_timeout": 10.0}

CHILD = textwrap.dedent(
    """
    import asyncio, json, sys
    import llmstash
    from llmstash.caching import Cache

    base, directory = sys.argv[1:3]
    llmstash.cache = Cache(
        type="disk", disk_cache_dir=directory, lookup_timeout=5.0, write_timeout=10.0
    )

    async def ask(text):
        r = await llmstash.acompletion(
            model="openai/gpt-4o-mini",
            messages=[{"role": "user", "content": text}],
            api_base=base,
            api_key="sk-test-key-123456",
        )
        return {"hit": r._hidden_params["cache_hit"], "id": r.id}

    async def burst(tag, n):
        return await asyncio.gather(*(ask(f"{tag} {i}") for i in range(n)))

    async def main():
        print(json.dumps({"ready": True}), flush=True)
        loop = asyncio.get_running_loop()
        while True:
            line = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
            if not line or line == "exit":
                break
            op, arg = line.split(" ", 1)
            if op == "ask":
                print(json.dumps(await ask(arg)), flush=True)
            elif op == "burst":
                tag, n = arg.split()
                results = await burst(tag, int(n))
                stats = llmstash.cache.stats()
                print(json.dumps({"results": results, "given_up": stats["writes_given_up"],
                                  "consecutive_failures": stats["consecutive_failures"]}),
                      flush=True)
        await llmstash.cache.aclose()

    asyncio.run(main())
    """
)

WRITER = textwrap.dedent(
    """
    import asyncio, json, sys
    from llmstash.caching._disk import DiskBackend

    async def main():
        backend = DiskBackend(sys.argv[1])
        await backend.set("first", b"v" * 1000)
        print(json.dumps({"ready": True}), flush=True)
        i = 0
        while True:
            await asyncio.gather(
                *(backend.set_many({f"k{i}-{j}-{n}": b"x" * 5000 for n in range(20)})
                  for j in range(10))
            )
            i += 1

    asyncio.run(main())
    """
)


def ask_kwargs(provider: FakeProvider, text: str) -> dict[str, object]:
    return {
        "model": "openai/gpt-4o-mini",
        "messages": [{"role": "user", "content": text}],
        "api_base": provider.openai_base,
        "api_key": "sk-test-key-123456",
    }


async def test_disk_cache_serves_every_call_type(
    provider: FakeProvider, tmp_path: Path, llm: None
) -> None:
    async with Cache(type="disk", disk_cache_dir=tmp_path, **BUDGETS) as cache:
        llmstash.cache = cache
        first = await llmstash.acompletion(**ask_kwargs(provider, "disk chat"))
        second = await llmstash.acompletion(**ask_kwargs(provider, "disk chat"))
        assert (first._hidden_params["cache_hit"], second._hidden_params["cache_hit"]) == (
            False,
            True,
        )
        assert second == first
        chunks = [
            c
            async for c in await llmstash.acompletion(
                **ask_kwargs(provider, "disk stream"), stream=True
            )
        ]
        replay = [
            c
            async for c in await llmstash.acompletion(
                **ask_kwargs(provider, "disk stream"), stream=True
            )
        ]
        assert [c.model_dump() for c in replay] == [c.model_dump() for c in chunks]
        e1 = await llmstash.aembedding(
            model="openai/text-embedding-3-small",
            input=["a", "b"],
            api_base=provider.openai_base,
            api_key="sk-test-key-123456",
        )
        e2 = await llmstash.aembedding(
            model="openai/text-embedding-3-small",
            input=["b", "a"],
            api_base=provider.openai_base,
            api_key="sk-test-key-123456",
        )
        assert e2._hidden_params["cache_hit"] is True
        assert list(e2.data[0].embedding) == list(e1.data[1].embedding)
        assert provider.request_count == 3
        # Per-call controls: no-cache skips the lookup, no-store stores nothing, ttl=0 too.
        fresh = await llmstash.acompletion(
            **ask_kwargs(provider, "disk chat"), cache={"no-cache": True}
        )
        assert fresh._hidden_params["cache_hit"] is False
        await llmstash.acompletion(**ask_kwargs(provider, "unstored"), cache={"no-store": True})
        again = await llmstash.acompletion(**ask_kwargs(provider, "unstored"))
        assert again._hidden_params["cache_hit"] is False
        stats = cache.stats()
        assert stats["type"] == "disk" and stats["hits"] >= 3
    assert (tmp_path / FILE_NAME).exists()
    # Entries are compressed on disk where that pays: the chat answer is, the vectors are not.
    with sqlite3.connect(tmp_path / FILE_NAME) as db:
        flags = {row[0][3] for row in db.execute("SELECT value FROM entries")}
    assert flags == {0, 2}


async def test_entries_survive_a_restart(provider: FakeProvider, tmp_path: Path, llm: None) -> None:
    async with Cache(type="disk", disk_cache_dir=str(tmp_path), **BUDGETS) as cache:
        llmstash.cache = cache
        first = await llmstash.acompletion(**ask_kwargs(provider, "kept"))
    async with Cache(type="disk", disk_cache_dir=str(tmp_path), **BUDGETS) as cache:
        llmstash.cache = cache
        again = await llmstash.acompletion(**ask_kwargs(provider, "kept"))
    assert again._hidden_params["cache_hit"] is True
    assert again.id == first.id
    assert provider.request_count == 1


def test_the_default_directory_honours_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "llmstash"
    assert DiskBackend().path == tmp_path / "llmstash" / FILE_NAME
    assert Cache(type="disk")._disk is not None
    assert not (tmp_path / "llmstash").exists()  # nothing on disk before first use


@pytest.mark.parametrize(
    "kwargs",
    [{"disk_cache_dir": 3}, {"max_bytes": 0}, {"max_size": -1}],
)
def test_bad_settings_fail_at_once(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidRequestError):
        Cache(type="disk", **kwargs)  # type: ignore[arg-type]


async def test_bounded_in_bytes_evicting_the_least_recently_used(tmp_path: Path) -> None:
    backend = DiskBackend(tmp_path, max_bytes=10_000, touch_interval=0)
    try:
        for i in range(5):
            await backend.set(f"k{i}", b"x" * 1998)  # 2,000 bytes with the key
        assert (await backend.astats())["bytes"] == 10_000
        assert await backend.get("k0") is not None  # now the most recently used
        await backend.aclose()  # hands the reader's notes of use to the writer
        await backend.set("k5", b"x" * 1998)
        present = [await backend.get(f"k{i}") is not None for i in range(6)]
        assert present == [True, False, True, True, True, True]
        await backend.set("huge", b"x" * 20_000)  # larger than the bound: not stored
        assert await backend.get("huge") is None
        stats = await backend.astats()
        assert stats["bytes"] <= 10_000 and stats["evictions"] == 1
    finally:
        await backend.aclose()


async def test_bounded_in_entries(tmp_path: Path) -> None:
    backend = DiskBackend(tmp_path, max_size=3)
    try:
        await backend.set_many({f"k{i}": b"v" for i in range(10)})
        assert (await backend.astats())["entries"] == 3
    finally:
        await backend.aclose()


async def test_two_processes_share_one_disk_cache(provider: FakeProvider, tmp_path: Path) -> None:
    args = (provider.openai_base, str(tmp_path))
    first, second = Child(CHILD, *args), Child(CHILD, *args)
    try:
        assert await first.areceive() == {"ready": True}
        assert await second.areceive() == {"ready": True}
        first.send("ask shared question")
        answer = await first.areceive()
        second.send("ask shared question")
        other = await second.areceive()
        assert (answer["hit"], other["hit"]) == (False, True)
        assert other["id"] == answer["id"]
        # Both write at once: every write lands, none reports a lock error or gives up.
        first.send("burst a 150")
        second.send("burst b 150")
        bursts = [await first.areceive(), await second.areceive()]
        for burst in bursts:
            assert burst["given_up"] == 0
            assert burst["consecutive_failures"] == 0
        first.send("burst b 150")  # the other's questions: every one a hit now
        replay = await first.areceive()
        assert all(r["hit"] for r in replay["results"])
        first.send("exit")
        second.send("exit")
        for child in (first, second):
            stderr = await asyncio.to_thread(child.finish)
            assert "database is locked" not in stderr
            assert "failed" not in stderr
    finally:
        first.kill()
        second.kill()
    assert provider.request_count == 1 + 150 + 150


async def test_a_writer_killed_mid_burst_leaves_a_database_that_serves(tmp_path: Path) -> None:
    child = Child(WRITER, str(tmp_path))
    try:
        assert await child.areceive() == {"ready": True}
        wal = tmp_path / (FILE_NAME + "-wal")
        # Let it write for a while, then kill it with no chance to clean up.

        for _ in range(200):
            await asyncio.sleep(0.02)
            if wal.exists() and wal.stat().st_size > 2_000_000:
                break
        child.process.kill()
        child.process.wait()
    finally:
        child.kill()
    backend = DiskBackend(tmp_path)
    try:
        assert await backend.get("first") == b"v" * 1000
        await backend.set("after", b"ok")
        assert await backend.get("after") == b"ok"
        assert await backend.ping()
        keys = [k async for batch in backend.scan("k") for k in batch]
        assert keys  # what was committed before the kill is there
        stats = await backend.astats()
        assert stats["entries"] == len(keys) + 2
    finally:
        await backend.aclose()
    with sqlite3.connect(tmp_path / FILE_NAME) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
async def test_a_forked_child_opens_its_own_connections(tmp_path: Path) -> None:
    backend = DiskBackend(tmp_path)
    await backend.set("parent", b"p")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a new loop, new connections, the parent's untouched

        async def child() -> dict[str, object]:
            got = await backend.get("parent")
            await backend.set("child", b"c")
            await backend.aclose()
            return {"got": None if got is None else got.decode()}

        try:
            result = asyncio.run(child())
            os.write(write, json.dumps(result).encode())
        finally:
            os._exit(0)
    os.close(write)
    _, status = await asyncio.to_thread(os.waitpid, pid, 0)
    data = os.read(read, 1000)
    os.close(read)
    assert status == 0
    assert json.loads(data) == {"got": "p"}
    assert await backend.get("child") == b"c"  # the parent's connection still serves
    await backend.aclose()
