"""dspy, openai-agents and smolagents on llmstash through ``install_as_litellm()``.

Each framework's scenarios (``_scenarios.py``) run twice, each time in a fresh process of the
frameworks' environment (``make frameworks`` builds ``.venv-frameworks`` with the pinned
versions): under llmstash as ``litellm``, and under the real litellm. Both runs must pass every
scenario, so the scenarios are right about the frameworks; the llmstash run must serve repeated
calls from llmstash's cache where the framework leaves LiteLLM's cache on, and send no body field
the real litellm did not send (nor any argument of llmstash's own table).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from llmstash._params import PARAMS

pytestmark = [pytest.mark.frameworks, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("_scenarios.py")
PYTHON = Path(os.environ.get("LLMSTASH_FRAMEWORKS_PYTHON", ROOT / ".venv-frameworks/bin/python"))

# What each framework's repeated call shows: (scenario, whether llmstash's cache serves it).
# dspy turns LiteLLM's cache off and keeps its own (dspy_own_cache checks that one).
REPEATS = {
    "dspy": [],
    "agents": ["agents_run"],
    "smolagents": ["smolagents_call"],
}
# llmstash asks for the usage of every stream it may store (a replayed stream carries it), so a
# streamed body may carry stream_options where LiteLLM's did not.
STREAM_ADDS = {"stream_options"}


def _run(framework: str, mode: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_"))}
    return subprocess.Popen(
        [str(PYTHON), str(SCRIPT), framework, mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=str(ROOT),
    )


def _result(proc: subprocess.Popen[str], mode: str) -> dict[str, Any]:
    try:
        out, err = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"{mode}: the scenarios did not finish in 240 s\n{err[-3000:]}")
    marker = "@@RESULT@@"
    if marker not in out:
        pytest.fail(f"{mode}: no result (exit {proc.returncode})\n{err[-3000:]}")
    result: dict[str, Any] = json.loads(out.rsplit(marker, 1)[1])
    return result


def _keys(info: dict[str, Any]) -> set[str]:
    return {key for body in info["bodies"] for key in body}


@pytest.mark.parametrize("framework", ["dspy", "agents", "smolagents"])
def test_framework_runs_on_llmstash_as_on_litellm(framework: str) -> None:
    if not PYTHON.exists():
        pytest.fail(f"no frameworks environment at {PYTHON}: run `make frameworks` first")
    procs = {mode: _run(framework, mode) for mode in ("llmstash", "litellm")}
    results = {mode: _result(proc, mode) for mode, proc in procs.items()}
    ours, real = results["llmstash"], results["litellm"]

    failures = [
        f"[{mode}] {name}: {info.get('traceback') or info.get('error')}"
        for mode, result in results.items()
        for name, info in result.items()
        if not info["ok"]
    ]
    assert not failures, "\n".join(failures)
    assert sorted(ours) == sorted(real)
    assert len(ours) >= 3

    for name in REPEATS[framework]:
        first, second = ours[name]["counts"]
        assert first == second, f"{name}: the repeated call reached the provider under llmstash"

    for name, info in ours.items():
        sent = _keys(info)
        ours_only = sent - _keys(real[name])
        if any("stream" in body for body in info["bodies"]):
            ours_only -= STREAM_ADDS
        assert not ours_only, f"{name}: llmstash sent {sorted(ours_only)}, LiteLLM did not"
        # `stream` is the one argument of the table the engine itself puts on the wire.
        assert not sent & (PARAMS.keys() - {"stream"}), f"{name}: SDK arguments were sent"

    if framework == "dspy":
        # The capability answers dspy (and others) ask of litellm are LiteLLM's.
        assert ours["dspy_capabilities"]["models"] == real["dspy_capabilities"]["models"]
        assert (
            ours["dspy_capabilities"]["capabilities"][:3]
            == (real["dspy_capabilities"]["capabilities"][:3])
        )
