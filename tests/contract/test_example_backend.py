"""The contract kit as a third party uses it: one subclass, one fixture, run against the example
backend of ``examples/``; and the kit catches a backend that breaks the contract."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from llmstash.caching import CacheBackend
from llmstash.testing.backend_contract import BackendContract

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
sys.path.insert(0, str(EXAMPLES))

from dict_backend import DictBackend  # noqa: E402


class TestDictBackend(BackendContract):
    expect_local = True

    @pytest.fixture
    def make_backend(self) -> Callable[[], CacheBackend]:
        return DictBackend


def test_the_example_runs() -> None:
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "dict_backend.py")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert out.splitlines() == ["Hi there! cache hit: False", "Hi there! cache hit: True"]


BROKEN = textwrap.dedent(
    """
    import fnmatch, sys
    import pytest
    sys.path.insert(0, {examples!r})
    from dict_backend import DictBackend
    from llmstash.testing.backend_contract import BackendContract

    class GlobClear(DictBackend):
        # A common mistake: clear() by glob pattern, and ttl <= 0 stored as "no expiry".
        async def clear(self, prefix):
            doomed = [k for k in self._data if fnmatch.fnmatchcase(k, prefix + "*")]
            for k in doomed:
                del self._data[k]
            return len(doomed)

        async def set_many(self, items, *, ttl=None):
            await super().set_many(items, ttl=None if ttl is not None and ttl <= 0 else ttl)

    class TestBroken(BackendContract):
        @pytest.fixture
        def make_backend(self):
            return GlobClear
    """
)


def test_the_kit_catches_a_broken_backend(tmp_path: Path) -> None:
    (tmp_path / "test_broken.py").write_text(BROKEN.format(examples=str(EXAMPLES)))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 1, result.stdout
    failed = {line.split("::")[-1] for line in result.stdout.splitlines() if "FAILED" in line}
    assert any(name.startswith("test_clear_takes_glob_characters_literally") for name in failed)
    assert any(name.startswith("test_ttl_zero_or_less_is_not_stored") for name in failed)
    assert "passed" in result.stdout  # the rest of the contract holds
