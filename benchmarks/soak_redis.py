"""Soak the Redis cache path under faults: ``python benchmarks/soak_redis.py [--seconds 30]``.

Runs concurrent ``acompletion`` calls (mocked answers, so no provider is involved) over a
fixed set of prompts against a private ``redis-server``, while a chaos task kills Redis,
restarts it on the same port, and freezes it with ``DEBUG SLEEP``. It reports how many calls
raised (the contract says none may), latency percentiles, the hit ratio per phase and how long
caching took to resume after each restart. Bounded in time; stops everything it started.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _services import free_port  # noqa: E402

import llmstash  # noqa: E402
from llmstash.caching import Cache  # noqa: E402


class Server:
    """One private redis-server that can be killed and started again on the same port."""

    def __init__(self, port: int, folder: str) -> None:
        self.port = port
        self.folder = folder
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise SystemExit("redis-server is not on PATH")
        self.proc = subprocess.Popen(
            [
                exe,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.folder,
                "--enable-debug-command",
                "yes",
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock,
            ):
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return
            time.sleep(0.02)
        raise SystemExit("redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)

    def freeze(self, seconds: float) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
            arg = str(seconds).encode()
            sock.sendall(b"*3\r\n$5\r\nDEBUG\r\n$5\r\nSLEEP\r\n$%d\r\n%s\r\n" % (len(arg), arg))


async def soak(seconds: float, workers: int, prompts: int) -> int:
    folder = tempfile.mkdtemp(prefix="llmstash-soak-")
    server = Server(free_port(), folder)
    server.start()
    cache = Cache(type="redis", host="127.0.0.1", port=server.port, breaker_reset=0.5)
    llmstash.cache = cache
    latencies: list[float] = []
    errors: list[BaseException] = []
    events: list[tuple[float, str]] = []
    hits: list[tuple[float, bool]] = []
    answer = "a cached answer " * 40
    stop = time.monotonic() + seconds

    async def worker(n: int) -> None:
        i = n
        while time.monotonic() < stop:
            prompt = f"soak question {i % prompts}"
            i += workers
            t0 = time.perf_counter()
            try:
                r = await llmstash.acompletion(
                    model="gpt-4o-mini",
                    messages=[{"role": "user", "content": prompt}],
                    mock_response=answer,
                )
            except Exception as exc:  # the contract: never, whatever Redis does
                errors.append(exc)
                continue
            latencies.append(time.perf_counter() - t0)
            hits.append((time.monotonic(), bool(r._hidden_params["cache_hit"])))
            if i % 7 == 0:
                await asyncio.sleep(0)

    async def chaos() -> None:
        await asyncio.sleep(seconds * 0.2)
        while time.monotonic() < stop - 3:
            events.append((time.monotonic(), "kill"))
            await asyncio.to_thread(server.kill)
            await asyncio.sleep(1.0)
            await asyncio.to_thread(server.start)
            events.append((time.monotonic(), "restart"))
            await asyncio.sleep(2.0)
            events.append((time.monotonic(), "freeze 0.5 s"))
            await asyncio.to_thread(server.freeze, 0.5)
            await asyncio.sleep(2.0)

    try:
        await asyncio.gather(chaos(), *[worker(n) for n in range(workers)])
    finally:
        with contextlib.suppress(Exception):
            await cache.aclose()
        server.kill()
        shutil.rmtree(folder, ignore_errors=True)

    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1e3

    print(
        f"calls: {len(latencies):,} in {seconds:.0f} s by {workers} workers; raised: {len(errors)}"
    )
    if latencies:
        print(
            f"latency ms: p50 {pct(0.5):.3f}  p99 {pct(0.99):.2f}  p99.9 {pct(0.999):.2f}  "
            f"max {latencies[-1] * 1e3:.1f}"
        )
    ratio = statistics.fmean(h for _, h in hits) if hits else 0.0
    print(f"hit ratio overall: {ratio:.3f}")
    for when, what in events:
        if what == "restart":
            first_hit = next((t for t, h in hits if t > when and h), None)
            resumed = "never" if first_hit is None else f"{(first_hit - when) * 1e3:.0f} ms"
            print(f"  Redis restarted at +{when - events[0][0]:.1f} s: first hit after {resumed}")
    for exc in errors[:5]:
        print(f"  raised: {type(exc).__name__}: {exc}")
    return 1 if errors else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--workers", type=int, default=50)
    parser.add_argument("--prompts", type=int, default=200)
    args = parser.parse_args()
    sys.exit(asyncio.run(soak(args.seconds, args.workers, args.prompts)))


if __name__ == "__main__":
    main()
