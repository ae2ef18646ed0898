"""The public surface: __all__ honest and sorted, LiteLLM's import paths, a light import."""

from __future__ import annotations

import subprocess
import sys

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


def test_redis_cache_constructor_does_no_io():
    # port 1 has nothing listening: a constructor doing I/O would fail or hang here.
    cache = llmstash.Cache(type="redis", host="127.0.0.1", port="1")
    assert cache.type == "redis"


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
