"""Waiting jobs under a conductor: a workflow that only sleeps or waits for an event keeps
its claim but not a slot of the capacity; ``max_waiting`` bounds how many are held; a step
running beside a sleep makes the run busy again; the handle says all this."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import pytest

import flowcoord as fc
from flowcoord._coord._conductor import Conductor
from flowcoord._coord._memory import MemoryCoordinator

pytestmark = pytest.mark.anyio


def _held(c: Conductor) -> list[str]:
    """The flow ids of the jobs ``c`` holds."""
    return sorted(r.claim.job.flow_id for r in c.running.values())


async def _until(pred: Callable[[], bool], seconds: float = 5) -> None:
    with anyio.fail_after(seconds):
        while not pred():  # noqa: ASYNC110 - polling a plain predicate, bounded
            await anyio.sleep(0.005)


def _registry(done: list[str], gate: anyio.Event) -> fc.FlowRegistry:
    async def work(name: str) -> str:
        done.append(name)
        return name

    @fc.workflow(name="sleeper")
    async def sleeper(ctx: fc.Context) -> str:
        await ctx.sleep(0.4)
        return await ctx.step(work, "sleeper")

    @fc.workflow(name="waiter")
    async def waiter(ctx: fc.Context) -> Any:
        return await ctx.wait_event("go")

    @fc.workflow(name="quick")
    async def quick(ctx: fc.Context) -> str:
        return await ctx.step(work, "quick")

    async def hold() -> None:
        await gate.wait()

    @fc.workflow(name="beside")
    async def beside(ctx: fc.Context) -> None:
        # a sleep with a step running beside it: the run is busy while the step runs
        await ctx.gather(ctx.sleep(0.05), ctx.step(hold))

    reg = fc.FlowRegistry()
    for wf in (sleeper, waiter, quick, beside):
        reg.register(wf.name, wf)
    return reg


async def test_a_sleeping_job_frees_its_slot_and_finishes_after() -> None:
    done: list[str] = []
    coord = MemoryCoordinator()
    board = coord.board()
    reg = _registry(done, anyio.Event())
    await board.post("sleeper", flow_id="s")
    async with (
        fc.Engine(fc.MemoryJournal()) as engine,
        Conductor(board, engine, reg, capacity=1) as c,
    ):
        await _until(lambda: c.waiting == 1)
        handle = engine.handle("s")
        assert handle is not None
        assert handle.waiting
        # capacity 1 and one job held: the quick one runs all the same, while it sleeps
        await board.post("quick", flow_id="q")
        await _until(lambda: "quick" in done)
        assert "sleeper" not in done
        assert _held(c) == ["s"]  # its claim is held meanwhile
        await _until(lambda: "sleeper" in done)
        with anyio.fail_after(5):
            await c.wait_idle()
        assert (await engine.status("s")).state is fc.FlowState.SUCCESS
    assert c.stats.consumed == 2


async def test_max_waiting_bounds_the_waiting_jobs_held() -> None:
    coord = MemoryCoordinator()
    board = coord.board()
    reg = _registry([], anyio.Event())
    for i in range(3):
        await board.post("waiter", flow_id=f"w{i}")
    async with (
        fc.Engine(fc.MemoryJournal()) as engine,
        Conductor(board, engine, reg, capacity=1, max_waiting=1, rescan_interval=0.05) as c,
    ):
        await _until(lambda: len(c.running) == 2 and c.waiting == 2)
        await anyio.sleep(0.2)
        assert len(c.running) == 2  # one busy slot, one waiting besides: the third waits
        assert len(await board.jobs()) == 3
        held = _held(c)
        for flow_id in held:
            await engine.send_event(flow_id, "go", flow_id)
        await _until(lambda: len(c.running) == 1 and _held(c) != held)
        (last,) = _held(c)
        await _until(lambda: c.waiting == 1)
        await engine.send_event(last, "go", "last")
        with anyio.fail_after(5):
            await c.wait_idle()
        states = {(await engine.status(f"w{i}")).state for i in range(3)}
    assert states == {fc.FlowState.SUCCESS}


async def test_max_waiting_zero_keeps_the_slot() -> None:
    done: list[str] = []
    coord = MemoryCoordinator()
    board = coord.board()
    reg = _registry(done, anyio.Event())
    await board.post("sleeper", flow_id="s")
    async with (
        fc.Engine(fc.MemoryJournal()) as engine,
        Conductor(board, engine, reg, capacity=1, max_waiting=0, rescan_interval=0.05) as c,
    ):
        await _until(lambda: c.waiting == 1)
        await board.post("quick", flow_id="q")
        await _until(lambda: "sleeper" in done)
        await _until(lambda: "quick" in done)
        assert done == ["sleeper", "quick"]  # the quick job waited for the slot


async def test_a_step_beside_a_sleep_makes_the_run_busy() -> None:
    gate = anyio.Event()
    changes: list[bool] = []
    reg = _registry([], gate)
    async with fc.Engine(fc.MemoryJournal()) as engine:
        handle = await engine.start(reg.build("beside"), flow_id="b")
        handle.on_waiting(changes.append)
        await anyio.sleep(0.01)  # sleeping, and the step runs beside: busy
        assert not handle.waiting
        await anyio.sleep(0.15)  # the sleep is over, the step still runs
        assert not handle.waiting
        gate.set()
        await handle.wait()
    # at most an instant between the sleep's start and the step's, never after
    assert changes in ([], [True, False])
    assert not handle.waiting


async def test_a_pattern_flow_never_waits_and_bad_options_are_refused() -> None:
    async def noop() -> None:
        pass

    async with fc.Engine() as engine:
        handle = await engine.start(fc.Linear("p", fc.FunctionTask(noop, "n")))
        handle.on_waiting(lambda waiting: pytest.fail("a pattern flow never waits"))
        assert not handle.waiting
        await handle.wait()
        board = MemoryCoordinator().board()
        for bad in (-1, 1.5, True):
            with pytest.raises(fc.errors.ConfigurationError, match="max_waiting"):
                Conductor(board, engine, fc.FlowRegistry(), max_waiting=bad)  # type: ignore[arg-type]


async def test_the_waiting_jobs_are_a_metric() -> None:
    from prometheus_client import CollectorRegistry

    from flowcoord.prometheus import Metrics

    metrics = Metrics(CollectorRegistry())
    board = MemoryCoordinator().board()
    await board.post("waiter", flow_id="w")
    reg = _registry([], anyio.Event())
    async with fc.Engine(fc.MemoryJournal()) as engine, Conductor(board, engine, reg) as c:
        metrics.watch_conductor(c)
        await _until(lambda: c.waiting == 1)
        text = metrics.render()[0].decode()
        assert "flowcoord_jobs_waiting 1.0" in text
        assert "flowcoord_jobs_running 1.0" in text
        await engine.send_event("w", "go", 1)
        with anyio.fail_after(5):
            await c.wait_idle()
        assert "flowcoord_jobs_waiting 0.0" in metrics.render()[0].decode()
