"""A real second Python process for tests whose claim is about other processes: it runs a
script, takes lines on stdin and answers JSON lines, every wait bounded."""

from __future__ import annotations

import asyncio
import json
import queue
import subprocess
import sys
import threading
from typing import Any

import pytest

CHILD_TIMEOUT = 30.0
"""Seconds any wait on a child may take before the test fails."""


class Child:
    """A Python process running ``script``; lines of its stdout, read by a thread, arrive as
    JSON values with a bound on the wait."""

    def __init__(self, script: str, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", script, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    async def areceive(self, timeout: float = CHILD_TIMEOUT) -> Any:
        """:meth:`receive` without blocking the event loop."""
        return await asyncio.to_thread(self.receive, timeout)

    def receive(self, timeout: float = CHILD_TIMEOUT) -> Any:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            self.kill()
            pytest.fail(f"the child said nothing for {timeout} s")
        if line is None:
            stderr = self.process.stderr.read() if self.process.stderr else ""
            code = self.process.wait()
            self.kill()
            pytest.fail(f"the child ended early ({code}):\n{stderr}")
        return json.loads(line)

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def finish(self) -> str:
        """Wait for the child to end (it must succeed); its stderr."""
        try:
            self.process.wait(CHILD_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail("the child did not end")
        stderr = self.process.stderr.read() if self.process.stderr else ""
        assert self.process.returncode == 0, stderr
        return stderr

    def kill(self) -> None:
        """End the process if it still runs, and close its pipes."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self._reader.join(5)
        for pipe in (self.process.stdin, self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()
