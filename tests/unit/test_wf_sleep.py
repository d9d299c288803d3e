"""Durable sleep: ``ctx.sleep`` journals its wake-up time once, durably; a run resumed
after a crash or a stop sleeps only what is left (the same journaled time, no new one);
suspend, stop and cancel reach a sleeping run; bad input is refused before anything is
written."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from typing import Any

import anyio
import pytest

import flowcoord as fc
from flowcoord.errors import WorkflowContextError
from flowcoord.journal import Entry, EventKind, FlowRecord

pytestmark = pytest.mark.anyio


def make(seconds: float, calls: list[str]) -> fc.Workflow:
    async def do(what: str) -> str:
        calls.append(what)
        return what

    async def undo(what: str) -> None:
        calls.append(f"undo {what}")

    @fc.workflow(name="nap")
    async def nap(ctx: fc.Context) -> str:
        await ctx.step(do, "before", revert=undo)
        await ctx.sleep(seconds)
        return await ctx.step(do, "after")

    return nap


def _wakes(entries: list[Entry]) -> list[float]:
    return [
        float(fc.Codec().decode(e.data)["result"])
        for e in entries
        if e.kind is EventKind.TASK_SUCCEEDED and e.task == "2:sleep"
    ]


async def _sleeping(engine: fc.Engine, flow_id: str) -> list[Entry]:
    """The flow's entries once its sleep's wake-up time is durable."""
    with anyio.fail_after(10):
        while not _wakes(entries := await engine.journal.read(flow_id)):  # noqa: ASYNC110 - bounded
            await anyio.sleep(0.01)
    return entries


async def test_a_sleep_journals_its_wake_up_time_and_waits_for_it() -> None:
    calls: list[str] = []
    async with fc.Engine() as engine:
        t0 = time.time()
        out = await engine.run(make(0.2, calls), flow_id="n1")
        assert out.result == "after"
        (wake,) = _wakes(await engine.journal.read("n1"))
        assert t0 + 0.2 <= wake <= time.time()
        rep = await engine.status("n1")
    assert list(rep.tasks) == ["1:do", "2:sleep", "3:do"]
    assert calls == ["before", "after"]


async def test_a_resumed_run_sleeps_only_what_is_left_of_the_journaled_sleep() -> None:
    calls: list[str] = []
    async with fc.Engine() as engine:
        handle = await engine.start(make(0.5, calls), flow_id="n2")
        entries = await _sleeping(engine, "n2")
        handle.cancel()  # the engine crashes (what it wrote stays; nothing after it)
        with pytest.raises(fc.FlowCancelled):
            await handle.wait()
    (wake,) = _wakes(entries)
    journal = fc.MemoryJournal()
    async with journal:
        assert await journal.create_flow(FlowRecord("n2", "nap", "RUNNING"), entries)
    async with fc.Engine(journal) as engine:
        out = await engine.resume(make(0.5, calls), "n2")
        assert out.result == "after"
        assert time.time() >= wake
        assert _wakes(await journal.read("n2")) == [wake]  # the same sleep, not a new one
    assert calls == ["before", "undo before", "after"]  # the cancelled run compensated


async def test_a_wake_up_time_past_at_resume_is_not_slept_again() -> None:
    calls: list[str] = []
    async with fc.Engine() as engine:
        handle = await engine.start(make(3600, calls), flow_id="n3")
        entries = await _sleeping(engine, "n3")
        handle.stop()  # a sleeping run stops at once, resumable
        with anyio.fail_after(10):
            while (await engine.status("n3")).state is not fc.FlowState.SUSPENDED:  # noqa: ASYNC110 - bounded
                await anyio.sleep(0.01)
    # the same journal, its wake-up time moved an hour back: as if resumed an hour later
    (wake,) = _wakes(entries)
    data = json.dumps({"result": wake - 3600, "attempt": 1})
    past = [dataclasses.replace(e, data=data) if e.task == "2:sleep" else e for e in entries]
    assert _wakes(past) == [wake - 3600]
    journal = fc.MemoryJournal()
    async with journal:
        assert await journal.create_flow(FlowRecord("n3", "nap", "RUNNING"), past)
    async with fc.Engine(journal) as engine:
        with anyio.fail_after(10):  # not an hour
            out = await engine.resume(make(3600, calls), "n3")
    assert out.result == "after"
    assert calls == ["before", "after"]


async def test_suspend_stop_and_cancel_reach_a_sleeping_run() -> None:
    calls: list[str] = []
    async with fc.Engine() as engine:
        handle = await engine.start(make(3600, calls), flow_id="n4")
        await _sleeping(engine, "n4")
        handle.suspend()
        with anyio.fail_after(10):
            while (await engine.status("n4")).state is not fc.FlowState.SUSPENDED:  # noqa: ASYNC110 - bounded
                await anyio.sleep(0.01)
        handle.resume()
        with anyio.fail_after(10):
            while (await engine.status("n4")).state is not fc.FlowState.RUNNING:  # noqa: ASYNC110 - bounded
                await anyio.sleep(0.01)
        handle.cancel()
        with anyio.fail_after(10), pytest.raises(fc.FlowCancelled):
            await handle.wait()
        assert (await engine.status("n4")).state is fc.FlowState.CANCELLED
    assert calls == ["before", "undo before"]


@pytest.mark.parametrize("bad", [-1, math.inf, math.nan, "5", True, None])
async def test_a_bad_duration_is_refused_before_anything_is_written(bad: Any) -> None:
    @fc.workflow(name="bad_nap")
    async def bad_nap(ctx: fc.Context) -> None:
        await ctx.sleep(bad)

    async with fc.Engine() as engine:
        with pytest.raises(WorkflowContextError, match=r"ctx\.sleep takes"):
            await engine.run(bad_nap, flow_id="b1")
        kinds = [e.kind for e in await engine.journal.read("b1")]
        state = (await engine.status("b1")).state
    assert EventKind.TASK_SUCCEEDED not in kinds
    assert state is fc.FlowState.RUNNING  # the code is wrong, not the run: kept for the fix
