"""Every ```python block of the docs (docs/**/*.md) and of README.md runs, so an example that
drifts from the code fails the tests; and every docs page is in the site's nav.

The blocks of one page run in order in one fresh Python process (a later block may use names
from an earlier one), with fake provider keys, the provider base URLs pointing at the fake
provider, and ``REDIS_URL``/``REDIS_HOST``/``REDIS_PORT`` pointing at a private Redis. A block
preceded by the line ``<!-- docs: no-run -->`` is skipped. Code is compiled under the page's
path with its real line numbers, so a traceback points into the Markdown file.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from llmstash.testing import FakeProvider
from tests._fixtures_redis import RedisServer

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
NO_RUN = "<!-- docs: no-run -->"
PAGE_TIMEOUT = 50.0
"""Seconds the blocks of one page may take together."""

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`]*)$")
_PROVIDER_ENV = ("OPENAI_", "ANTHROPIC_", "AZURE_", "REDIS_", "LLMSTASH_")


@dataclasses.dataclass(frozen=True)
class Block:
    """One fenced code block: its page, the line of its first code line (1-based), its code
    (dedented to the fence) and whether it is marked not to run."""

    page: Path
    line: int
    code: str
    run: bool


def python_blocks(path: Path) -> list[Block]:
    """The ```python blocks of a Markdown file, in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        lang = opening["info"].strip().split(" ")[0].lower() if opening["info"].strip() else ""
        start = i + 1
        end = start
        closing = re.compile(rf"^{re.escape(indent)}{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        while end < len(lines) and not closing.match(lines[end]):
            end += 1
        if lang == "python":
            body = [
                ln[len(indent) :] if ln.startswith(indent) else ln.lstrip()
                for ln in lines[start:end]
            ]
            before = next((ln.strip() for ln in reversed(lines[:i]) if ln.strip()), "")
            blocks.append(Block(path, start + 1, "\n".join(body) + "\n", before != NO_RUN))
        i = end + 1
    return blocks


def doc_pages() -> list[Path]:
    """Every Markdown page of the site."""
    return sorted(DOCS.rglob("*.md"))


def _pages_with_examples() -> list[Path]:
    return [p for p in [*doc_pages(), ROOT / "README.md"] if any(b.run for b in python_blocks(p))]


RUNNER = r"""
import json, sys, traceback
ns = {"__name__": "__main__"}
for block in json.load(sys.stdin):
    code = "\n" * (block["line"] - 1) + block["code"]
    try:
        exec(compile(code, block["path"], "exec"), ns)
    except SystemExit as exc:
        if exc.code in (None, 0):
            continue
        traceback.print_exc()
        print("DOCS-EXAMPLE-FAILED " + block["where"], file=sys.stderr, flush=True)
        sys.exit(1)
    except BaseException:
        traceback.print_exc()
        print("DOCS-EXAMPLE-FAILED " + block["where"], file=sys.stderr, flush=True)
        sys.exit(1)
"""


def example_env(provider: FakeProvider, redis: RedisServer) -> dict[str, str]:
    """The environment the examples run in: no real credentials or endpoints from outside."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_PROVIDER_ENV)}
    env.update(
        OPENAI_API_KEY="sk-docs-example-key",
        ANTHROPIC_API_KEY="sk-ant-docs-example-key",
        AZURE_API_KEY="docs-example-azure-key",
        OPENAI_API_BASE=provider.openai_base,
        OPENAI_BASE_URL=provider.openai_base,  # what the official openai client reads
        ANTHROPIC_API_BASE=provider.anthropic_base,
        ANTHROPIC_BASE_URL=provider.anthropic_base,  # what the official anthropic client reads
        AZURE_API_BASE=provider.azure_base,
        REDIS_URL=redis.url,
        REDIS_HOST=redis.host,
        REDIS_PORT=str(redis.port),
    )
    return env


def run_page(page: Path, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the runnable blocks of ``page`` in order in one fresh interpreter."""
    where = page.relative_to(ROOT) if page.is_relative_to(ROOT) else page
    payload = [
        {"path": str(b.page), "line": b.line, "code": b.code, "where": f"{where}:{b.line}"}
        for b in python_blocks(page)
        if b.run
    ]
    return subprocess.run(
        [sys.executable, "-c", RUNNER],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=PAGE_TIMEOUT,
        check=False,
    )


def failure_report(page: Path, result: subprocess.CompletedProcess[str]) -> str:
    failed = re.search(r"^DOCS-EXAMPLE-FAILED (.+)$", result.stderr, re.MULTILINE)
    where = failed.group(1) if failed else f"{page} (exit code {result.returncode})"
    return (
        f"the example at {where} failed:\n{result.stderr[-6000:]}\n"
        f"--- stdout ---\n{result.stdout[-2000:]}"
    )


@pytest.mark.redis
@pytest.mark.parametrize("page", _pages_with_examples(), ids=lambda p: str(p.relative_to(ROOT)))
def test_examples_run(
    page: Path, provider: FakeProvider, private_redis: RedisServer, tmp_path: Path
) -> None:
    result = run_page(page, example_env(provider, private_redis), tmp_path)
    if result.returncode != 0:
        pytest.fail(failure_report(page, result), pytrace=False)


def test_a_failing_example_names_its_page_and_line(
    provider: FakeProvider, private_redis: RedisServer, tmp_path: Path
) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# A page\n\n```python\nx = 1\n```\n\n"
        "<!-- docs: no-run -->\n```python\nraise OSError\n```\n"
        "\n```python\nassert x == 1\nassert x == 2, 'drifted'\n```\n",
        encoding="utf-8",
    )
    result = run_page(page, example_env(provider, private_redis), tmp_path)
    assert result.returncode == 1
    assert f"DOCS-EXAMPLE-FAILED {page}:13" in result.stderr
    assert f'File "{page}", line 14' in result.stderr  # the traceback points into the page
    assert "drifted" in result.stderr and "OSError" not in result.stderr


def test_blocks_are_found_with_their_lines_and_markers(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "```console\n$ make docs\n```\n"  # not Python
        "````markdown\n```python\nnot_run()\n```\n````\n"  # a fence inside another
        "<!-- docs: no-run -->\n\n```python\nskipped()\n```\n"
        "!!! note\n    ```python\n    if True:\n        indented()\n    ```\n",
        encoding="utf-8",
    )
    blocks = python_blocks(page)
    assert [(b.line, b.code, b.run) for b in blocks] == [
        (12, "skipped()\n", False),
        (16, "if True:\n    indented()\n", True),
    ]


def _nav_pages(nav: object) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [p for item in nav for p in _nav_pages(item)]
    if isinstance(nav, dict):
        return [p for value in nav.values() for p in _nav_pages(value)]
    return []


def test_every_page_is_in_the_nav_and_every_nav_entry_exists() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    in_nav = [p for p in _nav_pages(config["nav"]) if not p.startswith(("http://", "https://"))]
    pages = {p.relative_to(DOCS).as_posix() for p in doc_pages()}
    assert sorted(pages - set(in_nav)) == [], "docs pages missing from the nav in mkdocs.yml"
    assert sorted(set(in_nav) - pages) == [], "nav entries without a page"
    assert len(in_nav) == len(set(in_nav)), "a page is in the nav twice"
