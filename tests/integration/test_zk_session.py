"""ZooKeeperSession against real ZooKeeper servers.

One regression test (at least) for each aiozk behaviour flowcoord designs around
(docs/concepts/zookeeper.md): loss reported, end-of-stream noticed, no hang on a frozen
server, watches after a reconnect, no orphan after a lost reply, failed transaction checks
raise, digest auth, ACLs and deadlines, fast reconnects; plus session-id changes and
subscriptions.
Sessions are 2 s (4 s where a fail-over must fit inside them); every wait is bounded.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import pytest
from aiozk import exc as zk_exc
from aiozk import protocol
from anyio.abc import SocketStream

from flowcoord._coord._zk_fixes import FixedConnection
from flowcoord.coordination import (
    CheckVersion,
    CreateNode,
    SessionChange,
    SessionState,
    ZooKeeperSession,
)
from flowcoord.errors import (
    AccessDenied,
    ConfigurationError,
    CoordinationTimeout,
    CoordinationUnavailable,
    NodeExists,
    NodeMissing,
    NodeNotEmpty,
    VersionConflict,
)
from flowcoord.testing import FaultProxy, ZooKeeperEnsemble, ZooKeeperServer

pytestmark = [pytest.mark.anyio, pytest.mark.zookeeper]

FAST = 2.0  # session timeout (s): the smallest tickTime=1000 allows


def session(
    hosts: str,
    namespace: str,
    *,
    session_timeout: float = FAST,
    call_timeout: float = 5.0,
    connect_timeout: float | None = None,
    auth: tuple[str, str] | None = None,
    randomize_hosts: bool = True,
) -> ZooKeeperSession:
    return ZooKeeperSession(
        hosts,
        namespace=namespace,
        session_timeout=session_timeout,
        call_timeout=call_timeout,
        connect_timeout=connect_timeout,
        auth=auth,
        randomize_hosts=randomize_hosts,
    )


async def next_change(changes: anyio.abc.ObjectReceiveStream[SessionChange]) -> SessionChange:
    with anyio.fail_after(10):
        return await changes.receive()


def follower(ensemble: ZooKeeperEnsemble) -> int:
    leader = ensemble.leader()
    return next(i for i in range(ensemble.size) if i != leader)


class ReplyEater:
    """Loopback proxy that can swallow the server's replies on its current connections
    while the client's requests still reach the server: a reply lost in flight."""

    def __init__(self, port: int) -> None:
        self._target = port
        self._ids = itertools.count()
        self._eating: set[int] = set()
        self._live: set[int] = set()
        self.port = 0

    def eat_replies(self) -> None:
        self._eating |= self._live

    @asynccontextmanager
    async def running(self) -> AsyncIterator[ReplyEater]:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        self.port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, self._serve)
            yield self
            tg.cancel_scope.cancel()

    async def _serve(self, client: SocketStream) -> None:
        conn = next(self._ids)
        async with client, await anyio.connect_tcp("127.0.0.1", self._target) as upstream:
            self._live.add(conn)
            try:
                async with anyio.create_task_group() as tg:

                    async def pump(src: SocketStream, dst: SocketStream, replies: bool) -> None:
                        try:
                            async for chunk in src:
                                if not (replies and conn in self._eating):
                                    await dst.send(chunk)
                        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                            pass
                        tg.cancel_scope.cancel()

                    tg.start_soon(pump, client, upstream, False)
                    tg.start_soon(pump, upstream, client, True)
            finally:
                self._live.discard(conn)
                self._eating.discard(conn)


# -- operations -----------------------------------------------------------------------------


async def test_operations_and_translated_errors(zk_hosts: str, zk_namespace: str) -> None:
    async with session(zk_hosts, zk_namespace) as zk:
        assert zk.state is SessionState.CONNECTED
        assert zk.session_timeout == FAST
        path, stat = await zk.create("/a", b"one")
        assert path == "/a"
        assert await zk.get("/a") == (b"one", stat)
        stat2 = await zk.set("/a", b"two", stat.version)
        assert stat2.version == stat.version + 1
        with pytest.raises(VersionConflict) as conflict:
            await zk.set("/a", b"three", stat.version)
        assert conflict.value.path == "/a"
        with pytest.raises(NodeExists):
            await zk.create("/a")
        with pytest.raises(NodeMissing):
            await zk.get("/missing")
        with pytest.raises(NodeMissing):
            await zk.create("/no/parent")
        assert await zk.exists("/missing") is None
        await zk.ensure_path("/jobs/deep")
        seq = [(await zk.create("/jobs/job-", sequential=True))[0] for _ in range(3)]
        assert seq == sorted(seq)
        assert seq[0].startswith("/jobs/job-")
        assert await zk.children("/jobs") == sorted(["deep", *(p.rsplit("/", 1)[1] for p in seq)])
        with pytest.raises(NodeNotEmpty):
            await zk.delete("/jobs")
        await zk.delete("/a", stat2.version)
        assert await zk.exists("/a") is None
        with pytest.raises(ConfigurationError):
            await zk.get("relative")


async def test_failed_transaction_check_raises(zk_hosts: str, zk_namespace: str) -> None:
    """aiozk could return an empty result for a failed check."""
    async with session(zk_hosts, zk_namespace) as zk:
        _, job = await zk.create("/job", b"{}")
        with pytest.raises(VersionConflict) as conflict:
            await zk.check_and_create("/job", job.version + 1, "/job-lock", ephemeral=True)
        assert conflict.value.path == "/job"
        assert await zk.exists("/job-lock") is None  # all or nothing
        path, lock = await zk.check_and_create("/job", job.version, "/job-lock", ephemeral=True)
        assert path == "/job-lock"
        assert lock.ephemeral_owner == zk.session_id
        assert lock.czxid > job.czxid
        with pytest.raises(NodeExists):
            await zk.transaction([CheckVersion("/job", job.version), CreateNode("/job-lock")])


async def collect_states(
    zk: ZooKeeperSession,
    seen: list[SessionState],
    *,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    with zk.subscribe() as changes:
        task_status.started()
        async for change in changes:  # ends when the session closes
            seen.append(change.state)


async def test_close_removes_ephemeral_nodes_at_once(zk_hosts: str, zk_namespace: str) -> None:
    seen: list[SessionState] = []
    async with session(zk_hosts, zk_namespace) as observer:
        with anyio.fail_after(10):
            async with (
                anyio.create_task_group() as tg,
                session(zk_hosts, zk_namespace) as owner,
            ):
                await owner.create("/claim", ephemeral=True)
                await tg.start(collect_states, owner, seen)
        assert owner.state is SessionState.CLOSED
        assert seen == [SessionState.CLOSED]  # and the subscription ended with it
        assert await observer.exists("/claim") is None


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ConfigurationError):
        ZooKeeperSession("127.0.0.1:2181/chroot")
    with pytest.raises(ConfigurationError):
        ZooKeeperSession("127.0.0.1:2181", namespace="no-slash")
    with pytest.raises(ConfigurationError):
        ZooKeeperSession("127.0.0.1:2181", auth=("sasl", "x"))
    with pytest.raises(ConfigurationError):
        ZooKeeperSession("127.0.0.1:2181", auth=("digest", "no-password"))


# -- loss, end-of-stream, frozen servers ----------------------------------------------------


async def test_partition_reported_suspended_then_lost(
    zk_server: ZooKeeperServer, zk_namespace: str
) -> None:
    """Behaviours 1 and 2: a partitioned client must itself go SUSPENDED, then LOST within
    2/3 of the session timeout; the next contact brings a brand-new session."""
    async with (
        FaultProxy("127.0.0.1", zk_server.port()) as proxy,
        session(zk_server.hosts, zk_namespace) as observer,
        session(f"127.0.0.1:{proxy.port}", zk_namespace) as zk,
    ):
        await zk.create("/claim", ephemeral=True)
        old_id = zk.session_id
        with zk.subscribe() as changes:
            proxy.pause()
            cut_at = anyio.current_time()
            suspended = await next_change(changes)
            lost = await next_change(changes)
            proxy.resume()
            connected = await next_change(changes)
        assert [suspended.state, lost.state, connected.state] == [
            SessionState.SUSPENDED,
            SessionState.LOST,
            SessionState.CONNECTED,
        ]
        assert lost.at - cut_at <= zk.lost_after + 0.5
        assert lost.generation == connected.generation == zk.generation == 1
        assert zk.session_id != old_id
        # the old session was closed on the first contact: its claim is gone already
        assert await observer.exists("/claim") is None
        await zk.create("/claim", ephemeral=True)  # and the new session works
        print(
            f"\n[measure] partition -> SUSPENDED {suspended.at - cut_at:.3f} s, "
            f"-> LOST {lost.at - cut_at:.3f} s (session timeout {FAST} s)"
        )


async def test_frozen_server_reported_lost(
    zk_ensemble: ZooKeeperEnsemble, zk_namespace: str
) -> None:
    """SIGSTOP of the only server a session may use: SUSPENDED, then LOST at 2/3 T."""
    node = follower(zk_ensemble)
    async with session(zk_ensemble.host(node), zk_namespace) as zk:
        with zk.subscribe() as changes:
            zk_ensemble.pause(node)
            stopped_at = anyio.current_time()
            suspended = await next_change(changes)
            lost = await next_change(changes)
            zk_ensemble.resume(node)
            connected = await next_change(changes)
        assert (suspended.state, lost.state, connected.state) == (
            SessionState.SUSPENDED,
            SessionState.LOST,
            SessionState.CONNECTED,
        )
        assert lost.at - stopped_at <= zk.lost_after + 0.5
        print(
            f"\n[measure] SIGSTOP -> SUSPENDED {suspended.at - stopped_at:.3f} s, "
            f"-> LOST {lost.at - stopped_at:.3f} s (session timeout {FAST} s)"
        )


async def test_end_of_stream_noticed_at_once(zk_server: ZooKeeperServer, zk_namespace: str) -> None:
    """a closed connection is noticed from the stream, not from a timeout; the
    session reconnects and survives."""
    async with (
        FaultProxy("127.0.0.1", zk_server.port()) as proxy,
        session(f"127.0.0.1:{proxy.port}", zk_namespace) as zk,
    ):
        old_id = zk.session_id
        with zk.subscribe() as changes:
            cut_at = anyio.current_time()
            await proxy.cut()
            suspended = await next_change(changes)
            connected = await next_change(changes)
        assert (suspended.state, connected.state) == (
            SessionState.SUSPENDED,
            SessionState.CONNECTED,
        )
        # far sooner than the ping deadline (T/3) that would otherwise notice it
        assert suspended.at - cut_at < FAST / 3
        assert zk.session_id == old_id
        assert zk.generation == 0
        await zk.create("/after-cut")
        print(
            f"\n[measure] connection reset -> SUSPENDED {suspended.at - cut_at:.3f} s, "
            f"-> CONNECTED again {connected.at - cut_at:.3f} s"
        )


async def test_killed_member_fails_over_without_loss(
    zk_ensemble: ZooKeeperEnsemble, zk_namespace: str
) -> None:
    node = follower(zk_ensemble)
    others = [zk_ensemble.host(i) for i in range(zk_ensemble.size) if i != node]
    hosts = ",".join([zk_ensemble.host(node), *others])
    async with session(hosts, zk_namespace, randomize_hosts=False) as zk:
        _, claim = await zk.create("/claim", ephemeral=True)
        with zk.subscribe() as changes:
            killed_at = anyio.current_time()
            zk_ensemble.kill(node)
            suspended = await next_change(changes)
            connected = await next_change(changes)
        assert (suspended.state, connected.state) == (
            SessionState.SUSPENDED,
            SessionState.CONNECTED,
        )
        assert zk.generation == 0
        assert zk.session_id == claim.ephemeral_owner
        assert (await zk.get("/claim"))[1] == claim
        print(f"\n[measure] member SIGKILL -> session moved {connected.at - killed_at:.3f} s")


async def test_reconnects_soon_after_a_server_returns(
    zk_ensemble: ZooKeeperEnsemble, zk_namespace: str
) -> None:
    """aiozk waited 4 s, then up to 60 s, between reconnection rounds."""
    node = follower(zk_ensemble)
    async with session(zk_ensemble.host(node), zk_namespace) as zk:
        zk_ensemble.kill(node)
        with anyio.fail_after(10):
            await zk.wait_for(SessionState.LOST)
            await anyio.sleep(FAST)  # many failed rounds: the back-off has grown
            await anyio.to_thread.run_sync(zk_ensemble.start, node)
            serving_at = anyio.current_time()
            await zk.wait_for(SessionState.CONNECTED)
        took = anyio.current_time() - serving_at
        assert took < 1.5  # back-off is capped at min(1 s, T/4)
        await zk.create("/back")
        print(f"\n[measure] server serving again -> session CONNECTED {took:.3f} s")


async def test_frozen_member_does_not_block_connecting(
    zk_ensemble: ZooKeeperEnsemble, zk_namespace: str
) -> None:
    """aiozk's handshake to a frozen server never returned."""
    node = follower(zk_ensemble)
    others = [zk_ensemble.host(i) for i in range(zk_ensemble.size) if i != node]
    zk_ensemble.pause(node)
    started = anyio.current_time()
    hosts = ",".join([zk_ensemble.host(node), *others])
    with anyio.fail_after(5 * FAST):
        async with session(hosts, zk_namespace, randomize_hosts=False) as zk:
            took = anyio.current_time() - started
            await zk.create("/ok")
    print(f"\n[measure] connect with a frozen first host: {took:.3f} s")


async def test_frozen_member_fails_over_without_loss(
    zk_ensemble: ZooKeeperEnsemble, zk_namespace: str
) -> None:
    """The server a session uses freezes: the session moves to another member within its
    timeout and keeps its id (a 4 s session leaves time for the move)."""
    node = follower(zk_ensemble)
    others = [zk_ensemble.host(i) for i in range(zk_ensemble.size) if i != node]
    hosts = ",".join([zk_ensemble.host(node), *others])
    async with session(hosts, zk_namespace, randomize_hosts=False, session_timeout=4.0) as zk:
        old_id = zk.session_id
        with zk.subscribe() as changes:
            stopped_at = anyio.current_time()
            zk_ensemble.pause(node)
            suspended = await next_change(changes)
            connected = await next_change(changes)
        assert (suspended.state, connected.state) == (
            SessionState.SUSPENDED,
            SessionState.CONNECTED,
        )
        assert zk.session_id == old_id
        assert zk.generation == 0
        print(f"\n[measure] member SIGSTOP -> session moved {connected.at - stopped_at:.3f} s")


# -- watches, idempotent writes ------------------------------------------------------------


async def test_deletion_waits_survive_reconnects(
    zk_server: ZooKeeperServer, zk_namespace: str
) -> None:
    """aiozk did not re-arm deletion watches after a reconnect."""
    async with (
        FaultProxy("127.0.0.1", zk_server.port()) as proxy,
        session(zk_server.hosts, zk_namespace) as other,
        session(f"127.0.0.1:{proxy.port}", zk_namespace) as zk,
    ):
        await other.create("/during")
        await other.create("/after")
        done: list[str] = []

        async def wait(path: str) -> None:
            await zk.wait_deleted(path)
            done.append(path)

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(wait, "/during")
                tg.start_soon(wait, "/after")
                await anyio.wait_all_tasks_blocked()
                proxy.refuse(True)
                await proxy.cut()
                await other.delete("/during")  # deleted while the waiter is disconnected
                await anyio.sleep(0.1)
                proxy.refuse(False)
                await zk.wait_for(SessionState.CONNECTED)
                await zk.exists("/after")  # a round trip after the reconnect
                await other.delete("/after")  # deleted after the reconnect
        assert sorted(done) == ["/after", "/during"]


async def test_lost_reply_leaves_no_orphan(zk_server: ZooKeeperServer, zk_namespace: str) -> None:
    """a create whose reply is lost must not be applied twice."""
    async with (
        ReplyEater(zk_server.port()).running() as eater,
        session(zk_server.hosts, zk_namespace) as other,
        session(f"127.0.0.1:{eater.port}", zk_namespace, session_timeout=4.0) as zk,
    ):
        await other.ensure_path("/locks")
        for ephemeral in (False, True):
            eater.eat_replies()
            with anyio.fail_after(10):
                path, stat = await zk.create(
                    "/locks/lock-", b"me", sequential=True, ephemeral=ephemeral
                )
            assert stat.ephemeral == ephemeral
            assert path.rsplit("/", 1)[1] in await other.children("/locks")
            assert (await other.get(path))[0] == b"me"
        assert len(await other.children("/locks")) == 2  # one per create, no orphans
        eater.eat_replies()
        with anyio.fail_after(10):
            await zk.set(path, b"again", stat.version)  # applied once, not a VersionConflict
        assert (await other.get(path))[0] == b"again"


# -- auth, ACLs, deadlines ------------------------------------------------------------------


async def test_digest_auth_and_acl(zk_server: ZooKeeperServer, zk_namespace: str) -> None:
    alice = ("digest", "alice:secret")
    async with (
        FaultProxy("127.0.0.1", zk_server.port()) as proxy,
        session(f"127.0.0.1:{proxy.port}", zk_namespace, auth=alice) as owner,
    ):
        await owner.create("/secret", b"s3")
        async with (
            session(zk_server.hosts, zk_namespace) as anonymous,
            session(zk_server.hosts, zk_namespace, auth=("digest", "alice:wrong")) as mallory,
        ):
            for stranger in (anonymous, mallory):
                with pytest.raises(AccessDenied) as denied:
                    await stranger.get("/secret")
                assert denied.value.path == "/secret"
                with pytest.raises(AccessDenied):
                    await stranger.set("/secret", b"x", -1)
                with pytest.raises(AccessDenied):
                    await stranger.create("/intruder")
        await proxy.cut()  # credentials must be sent again on the new connection
        await owner.wait_for(SessionState.CONNECTED)
        assert (await owner.get("/secret"))[0] == b"s3"
        await owner.create("/still-mine")


async def test_calls_have_deadlines(zk_server: ZooKeeperServer, zk_namespace: str) -> None:
    """no aiozk call had a deadline."""
    async with (
        FaultProxy("127.0.0.1", zk_server.port()) as proxy,
        session(f"127.0.0.1:{proxy.port}", zk_namespace, call_timeout=0.3) as zk,
    ):
        await zk.create("/x", b"1")
        proxy.pause()
        started = anyio.current_time()
        with pytest.raises(CoordinationTimeout):
            await zk.get("/x")
        assert anyio.current_time() - started < 0.3 + 0.5
        proxy.resume()
        # the session and the calls still work after the timed-out (cancelled) call
        with anyio.fail_after(10):
            await zk.wait_for(SessionState.CONNECTED)
            assert (await zk.get("/x"))[0] == b"1"


# -- session identity ----------------------------------------------------------------------


async def close_session_elsewhere(port: int, session_id: int, password: bytes) -> None:
    """Attach to a live session from a second connection and close it there."""
    conn = FixedConnection("127.0.0.1", port, watch_handler=lambda _: None, read_timeout=2.0)
    request = protocol.ConnectRequest(
        protocol_version=0,
        last_seen_zxid=0,
        timeout=int(FAST * 1000),
        session_id=session_id,
        password=password,
        read_only=False,
    )
    with anyio.fail_after(5):
        await conn.open()
        response = await conn.handshake(request)
        assert response.session_id == session_id
        async with anyio.create_task_group() as tg:
            tg.start_soon(conn.read_loop)
            with contextlib.suppress(zk_exc.ConnectError):  # the server may hang up first
                await conn.send(protocol.CloseRequest(), xid=1)
            tg.cancel_scope.cancel()
    conn.close_now()


async def test_session_id_change_is_reported_lost(
    zk_server: ZooKeeperServer, zk_namespace: str
) -> None:
    """ZooKeeper ended the session while the client was away: on reconnect the id changes.
    That is LOST (generation + 1) and then a new CONNECTED session; no subscriber and no
    ``wait_for`` misses the quick succession."""
    async with (
        FaultProxy("127.0.0.1", zk_server.port()) as proxy,
        session(zk_server.hosts, zk_namespace) as observer,
        session(f"127.0.0.1:{proxy.port}", zk_namespace) as zk,
    ):
        await zk.create("/claim", ephemeral=True)
        old_id = zk.session_id
        with zk.subscribe() as changes, anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(zk.wait_for, SessionState.LOST)
                await anyio.wait_all_tasks_blocked()
                proxy.refuse(True)  # keep the client away while its session is closed
                await proxy.cut()
                await close_session_elsewhere(zk_server.port(), old_id, zk._core._password)
                proxy.refuse(False)
            changes_seen = [await next_change(changes) for _ in range(3)]
        states = [change.state for change in changes_seen]
        assert states == [SessionState.SUSPENDED, SessionState.LOST, SessionState.CONNECTED]
        assert "expired" in changes_seen[1].reason  # found out on reconnect, not presumed
        assert zk.generation == 1
        assert zk.session_id not in (0, old_id)
        assert await observer.exists("/claim") is None
        await zk.create("/claim", ephemeral=True)


async def test_connect_fails_clearly_without_servers(zk_namespace: str) -> None:
    with anyio.fail_after(10):
        with pytest.raises(CoordinationUnavailable):
            async with session("127.0.0.1:1", zk_namespace, connect_timeout=0.5):
                pass
