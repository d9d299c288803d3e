"""Supervision of one ZooKeeper session: connections, pings, deadlines, state transitions.

flowcoord decides the session's state itself instead of trusting aiozk's session object
(the behaviours it designs around: docs/concepts/zookeeper.md). aiozk never tells holders
that a session was lost (its lock and leader recipes go on reporting ownership), has no
client-side expiry (a partitioned client stays SUSPENDED until it reconnects, and only then
learns of expiry), offers no state-listener API (so fast transitions can be missed) and puts
no deadline on calls, and it waits 4 s, growing to 60 s, between reconnection rounds. So:

- *Confirmed contact* is the send time of the newest request that got an answer. The server
  cannot expire the session earlier than that plus the session timeout T.
- A ping goes out every T/6. No contact for T/3: the connection is dropped (SUSPENDED) and
  another server is tried at once, the ones that just failed last, each attempt bounded by
  T/6, back-off between rounds at most min(1 s, T/4).
- No contact for 2T/3: the session is **presumed lost** (LOST, ``generation`` + 1) even though
  ZooKeeper tells a client of expiry only when it reconnects. Its credentials are kept only to
  close it on the next contact, so its ephemeral nodes go at once; then a new session starts.
- A reconnect answered with another (or no) session id means ZooKeeper expired it: LOST, then
  a new session (CONNECTED).
- Digest credentials are sent after every handshake, before the session counts as CONNECTED,
  so no request ever goes out unauthenticated.
"""

from __future__ import annotations

import logging
import math
import random
import re
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio
from aiozk import exc as zk_exc
from aiozk import protocol
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ..errors import AuthFailed, ConfigurationError, CoordinationUnavailable
from ._session import SessionChange, SessionListener, SessionState
from ._zk_fixes import FixedConnection

__all__ = ["ConnectionLost", "SessionCore", "parse_hosts"]

log = logging.getLogger("flowcoord.coord.zookeeper")

_NO_PASSWORD = b"\x00" * 16
_ALLOWED = {
    SessionState.LOST: {SessionState.CONNECTED, SessionState.CLOSED},
    SessionState.CONNECTED: {SessionState.SUSPENDED, SessionState.LOST, SessionState.CLOSED},
    SessionState.SUSPENDED: {SessionState.CONNECTED, SessionState.LOST, SessionState.CLOSED},
    SessionState.CLOSED: set(),
}
# Answers meaning "this connection is no good", not "this request is wrong".
_LINK_ERRORS = (zk_exc.ConnectionLoss, zk_exc.SessionExpired, zk_exc.SessionMoved)
_HOST_RE = re.compile(r"^(?:\[(?P<v6>[^\]]+)\]|(?P<host>[^:\[\]]+))(?::(?P<port>\d+))?$")


class ConnectionLost(Exception):
    """The connection broke before the reply came: the request may or may not have been
    applied. Internal; never leaves the session layer."""


def parse_hosts(hosts: str) -> list[tuple[str, int]]:
    """``"h1:2181,h2:2182,[::1]:2183"`` → ``[("h1", 2181), …]`` (port 2181 when left out)."""
    result = []
    for item in hosts.split(","):
        item = item.strip()
        if "/" in item:
            raise ConfigurationError(
                f"ZooKeeper hosts {hosts!r} contain a chroot path",
                hint="pass the path as namespace= instead",
            )
        match = _HOST_RE.match(item)
        if match is None:
            raise ConfigurationError(
                f"bad ZooKeeper host {item!r} in {hosts!r}", hint="use 'host:port,host:port'"
            )
        result.append((match["v6"] or match["host"], int(match["port"] or 2181)))
    return result


class _Link:
    """One live connection carrying the session."""

    def __init__(self, conn: FixedConnection) -> None:
        self.conn = conn
        self.broken = anyio.Event()

    @property
    def name(self) -> str:
        return f"{self.conn.host}:{self.conn.port}"

    def break_(self) -> None:
        self.broken.set()
        self.conn.close_now()


class SessionCore:
    """Connection and state supervision for one ZooKeeper session (see the module docstring).

    ``run`` must run in a task group for as long as the session is used.
    """

    def __init__(
        self,
        hosts: str,
        *,
        session_timeout: float,
        auth: tuple[str, str] | None,
        randomize_hosts: bool,
        on_watch: Callable[[str], None],
    ) -> None:
        self._hosts = parse_hosts(hosts)
        self._randomize = randomize_hosts
        self._failed: list[tuple[str, int]] = []
        self._requested_timeout = session_timeout
        self._auth = auth
        self._on_watch = on_watch
        self.state = SessionState.LOST
        self.generation = 0
        self.session_id = 0
        self.timeout = session_timeout
        self._password = _NO_PASSWORD
        self._stale = False  # presumed lost: credentials kept only to close the old session
        self._last_zxid = 0
        self._last_contact = -math.inf
        self._xid = 0
        self._link: _Link | None = None
        self._closing = False
        self.fatal: Exception | None = None
        self._entered: Counter[SessionState] = Counter()
        self._changed: anyio.Event | None = None
        self._subscribers: list[MemoryObjectSendStream[SessionChange]] = []
        self._listeners: list[SessionListener] = []

    # -- timing (derived from the negotiated session timeout) --------------------------------

    @property
    def _ping_interval(self) -> float:
        return self.timeout / 6

    @property
    def _suspend_after(self) -> float:
        return self.timeout / 3

    @property
    def lost_after(self) -> float:
        """Out of contact this long, the session is presumed lost (2/3 of the timeout)."""
        return self.timeout * 2 / 3

    @property
    def _attempt_timeout(self) -> float:
        return max(self.timeout / 6, 0.2)

    # -- state ------------------------------------------------------------------------------

    def _set_state(self, new: SessionState, reason: str) -> None:
        old = self.state
        if old is SessionState.CLOSED:
            return  # closing raced with a late transition: closed stays closed
        if new not in _ALLOWED[old]:
            raise AssertionError(f"session state {old.value} -> {new.value} is not allowed")
        if new is SessionState.LOST:
            self.generation += 1
        self.state = new
        self._entered[new] += 1
        change = SessionChange(
            new, old, self.generation, self.session_id, anyio.current_time(), reason
        )
        log.info(
            "ZooKeeper session 0x%x: %s -> %s (%s)", self.session_id, old.value, new.value, reason
        )
        for stream in list(self._subscribers):
            try:
                stream.send_nowait(change)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._subscribers.remove(stream)
            if new is SessionState.CLOSED:
                stream.close()
        for listener in list(self._listeners):
            try:
                listener(change)
            except Exception:
                log.exception("session state listener %r failed", listener)
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    async def _wait_change(self) -> None:
        if self._changed is None:
            self._changed = anyio.Event()
        await self._changed.wait()

    async def wait_for(self, state: SessionState) -> None:
        """Return once ``state`` is entered (at once if it is the current one). A transition
        is never missed, however fast the next one follows."""
        entered = self._entered[state]
        while self.state is not state and self._entered[state] == entered:
            if self.state is SessionState.CLOSED:
                raise self.fatal or CoordinationUnavailable("the ZooKeeper session is closed")
            await self._wait_change()

    @contextmanager
    def subscribe(self) -> Iterator[MemoryObjectReceiveStream[SessionChange]]:
        send, receive = anyio.create_memory_object_stream[SessionChange](math.inf)
        if self.state is SessionState.CLOSED:
            send.close()
        else:
            self._subscribers.append(send)
        try:
            with receive:
                yield receive
        finally:
            if send in self._subscribers:
                self._subscribers.remove(send)
            send.close()

    def add_listener(self, listener: SessionListener) -> Callable[[], None]:
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    # -- requests ---------------------------------------------------------------------------

    async def call(self, request: Any) -> Any:
        """Send ``request`` once on the current connection (waiting for one if needed) and
        return the reply. Raises ConnectionLost, aiozk's ResponseError, or a flowcoord error
        when the session is closed. Never retries."""
        link = await self._current_link()
        self._xid = self._xid % 0x7FFFFFFF + 1
        sent = anyio.current_time()
        try:
            zxid, response = await link.conn.send(request, xid=self._xid)
        except zk_exc.ConnectError as exc:
            raise ConnectionLost(f"connection to {link.name} lost") from exc
        except _LINK_ERRORS as exc:
            link.break_()
            raise ConnectionLost(f"{link.name} answered {type(exc).__name__}") from exc
        except zk_exc.ResponseError:
            self._touch(link, sent, 0)
            raise
        self._touch(link, sent, zxid)
        return response

    async def _current_link(self) -> _Link:
        while True:
            if self.state is SessionState.CLOSED:
                raise self.fatal or CoordinationUnavailable("the ZooKeeper session is closed")
            link = self._link
            if self.state is SessionState.CONNECTED and link and not link.broken.is_set():
                return link
            await self._wait_change()

    def _touch(self, link: _Link, sent: float, zxid: int | None) -> None:
        if link is self._link:
            self._last_contact = max(self._last_contact, sent)
            if zxid and zxid > self._last_zxid:
                self._last_zxid = zxid

    def _on_watch_event(self, event: Any) -> None:
        if event.type and event.type > 0 and event.path:
            self._on_watch(str(event.path))

    # -- lifecycle --------------------------------------------------------------------------

    async def run(self) -> None:
        """Keep a connection to the ensemble until closed; supervise the session's state."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._watchdog)
            while not self._closing and self.fatal is None:
                link = await self._connect()
                if link is None:
                    break
                async with anyio.create_task_group() as link_tg:
                    link_tg.start_soon(self._read, link)
                    if await self._authenticate(link):
                        self._link = link
                        self._set_state(SessionState.CONNECTED, f"session on {link.name}")
                        link_tg.start_soon(self._ping, link)
                        await link.broken.wait()
                    link_tg.cancel_scope.cancel()
                link.break_()
                self._link = None
                self._host_failed((link.conn.host, link.conn.port))  # try the others first
                if self.fatal is not None and self.state is not SessionState.CLOSED:
                    self._set_state(SessionState.CLOSED, str(self.fatal))
                if self.state is SessionState.CONNECTED and not self._closing:
                    self._set_state(SessionState.SUSPENDED, f"connection to {link.name} ended")
            tg.cancel_scope.cancel()

    async def close(self) -> None:
        """Close the session on the server (its ephemeral nodes go at once) and stop.
        The caller bounds the time it may take."""
        self._closing = True
        link = self._link
        if link is not None and self.state is SessionState.CONNECTED:
            with anyio.move_on_after(max(self.timeout / 3, 0.5)):
                try:
                    await self.call(protocol.CloseRequest())
                except (ConnectionLost, zk_exc.ZKError) as exc:
                    log.debug("closing session 0x%x: %r", self.session_id, exc)
        if self.state is not SessionState.CLOSED:
            self._set_state(SessionState.CLOSED, "closed by its owner")
        if link is not None:
            link.break_()

    async def _read(self, link: _Link) -> None:
        try:
            await link.conn.read_loop()
        finally:
            link.broken.set()

    async def _ping(self, link: _Link) -> None:
        while True:
            await anyio.sleep(self._ping_interval)
            sent = anyio.current_time()
            budget = max(self._last_contact + self._suspend_after - sent, 0.05)
            with anyio.move_on_after(budget):
                try:
                    zxid, _ = await link.conn.send(protocol.PingRequest())
                except zk_exc.ZKError:
                    break
                self._touch(link, sent, zxid)
                continue
            log.warning("no answer from %s within %.2f s; trying another server", link.name, budget)
            break
        link.break_()

    async def _watchdog(self) -> None:
        live = (SessionState.CONNECTED, SessionState.SUSPENDED)
        while True:
            if self.state in live and self.session_id:
                remaining = self._last_contact + self.lost_after - anyio.current_time()
                if remaining <= 0:
                    self._stale = True
                    self._set_state(
                        SessionState.LOST,
                        f"no contact for {self.lost_after:.2f} s (2/3 of the session timeout): "
                        "presumed expired",
                    )
                    if self._link is not None:
                        self._link.break_()
                    continue
                with anyio.move_on_after(remaining):
                    await self._wait_change()
            else:
                await self._wait_change()

    # -- connecting -------------------------------------------------------------------------

    def _host_order(self) -> list[tuple[str, int]]:
        healthy = [h for h in self._hosts if h not in self._failed]
        if self._randomize:
            random.shuffle(healthy)
        return healthy + [h for h in self._failed if h in self._hosts]

    def _host_failed(self, host: tuple[str, int]) -> None:
        if host in self._failed:
            self._failed.remove(host)
        self._failed.append(host)

    async def _connect(self) -> _Link | None:
        delay = 0.0
        while not self._closing:
            for host in self._host_order():
                link = await self._attempt(host)
                if self.fatal is not None or self._closing:
                    if link is not None:
                        link.break_()
                    return None
                if link is not None:
                    if host in self._failed:
                        self._failed.remove(host)
                    return link
                self._host_failed(host)
            delay = min(max(delay * 2, 0.05), 1.0, self.timeout / 4)
            log.info(
                "no ZooKeeper server of %d answered; retrying in %.2f s", len(self._hosts), delay
            )
            await anyio.sleep(delay)
        return None

    async def _attempt(self, host: tuple[str, int]) -> _Link | None:
        for _ in range(3):
            if self._stale and not await self._close_stale(host):
                return None
            asked = self.session_id
            opened = await self._open(host, asked, self._password)
            if opened is None:
                return None
            link, response, sent = opened
            if self._stale:  # presumed lost while shaking hands: close it, then start afresh
                link.break_()
                continue
            if response.session_id == 0 or (asked and response.session_id != asked):
                link.break_()
                self._forget_session()
                if self.state is not SessionState.LOST:
                    self._set_state(SessionState.LOST, "ZooKeeper reports the session expired")
                continue
            self.session_id = int(response.session_id)
            self._password = bytes(response.password)
            if response.timeout > 0:
                self.timeout = response.timeout / 1000
            self._last_contact = sent
            return link
        return None

    async def _open(
        self, host: tuple[str, int], session_id: int, password: bytes
    ) -> tuple[_Link, Any, float] | None:
        """Connect and shake hands (no read loop yet); None if the server did not answer."""
        conn = FixedConnection(
            host[0], host[1], watch_handler=self._on_watch_event, read_timeout=self.timeout / 3
        )
        request = protocol.ConnectRequest(
            protocol_version=0,
            last_seen_zxid=self._last_zxid,
            timeout=int(self._requested_timeout * 1000),
            session_id=session_id,
            password=password,
            read_only=False,
        )
        try:
            with anyio.fail_after(self._attempt_timeout):
                await conn.open()
                sent = anyio.current_time()
                response = await conn.handshake(request)
        except (TimeoutError, OSError, zk_exc.ZKError) as exc:
            log.info("ZooKeeper server %s:%s did not take the session: %r", *host, exc)
            conn.close_now()
            return None
        except BaseException:
            conn.close_now()
            raise
        return _Link(conn), response, sent

    def _forget_session(self) -> None:
        self.session_id = 0
        self._password = _NO_PASSWORD
        self._stale = False

    async def _close_stale(self, host: tuple[str, int]) -> bool:
        """Close the presumed-lost session through ``host`` (best effort); False if the
        server did not answer at all."""
        stale_id = self.session_id
        opened = await self._open(host, stale_id, self._password)
        if opened is None:
            return False
        link, response, _ = opened
        try:
            if response.session_id == stale_id:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(link.conn.read_loop)
                    with anyio.move_on_after(self._attempt_timeout):
                        try:
                            await link.conn.send(protocol.CloseRequest(), xid=1)
                            log.info("closed presumed-lost session 0x%x", stale_id)
                        except zk_exc.ZKError:
                            pass
                    tg.cancel_scope.cancel()
        finally:
            link.break_()
        self._forget_session()
        return True

    async def _authenticate(self, link: _Link) -> bool:
        if self._auth is None:
            return True
        scheme, credentials = self._auth
        request = protocol.AuthRequest(type=0, scheme=scheme, auth=credentials.encode())
        try:
            with anyio.fail_after(self._attempt_timeout):
                await link.conn.send(request)
        except zk_exc.AuthFailed:
            self.fatal = AuthFailed(
                f"ZooKeeper refused the {scheme} credentials",
                hint="check auth=('digest', 'user:password')",
            )
            return False
        except (TimeoutError, zk_exc.ZKError) as exc:
            log.info("authentication on %s failed: %r", link.name, exc)
            return False
        return True
