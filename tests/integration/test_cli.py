"""The ``llmstash`` command, run as a real subprocess against a private Redis and a cluster:
every command, ``--json``, exit codes, and no password or traceback in what it prints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

import llmstash
from llmstash.caching import Cache
from tests._fixtures_redis import RedisServer, sync_client

PASSWORD = "cli-pa55word-0123"
BUDGETS = {"lookup_timeout": 5.0, "write_timeout": 5.0}
"""Budgets no loaded machine runs out of: the counts below are exact."""


def run(
    *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("REDIS_")}
    clean.pop("OPENAI_API_KEY", None)
    return subprocess.run(
        [sys.executable, "-m", "llmstash", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, **(env or {})},
    )


def ok(*args: str, **kwargs: Any) -> str:
    out = run(*args, **kwargs)
    assert out.returncode == 0, out.stderr
    return out.stdout


async def fill(cache: Cache, provider: Any, ns: str) -> list[str]:
    """Three chat entries (one asked twice more: two hits) and two embeddings under ``ns``."""
    keys = []
    async with llmstash.Client(cache=cache) as client:
        for text in ("one", "two", "three", "one", "one"):
            r = await client.acompletion(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": text}],
                api_base=provider.openai_base,
                api_key="sk-fill",
                cache={"namespace": ns},
            )
            keys.append(r._hidden_params["cache_key"])
        await client.aembedding(
            model="text-embedding-3-small",
            input=["x", "y"],
            api_base=provider.openai_base,
            api_key="sk-fill",
            cache={"namespace": ns},
        )
    await cache.aflush_writes()
    return list(dict.fromkeys(keys))


async def check_commands(provider: Any, cache: Cache, conn: list[str]) -> None:
    ns = f"cli-{uuid.uuid4().hex[:8]}"
    chat_keys = await fill(cache, provider, ns)

    assert "PONG" in ok("cache", "ping", *conn)
    assert json.loads(ok("cache", "ping", *conn, "--json"))["ok"] is True

    stats = json.loads(ok("cache", "stats", *conn, "--namespace", ns, "--since", "10m", "--json"))
    assert (stats["hits"], stats["misses"], stats["stores"]) == (2, 5, 5)
    assert stats["miss_reasons"]["absent"] == 5
    assert set(stats["by_model"]) == {"gpt-4o-mini", "text-embedding-3-small"}
    text = ok("cache", "stats", *conn, "--namespace", ns)
    assert "hit rate 28.6%" in text and "absent 5" in text

    rows = json.loads(ok("cache", "ls", *conn, "--namespace", ns, "--json"))
    assert sorted(r["kind"] for r in rows) == ["chat"] * 3 + ["embedding"] * 2
    assert {r["key"] for r in rows if r["kind"] == "chat"} == set(chat_keys)
    assert all(r["namespace"] == ns and r["size"] > 0 and r["ttl_left_s"] is None for r in rows)
    only = json.loads(
        ok("cache", "ls", *conn, "--namespace", ns, "--model", "gpt-4o-mini", "--json")
    )
    assert len(only) == 3
    assert (
        len(json.loads(ok("cache", "ls", *conn, "--namespace", ns, "--limit", "2", "--json"))) == 2
    )
    table = ok("cache", "ls", *conn, "--namespace", ns)
    assert table.splitlines()[0].split() == ["KEY", "KIND", "MODEL", "AGE", "TTL", "LEFT", "SIZE"]

    shown = json.loads(ok("cache", "show", *conn, chat_keys[0]))
    assert shown["kind"] == "chat" and shown["model"] == "gpt-4o-mini"
    assert shown["response"]["choices"][0]["message"]["content"] == "Echo: one"

    assert ok("cache", "rm", *conn, chat_keys[0], "no-such-key").strip() == "removed 1 of 2"
    gone = run("cache", "show", *conn, chat_keys[0])
    assert gone.returncode == 1 and "no entry" in gone.stderr

    refused = run("cache", "clear", *conn, "--namespace", ns, stdin="n\n")
    assert refused.returncode == 1
    assert len(json.loads(ok("cache", "ls", *conn, "--namespace", ns, "--json"))) == 4
    assert "deleted 4 entries" in ok("cache", "clear", *conn, "--namespace", ns, stdin="y\n")
    assert json.loads(ok("cache", "ls", *conn, "--namespace", ns, "--json")) == []
    # the counters survive a clear
    again = json.loads(ok("cache", "stats", *conn, "--namespace", ns, "--json"))
    assert again["hits"] == 2


async def test_every_command_on_a_private_redis(provider, redis_server_factory) -> None:
    server = redis_server_factory("--requirepass", PASSWORD)
    url = f"redis://:{PASSWORD}@{server.host}:{server.port}/0"
    async with Cache(type="redis", url=url, **BUDGETS) as cache:
        await check_commands(provider, cache, ["--url", url])
    # the environment is read when no --url is given; no password is ever printed
    env = {"REDIS_HOST": server.host, "REDIS_PORT": str(server.port), "REDIS_PASSWORD": PASSWORD}
    for args in (["cache", "ping"], ["cache", "stats"], ["cache", "ls"]):
        out = run(*args, env=env)
        assert out.returncode == 0, out.stderr
        assert PASSWORD not in out.stdout + out.stderr
    out = run("cache", "ping", "--url", url)
    assert PASSWORD not in out.stdout


async def test_every_command_on_a_cluster(provider, redis_cluster) -> None:
    node = redis_cluster.startup_nodes[0]
    nodes = redis_cluster.startup_nodes
    async with Cache(type="redis", redis_startup_nodes=nodes, **BUDGETS) as cache:
        conn = ["--cluster", "--url", f"redis://{node['host']}:{node['port']}"]
        await check_commands(provider, cache, conn)


def test_failures_exit_1_with_one_clear_line(free_tcp_port: int) -> None:
    url = f"redis://:{PASSWORD}@127.0.0.1:{free_tcp_port}"
    for args in (
        ["cache", "ping", "--url", url],
        ["cache", "stats", "--url", url, "--json"],
        ["cache", "ls", "--url", url],
        ["cache", "ping", "--url", "nonsense://what"],
        ["cache", "ping", "--url", f"redis://:{PASSWORD}@127.0.0.1:notaport"],
    ):
        out = run(*args)
        assert out.returncode == 1, (args, out.stdout, out.stderr)
        assert out.stdout == ""
        err = out.stderr.strip()
        assert err.startswith("llmstash: ") and "\n" not in err, err
        assert "Traceback" not in err and PASSWORD not in err
    out = run("cache", "ping", "--url", url)
    assert "cannot use the cache at redis://:***@127.0.0.1" in out.stderr
    assert "ConnectionError" in out.stderr  # says why: nothing listens there


def test_a_refused_password_and_a_missing_disk_cache_say_so(
    private_redis: RedisServer, tmp_path: Path
) -> None:
    with sync_client(private_redis.port) as admin:
        admin.config_set("requirepass", PASSWORD)
    wrong = f"redis://:not-{PASSWORD}@127.0.0.1:{private_redis.port}"
    out = run("cache", "ping", "--url", wrong)
    assert out.returncode == 1
    assert "AuthenticationError" in out.stderr and PASSWORD not in out.stderr
    none = f"redis://127.0.0.1:{private_redis.port}"
    out = run("cache", "ping", "--url", none)
    assert out.returncode == 1
    assert "Authentication" in out.stderr or "NOAUTH" in out.stderr, out.stderr
    missing = tmp_path / "no-such-dir"
    for args in (["cache", "ping"], ["cache", "ls"], ["cache", "clear", "--yes"]):
        out = run(*args, "--disk", str(missing))
        assert out.returncode == 1, (args, out.stderr)
        assert "no disk cache in" in out.stderr
    assert not missing.exists()  # a mistyped --disk never makes a new cache


def test_usage_errors_exit_2() -> None:
    for args in (
        ["cache", "bogus"],
        ["cache", "ls", "--limit", "0", "--url", "redis://x"],
        ["cache", "stats", "--since", "soon", "--url", "redis://x"],
        ["cache", "rm", "--url", "redis://x"],
        ["cache", "ping"],  # no cache given at all
    ):
        out = run(*args)
        assert out.returncode == 2, (args, out.stderr)
        assert "Traceback" not in out.stderr


async def test_commands_on_a_disk_cache(provider, tmp_path: Path) -> None:
    directory = str(tmp_path / "stash")
    async with Cache(type="disk", disk_cache_dir=directory) as cache:
        ns = "disk-ns"
        keys = await fill(cache, provider, ns)
    conn = ["--disk", directory]
    assert "PONG disk:" in ok("cache", "ping", *conn)
    stats = json.loads(ok("cache", "stats", *conn, "--json"))
    assert (stats["hits"], stats["misses"]) == (2, 5)
    rows = json.loads(ok("cache", "ls", *conn, "--namespace", ns, "--json"))
    assert len(rows) == 5
    assert json.loads(ok("cache", "show", *conn, keys[1]))["model"] == "gpt-4o-mini"
    assert "deleted 5 entries" in ok("cache", "clear", *conn, "--namespace", ns, "--yes")
    both = run("cache", "ls", "--disk", directory, "--url", "redis://localhost")
    assert both.returncode == 2


async def test_ls_and_show_responses_and_text_completion_entries(provider, tmp_path: Path) -> None:
    directory = str(tmp_path / "stash")
    base = {"api_base": provider.openai_base, "api_key": "sk-fill"}
    keys = {}
    async with Cache(type="disk", disk_cache_dir=directory) as cache:
        async with llmstash.Client(cache=cache) as client:
            r = await client.aresponses(model="gpt-4o-mini", input="plain", **base)
            keys["responses"] = r._hidden_params["cache_key"]
            t = await client.atext_completion(model="gpt-3.5-turbo-instruct", prompt="p", **base)
            keys["text-completion"] = t._hidden_params["cache_key"]
            stream = await client.aresponses(model="gpt-4o-mini", input="s", stream=True, **base)
            async for _ in stream:
                pass
            keys["responses-stream"] = stream._call.key
            chunks = await client.atext_completion(
                model="gpt-3.5-turbo-instruct", prompt="s", stream=True, **base
            )
            async for _ in chunks:
                pass
            keys["text-completion-stream"] = chunks._call.key
        await cache.aflush_writes()
    conn = ["--disk", directory]
    rows = json.loads(ok("cache", "ls", *conn, "--json"))
    assert {r["kind"]: r["key"] for r in rows} == keys
    plain = json.loads(ok("cache", "show", *conn, keys["responses"]))
    assert plain["response"]["id"] == r.id and plain["flags"] == 2  # stored compressed
    text = json.loads(ok("cache", "show", *conn, keys["text-completion"]))
    assert text["response"]["choices"][0]["text"] == t.choices[0].text
    events = json.loads(ok("cache", "show", *conn, keys["responses-stream"]))["events"]
    assert events[0]["type"] == "response.created"
    assert events[-1]["type"] == "response.completed"
    pieces = json.loads(ok("cache", "show", *conn, keys["text-completion-stream"]))["chunks"]
    assert pieces and all("choices" in piece for piece in pieces)


def test_console_script_and_help() -> None:
    script = Path(sys.executable).with_name("llmstash")
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0
    assert "cache" in out.stdout and "demo" in out.stdout
    assert "ls" in ok("cache", "--help")


def test_demo_runs_against_the_fake_provider() -> None:
    out = ok("demo")
    assert "fake provider" in out
    assert "same call again (hit)" in out
    assert "cache stats:" in out and "hits" in out


def test_import_does_not_load_click() -> None:
    # (httpx itself imports click for its own command line when click, rich and pygments are
    # all installed; so only llmstash's own modules are checked here, without httpx.)
    code = (
        "import sys, llmstash; from llmstash import Cache; Cache(); "
        "import llmstash.caching._stats, llmstash._log; "
        "print('click' in sys.modules, 'llmstash._cli' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "False False", out.stderr


@pytest.fixture
def free_tcp_port(free_tcp_port_factory: Any) -> int:
    return int(free_tcp_port_factory())
