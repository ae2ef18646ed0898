"""Redis fixtures: one server the session's tests share (a private one started for the session,
or the server named by ``--redis-url``), and private servers, a cluster and a Sentinel started for
the tests. A Redis that cannot be reached fails the test, never skips it.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

HOST = "127.0.0.1"
START_TIMEOUT = 10.0
CLUSTER_TIMEOUT = 30.0
SENTINEL_SERVICE = "mymaster"
SENTINEL_MASTER_PASSWORD = "master-secret"
SENTINEL_PASSWORD = "sentinel-secret"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--redis-url",
        default=None,
        help=(
            "a Redis server for the tests to share (they use unique key prefixes); by default "
            "a private redis-server started for the session, so nothing is left behind"
        ),
    )


FAIL_FAST: dict[str, Any] = {"socket_timeout": 2, "retry": Retry(NoBackoff(), 0)}
"""Client options for setting up and checking servers: fail fast, never retry."""


def sync_client(port: int, **kwargs: Any) -> redis.Redis:
    """A synchronous client of a private server, with :data:`FAIL_FAST` options."""
    return redis.Redis(host=HOST, port=port, **FAIL_FAST, **kwargs)


def _answers(port: int) -> bool:
    # Any reply to PING, even "-NOAUTH", means the server is up.
    try:
        with socket.create_connection((HOST, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64)[:1] in (b"+", b"-")
    except OSError:
        return False


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 3.0) -> None:
    """Poll ``check`` until it returns true; fail the test after ``within`` seconds."""
    with anyio.fail_after(within):
        while True:
            if await check():
                return
            await anyio.sleep(0.01)


class RedisServer:
    """A private ``redis-server`` on a loopback port, with its own temporary directory.

    ``args`` are extra command-line options; ``config`` is the text of a configuration file
    written to the directory and passed first (a Sentinel needs one it can rewrite). ``start()``
    returns once the server answers PING, ``stop()`` kills it and removes the directory,
    ``restart()`` kills and starts it again on the same port and directory.
    """

    def __init__(self, port: int, *args: str, config: str | None = None) -> None:
        self.host = HOST
        self.port = port
        self.args = args
        self.config = config
        self.directory: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self) -> RedisServer:
        if self.directory is None:
            self.directory = Path(tempfile.mkdtemp(prefix=f"llmstash-redis-{self.port}-"))
        command = ["redis-server"]
        conf = self.directory / "redis.conf"
        if self.config is not None:
            if not conf.exists():
                conf.write_text(self.config)
            command.append(str(conf))
        command += ["--port", str(self.port), "--bind", HOST, "--save", "", "--appendonly", "no"]
        command += ["--dir", str(self.directory), *self.args]
        with open(self.directory / "server.log", "ab") as log:
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while not _answers(self.port):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self._kill()
                raise RuntimeError(f"redis-server on port {self.port} did not start:\n{self.log()}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._kill()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def restart(self) -> None:
        self._kill()
        self.start()

    def log(self) -> str:
        """The tail of the server's output, for error messages."""
        if self.directory is None or not (self.directory / "server.log").exists():
            return ""
        return (self.directory / "server.log").read_text(errors="replace")[-2000:]

    def _kill(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> RedisServer:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@dataclass(frozen=True)
class ClusterServers:
    """A running private Redis Cluster of primaries only."""

    servers: list[RedisServer]

    @property
    def startup_nodes(self) -> list[dict[str, Any]]:
        return [{"host": s.host, "port": s.port} for s in self.servers]


@dataclass(frozen=True)
class SentinelServers:
    """A password-protected master watched by one password-protected Sentinel."""

    master: RedisServer
    sentinel: RedisServer
    service_name: str = SENTINEL_SERVICE
    password: str = SENTINEL_MASTER_PASSWORD
    sentinel_password: str = SENTINEL_PASSWORD

    @property
    def sentinel_nodes(self) -> list[tuple[str, int]]:
        return [(self.sentinel.host, self.sentinel.port)]


@pytest.fixture(scope="session")
def redis_url(
    request: pytest.FixtureRequest, free_tcp_port_factory: Callable[[], int]
) -> Iterator[str]:
    """The URL of the server the session's tests share, after checking that it answers PING:
    a private server started for the session (entries and fleet counters the tests write are
    gone with it), or the one ``--redis-url`` names."""
    url: str | None = request.config.getoption("--redis-url")
    if url is None:
        with RedisServer(free_tcp_port_factory()) as server:
            yield server.url
        return
    try:
        with redis.Redis.from_url(url, **FAIL_FAST) as client:
            client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis at {url} is unreachable: {type(exc).__name__}: {exc}", pytrace=False)
    yield url


@pytest.fixture
def redis_server_factory(
    free_tcp_port_factory: Callable[[], int],
) -> Iterator[Callable[..., RedisServer]]:
    """Start private servers (``factory(*args)``), all stopped at teardown."""
    with contextlib.ExitStack() as stack:

        def factory(*args: str) -> RedisServer:
            return stack.enter_context(RedisServer(free_tcp_port_factory(), *args))

        yield factory


@pytest.fixture
def private_redis(redis_server_factory: Callable[..., RedisServer]) -> RedisServer:
    """A private server of this test's own, with no password."""
    return redis_server_factory()


@pytest.fixture(scope="session")
def redis_cluster(free_tcp_port_factory: Callable[[], int]) -> Iterator[ClusterServers]:
    """A private cluster of three primaries (no replicas), started once per test run."""
    with contextlib.ExitStack() as stack:
        servers = [
            stack.enter_context(
                RedisServer(
                    free_tcp_port_factory(),
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-port",
                    str(free_tcp_port_factory()),
                    "--cluster-node-timeout",
                    "5000",
                )
            )
            for _ in range(3)
        ]
        create = subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"{s.host}:{s.port}" for s in servers)]
            + ["--cluster-replicas", "0", "--cluster-yes"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=CLUSTER_TIMEOUT,
            check=False,
        )
        if create.returncode != 0:
            output = create.stdout.decode(errors="replace")
            raise RuntimeError(f"redis-cli --cluster create failed:\n{output}")
        deadline = time.monotonic() + CLUSTER_TIMEOUT
        for server in servers:
            with sync_client(server.port) as client:
                while True:
                    info = client.execute_command("CLUSTER INFO")
                    if info["cluster_state"] == "ok" and int(info["cluster_known_nodes"]) == 3:
                        break
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"cluster not ready on port {server.port}: {info}")
                    time.sleep(0.05)
        yield ClusterServers(servers)


@pytest.fixture(scope="session")
def redis_sentinel(free_tcp_port_factory: Callable[[], int]) -> Iterator[SentinelServers]:
    """A master and one Sentinel monitoring it as ``mymaster`` (quorum 1), both requiring a
    password; started once per test run."""
    with contextlib.ExitStack() as stack:
        master = stack.enter_context(
            RedisServer(free_tcp_port_factory(), "--requirepass", SENTINEL_MASTER_PASSWORD)
        )
        config = "\n".join(
            [
                f"requirepass {SENTINEL_PASSWORD}",
                f"sentinel monitor {SENTINEL_SERVICE} {HOST} {master.port} 1",
                f"sentinel auth-pass {SENTINEL_SERVICE} {SENTINEL_MASTER_PASSWORD}",
                f"sentinel down-after-milliseconds {SENTINEL_SERVICE} 5000",
                "",
            ]
        )
        sentinel = stack.enter_context(
            RedisServer(free_tcp_port_factory(), "--sentinel", config=config)
        )
        deadline = time.monotonic() + START_TIMEOUT
        with sync_client(sentinel.port, password=SENTINEL_PASSWORD) as client:
            while True:
                state = client.execute_command("SENTINEL MASTER", SENTINEL_SERVICE)
                if state.get("flags") == "master" and state.get("role-reported") == "master":
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Sentinel does not see the master: {state}")
                time.sleep(0.05)
        yield SentinelServers(master, sentinel)
