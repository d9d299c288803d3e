"""A loopback TCP proxy that tests can break on purpose: cut, black-hole, refuse."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from types import TracebackType

import anyio
from anyio.abc import TaskGroup

__all__ = ["FaultProxy"]

_CHUNK = 65536
_TO_SERVER, _TO_CLIENT = "to_server", "to_client"
_LINGER_RST = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST, not FIN


class _Connection:
    __slots__ = ("abort", "client", "closed", "established", "scope", "upstream")

    def __init__(self, client: socket.socket) -> None:
        self.client = client
        self.upstream: socket.socket | None = None
        self.scope = anyio.CancelScope()
        self.closed = anyio.Event()
        self.established = False
        self.abort = False

    def close(self) -> None:
        for sock in (self.client, self.upstream):
            if sock is None:
                continue
            if self.abort:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
            sock.close()


class FaultProxy:
    """Forwards ``127.0.0.1:<port>`` to ``target_host:target_port``, byte for byte.

    Protocol-agnostic; the test decides when the network misbehaves::

        async with FaultProxy("127.0.0.1", server_port) as proxy:
            client = connect(port=proxy.port)
            await proxy.cut()      # every current connection reset (RST) on both sides
            proxy.pause()          # black hole: bytes are held, not forwarded ...
            proxy.pause(to_server=False)  # ... or only the replies
            proxy.resume()         # ... until resumed (as TCP retransmission would)
            proxy.refuse(True)     # new connections are accepted and reset at once

    Every task lives in a task group owned by the ``async with`` block; leaving it closes
    the listener and every connection. It is built on the asyncio event loop's socket calls.
    """

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        listen_host: str = "127.0.0.1",
        connect_timeout: float = 10.0,
    ) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self._listen_host = listen_host
        self._connect_timeout = connect_timeout
        self._listener: socket.socket | None = None
        self._tg: TaskGroup | None = None
        self._conns: set[_Connection] = set()
        self._paused: set[str] = set()
        self._resumed: anyio.Event | None = None
        self._changed: anyio.Event | None = None
        self._refusing = False
        self.accepted = 0
        """Connections accepted so far (including refused ones)."""

    # -- control ----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._listener is None:
            raise RuntimeError("FaultProxy is not running; use it with 'async with'")
        return int(self._listener.getsockname()[1])

    @property
    def active(self) -> int:
        """Connections currently forwarded (upstream connected)."""
        return sum(1 for c in self._conns if c.established)

    async def cut(self) -> int:
        """Reset every current connection on both sides; return how many were cut.

        Returns once their sockets are closed. New connections are still accepted.
        """
        conns = list(self._conns)
        for conn in conns:
            conn.abort = True
            conn.scope.cancel()
        for conn in conns:
            await conn.closed.wait()
        return len(conns)

    def pause(self, *, to_server: bool = True, to_client: bool = True) -> None:
        """Stop forwarding bytes, on every connection; hold them until resumed.

        With ``to_server=False`` requests still arrive but replies are held: the client cannot
        tell whether its request took effect (an unknown outcome, when followed by a cut).
        New connections are not forwarded while ``to_server`` is paused.
        """
        if not self._paused:
            self._resumed = anyio.Event()
        self._paused.update(d for d, on in [(_TO_SERVER, to_server), (_TO_CLIENT, to_client)] if on)

    def resume(self) -> None:
        """Forward again in both directions, held bytes first."""
        self._paused.clear()
        if self._resumed is not None:
            self._resumed.set()
            self._resumed = None

    def refuse(self, refuse: bool = True) -> None:
        """While on, each new connection is accepted and reset at once. Current ones live on."""
        self._refusing = refuse

    async def wait_connections(self, n: int = 1) -> None:
        """Wait until at least ``n`` connections are being forwarded."""
        while self.active < n:
            if self._changed is None:
                self._changed = anyio.Event()
            await self._changed.wait()

    # -- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> FaultProxy:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((self._listen_host, 0))
            listener.listen(128)
            listener.setblocking(False)
        except BaseException:
            listener.close()
            raise
        self._listener = listener
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self._accept_loop, listener)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._tg is not None
        assert self._listener is not None
        self._tg.cancel_scope.cancel()
        self.resume()
        try:
            return await self._tg.__aexit__(exc_type, exc, tb)
        finally:
            self._listener.close()
            self._listener = None
            self._tg = None

    # -- internals --------------------------------------------------------------------------

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    async def _wait_resumed(self, direction: str) -> None:
        while direction in self._paused:
            assert self._resumed is not None
            await self._resumed.wait()

    async def _accept_loop(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        assert self._tg is not None
        while True:
            client, _ = await loop.sock_accept(listener)
            self.accepted += 1
            client.setblocking(False)
            self._tg.start_soon(self._serve, _Connection(client))

    async def _serve(self, conn: _Connection) -> None:
        loop = asyncio.get_running_loop()
        self._conns.add(conn)
        try:
            with conn.scope:
                if self._refusing:
                    conn.abort = True
                    return
                await self._wait_resumed(_TO_SERVER)
                with anyio.fail_after(self._connect_timeout):
                    infos = await anyio.getaddrinfo(
                        self.target_host, self.target_port, type=socket.SOCK_STREAM
                    )
                    family, _, _, _, addr = infos[0]
                    conn.upstream = socket.socket(family, socket.SOCK_STREAM)
                    conn.upstream.setblocking(False)
                    await loop.sock_connect(conn.upstream, addr)
                conn.upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conn.client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conn.established = True
                self._notify()
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._pump, conn, conn.client, conn.upstream, _TO_SERVER)
                    tg.start_soon(self._pump, conn, conn.upstream, conn.client, _TO_CLIENT)
        except (OSError, TimeoutError):
            conn.abort = True  # target unreachable: the client sees a reset
        finally:
            self._conns.discard(conn)
            conn.close()
            conn.closed.set()

    async def _pump(
        self, conn: _Connection, src: socket.socket, dst: socket.socket, direction: str
    ) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                data = await loop.sock_recv(src, _CHUNK)
                if not data:  # orderly EOF: pass the half-close on
                    dst.shutdown(socket.SHUT_WR)
                    return
                await self._wait_resumed(direction)
                await loop.sock_sendall(dst, data)
        except OSError:  # a reset on one side becomes a reset on the other
            conn.abort = True
            conn.scope.cancel()
