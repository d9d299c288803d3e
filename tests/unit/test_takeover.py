"""An operator's take-over (flowcoord.coordination.take_over) against live conductors on the
in-memory coordination twin: refused while a live owner holds the flow, forced (the owner is
fenced out at its next write), and free once the claim is gone."""

from __future__ import annotations

from collections.abc import Callable

import anyio
import pytest

import flowcoord as fc
from flowcoord.coordination import Conductor, MemoryCoordinator, take_over
from flowcoord.errors import FlowFinished, FlowOwned, FlowRunning, OwnershipLost
from tests.conductor_world import World

pytestmark = pytest.mark.anyio


async def _until(pred: Callable[[], bool]) -> None:
    with anyio.fail_after(5):
        while not pred():  # noqa: ASYNC110 - polling a plain predicate, bounded
            await anyio.sleep(0.005)


async def test_a_live_owner_refuses_the_take_over_and_force_fences_it_out() -> None:
    w, coord, journal = World(), MemoryCoordinator(), fc.MemoryJournal()
    w.hold = "b"
    board = coord.board()
    job = await board.post("three", flow_id="f-1")
    async with fc.Engine(journal) as e1, Conductor(board, e1, w.registry, name="owner-1") as c1:
        await w.reached.wait()  # the owner runs task b
        claim_token = (await journal.get_flow("f-1")).token  # type: ignore[union-attr]
        written = len(await journal.read("f-1"))
        ops = coord.board()  # the operator's own session
        async with fc.Engine(journal) as e2:
            with pytest.raises(FlowOwned) as info:
                await take_over(e2, w.three(), "f-1", board=ops)
            err = info.value
            assert (err.flow_id, err.owner, err.job_id) == ("f-1", "owner-1", job.job_id)
            assert "owned by owner-1" in str(err)
            assert "force" in (err.hint or "")
            assert isinstance(err, fc.errors.CoordinationError)
            # refused before anything was written: no fence, no entry
            assert (await journal.get_flow("f-1")).token == claim_token  # type: ignore[union-attr]
            assert len(await journal.read("f-1")) == written
            assert e2.handle("f-1") is None

            w.hold = None  # the new run passes b; the owner's b still waits at the gate
            handle = await take_over(e2, w.three(), "f-1", board=ops, force=True)
            outcome = await handle.wait()
            assert outcome.state is fc.FlowState.SUCCESS
            assert (await journal.get_flow("f-1")).token == claim_token + 1  # type: ignore[union-attr]

            w.gate.set()  # the owner's b returns: its next write is refused
            await _until(lambda: c1.stats.lost == 1)
            assert not c1.running
            rep = fc.journal.replay("f-1", await journal.read("f-1"))
            assert rep.state is fc.FlowState.SUCCESS
            assert (w.runs["a"], w.runs["b"], w.runs["c"]) == (1, 2, 1)
            # The owner still holds its claim, but the flow has ended: that is what is said.
            assert await ops.claimed_job("f-1") is not None
            with pytest.raises(FlowFinished):
                await take_over(e2, w.three(), "f-1", board=ops)


async def test_the_forced_owners_next_write_raises_ownership_lost() -> None:
    """Without a conductor in between: the old owner's own handle sees OwnershipLost."""
    w, coord, journal = World(), MemoryCoordinator(), fc.MemoryJournal()
    w.hold = "b"
    owner = coord.board()
    claim = await owner.claim(await owner.post("three", flow_id="f-2"), "owner-2")
    async with fc.Engine(journal) as e1, fc.Engine(journal) as e2:
        old = await e1.start(w.three(), flow_id="f-2", token=claim.token)
        await w.reached.wait()
        w.hold = None
        new = await take_over(e2, w.three(), "f-2", board=coord.board(), force=True)
        assert (await new.wait()).state is fc.FlowState.SUCCESS
        w.gate.set()
        with pytest.raises(OwnershipLost):
            await old.wait()


async def test_no_live_claim_means_the_take_over_goes_ahead() -> None:
    w, coord, journal = World(), MemoryCoordinator(), fc.MemoryJournal()
    w.hold = "b"
    board = coord.board()
    await board.post("three", flow_id="f-3")
    async with fc.Engine(journal) as e1, Conductor(board, e1, w.registry, name="dead") as c1:
        await w.reached.wait()
        board.session.close()  # the owner dies: its claim vanishes, its flow stops
        await _until(lambda: not c1.running)
    w.hold = None
    ops = coord.board()
    assert await ops.claimed_job("f-3") is None
    async with fc.Engine(journal) as e2:
        handle = await take_over(e2, w.three(), "f-3", board=ops, cancel=True)
        with pytest.raises(fc.FlowCancelled):
            await handle.wait()
    assert (await journal.get_flow("f-3")).state == "CANCELLED"  # type: ignore[union-attr]


async def test_without_a_board_only_the_journal_fence_applies() -> None:
    w, coord, journal = World(), MemoryCoordinator(), fc.MemoryJournal()
    w.hold = "b"
    owner = coord.board()
    claim = await owner.claim(await owner.post("three", flow_id="f-4"), "owner-4")
    async with fc.Engine(journal) as e1, fc.Engine(journal) as e2:
        old = await e1.start(w.three(), flow_id="f-4", token=claim.token)
        await w.reached.wait()
        w.hold = None
        new = await take_over(e2, w.three(), "f-4", board=None)  # nobody asked: taken
        assert (await new.wait()).state is fc.FlowState.SUCCESS
        w.gate.set()
        with pytest.raises(OwnershipLost):
            await old.wait()


async def test_missing_finished_and_running_here_are_the_engines_answers() -> None:
    w, coord = World(), MemoryCoordinator()
    w.hold = "b"
    board = coord.board()
    async with fc.Engine() as engine:
        with pytest.raises(fc.FlowNotFound):
            await take_over(engine, w.three(), "nope", board=board)
        await engine.run(fc.Linear("one", w.step("x")), flow_id="done")
        with pytest.raises(FlowFinished):
            await take_over(engine, fc.Linear("one", w.step("x")), "done", board=board)
        handle = await engine.start(w.three(), flow_id="here")
        await w.reached.wait()
        with pytest.raises(FlowRunning, match="already running"):
            await take_over(engine, w.three(), "here", board=board)
        assert engine.handle("here") is handle
        w.gate.set()
        await handle.wait()
    with pytest.raises(fc.errors.ConfigurationError):
        await take_over(engine, w.three(), "bad id", board=board)
