"""A conductor hands a sleeping workflow's job back to the board until it wakes, and gives
back cleanly what its shutdown stopped: released jobs hold no claim meanwhile, are no
suspects when claimed again, and their flows resume where they slept, sleeping only what
is left."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import anyio
import pytest

import flowcoord as fc
from flowcoord._coord._conductor import Conductor
from flowcoord._coord._memory import MemoryCoordinator
from flowcoord._journal._events import EventKind

pytestmark = pytest.mark.anyio


async def _until(pred: Callable[[], bool], seconds: float = 10) -> None:
    with anyio.fail_after(seconds):
        while not pred():  # noqa: ASYNC110 - polling a plain predicate, bounded
            await anyio.sleep(0.01)


def _registry(done: list[tuple[str, float]], nap: float) -> fc.FlowRegistry:
    async def work(name: str) -> str:
        done.append((name, time.time()))
        return name

    @fc.workflow(name="napper")
    async def napper(ctx: fc.Context) -> str:
        await ctx.step(work, "before")
        await ctx.sleep(nap)
        return await ctx.step(work, "after")

    @fc.workflow(name="watcher")
    async def watcher(ctx: fc.Context) -> Any:
        # a sleep beside an event wait: an event may come at any time, so it stays here
        _, got = await ctx.gather(ctx.sleep(nap), ctx.wait_event("go"))
        return got

    async def slow() -> None:
        await anyio.sleep(0.3)

    async def last() -> str:
        done.append(("last", time.time()))
        return "last"

    reg = fc.FlowRegistry()
    reg.register("napper", napper)
    reg.register("watcher", watcher)
    reg.register("pattern", fc.Linear("pattern", fc.FunctionTask(slow), fc.FunctionTask(last)))
    return reg


async def _wakes(journal: fc.MemoryJournal, flow_id: str) -> list[float]:
    entries = await journal.read(flow_id)
    return [
        json.loads(e.data)["result"]
        for e in entries
        if e.kind is EventKind.TASK_SUCCEEDED and e.task is not None and e.task.endswith(":sleep")
    ]


async def test_a_long_sleep_is_handed_back_until_it_wakes_then_resumed() -> None:
    done: list[tuple[str, float]] = []
    coord = MemoryCoordinator()
    board = coord.board()
    journal = fc.MemoryJournal()
    reg = _registry(done, nap=2.0)
    job = await board.post("napper", flow_id="n", priority=2)
    async with (
        fc.Engine(journal) as engine,
        Conductor(board, engine, reg, capacity=1, hand_back_after=1.0) as c,
    ):
        await _until(lambda: c.stats.handed_back == 1)
        assert c.running == {}  # no claim, no run held meanwhile
        (wake,) = await _wakes(journal, "n")
        seen = await board.get(job.job_id)
        assert (seen.owner, seen.claims, seen.priority) == (None, 0, 2)
        assert seen.not_before == pytest.approx(wake)
        assert (await engine.status("n")).state is fc.FlowState.SUSPENDED
        assert [name for name, _ in done] == ["before"]
        await _until(lambda: len(done) == 2)  # claimed again once due, resumed
        with anyio.fail_after(5):
            await c.wait_idle()
        assert (await engine.status("n")).state is fc.FlowState.SUCCESS
    assert done[0][0] == "before"
    assert done[1][0] == "after"
    assert done[1][1] >= wake  # it slept its whole sleep, once
    assert await _wakes(journal, "n") == [wake]  # the wake-up time journaled once
    assert (c.stats.claimed, c.stats.consumed, c.stats.quarantined) == (2, 1, 0)
    assert (c.stats.released, c.stats.abandoned) == (1, 0)


async def test_a_short_sleep_and_a_sleep_beside_an_event_wait_keep_their_claims() -> None:
    done: list[tuple[str, float]] = []
    coord = MemoryCoordinator()
    board = coord.board()
    journal = fc.MemoryJournal()
    await board.post("napper", flow_id="short")
    async with (
        fc.Engine(journal) as engine,
        Conductor(board, engine, _registry(done, nap=1.5), hand_back_after=5.0) as c,
    ):
        await _until(lambda: c.waiting == 1)
        await anyio.sleep(0.8)  # past the hand-back decision: it wakes too soon to go
        assert [r.claim.job.flow_id for r in c.running.values()] == ["short"]
        with anyio.fail_after(10):
            await c.wait_idle()
        assert (await engine.status("short")).state is fc.FlowState.SUCCESS
    await board.post("watcher", flow_id="w")
    async with (
        fc.Engine(journal) as engine,
        Conductor(board, engine, _registry(done, nap=5.0), hand_back_after=0.0) as c,
    ):
        await _until(lambda: c.waiting == 1)
        await anyio.sleep(0.8)
        assert [r.claim.job.flow_id for r in c.running.values()] == ["w"]
        handle = engine.handle("w")
        assert handle is not None
        assert handle.waiting
        assert handle.waiting_until is None  # an event may come at any time: no wake time
        await engine.send_event("w", "go", "now")
        await anyio.sleep(0.2)
        assert handle.waiting_until is not None  # only the sleep is left now ...
        await _until(lambda: c.stats.handed_back == 1)  # ... so it goes back to the board
        assert c.running == {}
        await _until(lambda: c.stats.consumed == 1)
        assert (await engine.status("w")).state is fc.FlowState.SUCCESS
        out = await engine.resume(_registry(done, nap=5.0).build("watcher"), "w")
        assert out.result == "now"  # what the run got, the event


async def test_a_shutdown_gives_a_sleeper_back_until_it_wakes_and_a_busy_flow_at_once() -> None:
    done: list[tuple[str, float]] = []
    coord = MemoryCoordinator()
    board = coord.board()
    journal = fc.MemoryJournal()
    reg = _registry(done, nap=1.5)
    sleeper = await board.post("napper", flow_id="n")
    busy = await board.post("pattern", flow_id="p")
    async with fc.Engine(journal) as engine:
        async with Conductor(board, engine, reg, hand_back_after=None) as first:
            await _until(lambda: first.waiting == 1 and len(first.running) == 2)
        # stopped cleanly: given back, neither abandoned nor consumed
        assert (first.stats.released, first.stats.handed_back) == (2, 1)
        assert (first.stats.abandoned, first.stats.consumed) == (0, 0)
        (wake,) = await _wakes(journal, "n")
        n, p = await board.get(sleeper.job_id), await board.get(busy.job_id)
        assert (n.owner, n.claims) == (None, 0)
        assert n.not_before == pytest.approx(wake)
        assert (p.owner, p.claims, p.not_before) == (None, 0, 0.0)
        assert [name for name, _ in done] == ["before"]  # the pattern's last task did not
        async with Conductor(board, engine, reg) as second:
            with anyio.fail_after(10):
                await _until(lambda: second.stats.consumed == 2)
        # neither is a suspect: each ran beside the other, not alone
        assert second.stats.quarantined == 0
        for flow_id in ("n", "p"):
            assert (await engine.status(flow_id)).state is fc.FlowState.SUCCESS
    after = dict(done)
    assert after["after"] >= wake
    assert "last" in after


async def test_bad_hand_back_after_is_refused() -> None:
    board = MemoryCoordinator().board()
    async with fc.Engine() as engine:
        for bad in (-1, float("inf"), "60", True):
            with pytest.raises(fc.errors.ConfigurationError, match="hand_back_after"):
                Conductor(board, engine, fc.FlowRegistry(), hand_back_after=bad)  # type: ignore[arg-type]
