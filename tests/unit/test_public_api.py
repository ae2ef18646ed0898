"""The public surface: __all__ honest and sorted, LiteLLM's import paths, a light import."""

from __future__ import annotations

import select
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

import llmstash
import llmstash.exceptions
import llmstash.types


def test_all_is_sorted_and_complete():
    for module in (llmstash, llmstash.exceptions, llmstash.types):
        assert module.__all__ == sorted(module.__all__), module.__name__
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"


def test_public_names_have_docstrings():
    for name in llmstash.__all__:
        obj = getattr(llmstash, name)
        if callable(obj):
            assert obj.__doc__, name


def test_litellm_import_paths():
    from llmstash.caching import Cache
    from llmstash.integrations.custom_logger import CustomLogger

    assert Cache is llmstash.Cache
    assert CustomLogger.__name__ == "CustomLogger"
    assert llmstash.Timeout is llmstash.APITimeoutError


def test_unknown_module_attributes_are_harmless():
    llmstash.set_verbose = True  # type: ignore[attr-defined]
    del llmstash.set_verbose  # type: ignore[attr-defined]


def test_import_does_not_load_redis_or_pydantic():
    code = (
        "import sys, llmstash; from llmstash.caching import Cache; Cache(); "
        "bad = [m for m in ('redis', 'pydantic', 'openai') if m in sys.modules]; "
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_import_loads_the_engine_on_first_use():
    code = (
        "import sys, llmstash; "
        "heavy = ('asyncio', 'msgspec', 'httpx', 'llmstash._client', 'llmstash.providers'); "
        "print(','.join(m for m in heavy if m in sys.modules)); "
        "from llmstash import acompletion, Cache, RateLimitError, ModelResponse; "
        "print(','.join(m for m in heavy if m not in sys.modules)); "
        "print(callable(acompletion), Cache.__name__, issubclass(RateLimitError, Exception))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    nothing_heavy, all_loaded, names = out.stdout.splitlines()
    assert nothing_heavy == ""  # `import llmstash` alone loads none of them
    assert all_loaded == ""  # and the first use of a name loads what it needs
    assert names == "True Cache True"


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A listening socket on a free loopback port that never accepts by itself: a connection
    attempt shows up as the socket becoming readable."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        sock.setblocking(False)
        yield sock


def redis_cache_forms(port: int) -> dict[str, dict[str, Any]]:
    return {
        "host": {"host": "127.0.0.1", "port": port},
        "host_port_as_string": {"host": "127.0.0.1", "port": str(port)},
        "url": {"url": f"redis://127.0.0.1:{port}/0"},
        "cluster": {"redis_startup_nodes": [{"host": "127.0.0.1", "port": port}]},
        "sentinel": {"sentinel_nodes": [("127.0.0.1", port)], "service_name": "mymaster"},
    }


FORMS = list(redis_cache_forms(0))


def connection_attempted(sock: socket.socket, wait: float) -> bool:
    readable, _, _ = select.select([sock], [], [], wait)
    if readable:
        conn, _ = sock.accept()
        conn.close()
    return bool(readable)


@pytest.mark.parametrize("form", FORMS)
def test_redis_cache_constructor_does_no_io(listener: socket.socket, form: str) -> None:
    port = listener.getsockname()[1]
    cache = llmstash.Cache(type="redis", **redis_cache_forms(port)[form])
    assert cache.type == "redis"
    assert not connection_attempted(listener, 0.2)


@pytest.mark.parametrize("form", FORMS)
async def test_redis_cache_constructor_starts_no_background_io(
    listener: socket.socket, form: str
) -> None:
    # Inside a running event loop, a constructor could also start a connection in a task.
    port = listener.getsockname()[1]
    cache = llmstash.Cache(type="redis", **redis_cache_forms(port)[form])
    await anyio.sleep(0.2)
    assert not connection_attempted(listener, 0)
    await cache.aclose()


def test_the_no_io_check_sees_a_connection(listener: socket.socket) -> None:
    # The check above can fail: a real connection attempt is seen.
    port = listener.getsockname()[1]
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        assert connection_attempted(listener, 1.0)


def test_enable_and_disable_cache():
    saved = llmstash.cache
    try:
        llmstash.enable_cache(type="redis", host="127.0.0.1", port=6379)
        assert isinstance(llmstash.cache, llmstash.Cache) and llmstash.cache.type == "redis"
        llmstash.update_cache(type="local")
        assert llmstash.cache.type == "local"
        llmstash.disable_cache()
        llmstash.disable_cache()
        assert llmstash.cache is None
    finally:
        llmstash.cache = saved


def test_route_repr_hides_the_key():
    from llmstash.providers import Route

    route = Route(
        provider="openai",
        model="gpt-4o",
        upstream_model="gpt-4o",
        api_base="https://x/v1",
        api_key="sk-secret-value-123",
    )
    assert "sk-secret" not in repr(route) and "***" in repr(route)
