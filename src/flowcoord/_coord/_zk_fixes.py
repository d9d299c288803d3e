"""The fixes flowcoord needs inside aiozk's connection layer (aiozk 0.32), all in one place.

flowcoord uses aiozk for the wire protocol (request/response classes, framing, the table of
pending replies) and owns everything above it. :class:`FixedConnection` is aiozk's
``Connection`` with these changes, each covered by a regression test against a real server in
``tests/integration/test_zk_session.py``:

- ``open``: a plain TCP connect (the caller bounds it and the handshake) and **no** ``srvr``
  probe. aiozk sends ``srvr`` and reads until end-of-stream with no deadline, so a frozen
  server blocked reconnection forever, even with healthy servers available
  (docs/concepts/zookeeper.md). flowcoord needs no version probe (it requires
  ZooKeeper ≥ 3.5, and a read-only server refuses a session that does not allow read-only
  mode).
- ``handshake``: the connect request, raising instead of returning ``None`` (aiozk treats any
  handshake error as session loss and throws the session away).
- ``read_loop``: meant to run in the caller's task group; end-of-stream and read errors fail
  every pending reply at once and return, so the owner notices a closed connection within
  milliseconds (aiozk ignored end-of-stream and noticed a connection closed by the server
  only about one session timeout later, so a follower failure often expired the session).
  Cancellation is never swallowed. Special replies (pings) are matched first-in
  first-out (aiozk popped the newest).
- ``read_response``/``_read``: read each frame whole, with a deadline, so an error reply's body
  can never desynchronise the stream and end-of-stream does not turn into a busy loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import anyio
from aiozk import exc as zk_exc
from aiozk import protocol
from aiozk.connection import Connection, reply_header_struct, size_struct

__all__ = ["FixedConnection"]

log = logging.getLogger("flowcoord.coord.zookeeper")


class FixedConnection(Connection):  # type: ignore[misc]
    """One TCP connection to one ZooKeeper server; see the module docstring for the fixes."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        watch_handler: Callable[[Any], None],
        read_timeout: float,
    ) -> None:
        super().__init__(host, port, watch_handler, read_timeout)

    async def open(self) -> None:
        """Open the TCP connection (OSError). The caller bounds it, and the handshake."""
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def handshake(self, request: Any) -> Any:
        """Send the connect request; return the server's ``ConnectResponse``.

        Raises ConnectionError, OSError or aiozk's ZKError; never returns None.
        """
        payload = request.serialize()
        self.writer.write(size_struct.pack(len(payload)) + payload)
        _, _, response = await self.read_response(initial_connect=True)
        return response

    async def read_loop(self) -> None:
        """Deliver replies and watch events until the stream ends; then fail what is pending."""
        try:
            while True:
                xid, zxid, response = await self.read_response()
                if xid == protocol.WATCH_XID:
                    self.watch_handler(response)
                    continue
                if xid in protocol.SPECIAL_XIDS:
                    waiting = self.pending_specials[xid]
                    future = waiting.pop(0) if waiting else None
                else:
                    future = self.pending.pop(xid, None)
                if future is None or future.done():
                    continue
                if isinstance(response, Exception):
                    future.set_exception(response)
                else:
                    future.set_result((zxid, response))
        except (ConnectionError, OSError, zk_exc.ZKError) as exc:
            log.debug("connection to %s:%s ended: %r", self.host, self.port, exc)
        except Exception:
            log.exception("unreadable reply from %s:%s", self.host, self.port)
        finally:
            self.close_now()

    async def read_response(self, initial_connect: bool = False) -> tuple[Any, Any, Any]:
        raw_size = await self._read_exactly(size_struct.size, deadline=False)
        (size,) = size_struct.unpack(raw_size)
        body = await self._read(size)
        if initial_connect:
            return None, None, protocol.ConnectResponse.deserialize(body)
        xid, zxid, error_code = reply_header_struct.unpack_from(body)
        payload = body[reply_header_struct.size :]
        if error_code:
            self.opcode_xref.pop(xid, None)
            return xid, zxid, zk_exc.get_response_error(error_code)
        if xid == protocol.WATCH_XID:
            return xid, zxid, protocol.WatchEvent.deserialize(payload)
        opcode = self.opcode_xref.pop(xid)
        return xid, zxid, protocol.response_xref[opcode].deserialize(payload)

    async def _read(self, size: int = -1) -> bytes:
        return await self._read_exactly(size, deadline=True)

    async def _read_exactly(self, size: int, *, deadline: bool) -> bytes:
        try:
            if not deadline:  # waiting for the next frame: an idle connection is fine
                return bytes(await self.reader.readexactly(size))
            with anyio.fail_after(self.read_timeout):  # a frame started: the rest must follow
                return bytes(await self.reader.readexactly(size))
        except asyncio.IncompleteReadError as exc:
            raise ConnectionAbortedError(f"{self.host}:{self.port} closed the connection") from exc
        except TimeoutError as exc:
            raise zk_exc.UnfinishedRead() from exc

    def close_now(self) -> None:
        """Refuse new requests, fail pending ones with ``ConnectError`` and close the socket."""
        self.closing = True
        for future in self.drain_all_pending():
            if not future.done():
                future.set_exception(zk_exc.ConnectError(self.host, self.port))
        if self.writer is not None:
            self.writer.close()
