"""The engine on a journal that flushes (SQLite): pipelined successes, durability before
dependents start, cancel and failure while successes are in flight."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

import flowcoord as fc

pytestmark = pytest.mark.anyio


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[fc.Engine]:
    async with fc.Engine(fc.SQLiteJournal(tmp_path / "j.sqlite"), concurrency=16) as e:
        yield e


def _layer(prefix: str, n: int, dep: str | None, seen: list[str], journal: Any) -> fc.Flow:
    def make(k: int) -> fc.Task:
        name = f"{prefix}{k}"

        async def body(dep_value: int | None = None) -> int:
            if dep is not None:
                # a dependent starts only once its provider's success is durable
                entries = await journal.read("d")
                done = {e.task for e in entries if e.kind is fc.journal.EventKind.TASK_SUCCEEDED}
                assert f"{dep}{k}" in done
            seen.append(name)
            return k

        return fc.FunctionTask(
            body,
            name,
            provides=name,
            rebind={"dep_value": f"{dep}{k}"} if dep else None,
        )

    return fc.Unordered(prefix, *(make(k) for k in range(n)))


async def test_dependents_start_after_durable_success(engine: fc.Engine) -> None:
    seen: list[str] = []
    flow = fc.Linear(
        "d",
        _layer("a", 50, None, seen, engine.backend),
        _layer("b", 50, "a", seen, engine.backend),
    )
    out = await engine.run(flow, flow_id="d")
    assert out["b49"] == 49
    assert len(seen) == 100
    rep = await engine.status("d")
    assert all(r.state is fc.TaskState.SUCCESS for r in rep.tasks.values())
    assert engine.journal.flushes < engine.journal.appended  # group commit happened


async def test_cancel_reverts_pipelined_successes(engine: fc.Engine) -> None:
    reverted: list[str] = []
    started = anyio.Event()

    def quick(k: int) -> fc.Task:
        async def body() -> int:
            return k

        async def undo(result: Any) -> None:
            reverted.append(f"q{k}")

        return fc.FunctionTask(body, f"q{k}", revert=undo)

    @fc.task
    async def hang() -> None:
        started.set()
        await anyio.sleep_forever()

    flow = fc.Unordered("c", hang, *(quick(k) for k in range(40)))
    handle = await engine.start(flow, flow_id="c")
    await started.wait()  # quick tasks are done or their successes in flight
    handle.cancel()
    with pytest.raises(fc.FlowCancelled):
        await handle.wait()
    rep = await engine.status("c")
    assert rep.state is fc.FlowState.CANCELLED
    succeeded_then_reverted = {
        n for n, r in rep.tasks.items() if n.startswith("q") and r.state is fc.TaskState.REVERTED
    }
    # every quick task that ran was reverted: none is left SUCCESS in the journal
    assert not [n for n, r in rep.tasks.items() if r.state is fc.TaskState.SUCCESS]
    assert set(reverted) == succeeded_then_reverted


async def test_failure_while_successes_are_in_flight_reverts_them_all(engine: fc.Engine) -> None:
    reverted: list[str] = []

    def quick(k: int) -> fc.Task:
        async def body() -> int:
            await anyio.lowlevel.checkpoint()
            return k

        async def undo(result: Any) -> None:
            reverted.append(f"q{k}")

        return fc.FunctionTask(body, f"q{k}", revert=undo)

    @fc.task
    async def boom() -> None:
        await anyio.lowlevel.checkpoint()
        raise RuntimeError("boom")

    flow = fc.Unordered("f", *(quick(k) for k in range(60)), boom)
    with pytest.raises(RuntimeError, match="boom"):
        await engine.run(flow, flow_id="f")
    rep = await engine.status("f")
    assert rep.state is fc.FlowState.REVERTED
    ran = {n for n, r in rep.tasks.items() if n.startswith("q")}
    assert set(reverted) == ran
    assert all(rep.tasks[n].state is fc.TaskState.REVERTED for n in ran)


async def test_stop_and_resume_on_a_flushing_journal(engine: fc.Engine) -> None:
    gate, at_five = anyio.Event(), anyio.Event()
    runs: list[str] = []

    def step(k: int) -> fc.Task:
        async def body() -> int:
            runs.append(f"s{k}")
            if k == 5:
                at_five.set()
                await gate.wait()
            return k

        return fc.FunctionTask(body, f"s{k}")

    def build() -> fc.Flow:
        return fc.Linear("l", fc.Unordered("u", *(step(k) for k in range(10))), step(10))

    handle = await engine.start(build(), flow_id="s")
    await at_five.wait()
    handle.stop()
    gate.set()
    with pytest.raises(fc.FlowCancelled):
        await handle.wait()
    runs.clear()
    out = await engine.run(build(), flow_id="s")
    assert out.state is fc.FlowState.SUCCESS
    assert runs == ["s10"]


class _GatedJournal(fc.SQLiteJournal):
    """Holds the flush that carries task ``hold``'s success until ``gate`` is set."""

    def __init__(self, path: Path, hold: str) -> None:
        super().__init__(path)
        self.hold, self.held, self.gate = hold, anyio.Event(), anyio.Event()

    async def append(self, entries: Any) -> frozenset[str]:
        if any(
            e.kind is fc.journal.EventKind.TASK_SUCCEEDED and e.task == self.hold for e in entries
        ):
            self.held.set()
            await self.gate.wait()
        return await super().append(entries)


async def test_cancel_while_a_success_is_being_committed_reverts_that_task(
    tmp_path: Path,
) -> None:
    """The worker waits for its success to be durable (nothing else is ready) and is
    cancelled meanwhile: the entry still lands, so the task counts as done and is reverted."""
    reverted: list[str] = []

    def step(name: str) -> fc.Task:
        async def body() -> str:
            return name

        async def undo(result: str) -> None:
            reverted.append(result)

        return fc.FunctionTask(body, name, revert=undo)

    journal = _GatedJournal(tmp_path / "j.sqlite", hold="a")
    async with fc.Engine(journal) as engine:
        handle = await engine.start(fc.Linear("l", step("a"), step("b")), flow_id="c")
        await journal.held.wait()
        handle.cancel()
        await anyio.sleep(0.01)  # the cancel reaches the waiting worker first
        journal.gate.set()
        with pytest.raises(fc.FlowCancelled):
            await handle.wait()
        rep = await engine.status("c")
    assert reverted == ["a"]
    assert rep.state is fc.FlowState.CANCELLED
    assert rep.tasks["a"].state is fc.TaskState.REVERTED
    # b (it has a revert) had its start journaled with a's success, so that it would not
    # wait for a commit of its own; it never ran: journaled reverted, its revert not called
    assert rep.tasks["b"].state is fc.TaskState.REVERTED


async def test_cancelling_a_flow_a_dead_engine_left_mid_task_reverts_that_task(
    tmp_path: Path,
) -> None:
    """A previous engine died while task 'b' ran (task.started, no outcome). Taking the flow
    over only to cancel it must revert 'b' too: it may have done its work."""
    reverted: list[str] = []
    hold = anyio.Event()

    def step(name: str) -> fc.Task:
        async def body() -> str:
            if name == "b":
                hold.set()
                await anyio.sleep_forever()
            return name

        async def undo(**kw: Any) -> None:
            reverted.append(name)

        return fc.FunctionTask(body, name, revert=undo)

    flow = fc.Linear("l", step("a"), step("b"), step("c"))
    journal = fc.SQLiteJournal(tmp_path / "j.sqlite")
    async with fc.Engine(journal) as engine:
        handle = await engine.start(flow, flow_id="x")
        await hold.wait()
        handle.abort("the engine died")  # writes nothing more, like a kill -9
        with pytest.raises(fc.OwnershipLost):
            await handle.wait()
    async with fc.Engine(fc.SQLiteJournal(tmp_path / "j.sqlite")) as engine:
        handle = await engine.start(flow, flow_id="x", token=1, resume=True)
        handle.cancel()
        with pytest.raises(fc.FlowCancelled):
            await handle.wait()
        rep = await engine.status("x")
    assert sorted(reverted) == ["a", "b"]
    assert rep.state is fc.FlowState.CANCELLED
    assert {n: r.state for n, r in rep.tasks.items()} == {
        "a": fc.TaskState.REVERTED,
        "b": fc.TaskState.REVERTED,
    }
