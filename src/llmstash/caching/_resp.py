"""A lean, pipelined Redis connection for the cache's lookups (GET and MGET).

redis-py spends most of a GET in its own machinery: an asyncio task per write to bound the
drain, retry wrappers, telemetry hooks. A cache hit wants one small write and one read. This
connection writes each command to the socket at once and matches replies to requests in order
(Redis answers a connection's commands in order), so concurrent lookups share one connection,
pipelined, with no lock and no task per command. Replies are parsed by hiredis.

It is used for plain TCP servers only (no TLS, no Unix socket, no Sentinel, no cluster); every
other setup, and every write, goes through redis-py.
"""

from __future__ import annotations

import asyncio
import collections
import socket
from collections.abc import Sequence
from typing import Any

import anyio
import hiredis

from ..exceptions import CacheBackendError

__all__ = ["PipelinedReader"]

_GET_HEAD = b"*2\r\n$3\r\nGET\r\n"
_CONNECT_TIMEOUT = 5.0
"""Seconds opening a connection (with AUTH and SELECT) may take, unless set otherwise."""


def pack(*parts: bytes) -> bytes:
    """One Redis command in RESP."""
    out = [b"*%d\r\n" % len(parts)]
    out.extend(b"$%d\r\n%s\r\n" % (len(part), part) for part in parts)
    return b"".join(out)


class _ConnectionLost(CacheBackendError):
    """The connection broke; a read-only command may be sent again on a new one."""


# A lookup whose budget runs out while replies to earlier commands are still arriving is given
# more time, up to this many budgets: Redis is answering, and replies come in order, so the
# wait is this process's own backlog (a burst of thousands of lookups), not a silent server.
_BACKLOG_BUDGETS = 20


def _expire(
    proto: _Protocol, future: asyncio.Future[Any], budget: float, sent_at: float, rounds: int
) -> None:
    if future.done():
        return
    if proto.open and proto.last_reply > sent_at and rounds < _BACKLOG_BUDGETS:
        proto._loop.call_later(budget, _expire, proto, future, budget, sent_at, rounds + 1)
        return
    future.set_exception(CacheBackendError(f"Timeout: Redis did not answer within {budget:g}s"))
    if proto.last_reply <= sent_at:
        # Nothing at all came back: the connection may be dead without a reset (a NAT or load
        # balancer that dropped it). Give it up; the next lookup opens a new one.
        proto._fail(_ConnectionLost("no reply on this connection; reconnecting"))


class _Protocol(asyncio.Protocol):
    """Writes commands as they come; resolves one waiting future per reply, in order."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._reader = hiredis.Reader()
        self._waiters: collections.deque[asyncio.Future[Any]] = collections.deque()
        self._transport: asyncio.Transport | None = None
        self.open = False
        self.last_reply = 0.0
        """Loop time at which the last reply arrived."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self.open = True

    def data_received(self, data: bytes) -> None:
        self.last_reply = self._loop.time()
        self._reader.feed(data)
        waiters = self._waiters
        try:
            while True:
                reply = self._reader.gets()
                if reply is False:
                    return
                future = waiters.popleft()
                if future.done():  # timed out or cancelled: its reply is dropped in turn
                    continue
                if isinstance(reply, hiredis.ReplyError):
                    future.set_exception(CacheBackendError(f"Redis refused: {reply}"))
                else:
                    future.set_result(reply)
        except (hiredis.ProtocolError, IndexError) as exc:
            self._fail(_ConnectionLost(f"Redis connection out of step: {exc!r}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(_ConnectionLost(f"Redis connection lost: {exc!r}"))

    def _fail(self, error: CacheBackendError) -> None:
        self.open = False
        if self._transport is not None:
            self._transport.close()
        while self._waiters:
            future = self._waiters.popleft()
            if not future.done():
                future.set_exception(error)

    def request(self, data: bytes) -> asyncio.Future[Any]:
        """Send one command; the future gets its reply."""
        future = self._loop.create_future()
        self._waiters.append(future)
        assert self._transport is not None
        self._transport.write(data)
        return future

    def close(self) -> None:
        self.open = False
        if self._transport is not None and not self._loop.is_closed():
            # (A loop that has closed can no longer close its transports; its sockets go with
            # the process.)
            self._transport.close()

    def closing(self) -> bool:
        """True once the transport is shutting down (a write failed, or it was closed)."""
        return self._transport is None or self._transport.is_closing()

    def socket(self) -> socket.socket | None:
        """The connection's socket, for options."""
        if self._transport is None:
            return None
        sock: socket.socket | None = self._transport.get_extra_info("socket")
        return sock


class PipelinedReader:
    """GET and MGET over one pipelined connection, opened on first use and reopened after a
    failure. Belongs to one event loop. ``socket_timeout`` bounds a call given no budget of
    its own, as redis-py's option of that name does."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        username: str | None = None,
        password: str | None = None,
        db: int = 0,
        connect_timeout: float | None = _CONNECT_TIMEOUT,
        socket_timeout: float | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self._username = username
        self._password = password
        self._db = db
        self._connect_timeout = connect_timeout
        self._socket_timeout = socket_timeout
        self._proto: _Protocol | None = None
        self._connecting: asyncio.Task[_Protocol] | None = None

    async def _connection(self, budget: float | None) -> _Protocol:
        """The open connection, or one being opened, waited for up to ``budget`` seconds.

        Opening runs as a task of its own, bounded by the connect timeout rather than by any
        one lookup's budget, so that a Redis a little slower to reach than the budget still
        gets connected for the lookups that follow."""
        proto = self._proto
        if proto is not None and proto.open and not proto.closing():
            return proto
        task = self._connecting
        if task is None:
            task = self._connecting = asyncio.get_running_loop().create_task(self._open())
            task.add_done_callback(self._opened)
        try:
            if budget is None:
                return await asyncio.shield(task)
            return await asyncio.wait_for(asyncio.shield(task), budget)
        except asyncio.TimeoutError:  # the builtin from 3.11 on
            raise CacheBackendError(
                f"Timeout: no connection to Redis at {self._host}:{self._port} within {budget:g}s"
            ) from None

    def _opened(self, task: asyncio.Task[_Protocol]) -> None:
        self._connecting = None
        if task.cancelled():
            return
        if task.exception() is None:
            self._proto = task.result()

    async def _open(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        proto = None
        try:
            with anyio.fail_after(self._connect_timeout):
                _, proto = await loop.create_connection(
                    lambda: _Protocol(loop), self._host, self._port
                )
                sock = proto.socket()
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
                if self._password is not None:
                    auth = [b"AUTH"]
                    if self._username:
                        auth.append(self._username.encode())
                    auth.append(self._password.encode())
                    await proto.request(pack(*auth))
                if self._db:
                    await proto.request(pack(b"SELECT", str(self._db).encode()))
        except BaseException as exc:
            if proto is not None:
                proto.close()
            if isinstance(exc, (OSError, TimeoutError)):
                raise CacheBackendError(
                    f"cannot connect to Redis at {self._host}:{self._port}: {exc!r}"
                ) from exc
            raise
        return proto

    async def _call(self, data: bytes, budget: float | None) -> Any:
        if budget is None:
            budget = self._socket_timeout
        try:
            return await self._send(data, budget)
        except _ConnectionLost:
            # A server that restarted: GET and MGET are safe to send once more, anew.
            return await self._send(data, budget)

    async def _send(self, data: bytes, budget: float | None) -> Any:
        proto = self._proto
        if proto is None or not proto.open or proto.closing():
            proto = await self._connection(budget)
        future = proto.request(data)
        if budget is None:
            return await future
        loop = proto._loop
        handle = loop.call_later(budget, _expire, proto, future, budget, loop.time(), 1)
        try:
            return await future
        finally:
            handle.cancel()

    async def get(self, key: str, budget: float | None = None) -> bytes | None:
        """The value under ``key`` (GET), giving up after ``budget`` seconds."""
        kb = key.encode()
        value: bytes | None = await self._call(_GET_HEAD + b"$%d\r\n%s\r\n" % (len(kb), kb), budget)
        return value

    async def get_many(self, keys: Sequence[str], budget: float | None = None) -> list[Any]:
        """The values under ``keys``, in order (one MGET), giving up after ``budget`` seconds."""
        values: list[Any] = await self._call(pack(b"MGET", *(k.encode() for k in keys)), budget)
        return values

    def close(self) -> None:
        """Close the connection (a later call opens a new one)."""
        if self._connecting is not None:
            self._connecting.cancel()
            self._connecting = None
        if self._proto is not None:
            self._proto.close()
            self._proto = None
