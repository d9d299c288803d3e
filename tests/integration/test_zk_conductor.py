"""Conductors on the ZooKeeper job board, in one process, against a real server.

The scenarios of ``tests/unit/test_conductor.py`` (run, hand over on session loss, trash
after too many claims) plus what only a real server shows: the write budget per flow, claims
that vanish with a lost session, a consume whose reply was lost, watches across a reconnect.
Sessions are 2 s (tickTime 1000); a conductor's connection is broken through a FaultProxy.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
import pytest

import flowcoord as fc
from flowcoord._coord._conductor import Conductor
from flowcoord._coord._zk_board import ZooKeeperJobBoard
from flowcoord._coord._zk_session import ZooKeeperSession
from flowcoord.errors import OwnershipLost
from flowcoord.testing import FaultProxy, ZooKeeperServer
from tests.conductor_world import World

pytestmark = [pytest.mark.anyio, pytest.mark.zookeeper]

T = 2.0  # session timeout (s)


@asynccontextmanager
async def board(hosts: str, namespace: str) -> AsyncIterator[ZooKeeperJobBoard]:
    async with ZooKeeperSession(hosts, namespace=namespace, session_timeout=T) as session:
        yield ZooKeeperJobBoard(session)


@asynccontextmanager
async def proxied_board(
    server: ZooKeeperServer, namespace: str
) -> AsyncIterator[tuple[ZooKeeperJobBoard, FaultProxy]]:
    async with FaultProxy("127.0.0.1", server.port()) as proxy:
        try:
            async with board(f"127.0.0.1:{proxy.port}", namespace) as b:
                yield b, proxy
        finally:
            proxy.resume()


async def until(pred: Callable[[], bool], within: float = 10) -> None:
    with anyio.fail_after(within):
        while not pred():  # noqa: ASYNC110 - polling a plain predicate, bounded
            await anyio.sleep(0.01)


async def idle(conductor: Conductor, within: float = 15) -> None:
    with anyio.fail_after(within):
        await conductor.wait_idle()


async def test_runs_jobs_with_three_writes_per_flow_and_none_per_task(
    zk_hosts: str, zk_namespace: str
) -> None:
    w, journal = World(), fc.MemoryJournal()
    async with (
        board(zk_hosts, zk_namespace) as b,
        fc.Engine(journal) as engine,
        Conductor(b, engine, w.registry) as c,
    ):
        await until(lambda: b.writes["register"] == 1)  # set up and registered
        before = Counter(b.writes)
        for i in range(3):
            await b.post("one", flow_id=f"one-{i}")
        await idle(c)
        small = Counter(b.writes) - before
        before = Counter(b.writes)
        for i in range(3):
            await b.post("wide", flow_id=f"wide-{i}")
        await idle(c)
        large = Counter(b.writes) - before
        assert (await engine.status("wide-2")).state is fc.FlowState.SUCCESS
    assert small == large == Counter(post=3, claim=3, consume=3)
    assert w.runs["w19"] == 3
    assert c.stats.consumed == 6


async def test_session_loss_aborts_and_another_conductor_takes_over(
    zk_server: ZooKeeperServer, zk_namespace: str
) -> None:
    w, journal = World(), fc.MemoryJournal()
    w.hold = "b"
    async with proxied_board(zk_server, zk_namespace) as (b1, proxy):
        job = await b1.post("three", flow_id="flow-1")
        lost = anyio.Event()
        b1.session.add_listener(
            lambda ch: lost.set() if ch.state is fc.coordination.SessionState.LOST else None
        )
        async with fc.Engine(journal) as e1, Conductor(b1, e1, w.registry, name="one") as c1:
            await w.reached.wait()  # one is inside task b
            proxy.pause()  # black hole: SUSPENDED after T/3, LOST after 2T/3
            with anyio.fail_after(3 * T):
                await lost.wait()
            await until(lambda: not c1.running)
            assert c1.stats.lost == 1
            entries_before = len(await journal.read("flow-1"))
            w.hold = None
            w.gate.set()
            async with board(zk_server.hosts, zk_namespace) as b2:
                async with (
                    fc.Engine(journal) as e2,
                    Conductor(b2, e2, w.registry, name="two") as c2,
                ):
                    await idle(c2)  # claims once the server expired one's session
                assert c2.stats.consumed == 1
                assert job.job_id not in {j.job_id for j in await b2.jobs()}
            proxy.resume()
    entries = await journal.read("flow-1")
    assert fc.journal.replay("flow-1", entries).state is fc.FlowState.SUCCESS
    assert (w.runs["a"], w.runs["b"], w.runs["c"]) == (1, 2, 1)
    assert len(entries) > entries_before
    tokens = [e.token for e in entries]
    assert tokens == sorted(tokens)
    assert len(set(tokens)) == 2


async def test_a_job_claimed_too_often_is_trashed(zk_hosts: str, zk_namespace: str) -> None:
    w = World()
    async with board(zk_hosts, zk_namespace) as b:
        job = await b.post("three")
        for _ in range(3):  # three owners "crashed" holding it (closing drops their lock)
            async with board(zk_hosts, zk_namespace) as ghost:
                await ghost.claim(await ghost.get(job.job_id), "ghost")
        async with fc.Engine() as engine, Conductor(b, engine, w.registry, max_claims=3) as c:
            await idle(c)
        (trashed,) = await b.trashed()
    assert "claimed 3 times without finishing" in trashed.reason
    assert trashed.job.job_id == job.job_id
    assert w.runs["a"] == 0


async def test_a_lost_session_loses_its_claims(
    zk_server: ZooKeeperServer, zk_namespace: str
) -> None:
    async with (
        proxied_board(zk_server, zk_namespace) as (b1, proxy),
        board(zk_server.hosts, zk_namespace) as b2,
    ):
        await b1.register("one", {"n": 1})
        job = await b1.post("three")
        claim = await b1.claim(job, "one")
        assert await b1.holds(claim)
        assert [(m.name, m.claims) for m in await b2.members()] == [("one", (job.job_id,))]
        proxy.pause()
        with anyio.fail_after(3 * T):
            await b1.session.wait_for(fc.coordination.SessionState.LOST)
        assert b1.session.generation == claim.generation + 1
        with anyio.fail_after(3 * T):  # the server expires it; the lock goes with it
            while (await b2.get(job.job_id)).owner is not None:
                await b2.wait_changed()
        other = await b2.claim(await b2.get(job.job_id), "two")
        assert other.token > claim.token
        proxy.resume()
        with anyio.fail_after(3 * T):
            await b1.session.wait_for(fc.coordination.SessionState.CONNECTED)
        assert not await b1.holds(claim)
        with pytest.raises(OwnershipLost):
            await b1.consume(claim)
        assert await b2.members() == []  # one's member node went with its session
        await b2.consume(other)


async def test_a_consume_whose_reply_was_lost_is_not_repeated(
    zk_server: ZooKeeperServer, zk_namespace: str
) -> None:
    async with (
        proxied_board(zk_server, zk_namespace) as (b, proxy),
        board(zk_server.hosts, zk_namespace) as watcher,
    ):
        job = await b.post("three")
        await b.post("three")
        claim = await b.claim(job, "one")
        await watcher.jobs()
        proxy.pause(to_server=False)  # the request reaches the server, the reply is held

        async def cut_once_applied() -> None:
            with anyio.fail_after(T):
                while job.job_id in {j.job_id for j in await watcher.jobs()}:
                    await watcher.wait_changed()
            await proxy.cut()  # the reply is lost with the connection
            proxy.resume()

        async with anyio.create_task_group() as tg:
            tg.start_soon(cut_once_applied)
            await b.consume(claim)  # the session reconnects and finds the job gone
        assert b.writes["consume"] == 1
        assert job.job_id not in {j.job_id for j in await b.jobs()}
        assert len(await b.jobs()) == 1


async def test_wait_changed_sees_a_post_made_while_disconnected(
    zk_server: ZooKeeperServer, zk_namespace: str
) -> None:
    async with (
        proxied_board(zk_server, zk_namespace) as (b1, proxy),
        board(zk_server.hosts, zk_namespace) as b2,
    ):
        assert await b1.jobs() == []
        await proxy.cut()  # the connection (and the server-side watches' delivery) breaks
        await b2.post("three")
        with anyio.fail_after(2 * T):
            while not await b1.jobs():
                await b1.wait_changed()
