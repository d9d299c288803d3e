"""The engine's lifecycle around its flows: a handle's wait() when an error in the engine's
block cancels a background flow, and the plan cache (bounded, still hit by the same flow)."""

from __future__ import annotations

import gc
import weakref

import anyio
import pytest

import flowcoord as fc
from flowcoord._engine._engine import _PLAN_CACHE

pytestmark = pytest.mark.anyio


class _Gated:
    """A flow of two tasks; the first waits at a gate (open it to let a resume finish)."""

    def __init__(self) -> None:
        self.gate = anyio.Event()
        self.reached = anyio.Event()

        async def first() -> str:
            self.reached.set()
            await self.gate.wait()
            return "first"

        async def second() -> str:
            return "second"

        self.flow = fc.Linear(
            "gated",
            fc.FunctionTask(first, "first", provides="a"),
            fc.FunctionTask(second, "second", provides="b"),
        )


async def _start_then_fail(
    engine: fc.Engine, g: _Gated, error: Exception, handles: list[fc.FlowHandle]
) -> None:
    """Start ``g``'s flow in the background, then raise ``error`` in the engine's block."""
    async with engine:
        handles.append(await engine.start(g.flow, flow_id="bg"))
        await g.reached.wait()
        raise error


async def test_wait_raises_flow_cancelled_when_an_error_in_the_block_cancels_the_flow() -> None:
    g, journal = _Gated(), fc.MemoryJournal()
    handles: list[fc.FlowHandle] = []
    error = RuntimeError("the caller's own error")
    with pytest.raises(RuntimeError) as raised:
        await _start_then_fail(fc.Engine(journal), g, error, handles)
    assert raised.value is error  # through unwrapped, as before
    (handle,) = handles
    assert handle.done
    with pytest.raises(fc.FlowCancelled) as info:
        await handle.wait()
    err = info.value
    assert err.flow_id == "bg"
    assert "'async with Engine' block" in str(err)
    assert "engine.resume(flow, 'bg')" in str(err)
    # What it says holds: the flow is unfinished in the journal and resumes to the end.
    g.gate.set()
    async with fc.Engine(journal) as engine:
        assert not (await engine.status("bg")).state.finished
        outcome = await engine.resume(g.flow, "bg")
    assert outcome.state is fc.FlowState.SUCCESS
    assert (outcome["a"], outcome["b"]) == ("first", "second")


async def test_a_waiter_outside_the_engine_gets_flow_cancelled_too() -> None:
    g = _Gated()
    handles: list[fc.FlowHandle] = []
    got: list[BaseException] = []

    async def waiter() -> None:
        await g.reached.wait()  # the flow runs: its handle exists
        try:
            await handles[0].wait()
        except BaseException as exc:
            got.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)  # waiting already when the error strikes
        with pytest.raises(KeyError):
            await _start_then_fail(fc.Engine(), g, KeyError("boom"), handles)
    (exc,) = got
    assert isinstance(exc, fc.FlowCancelled)
    assert exc.flow_id == "bg"


async def test_the_plan_cache_stays_small_and_the_same_flow_still_hits_it() -> None:
    async def one() -> int:
        return 1

    task = fc.FunctionTask(one, "one", provides="x")
    engine = fc.Engine()
    kept = fc.Linear("kept", task)
    plan = engine.compile(kept)
    first = fc.Linear("fresh", task)
    first_ref = weakref.ref(first)
    engine.compile(first)
    del first
    for _ in range(10_000):  # a conductor or the API builds a fresh flow per job
        engine.compile(fc.Linear("fresh", task))
        assert engine.compile(kept) is plan  # used all along: never evicted, never recompiled
    assert len(engine._plans) <= _PLAN_CACHE
    gc.collect()
    assert first_ref() is None  # the cache let go of a flow it no longer needs
    again = fc.Linear("again", task)
    assert engine.compile(again) is engine.compile(again)


async def test_take_over_fences_resumes_or_cancels_and_refuses_finished_flows() -> None:
    gate, ran = anyio.Event(), anyio.Event()

    @fc.task
    async def first() -> None:
        ran.set()

    @fc.task
    async def wait() -> None:
        await gate.wait()

    flow = fc.Linear("t", first, wait)
    backend = fc.MemoryJournal()
    async with fc.Engine(backend) as old:
        handle = await old.start(flow, flow_id="t1", token=3)
        await ran.wait()
        async with fc.Engine(backend) as new:
            with pytest.raises(fc.FlowNotFound):
                await new.take_over(flow, "nope")
            taken = await new.take_over(flow, "t1", cancel=True)
            with pytest.raises(fc.FlowCancelled):
                await taken.wait()
            assert (await backend.get_flow("t1")).token == 4  # type: ignore[union-attr]
            with pytest.raises(fc.errors.FlowFinished, match="nothing to resume") as info:
                await new.take_over(flow, "t1")
            assert info.value.state == "CANCELLED"
        gate.set()
        with pytest.raises(fc.OwnershipLost):  # the old owner was fenced out
            await handle.wait()
