"""Child flows: ``ctx.run`` of a workflow or a pattern flow inside a workflow, and
``fc.child`` of a workflow inside a pattern flow — deterministic ids, the link journaled both
ways, resume, compensation of a completed child, cancel / stop reaching the child, and the
typed errors of bad use."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import anyio
import pytest

import flowcoord as fc
from flowcoord.errors import ChildFlowConflict, StepFailed, WorkflowContextError
from flowcoord.journal import EventKind

pytestmark = pytest.mark.anyio


class World:
    """Effects the steps leave in the world; every call made."""

    def __init__(self) -> None:
        self.effects: set[str] = set()
        self.calls: list[str] = []
        self.gate: anyio.Event | None = None  # the "slow" step waits on it when set
        self.slow = anyio.Event()  # set when the "slow" step began

    async def do(self, what: str) -> str:
        self.calls.append(what)
        self.effects.add(what)
        if self.gate is not None and what == "slow":
            self.slow.set()
            await self.gate.wait()
        return f"{what}!"

    async def undo(self, what: str) -> None:
        self.calls.append(f"undo {what}")
        self.effects.discard(what)


def flows(world: World) -> tuple[fc.Workflow, fc.Workflow, fc.Flow]:
    @fc.workflow(name="disk")
    async def disk(ctx: fc.Context, size: int) -> str:
        return await ctx.step(world.do, f"disk{size}", revert=world.undo)

    async def publish_dns() -> str:
        return await world.do("dns")

    async def unpublish(result: str) -> None:
        await world.undo("dns")

    dns = fc.task(provides="dns", revert=unpublish)(publish_dns)
    publish = fc.Linear("publish", dns)

    @fc.workflow(name="vm")
    async def vm(ctx: fc.Context, fail: bool = False, slow: bool = False) -> dict[str, Any]:
        a = await ctx.step(world.do, "vm", revert=world.undo)
        d = await ctx.run(disk, {"size": 2})
        p = await ctx.run(publish)
        if slow:
            await ctx.step(world.do, "slow", revert=world.undo)
            await ctx.step(world.do, "after")
        if fail:
            await ctx.step(boom)
        return {"vm": a, "disk": d, "dns": p["dns"]}

    return vm, disk, publish


async def boom() -> None:
    raise RuntimeError("boom")


def _data(entry: Any) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(entry.data)
    return value


async def test_a_child_runs_with_a_deterministic_id_and_the_link_journaled_both_ways() -> None:
    world = World()
    vm, _, _ = flows(world)
    async with fc.Engine() as engine:
        out = await engine.run(vm, flow_id="p1")
        assert out.result == {"vm": "vm!", "disk": "disk2!", "dns": "dns!"}
        child = await engine.journal.read("p1.2:disk")
        created = _data(child[0])
        assert created["parent"] == "p1"
        assert created["parent_step"] == "2:disk"
        started = [e for e in await engine.journal.read("p1") if e.kind is EventKind.TASK_STARTED]
        assert [_data(e).get("child") for e in started] == [None, "p1.2:disk", "p1.3:publish"]
        rep = await engine.status("p1.3:publish")
        assert rep.parent == "p1"
        assert rep.state is fc.FlowState.SUCCESS


async def test_a_resumed_parent_resumes_its_child_and_reruns_nothing_done(
    tmp_path: Path,
) -> None:
    world = World()
    world.gate = anyio.Event()
    vm, _, _ = flows(world)

    @fc.workflow(name="outer")
    async def outer(ctx: fc.Context) -> Any:
        return await ctx.run(vm, {"slow": True})

    journal = fc.SQLiteJournal(tmp_path / "j.sqlite")
    async with fc.Engine(journal) as engine:
        handle = await engine.start(outer, flow_id="o1")
        with anyio.fail_after(5):
            await world.slow.wait()
        handle.stop()  # reaches the child: it ends SUSPENDED once "slow" ends, so does outer
        world.gate.set()
        with anyio.fail_after(5):
            out = await handle.wait()
        assert out.state is fc.FlowState.SUSPENDED
        assert (await engine.backend.get_flow("o1.1:vm")).state == "SUSPENDED"  # type: ignore[union-attr]
    calls = list(world.calls)
    world.gate = None
    async with fc.Engine(fc.SQLiteJournal(tmp_path / "j.sqlite")) as engine:
        out = await engine.resume(outer, "o1")
        assert out.result == {"vm": "vm!", "disk": "disk2!", "dns": "dns!"}
    assert world.calls == [*calls, "after"]  # nothing done ran again


async def test_a_failing_parent_undoes_its_completed_children_newest_first() -> None:
    world = World()
    vm, _, _ = flows(world)
    async with fc.Engine() as engine:
        with pytest.raises(StepFailed, match="boom"):
            await engine.run(vm, {"fail": True}, flow_id="p2")
        assert world.effects == set()
        assert world.calls[-3:] == ["undo dns", "undo disk2", "undo vm"]
        for fid, state in [("p2", "REVERTED"), ("p2.2:disk", "CANCELLED")]:
            rec = await engine.backend.get_flow(fid)
            assert rec is not None
            assert rec.state == state
        # the child's journal shows it succeeded, then was undone for its parent
        states = [e.state for e in await engine.journal.read("p2.2:disk") if e.state]
        assert states == ["RUNNING", "SUCCESS", "REVERTING", "CANCELLED"]


async def test_cancelling_the_parent_cancels_the_running_child_and_waits_for_it() -> None:
    world = World()
    world.gate = anyio.Event()
    vm, _, _ = flows(world)

    @fc.workflow(name="outer")
    async def outer(ctx: fc.Context) -> Any:
        await ctx.step(world.do, "first", revert=world.undo)
        return await ctx.run(vm, {"slow": True})

    async with fc.Engine() as engine:
        handle = await engine.start(outer, flow_id="c1")
        with anyio.fail_after(5):
            await world.slow.wait()
        handle.cancel()
        with pytest.raises(fc.FlowCancelled), anyio.fail_after(5):
            await handle.wait()
        assert world.effects == set()
        for fid in ("c1", "c1.2:vm", "c1.2:vm.2:disk"):
            rec = await engine.backend.get_flow(fid)
            assert rec is not None
            assert rec.state == "CANCELLED", fid


async def test_a_failed_child_reverts_itself_and_the_parent_sees_a_step_failure() -> None:
    world = World()

    @fc.workflow(name="bad")
    async def bad(ctx: fc.Context) -> None:
        await ctx.step(world.do, "inner", revert=world.undo)
        await ctx.step(boom)

    seen: list[StepFailed] = []

    @fc.workflow(name="outer")
    async def outer(ctx: fc.Context) -> str:
        try:
            await ctx.run(bad)
        except StepFailed as exc:
            seen.append(exc)
            return "caught"
        return "not reached"

    async with fc.Engine() as engine:
        out = await engine.run(outer, flow_id="f1")
        assert out.result == "caught"
        # the child's failure: its own step 2 failed
        assert seen[0].failure.matches(StepFailed)
        assert "step '2:boom' failed: RuntimeError: boom" in seen[0].failure.message
        assert world.effects == set()
        assert world.calls == ["inner", "undo inner"]
        rec = await engine.backend.get_flow("f1.1:bad")
        assert rec is not None
        assert rec.state == "REVERTED"


async def test_a_pattern_flow_runs_a_workflow_as_a_task_and_reverts_it() -> None:
    world = World()
    _, disk, _ = flows(world)
    fail = {"on": True}

    @fc.task
    async def attach(disk: str) -> str:
        if fail["on"]:
            raise RuntimeError("attach failed")
        return f"attached {disk}"

    order = fc.Linear("order", fc.child(disk, provides="disk"), attach)
    async with fc.Engine() as engine:
        with pytest.raises(RuntimeError, match="attach failed"):
            await engine.run(order, {"size": 3}, flow_id="o2")
        assert world.calls == ["disk3", "undo disk3"]
        rec = await engine.backend.get_flow("o2.disk")
        assert rec is not None
        assert rec.state == "CANCELLED"
        started = [e for e in await engine.journal.read("o2") if e.kind is EventKind.TASK_STARTED]
        assert _data(started[0]) == {"attempt": 1, "child": "o2.disk"}
        fail["on"] = False
        out = await engine.run(order, {"size": 4}, flow_id="o3")
        assert out["disk"] == "disk4!"


async def test_a_child_id_taken_by_another_flow_is_refused_before_anything_is_written() -> None:
    world = World()
    vm, disk, _ = flows(world)
    async with fc.Engine() as engine:
        await engine.run(disk, {"size": 1}, flow_id="p9.2:disk")  # not p9's child
        with pytest.raises(ChildFlowConflict, match="no parent"):
            await engine.run(vm, flow_id="p9")
        assert "disk1" in world.calls
        assert world.calls.count("disk2") == 0


async def test_a_child_flow_outside_a_run_is_a_typed_error() -> None:
    world = World()
    _, disk, _ = flows(world)
    task = fc.child(disk)
    with pytest.raises(WorkflowContextError, match="outside a flow's run"):
        await task._execute_fn()(size=1)
    with pytest.raises(WorkflowContextError, match="a Flow or a Workflow"):
        fc.child(boom)  # type: ignore[arg-type]


async def test_a_context_used_after_its_run_or_a_patch_id_reused_is_a_typed_error() -> None:
    kept: list[fc.Context] = []

    async def one() -> int:
        return 1

    @fc.workflow(name="keeps")
    async def keeps(ctx: fc.Context) -> int:
        kept.append(ctx)
        return await ctx.step(one)

    @fc.workflow(name="twice")
    async def twice(ctx: fc.Context) -> bool:
        return ctx.patched("audit") and ctx.patched("audit")

    @fc.workflow(name="await-twice")
    async def await_twice(ctx: fc.Context) -> int:
        s = ctx.step(one)
        await s
        return await s

    async with fc.Engine() as engine:
        await engine.run(keeps, flow_id="k1")
        entries = len(await engine.journal.read("k1"))
        with pytest.raises(WorkflowContextError, match="after its run ended"):
            kept[0].step(one)
        with pytest.raises(WorkflowContextError, match="after its run ended"):
            kept[0].now()
        assert len(await engine.journal.read("k1")) == entries  # nothing written
        with pytest.raises(WorkflowContextError, match="used twice"):
            await engine.run(twice, flow_id="t1")
        with pytest.raises(WorkflowContextError, match="awaited already"):
            await engine.run(await_twice, flow_id="a1")


async def test_a_step_that_is_not_an_async_def_ends_the_run_and_leaves_the_flow() -> None:
    def blocking(x: int) -> int:
        return x

    async def fine(x: int) -> int:
        return x

    @fc.workflow(name="bad-step")
    async def bad(ctx: fc.Context) -> int:
        with contextlib.suppress(Exception):  # caught by the code: the run ends all the same
            await ctx.step(blocking, 1)  # type: ignore[arg-type]
        return 0

    @fc.workflow(name="bad-step")
    async def fixed(ctx: fc.Context) -> int:
        return await ctx.step(fine, 1)

    async with fc.Engine() as engine:
        with pytest.raises(fc.errors.InvalidTaskError, match="step 1 of workflow 'bad-step'"):
            await engine.run(bad, flow_id="bs1")
        rec = await engine.backend.get_flow("bs1")
        assert rec is not None
        assert rec.state == "RUNNING"  # nothing reverted: the fixed code resumes it
        out = await engine.resume(fixed, "bs1")
        assert out.result == 1
