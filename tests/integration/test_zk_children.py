"""A workflow with a child workflow, run from a real ZooKeeper job board: the conductor that
holds the job loses its session while the child runs; the child is suspended and aborted with
its parent, and the conductor that takes the job over resumes the parent, which resumes the
child under the new fencing token. Every step of the family runs once."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

import flowcoord as fc
from flowcoord._coord._conductor import Conductor
from flowcoord._coord._zk_board import ZooKeeperJobBoard
from flowcoord._coord._zk_session import ZooKeeperSession
from flowcoord.coordination import SessionState
from flowcoord.journal import EventKind
from flowcoord.testing import FaultProxy, ZooKeeperServer

pytestmark = [pytest.mark.anyio, pytest.mark.zookeeper]

T = 2.0  # session timeout (s)


@asynccontextmanager
async def board(hosts: str, namespace: str) -> AsyncIterator[ZooKeeperJobBoard]:
    async with ZooKeeperSession(hosts, namespace=namespace, session_timeout=T) as session:
        yield ZooKeeperJobBoard(session)


async def until(pred: Callable[[], bool], within: float = 10) -> None:
    with anyio.fail_after(within):
        while not pred():  # noqa: ASYNC110 - polling a plain predicate, bounded
            await anyio.sleep(0.01)


class Family:
    """A parent workflow and its child; the child's step 2 waits on a gate once."""

    def __init__(self) -> None:
        self.ran: Counter[str] = Counter()
        self.reached = anyio.Event()
        self.gate = anyio.Event()
        self.registry = fc.FlowRegistry()

        async def part(name: str) -> str:
            self.ran[name] += 1
            if name == "child-2" and not self.gate.is_set():
                self.reached.set()
                await self.gate.wait()
            return name

        async def unpart(name: str) -> None:
            self.ran[f"undo {name}"] += 1

        @fc.workflow(name="child")
        async def child(ctx: fc.Context) -> list[str]:
            return [await ctx.step(part, f"child-{i}", revert=unpart) for i in (1, 2, 3)]

        @fc.workflow(name="parent")
        async def parent(ctx: fc.Context) -> dict[str, Any]:
            first = await ctx.step(part, "parent-1", revert=unpart)
            inner = await ctx.run(child)
            last = await ctx.step(part, "parent-3")
            return {"first": first, "inner": inner, "last": last}

        self.registry.register("parent", parent)


async def test_a_family_handed_over_resumes_its_child_under_the_new_token(
    zk_server: ZooKeeperServer, zk_namespace: str, tmp_path: Path
) -> None:
    fam, fid = Family(), "fam-1"
    path = tmp_path / "journal.sqlite"
    states: list[SessionState] = []
    async with (
        FaultProxy("127.0.0.1", zk_server.port()) as proxy,
        board(f"127.0.0.1:{proxy.port}", zk_namespace) as b1,
    ):
        b1.session.add_listener(lambda ch: states.append(ch.state))
        await b1.post("parent", {}, flow_id=fid)
        async with (
            fc.Engine(fc.SQLiteJournal(path)) as e1,
            Conductor(b1, e1, fam.registry, name="one") as c1,
        ):
            with anyio.fail_after(5):
                await fam.reached.wait()  # one's child is inside its step 2
            proxy.pause()
            await until(lambda: SessionState.SUSPENDED in states, 2 * T)
            fam.gate.set()  # the step in flight ends; the child starts no other (suspended)
            await until(lambda: SessionState.LOST in states, 3 * T)
            await until(lambda: not c1.running)
            assert c1.stats.lost == 1
        assert fam.ran["child-3"] == 0
        async with (
            board(zk_server.hosts, zk_namespace) as b2,
            fc.Engine(fc.SQLiteJournal(path)) as e2,
            Conductor(b2, e2, fam.registry, name="two") as c2,
        ):
            with anyio.fail_after(15):
                await c2.wait_idle()
            assert c2.stats.consumed == 1
        proxy.resume()
    async with fc.Engine(fc.SQLiteJournal(path)) as engine:
        parent = await engine.status(fid)
        child = await engine.status(f"{fid}.2:child")
        child_entries = await engine.journal.read(f"{fid}.2:child")
    assert parent.state is fc.FlowState.SUCCESS
    assert child.state is fc.FlowState.SUCCESS
    assert child.parent == fid
    # every step once, the one in flight at the loss included (it had ended and was
    # journaled while suspended); nothing undone
    assert fam.ran == Counter({"parent-1": 1, "child-1": 1, "child-2": 1, "child-3": 1,
                               "parent-3": 1})  # fmt: skip
    tokens = [e.token for e in child_entries]
    old, new = sorted(set(tokens))
    assert tokens == sorted(tokens)  # the old owner's entries, then only the new owner's
    by_new = {e.task for e in child_entries if e.token == new and e.kind is EventKind.TASK_STARTED}
    assert by_new == {"3:part"}  # the new owner ran only what was left
    assert old < new
