"""``ZooKeeperSession``: flowcoord's ZooKeeper client, built on aiozk's wire protocol.

What it adds to aiozk (docs/concepts/zookeeper.md describes the aiozk and ZooKeeper
behaviours it designs around):

- an explicit session state (CONNECTED / SUSPENDED / LOST / CLOSED) from flowcoord's own
  supervision, a ``generation`` that moves on with every LOST, and subscriptions that never
  miss a transition (``_zk_core``);
- a deadline on every call (``CoordinationTimeout``) and aiozk's exceptions translated to
  flowcoord errors in one place (``_zk_errors.translate``);
- writes that are safe to retry after a lost reply: every node's data carries a 16-byte tag,
  and after a connection loss the session looks for its own node (or its own data) before it
  sends the write again, so a lost reply never leaves an orphan node behind (aiozk resends
  a write blindly: a create whose reply was lost is applied twice);
- a namespace (chroot), digest authentication re-sent on every connection, ACLs on the nodes
  it creates;
- watches that never depend on the server re-arming them after a reconnect: a
  :class:`Watcher` wakes on the node's events *and* on every state change, and its owner
  re-reads the node (aiozk does not re-register watches waiting for a node's deletion after
  a reconnect, and re-fires others spuriously).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Self

import anyio
from aiozk import exc as zk_exc
from aiozk import protocol
from anyio.streams.memory import MemoryObjectReceiveStream

from ..errors import (
    ConfigurationError,
    CoordinationTimeout,
    CoordinationUnavailable,
    FlowcoordError,
)
from ._session import SessionChange, SessionListener, SessionState
from ._zk_core import ConnectionLost, SessionCore
from ._zk_errors import translate
from ._zk_types import (
    ACL,
    CheckVersion,
    CreateNode,
    NodeStat,
    OpResult,
    SetData,
    TxnOp,
)
from ._zk_writes import Namespace, TaggedWrites, read, unwrap

__all__ = ["Watcher", "ZooKeeperSession"]


class Watcher:
    """Wakes its owner when ZooKeeper reports an event on ``path`` (armed by a read with
    ``watch=True``) and on every session state change. Re-read the node after each wake-up::

        with zk.watcher("/jobs") as changes:
            while True:
                names = await zk.children("/jobs", watch=True)
                ...
                await changes.wait()
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._fired = False
        self._event: anyio.Event | None = None

    def _fire(self) -> None:
        self._fired = True
        if self._event is not None:
            self._event.set()

    async def wait(self) -> None:
        """Return after the next event (at once if one came since the last ``wait``).
        Bound it with ``anyio.fail_after`` where needed."""
        if not self._fired:
            self._event = anyio.Event()
            try:
                await self._event.wait()
            finally:
                self._event = None
        self._fired = False


class ZooKeeperSession(anyio.AsyncContextManagerMixin):
    """A ZooKeeper session for flowcoord::

        async with ZooKeeperSession("127.0.0.1:2181", namespace="/app") as zk:
            path, stat = await zk.create("/jobs/job-", b"{}", sequential=True)

    Paths are relative to ``namespace`` (created if absent). Every call waits for a
    connection and finishes within ``call_timeout`` seconds or raises
    :class:`~flowcoord.errors.CoordinationTimeout`. Reads are retried across reconnects;
    writes are retried only where the session can tell whether the first try was applied.
    """

    def __init__(
        self,
        hosts: str,
        *,
        namespace: str = "/flowcoord",
        session_timeout: float = 10.0,
        auth: tuple[str, str] | None = None,
        acl: Sequence[ACL] | None = None,
        call_timeout: float = 5.0,
        connect_timeout: float | None = None,
        randomize_hosts: bool = True,
    ) -> None:
        if auth is not None and auth[0] != "digest":
            raise ConfigurationError(
                f"unsupported ZooKeeper auth scheme {auth[0]!r}", hint="use ('digest', 'u:p')"
            )
        if session_timeout <= 0 or call_timeout <= 0:
            raise ConfigurationError("session_timeout and call_timeout must be positive")
        self.hosts = hosts
        self._ns = Namespace(namespace)
        self.namespace = self._ns.root
        self.call_timeout = call_timeout
        self._connect_timeout = session_timeout if connect_timeout is None else connect_timeout
        if acl is not None:
            self.acl = tuple(acl)
        elif auth is not None:
            self.acl = (ACL.digest(auth[1]),)
        else:
            self.acl = (ACL.open(),)
        self._watchers: dict[str, set[Watcher]] = {}
        self._core = SessionCore(
            hosts,
            session_timeout=session_timeout,
            auth=auth,
            randomize_hosts=randomize_hosts,
            on_watch=self._dispatch_watch,
        )
        self._core.add_listener(self._wake_all_watchers)
        self._writes = TaggedWrites(self._core, self._ns, list(self.acl))
        self._used = False

    # -- lifecycle --------------------------------------------------------------------------

    @asynccontextmanager
    async def __asynccontextmanager__(self) -> AsyncIterator[Self]:
        if self._used:
            raise CoordinationUnavailable("a ZooKeeperSession can be entered only once")
        self._used = True
        tg = anyio.create_task_group()
        await tg.__aenter__()
        failure: BaseException | None = None
        try:
            tg.start_soon(self._core.run)
            try:
                with anyio.fail_after(self._connect_timeout):
                    await self._core.wait_for(SessionState.CONNECTED)
            except TimeoutError:
                raise CoordinationUnavailable(
                    f"no ZooKeeper server of {self.hosts!r} gave a session within "
                    f"{self._connect_timeout} s",
                    hint="check that the servers run and that the hosts are right",
                ) from None
            if self.namespace:
                with self._boundary("create namespace", self.namespace):
                    await self._writes.ensure(self._ns.root, "create namespace", None)
            yield self
        except BaseException as exc:
            failure = exc
            raise
        finally:
            with anyio.CancelScope(shield=True):
                await self._core.close()
            tg.cancel_scope.cancel()
            cancelled = failure if isinstance(failure, anyio.get_cancelled_exc_class()) else None
            await tg.__aexit__(
                type(cancelled) if cancelled else None,
                cancelled,
                cancelled.__traceback__ if cancelled else None,
            )

    # -- state ------------------------------------------------------------------------------

    @property
    def state(self) -> SessionState:
        return self._core.state

    @property
    def generation(self) -> int:
        """How many times the session was lost; a claim is valid only in its generation."""
        return self._core.generation

    @property
    def session_id(self) -> int:
        return self._core.session_id

    @property
    def session_timeout(self) -> float:
        """The session timeout the server granted (seconds)."""
        return self._core.timeout

    @property
    def lost_after(self) -> float:
        """Out of contact this long, the session is presumed lost (2/3 of the timeout)."""
        return self._core.lost_after

    async def wait_for(self, state: SessionState) -> None:
        """Return once ``state`` is entered, at once if it is the current one; a transition is
        never missed however fast the next follows. Bound it with ``anyio.fail_after``."""
        await self._core.wait_for(state)

    @contextmanager
    def subscribe(self) -> Iterator[MemoryObjectReceiveStream[SessionChange]]:
        """Every transition from now on, in order, none missed; the stream ends on CLOSED."""
        with self._core.subscribe() as changes:
            yield changes

    def add_listener(self, listener: SessionListener) -> Callable[[], None]:
        """Call ``listener(change)`` on every transition; returns a function that removes it."""
        return self._core.add_listener(listener)

    # -- watches ----------------------------------------------------------------------------

    @contextmanager
    def watcher(self, path: str) -> Iterator[Watcher]:
        """A :class:`Watcher` for ``path``; make it *before* the read that arms the watch."""
        full = self._ns.full(path)
        watcher = Watcher(path)
        self._watchers.setdefault(full, set()).add(watcher)
        try:
            yield watcher
        finally:
            group = self._watchers.get(full)
            if group is not None:
                group.discard(watcher)
                if not group:
                    del self._watchers[full]

    def _dispatch_watch(self, full_path: str) -> None:
        for watcher in list(self._watchers.get(full_path, ())):
            watcher._fire()

    def _wake_all_watchers(self, change: SessionChange) -> None:
        for group in list(self._watchers.values()):
            for watcher in list(group):
                watcher._fire()

    async def wait_deleted(self, path: str) -> None:
        """Return once no node exists at ``path``. The node is re-read after every event and
        every reconnect, so a watch the server forgot cannot make this hang."""
        with self.watcher(path) as changes:
            while await self.exists(path, watch=True) is not None:
                await changes.wait()

    # -- reads ------------------------------------------------------------------------------

    async def get(self, path: str, *, watch: bool = False) -> tuple[bytes, NodeStat]:
        """The node's data (as written by ``create``/``set``) and stat; NodeMissing if none."""
        full = self._ns.full(path)
        with self._boundary("get", path):
            response = await read(self._core, protocol.GetDataRequest(path=full, watch=watch))
        return unwrap(response.data)[1], NodeStat.from_zk(response.stat)

    async def exists(self, path: str, *, watch: bool = False) -> NodeStat | None:
        """The node's stat, or None. With ``watch``, its creation, change or deletion fires."""
        full = self._ns.full(path)
        with self._boundary("exists", path):
            try:
                response = await read(self._core, protocol.ExistsRequest(path=full, watch=watch))
            except zk_exc.NoNode:
                return None
        return NodeStat.from_zk(response.stat)

    async def children(self, path: str, *, watch: bool = False) -> list[str]:
        """Names of the node's children, sorted."""
        full = self._ns.full(path)
        with self._boundary("children", path):
            response = await read(self._core, protocol.GetChildren2Request(path=full, watch=watch))
        return sorted(response.children)

    # -- writes -----------------------------------------------------------------------------

    async def create(
        self,
        path: str,
        data: bytes = b"",
        *,
        ephemeral: bool = False,
        sequential: bool = False,
    ) -> tuple[str, NodeStat]:
        """Create a node; return its path (with the sequence number) and stat.

        Idempotent: if the connection is lost before the reply, the session first looks for
        the node it may have created (by its tag) and creates again only if it finds none.
        An ephemeral create interrupted by a LOST session raises SessionLost.
        """
        op = CreateNode(path, data, ephemeral, sequential)
        with self._boundary("create", path):
            results = await self._writes.write([op], "create")
        assert results[0].stat is not None
        return results[0].path, results[0].stat

    async def set(self, path: str, data: bytes, version: int) -> NodeStat:
        """Replace the node's data if its version is ``version`` (-1: any); the new stat."""
        with self._boundary("set", path):
            results = await self._writes.write([SetData(path, data, version)], "set")
        assert results[0].stat is not None
        return results[0].stat

    async def delete(self, path: str, version: int = -1) -> None:
        """Delete the node if its version is ``version`` (-1: any).

        After a lost reply the delete is sent again; NodeMissing then counts as done.
        """
        request = protocol.DeleteRequest(path=self._ns.full(path), version=version)
        with self._boundary("delete", path):
            retried = False
            while True:
                try:
                    await self._core.call(request)
                    return
                except ConnectionLost:
                    retried = True
                except zk_exc.NoNode:
                    if retried:
                        return
                    raise

    async def ensure_path(self, path: str) -> None:
        """Create ``path`` and its missing ancestors as persistent, empty nodes."""
        with self._boundary("ensure_path", path):
            await self._writes.ensure(self._ns.full(path), "ensure_path", path)

    async def transaction(
        self, ops: Sequence[TxnOp], *, created_stats: bool = True
    ) -> list[OpResult]:
        """Apply ``ops`` atomically (all or none); one :class:`OpResult` per op.

        The first failing op decides the error (e.g. VersionConflict for a CheckVersion).
        Retried after a lost reply when it creates or sets data (the session can then tell
        whether it was applied); otherwise CoordinationUnavailable says the outcome is unknown.
        ZooKeeper tells a create's path only, inside a transaction: its stat is read back
        (a read per created node) unless ``created_stats`` is False, which leaves it None
        (except after a lost reply, when the session read it anyway).
        """
        if not ops:
            raise ConfigurationError("a transaction needs at least one operation")
        with self._boundary("transaction", ops[0].path):
            return await self._writes.write(list(ops), "transaction", created_stats=created_stats)

    async def check_and_create(
        self,
        check_path: str,
        version: int,
        path: str,
        data: bytes = b"",
        *,
        ephemeral: bool = False,
        sequential: bool = False,
    ) -> tuple[str, NodeStat]:
        """Create a node only if ``check_path`` still has data version ``version``."""
        results = await self.transaction(
            [CheckVersion(check_path, version), CreateNode(path, data, ephemeral, sequential)],
        )
        stat = results[1].stat
        assert stat is not None
        return results[1].path, stat

    # -- internals --------------------------------------------------------------------------

    @contextmanager
    def _boundary(self, what: str, path: str | None) -> Iterator[None]:
        limit = self.call_timeout
        try:
            with anyio.fail_after(limit):
                yield
        except FlowcoordError:
            raise
        except TimeoutError:
            raise CoordinationTimeout(
                f"ZooKeeper {what} {path!r} did not finish within {limit} s",
                hint=f"session is {self.state.value}",
            ) from None
        except (zk_exc.ZKError, ConnectionLost) as exc:
            raise translate(exc, path, what) from exc
