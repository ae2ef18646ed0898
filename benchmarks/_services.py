"""The servers a benchmark run talks to, each in its own process and on loopback only.

``FakeProviderProcess`` runs ``python -m llmstash.testing``; ``RedisProcess`` runs a private
``redis-server`` without persistence. Both are context managers that stop what they started.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from types import TracebackType

__all__ = ["FakeProviderProcess", "RedisProcess", "free_port"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes] | subprocess.Popen[str] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


class FakeProviderProcess:
    """``python -m llmstash.testing --port 0 --latency-ms N`` in a separate process.

    ``url`` is the server root (the Azure base); ``openai_base`` adds ``/v1``. The process
    counts requests; :meth:`request_count` reads the count over HTTP.
    """

    def __init__(self, latency_ms: float = 0.0) -> None:
        self.latency_ms = latency_ms
        self.url = ""
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> FakeProviderProcess:
        cmd = [
            sys.executable,
            "-m",
            "llmstash.testing",
            "--port",
            "0",
            "--latency-ms",
            f"{self.latency_ms:g}",
        ]
        self._proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline().strip()
        if not line.startswith("http://"):
            _stop(self._proc)
            raise RuntimeError(f"fake provider did not print its URL (got {line!r})")
        self.url = line
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _stop(self._proc)
        if self._proc is not None and self._proc.stdout is not None:
            self._proc.stdout.close()

    @property
    def openai_base(self) -> str:
        return self.url + "/v1"

    def request_count(self) -> int:
        with urllib.request.urlopen(self.url + "/_fake/stats", timeout=5) as resp:
            return int(json.load(resp)["request_count"])


class RedisProcess:
    """A private ``redis-server`` on a free loopback port, without RDB or AOF persistence."""

    def __init__(self) -> None:
        self.host = "127.0.0.1"
        self.port = 0
        self.version = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    @staticmethod
    def available() -> bool:
        return shutil.which("redis-server") is not None

    def __enter__(self) -> RedisProcess:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is not on PATH")
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False)
        self.version = next(
            (w[2:] for w in out.stdout.split() if w.startswith("v=")), out.stdout.strip()
        )
        self._dir = tempfile.TemporaryDirectory(prefix="llmstash-bench-redis-")
        for _ in range(5):  # a free port can be taken between the probe and the bind
            self.port = free_port()
            self._proc = subprocess.Popen(
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
                    self._dir.name,
                    "--maxclients",
                    "10000",
                    "--loglevel",
                    "warning",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if self._wait_ready():
                return self
            _stop(self._proc)
        self._dir.cleanup()
        raise RuntimeError("could not start a private redis-server")

    def _wait_ready(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                return False
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _stop(self._proc)
        if self._dir is not None:
            self._dir.cleanup()


def bench_env(*, write_bytecode: bool = False) -> dict[str, str]:
    """The environment for worker processes: quiet LiteLLM, no telemetry, no cost-map fetch.

    ``write_bytecode`` drops ``PYTHONDONTWRITEBYTECODE``, so that a warm-up import writes
    ``.pyc`` files and timed imports do not compile sources that changed since install.
    """
    env = dict(os.environ)
    if write_bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(
        {
            "LITELLM_LOG": "ERROR",
            "LITELLM_TELEMETRY": "False",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "LITELLM_DONT_SHOW_FEEDBACK_BOX": "True",
            "PYTHONWARNINGS": "ignore",
        }
    )
    return env
