"""Conductors on the in-memory coordination twin: claim, run, consume, hand over, fence."""

from __future__ import annotations

from collections.abc import Callable

import anyio
import pytest

import flowcoord as fc
from flowcoord._coord._conductor import Conductor
from flowcoord._coord._memory import MemoryCoordinator, MemorySession
from tests.conductor_world import World

pytestmark = pytest.mark.anyio


def _state(engine: fc.Engine, flow_id: str) -> fc.FlowState | None:
    handle = engine.handle(flow_id)
    return handle.state if handle is not None else None


async def _idle(conductor: Conductor) -> None:
    with anyio.fail_after(5):
        await conductor.wait_idle()


async def _until(pred: Callable[[], bool]) -> None:
    with anyio.fail_after(5):
        while not pred():  # noqa: ASYNC110 - polling a plain predicate, bounded
            await anyio.sleep(0.005)


async def test_runs_jobs_and_consumes_them() -> None:
    w, coord, journal = World(), MemoryCoordinator(), fc.MemoryJournal()
    board = coord.board()
    jobs = [await board.post("three", flow_id=f"f{i}") for i in range(3)]
    failing = await board.post("failing", flow_id="bad")
    async with fc.Engine(journal) as engine, Conductor(board, engine, w.registry) as c:
        await _idle(c)
        assert (await engine.status("f0")).state is fc.FlowState.SUCCESS
        assert (await engine.status("bad")).state is fc.FlowState.REVERTED
    assert await board.jobs() == []
    assert c.stats.consumed == len(jobs) + 1
    assert c.stats.failed == 1
    assert w.runs["a"] == 3
    assert failing.job_id not in {j.job_id for j in await board.jobs()}


async def test_unknown_flow_goes_to_trash() -> None:
    w, coord = World(), MemoryCoordinator()
    board = coord.board()
    await board.post("nope")
    async with fc.Engine() as engine, Conductor(board, engine, w.registry) as c:
        await _idle(c)
    (trashed,) = await board.trashed()
    assert "no flow registered as 'nope'" in trashed.reason
    assert c.stats.trashed == 1


async def test_a_job_claimed_too_often_is_trashed_not_cycled() -> None:
    w, coord = World(), MemoryCoordinator()
    board = coord.board()
    job = await board.post("three")
    for _ in range(3):  # three owners "crashed" holding it
        other = coord.board()
        await other.claim(await other.get(job.job_id), "ghost")
        other.session.expire()
    async with fc.Engine() as engine, Conductor(board, engine, w.registry, max_claims=3) as c:
        await _idle(c)
    (trashed,) = await board.trashed()
    assert "claimed 3 times without finishing" in trashed.reason
    assert w.runs["a"] == 0


async def test_session_loss_aborts_and_another_conductor_takes_over() -> None:
    w, coord, journal = World(), MemoryCoordinator(), fc.MemoryJournal()
    w.hold = "b"
    board1 = coord.board()
    await board1.post("three", flow_id="flow-1")
    async with fc.Engine(journal) as e1, Conductor(board1, e1, w.registry, name="one") as c1:
        await w.reached.wait()  # one is inside task b
        session1 = board1.session
        assert isinstance(session1, MemorySession)
        session1.close()  # dead: its claim vanishes; it must stop writing
        await _until(lambda: not c1.running)
        assert c1.stats.lost == 1
        entries_before = len(await journal.read("flow-1"))
        w.hold = None
        w.gate.set()
        board2 = coord.board()
        async with fc.Engine(journal) as e2, Conductor(board2, e2, w.registry, name="two") as c2:
            await _idle(c2)
        assert c2.stats.consumed == 1
    entries = await journal.read("flow-1")
    rep = fc.journal.replay("flow-1", entries)
    assert rep.state is fc.FlowState.SUCCESS
    assert w.runs["a"] == 1  # journaled success: not re-run by the new owner
    assert w.runs["b"] == 2  # in flight at the hand-over: at-least-once
    assert w.runs["c"] == 1
    assert len(entries) > entries_before
    # every entry after the hand-over carries the new owner's larger token
    tokens = [e.token for e in entries]
    assert tokens == sorted(tokens)
    assert len(set(tokens)) == 2


async def test_expired_session_aborts_then_the_conductor_reclaims_on_its_new_session() -> None:
    w, coord, journal = World(), MemoryCoordinator(), fc.MemoryJournal()
    w.hold = "b"
    board = coord.board()
    await board.post("three", flow_id="flow-2")
    async with fc.Engine(journal) as engine, Conductor(board, engine, w.registry) as c:
        await w.reached.wait()
        w.reached = anyio.Event()
        session = board.session
        assert isinstance(session, MemorySession)
        session.expire()  # LOST, then a new session
        await w.reached.wait()  # re-claimed with a new token, back in b
        assert c.stats.lost == 1
        w.gate.set()
        await _idle(c)
    assert (w.runs["a"], w.runs["b"], w.runs["c"]) == (1, 2, 1)
    assert c.stats.claimed == 2


async def test_suspended_session_starts_no_new_task_until_reconnected() -> None:
    w, coord = World(), MemoryCoordinator()
    w.hold = "a"
    board = coord.board()
    await board.post("three", flow_id="s")
    session = board.session
    assert isinstance(session, MemorySession)
    async with fc.Engine() as engine, Conductor(board, engine, w.registry) as c:
        await w.reached.wait()
        session.suspend()
        w.gate.set()
        await _until(lambda: _state(engine, "s") is fc.FlowState.SUSPENDED)
        assert w.runs["b"] == 0
        session.reconnect()
        await _idle(c)
    assert w.runs["c"] == 1


async def test_shutdown_abandons_and_another_conductor_resumes() -> None:
    w, coord, journal = World(), MemoryCoordinator(), fc.MemoryJournal()
    w.hold = "b"
    board = coord.board()
    await board.post("three", flow_id="h")
    async with fc.Engine(journal) as engine:
        async with Conductor(board, engine, w.registry, shutdown_timeout=0.2) as c:
            await w.reached.wait()
        assert c.stats.abandoned == 1
    (job,) = await board.jobs()
    assert job.owner is None
    w.hold = None
    w.gate.set()
    async with fc.Engine(journal) as engine, Conductor(coord.board(), engine, w.registry) as c2:
        await _idle(c2)
    assert c2.stats.consumed == 1
    assert w.runs["a"] == 1


async def test_members_show_what_each_conductor_owns() -> None:
    w, coord = World(), MemoryCoordinator()
    w.hold = "a"
    board = coord.board()
    job = await board.post("three")
    async with fc.Engine() as engine, Conductor(board, engine, w.registry, name="n1") as c:
        await w.reached.wait()
        members = await board.members()
        assert [(m.name, m.claims) for m in members] == [("n1", (job.job_id,))]
        w.gate.set()
        await _idle(c)


async def test_a_poison_job_is_quarantined_and_the_jobs_beside_it_are_not_trashed() -> None:
    """A job that kills its conductor (here: expires its session, the in-memory stand-in for
    a death) takes the jobs claimed beside it down once; re-claimed, each of them is a suspect
    and runs alone, so the next deaths are charged to the poison job only."""
    coord, journal = MemoryCoordinator(), fc.MemoryJournal()
    board = coord.board()
    session = board.session
    conductors: list[Conductor] = []
    poisoned = 0

    async def patient() -> str:
        # Finishes only when its conductor runs nothing else: beside the poison job it is
        # always still running when the poison strikes.
        await _until(lambda: len(conductors[0].running) == 1)
        return "ok"

    async def poison() -> None:
        nonlocal poisoned
        poisoned += 1
        session.expire()  # every claim of this conductor vanishes, its flows are aborted
        await anyio.sleep_forever()

    reg = fc.FlowRegistry()
    reg.register("patient", lambda: fc.Linear("patient", fc.FunctionTask(patient, "p")))
    reg.register("poison", lambda: fc.Linear("poison", fc.FunctionTask(poison, "x")))
    names = ["good-0", "good-1", "bad", "good-2", "good-3"]
    for fid in names:  # a backlog: one scan claims them all
        await board.post("poison" if fid == "bad" else "patient", flow_id=fid)
    async with (
        fc.Engine(journal) as engine,
        Conductor(board, engine, reg, max_claims=3) as c,
    ):
        conductors.append(c)
        await _idle(c)
        for fid in names:
            if fid != "bad":
                assert (await engine.status(fid)).state is fc.FlowState.SUCCESS, fid
    (trashed,) = await board.trashed()
    assert trashed.job.flow_id == "bad"
    assert "claimed 3 times without finishing (max_claims=3)" in trashed.reason
    assert poisoned == 3  # once beside the others, then twice alone
    assert c.stats.consumed == 4
    assert c.stats.trashed == 1
