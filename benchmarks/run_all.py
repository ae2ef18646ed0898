"""Run every benchmark and report: ``python benchmarks/run_all.py [--quick] [--no-litellm]``.

Starts its own fake provider (two processes: no added latency, and 50 ms for the single-flight
workload) and a private ``redis-server`` on a free loopback port, runs each suite in a fresh
worker process (llmstash with its raw floors, memory per entry, LiteLLM when importable),
measures import times in fresh interpreters, then prints a table and writes
``benchmarks/RESULTS.md`` and ``benchmarks/results.png``. Everything it starts is stopped at
the end. Numbers are reported, never asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import API_KEY, CHAT_MODEL, Config, Iterations, messages  # noqa: E402
from _report import build_rows, chart, markdown_table, text_table  # noqa: E402
from _services import FakeProviderProcess, RedisProcess, bench_env  # noqa: E402

OUT_DIR = HERE / ".out"  # raw JSON and worker logs; ignored by git
WORKER_TIMEOUT = 900  # seconds; a stuck worker is killed and its suite reported missing


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def run_worker(suite: str, cfg: Config) -> dict[str, Any] | None:
    """Run one suite in a fresh interpreter; its result, or None (with the log's tail shown)."""
    cfg_path = OUT_DIR / "config.json"
    cfg_path.write_text(cfg.to_json())
    out_path = OUT_DIR / f"{suite}.json"
    log_path = OUT_DIR / f"{suite}.log"
    out_path.unlink(missing_ok=True)
    print(f"[{suite}] running ...", flush=True)
    load_before = _load()
    t0 = time.monotonic()
    with log_path.open("w") as log:
        try:
            proc = subprocess.run(
                [sys.executable, str(HERE / "_worker.py"), suite, str(cfg_path), str(out_path)],
                stdout=None,  # progress lines go to the terminal
                stderr=log,
                env=bench_env(),
                timeout=WORKER_TIMEOUT,
                check=False,
            )
            code = proc.returncode
        except subprocess.TimeoutExpired:
            code = -1
    took = time.monotonic() - t0
    if code != 0 or not out_path.exists():
        tail = log_path.read_text().strip().splitlines()[-15:]
        print(f"[{suite}] FAILED after {took:.0f}s (exit {code}); last lines of its log:")
        print("\n".join("    " + line for line in tail))
        return None
    print(f"[{suite}] done in {took:.0f}s", flush=True)
    result = dict(json.loads(out_path.read_text()))
    result["load"] = (load_before, _load(), took)
    return result


def _load() -> float | None:
    """The 1-minute load average (other processes competing for the CPUs), where known."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


_IMPORT_CODE = (
    "import sys, time\n"
    "{prelude}"
    "t = time.perf_counter()\n"
    "import {mods}\n"
    "d = time.perf_counter() - t\n"
    "print(d, 'redis' in sys.modules)\n"
)


# httpx imports its command-line module (click, pygments, rich: ~25 ms) when click is
# installed, as it is beside LiteLLM. This prelude hides click, as in a venv without it.
NO_CLICK = "sys.modules['click'] = None\n"


def _python(code: str) -> str:
    """What ``code`` prints, run in a fresh interpreter (bytecode written)."""
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=bench_env(write_bytecode=True),
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"a benchmark script failed: {proc.stderr.strip()[-400:]}")
    return proc.stdout


def import_times(
    mods: str, runs: int, *, warm: bool = True, prelude: str = ""
) -> tuple[list[float], bool]:
    """Seconds to import ``mods`` in ``runs`` fresh interpreters (after one unmeasured run that
    writes any missing bytecode, unless ``warm`` is false), and whether ``redis`` was loaded."""
    samples: list[float] = []
    redis_loaded = False
    skip = 1 if warm else 0
    for k in range(runs + skip):
        seconds, loaded = _python(_IMPORT_CODE.format(mods=mods, prelude=prelude)).split()
        redis_loaded = loaded == "True"
        if k >= skip:
            samples.append(float(seconds))
    return samples, redis_loaded


def _time_summary(seconds: list[float]) -> dict[str, float]:
    us = sorted(s * 1e6 for s in seconds)
    p95 = us[max(0, -(-95 * len(us) // 100) - 1)]
    return {"n": len(us), "median_us": statistics.median(us), "p95_us": p95, "min_us": us[0]}


def bench_imports(it: Iterations, with_litellm: bool) -> dict[str, dict[str, Any]]:
    print("[imports] running ...", flush=True)
    ours: list[float] = []
    base: list[float] = []
    with_asyncio: list[float] = []
    lazy = True
    import_times("llmstash", 0)  # one unmeasured run each: bytecode written, files cached
    import_times("httpx, anyio", 0)
    for _ in range(it.imports):  # alternate, so drift hits all alike
        s, loaded = import_times("llmstash", 1, warm=False)
        ours += s
        lazy = lazy and not loaded
        base += import_times("httpx, anyio", 1, warm=False)[0]
        with_asyncio += import_times("asyncio, httpx, anyio", 1, warm=False)[0]
    clean_ours: list[float] = []
    clean_base: list[float] = []
    for _ in range(it.imports):
        clean_ours += import_times("llmstash", 1, warm=False, prelude=NO_CLICK)[0]
        clean_base += import_times("httpx, anyio", 1, warm=False, prelude=NO_CLICK)[0]
    out: dict[str, dict[str, Any]] = {
        "import": {
            "llmstash": _time_summary(ours),
            "floor": _time_summary(base),
            "with_asyncio": _time_summary(with_asyncio),
            "no_click": _time_summary(clean_ours),
            "no_click_floor": _time_summary(clean_base),
        },
        "import_lazy": {"llmstash": {"kind": "flag", "value": lazy}},
    }
    if with_litellm:
        try:
            lit, _ = import_times("litellm", it.litellm_imports)
            out["import"]["litellm"] = _time_summary(lit)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            print(f"[imports] LiteLLM import failed: {exc}")
    print("[imports] done", flush=True)
    return out


# A fresh process that imports llmstash, makes a Redis cache and serves its first call from it,
# against one that imports httpx and anyio and reads the same answer with a raw RESP GET.
_FIRST_HIT_CODE = """
import sys, time
t = time.perf_counter()
import asyncio, llmstash
from llmstash.caching import Cache
llmstash.cache = Cache(type="redis", host={host!r}, port={port}, namespace="bench-first")
r = asyncio.run(llmstash.acompletion(
    model={model!r}, messages={messages!r}, api_base={base!r}, api_key={key!r}))
d = time.perf_counter() - t
assert r._hidden_params["cache_hit"] is {hit}, r._hidden_params
print(d)
"""
_FIRST_GET_CODE = """
import time
t = time.perf_counter()
import asyncio, json, httpx, anyio

async def get():
    reader, writer = await asyncio.open_connection({host!r}, {port})
    key = b"bench:first:floor"
    writer.write(b"*2\\r\\n$3\\r\\nGET\\r\\n$%d\\r\\n%s\\r\\n" % (len(key), key))
    size = int((await reader.readline())[1:])
    value = await reader.readexactly(size + 2)
    writer.close()
    await writer.wait_closed()
    return json.loads(value[:-2])

assert asyncio.run(get())["choices"]
print(time.perf_counter() - t)
"""


def _run_code(code: str) -> float:
    """The seconds a script prints last."""
    return float(_python(code).split()[-1])


def bench_first_hit(it: Iterations, cfg: Config, provider_json: bytes) -> dict[str, dict[str, Any]]:
    """Fresh process: import + ``Cache(type="redis")`` + the first call, a hit (DESIGN §3)."""
    print("[first hit] running ...", flush=True)
    assert cfg.redis_host is not None and cfg.redis_port is not None
    import redis as redis_sync

    with redis_sync.Redis(host=cfg.redis_host, port=cfg.redis_port) as client:
        client.set("bench:first:floor", provider_json)
    fields = {
        "host": cfg.redis_host,
        "port": cfg.redis_port,
        "model": CHAT_MODEL,
        "messages": messages("first hit"),
        "base": cfg.url + "/v1",
        "key": API_KEY,
    }
    _run_code(_FIRST_HIT_CODE.format(**fields, hit=False))  # the miss that stores the entry
    _run_code(_FIRST_GET_CODE.format(**fields))  # bytecode written, files cached
    ours: list[float] = []
    base: list[float] = []
    for _ in range(it.imports):
        ours.append(_run_code(_FIRST_HIT_CODE.format(**fields, hit=True)))
        base.append(_run_code(_FIRST_GET_CODE.format(**fields)))
    print("[first hit] done", flush=True)
    return {"first_hit": {"llmstash": _time_summary(ours), "floor": _time_summary(base)}}


def _provider_json(url: str) -> bytes:
    """The fake provider's answer to the first-hit question, as the floor stores it."""
    import httpx

    reply = httpx.post(
        url + "/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": messages("first hit")},
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=30,
    )
    reply.raise_for_status()
    return reply.content


def merge(into: dict[str, dict[str, Any]], part: dict[str, dict[str, Any]]) -> None:
    for wid, fields in part.items():
        into.setdefault(wid, {}).update(fields)


def machine_lines(redis_version: str, litellm_version: str | None) -> list[str]:
    try:
        cpu = (
            next(
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            )
            if Path("/proc/cpuinfo").exists()
            else platform.processor()
        )
    except StopIteration:
        cpu = platform.processor() or "unknown"
    packages = ["llmstash", "httpx", "anyio", "msgspec", "redis", "hiredis"]
    versions = ", ".join(f"{p} {_package_version(p)}" for p in packages)
    return [
        f"- Machine: {platform.platform()}, {os.cpu_count()} CPUs ({cpu})",
        f"- Python {platform.python_version()} ({platform.python_implementation()})",
        f"- Packages: {versions}",
        f"- LiteLLM: {litellm_version or 'not run'}",
        f"- Redis server: {redis_version or 'not run'} (private, no persistence, loopback)",
    ]


def source_revision() -> str:
    """The llmstash commit measured, and whether its sources had uncommitted changes."""
    root = HERE.parent
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return rev + (" with uncommitted changes under src/" if dirty else "")


def _us(summary: dict[str, Any] | None) -> float | None:
    return None if not summary else summary.get("median_us")


def notes_for(w: dict[str, dict[str, Any]]) -> list[str]:
    """Facts measured beside the numbers that a reader needs to judge them."""
    notes = []
    deltas = []
    for wid, label in (
        ("memory_hit", "in-memory hit"),
        ("redis_hit", "Redis hit"),
        ("miss_off", "miss (cache off)"),
        ("miss_on", "miss (cache on)"),
        ("callbacks_caller", "hit with 3 callbacks vs the same hit without"),
    ):
        ours, floor = _us(w.get(wid, {}).get("llmstash")), _us(w.get(wid, {}).get("floor"))
        if ours is not None and floor is not None:
            deltas.append(f"{label} {ours - floor:+,.0f} µs")
    if deltas:
        notes.append("llmstash's time above its floor (medians): " + "; ".join(deltas) + ".")
    rh = w.get("redis_hit", {})
    raw = _us(rh.get("raw_resp_floor"))
    if raw is not None:
        notes.append(
            f"Redis scale: a GET written as raw RESP on a plain asyncio stream (+ decode) takes "
            f"{raw:,.0f} µs, against {_us(rh.get('floor')):,.0f} µs through redis-py: most of "
            "the 'bare GET' floor is redis-py's own per-command work, not the round trip."
        )
    if "redis_reads_per_hit" in rh:
        lit = rh.get("litellm_redis_reads_per_hit")
        notes.append(
            f"Redis reads per hit (server's command stats over 200 hits): llmstash "
            f"{rh['redis_reads_per_hit']:.2f}"
            + ("" if lit is None else f", LiteLLM {lit:.2f}")
            + (
                " — LiteLLM's 'Redis hit' is then partly or wholly served from its in-process "
                "copy, not a Redis round trip."
                if lit is not None and lit < 0.95
                else "."
            )
        )
    if "entry_bytes" in rh:
        notes.append(
            f"Stored sizes: llmstash's Redis entry {rh['entry_bytes']:,} B (MessagePack); the "
            f"floor's value is the provider's JSON, {rh['floor_value_bytes']:,} B."
        )
    mem = w.get("memory_per_entry", {})
    if mem:
        rss = mem.get("rss_bytes_per_entry")
        notes.append(
            f"Memory per entry: tracemalloc {mem['llmstash']['value']:,.0f} B (the verdict), RSS "
            f"delta {'n/a' if rss is None else f'{rss:,.0f} B'}, bytes the cache counts against "
            f"max_bytes {mem['accounted_bytes_per_entry']:,.0f} B; responses are "
            f"{mem['response_json_bytes']:,} B as JSON."
        )
    for wid in ("concurrent_memory", "concurrent_redis"):
        c = w.get(wid, {})
        if "hits_in_last_round" in c or "litellm_hits_in_last_round" in c:
            hits = c.get("hits_in_last_round", "—")
            lit_hits = c.get("litellm_hits_in_last_round", "—")
            sent = c.get("provider_requests", "—")
            lit_sent = c.get("litellm_provider_requests", "—")
            notes.append(
                f"{wid.replace('_', ' ')}: hits in the last round — llmstash {hits}, LiteLLM "
                f"{lit_hits} of 2,000; provider requests during the rounds — llmstash {sent}, "
                f"LiteLLM {lit_sent}."
            )
    for wid in ("cold_memory", "cold_redis"):
        c = w.get(wid, {})
        if c:
            ours = c.get("llmstash", {})
            lit = c.get("litellm", {})
            el = c.get("elapsed", {})
            lel = c.get("litellm_elapsed", {})
            took = [
                f"{s['median_us'] / 1000:.0f} ms ({who})"
                for who, s in (("llmstash", el), ("LiteLLM", lel))
                if s and s.get("median_us") is not None
            ]
            notes.append(
                f"{wid.replace('_', ' ')} (provider latency 50 ms): requests per round — llmstash "
                f"{ours.get('all', '—')}, LiteLLM {lit.get('all', '—')}; 100 calls took "
                + ", ".join(took)
                + "."
            )
    cb = w.get("callbacks_caller", {})
    if cb.get("litellm_control"):
        notes.append(
            f"LiteLLM's hit with no callbacks after the same 50 ms pause: "
            f"{_us(cb['litellm_control']) / 1000:.2f} ms (its 'caller waits' control)."
        )
    imp = w.get("import", {})
    if imp.get("with_asyncio") and imp.get("llmstash"):
        a, b = _us(imp["llmstash"]), _us(imp["with_asyncio"])
        notes.append(
            f"`import httpx, anyio` does not load asyncio (anyio defers it); `import asyncio, "
            f"httpx, anyio` takes {b / 1000:.0f} ms, and llmstash is {a / b:.2f}× that."
        )
    if imp.get("no_click") and imp.get("no_click_floor"):
        a, b = _us(imp["no_click"]), _us(imp["no_click_floor"])
        notes.append(
            "httpx imports its CLI (click, pygments) when click is installed, as LiteLLM's "
            f"dependencies make it here; with click hidden (as in a venv without LiteLLM): "
            f"llmstash {a / 1000:.0f} ms, httpx + anyio {b / 1000:.0f} ms, {a / b:.2f}×."
        )
    ep = w.get("embed_partial", {})
    if "litellm_provider_requests_per_call" in ep:
        notes.append(
            f"Partial embedding hit: LiteLLM sent {ep['litellm_provider_requests_per_call']:.2f} "
            "provider requests per call."
        )
    cb = w.get("callbacks_done", {})
    notes.extend(
        f"Callbacks ({who.rstrip('_') or 'llmstash'}): {cb[who + 'incomplete_calls']} calls did "
        "not see all three hooks finish within 5 s."
        for who in ("", "litellm_")
        if cb.get(who + "incomplete_calls")
    )
    return notes


def bench_stats_overhead(quick: bool) -> dict[str, Any] | None:
    """The hit paths with cache stats on against ``stats=False`` (DESIGN §3: ≤ 5 % slower),
    from ``stats_overhead.py`` in its own process with its own provider and Redis."""
    out = OUT_DIR / "stats_overhead.json"
    print("[stats on/off] running ...", flush=True)
    command = [sys.executable, str(HERE / "stats_overhead.py"), "--json", str(out)]
    command += ["-n", "1000" if quick else "5000"]
    with open(OUT_DIR / "stats_overhead.log", "w") as log:
        try:
            proc = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, timeout=600)
        except subprocess.TimeoutExpired:
            return None
    if proc.returncode != 0 or not out.exists():
        return None
    print("[stats on/off] done", flush=True)
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations (~1 minute)")
    parser.add_argument("--no-litellm", action="store_true", help="skip LiteLLM's side")
    parser.add_argument(
        "--results", type=Path, default=HERE / "RESULTS.md", help="where to write RESULTS.md"
    )
    parser.add_argument(
        "--chart", type=Path, default=HERE / "results.png", help="where to write the PNG chart"
    )
    args = parser.parse_args()
    it = Iterations.quick() if args.quick else Iterations()
    OUT_DIR.mkdir(exist_ok=True)
    started = time.monotonic()
    when = datetime.datetime.now(datetime.timezone.utc)

    litellm_wanted = not args.no_litellm
    litellm_installed = importlib.util.find_spec("litellm") is not None
    run_litellm = litellm_wanted and litellm_installed
    workloads: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    loads: list[tuple[str, float | None, float | None, float]] = []
    litellm_version: str | None = None
    redis_version = ""

    with contextlib.ExitStack() as stack:
        fake = stack.enter_context(FakeProviderProcess(latency_ms=0))
        slow = stack.enter_context(FakeProviderProcess(latency_ms=50))
        redis = None
        if RedisProcess.available():
            redis = stack.enter_context(RedisProcess())
            redis_version = redis.version
        else:
            notes.append("redis-server is not on PATH: the Redis workloads were skipped.")
        print(
            f"fake provider: {fake.url} (0 ms), {slow.url} (50 ms); "
            f"redis: {f'port {redis.port}' if redis else 'none'}",
            flush=True,
        )
        cfg = Config(
            url=fake.url,
            slow_url=slow.url,
            redis_host=redis.host if redis else None,
            redis_port=redis.port if redis else None,
            iterations=it,
        )
        for suite in ("llmstash", "memory"):
            part = run_worker(suite, cfg)
            if part is None:
                notes.append(f"The {suite} suite failed; see benchmarks/.out/{suite}.log.")
                continue
            merge(workloads, part["workloads"])
            notes += part["notes"]
            loads.append((suite, *part["load"]))
        if run_litellm:
            part = run_worker("litellm", cfg)
            if part is None:
                run_litellm = False
                notes.append("LiteLLM's suite failed; see benchmarks/.out/litellm.log.")
            else:
                litellm_version = part.get("version")
                loads.append(("litellm", *part["load"]))
                for wid, fields in part["workloads"].items():
                    renamed = {
                        (k if k == "litellm" else f"litellm_{k}"): v for k, v in fields.items()
                    }
                    merge(workloads, {wid: renamed})
                notes += part["notes"]
        elif litellm_wanted:
            notes.append(
                "LiteLLM is not installed (`pip install -e '.[bench]'` failed or was skipped): "
                "its columns are empty and targets relative to it use DESIGN's reference figures."
            )
        else:
            notes.append("Run with --no-litellm: LiteLLM's columns are empty.")
        if redis is not None:
            merge(workloads, bench_first_hit(it, cfg, _provider_json(fake.url)))
    merge(workloads, bench_imports(it, run_litellm))
    stats_part = bench_stats_overhead(args.quick)
    if stats_part is None:
        notes.append("The stats on/off suite failed; see benchmarks/.out/stats_overhead.log.")
    else:
        merge(workloads, stats_part)

    rows = build_rows(workloads, run_litellm)
    print()
    print(text_table(rows))
    passed = sum(r.verdict == "PASS" for r in rows)
    judged = sum(r.verdict is not None for r in rows)
    print(f"\n{passed} of {judged} targets met.")
    all_notes = notes_for(workloads) + notes
    if any(b is not None for _, b, _, _ in loads):
        all_notes.append(
            "1-minute load average before → after each suite (2 CPUs; above ~1 means other "
            "processes were competing for them): "
            + "; ".join(
                f"{suite} {b:.2f} → {a:.2f} ({took:.0f} s)"
                for suite, b, a, took in loads
                if b is not None and a is not None
            )
            + "."
        )
    for note in all_notes:
        print(f"- {note}")

    (OUT_DIR / "results.json").write_text(json.dumps(workloads, indent=1))
    elapsed = time.monotonic() - started
    title = (
        f"llmstash vs LiteLLM {litellm_version} vs raw floor — {platform.system()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}"
        if litellm_version
        else f"llmstash vs raw floor — {platform.system()}, {os.cpu_count()} CPUs"
    )
    chart_written = False
    try:
        chart(rows, args.chart, title)
        chart_written = True
    except ImportError:
        print("matplotlib is not installed: no chart written")
    write_results(
        args.results,
        rows,
        all_notes,
        when,
        elapsed,
        args,
        redis_version,
        litellm_version,
        chart_written,
        passed,
        judged,
    )
    print(f"\nwrote {args.results.name}" + (f" and {args.chart.name}" if chart_written else ""))
    print(f"total time {elapsed:.0f}s")
    return 0


def write_results(
    path: Path,
    rows: list[Any],
    notes: list[str],
    when: datetime.datetime,
    elapsed: float,
    args: argparse.Namespace,
    redis_version: str,
    litellm_version: str | None,
    chart_written: bool,
    passed: int,
    judged: int,
) -> None:
    mode = "quick" if args.quick else "full"
    lines = [
        "# Benchmark results",
        "",
        "Generated by `make bench` (`python benchmarks/run_all.py`"
        + (" --quick" if args.quick else "")
        + (" --no-litellm" if args.no_litellm else "")
        + "); every run overwrites this file. Numbers are measured, never asserted in tests.",
        "",
        "<!-- --8<-- [start:results] -->",  # docs/performance.md includes from here
        f"- Date: {when.strftime('%Y-%m-%d %H:%M UTC')} ({mode} run, {elapsed:.0f} s)",
        f"- llmstash source: commit {source_revision()}",
        *machine_lines(redis_version, litellm_version),
        "",
        f"**{passed} of {judged} targets met** (verdicts compare medians).",
        "",
        markdown_table(rows),
        "",
        "## Notes from this run",
        "",
        *[f"- {n}" for n in notes],
        "",
        "## Method",
        "",
        "- The fake provider (`python -m llmstash.testing`, a threaded HTTP/1.1 server) runs in "
        "its own process, answers at once (a second instance adds 50 ms, for the single-flight "
        "workload); Redis is a private `redis-server` on a free loopback port with persistence "
        "off. Both are started and stopped by the run.",
        "- Each suite (llmstash with its floors, memory per entry, LiteLLM) runs in a fresh "
        "interpreter. Timings are `time.perf_counter_ns()` around each awaited call, after "
        "warm-up calls; p95 is nearest-rank. Rates are 2,000 calls gathered at once, median "
        "(and worst) over several rounds.",
        "- llmstash and its floor are timed in alternating blocks, so drift affects both alike. "
        "LiteLLM runs later in its own process, so its ratios carry run-to-run drift.",
        "- Chat requests carry a ~950-character question; the fake provider echoes it, so each "
        "answer is ~1.3 KB of JSON. Misses with the cache on use a new question per call.",
        "- Embedding requests: 16 inputs, `dimensions=1536` (llmstash asks for base64 by "
        "default; LiteLLM goes through the OpenAI SDK).",
        "- Callbacks: three `CustomLogger` subclasses whose `async_log_success_event` sleeps 50 "
        "ms; 'caller waits' is the time of `await acompletion(...)` on a hit, 'all done' is the "
        "last hook's end minus the call's start.",
        "- Memory per entry: tracemalloc's traced-memory growth after filling `Cache()` with "
        "10,000 distinct `mock_response` answers of ~1 KB text (no network), divided by 10,000.",
        "- Import time: `import X` timed inside fresh interpreters, alternating llmstash and "
        "`httpx, anyio`; LiteLLM with `LITELLM_LOCAL_MODEL_COST_MAP=True` (no network fetch).",
        "",
        "## Limits of this method",
        "",
        "- One small shared machine: the client, the fake provider and Redis share 2 CPUs, and "
        "run-to-run swings of 1.5-2× in absolute times (LiteLLM's included) are common. Verdicts "
        "against a floor are steadier (same process, alternating blocks) than verdicts against "
        "LiteLLM (another process, another minute) or absolute ones (200 µs, 1.5 KiB).",
        "- The fake provider is a threaded Python server: its ~1-2 ms per request dominates the "
        "miss floor, so the miss ratios dilute llmstash's own overhead (see the µs above the "
        "floor in the notes); against a faster server the same overhead is a larger ratio.",
        "- Hits are timed back to back, with warm CPU caches. After an idle pause the same hit "
        "is several times slower (the callbacks control shows it), so sporadic traffic sees "
        "more than these medians.",
        "- The Redis floor goes through redis-py, whose own per-command work is most of it; the "
        "raw-RESP figure in the notes is the round trip itself.",
        "- Import ratios depend on what else is installed (httpx loads its CLI when click is "
        "present) and on bytecode being cached; see the notes.",
        "",
        "<!-- --8<-- [end:results] -->",  # ... to here
    ]
    if chart_written:
        lines += ["", "![llmstash vs LiteLLM vs floor](results.png)"]
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
