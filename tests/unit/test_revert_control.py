"""Suspend and stop honoured while a flow reverts (issue 9, point 6), and no entry written
above one that failed to be written (point 3)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

import flowcoord as fc
from flowcoord._journal._events import EventKind
from flowcoord.testing._trace import Fault, RecordingBackend

pytestmark = pytest.mark.anyio


def _flow(
    reverted: list[str], gate: anyio.Event | None = None, entered: anyio.Event | None = None
) -> fc.Flow:
    def make(name: str, *, fails: bool = False) -> fc.Task:
        async def body() -> str:
            await anyio.lowlevel.checkpoint()
            if fails:
                raise RuntimeError(f"{name} fails")
            return name

        async def undo(result: Any) -> None:
            if gate is not None and entered is not None and name == "c":
                entered.set()  # c's revert is in flight
                await gate.wait()
            reverted.append(name)

        return fc.FunctionTask(body, name, revert=undo)

    return fc.Linear("r", make("a"), make("b"), make("c"), make("d", fails=True))


def _states(entries: list[fc.journal.Entry]) -> list[str]:
    return [e.state or "" for e in entries if e.kind is EventKind.FLOW_STATE]


@pytest.mark.parametrize("journal", ["memory", "sqlite"])
async def test_suspend_during_revert_then_resume_on_a_new_engine(
    journal: str, tmp_path: Path
) -> None:
    def backend() -> fc.journal.JournalBackend:
        return fc.MemoryJournal() if journal == "memory" else fc.SQLiteJournal(tmp_path / "j")

    reverted: list[str] = []
    gate, entered = anyio.Event(), anyio.Event()
    store = backend()
    async with fc.Engine(store) as engine:
        handle = await engine.start(_flow(reverted, gate, entered), flow_id="s")
        await entered.wait()  # d is reverted, c's revert waits at the gate
        handle.suspend()
        gate.set()  # the revert in flight finishes; no new one starts
        handle.stop()  # leave it suspended, to resume elsewhere
        with pytest.raises(fc.FlowCancelled):
            await handle.wait()
        rep = await engine.status("s")
    assert reverted == ["d", "c"]
    assert rep.state is fc.FlowState.SUSPENDED
    assert _states(await _read(store, "s"))[-2:] == ["REVERTING", "SUSPENDED"]

    again = store if journal == "memory" else backend()  # memory: the object is the store
    async with fc.Engine(again) as engine:
        with pytest.raises(fc.TaskFailed, match="d fails"):  # the original failure
            await engine.resume(_flow(reverted), "s")
        rep = await engine.status("s")
    assert rep.state is fc.FlowState.REVERTED
    assert reverted == ["d", "c", "b", "a"]  # only what was left, each once


async def test_suspend_during_revert_then_resume_on_the_same_engine() -> None:
    reverted: list[str] = []
    gate, entered, suspended = anyio.Event(), anyio.Event(), anyio.Event()

    def seen(change: fc.StateChange) -> None:
        if change.task is None and change.new == "SUSPENDED":
            suspended.set()

    async with fc.Engine(listeners=[seen]) as engine:
        handle = await engine.start(_flow(reverted, gate, entered), flow_id="s")
        await entered.wait()
        handle.suspend()
        gate.set()
        await suspended.wait()
        assert reverted == ["d", "c"]
        handle.resume()
        with pytest.raises(RuntimeError, match="d fails"):
            await handle.wait()
        entries = await engine.backend.read("s")
    assert reverted == ["d", "c", "b", "a"]
    assert _states(entries)[-4:] == ["REVERTING", "SUSPENDED", "REVERTING", "REVERTED"]


async def _read(backend: fc.journal.JournalBackend, flow_id: str) -> list[fc.journal.Entry]:
    if isinstance(backend, fc.MemoryJournal):
        return await backend.read(flow_id)
    async with backend:
        return await backend.read(flow_id)


@pytest.mark.parametrize("journal", ["memory", "sqlite"])
@pytest.mark.parametrize("call", [1, 2])
async def test_no_entry_lands_above_one_that_failed(
    journal: str, call: int, tmp_path: Path
) -> None:
    inner = fc.MemoryJournal() if journal == "memory" else fc.SQLiteJournal(tmp_path / "j")
    backend = RecordingBackend(inner)
    backend.fault = Fault("append", call, "before", "error")

    def task(name: str) -> fc.Task:
        async def body() -> None:
            for _ in range(3):
                await anyio.lowlevel.checkpoint()

        return fc.FunctionTask(body, name)

    flow = fc.Unordered("u", *(task(f"t{i}") for i in range(6)))
    async with inner:
        engine = fc.Engine(backend)
        async with engine:
            with pytest.raises(fc.errors.JournalError, match="injected"):
                await engine.run(flow, flow_id="h")
        seqs = [e.seq for e in await inner.read("h")]
        assert seqs == list(range(len(seqs)))  # the flow stopped at the failed entry
        async with fc.Engine(backend) as engine:  # and resumes from there
            out = await engine.resume(flow, "h")
        assert out.state is fc.FlowState.SUCCESS
        seqs = [e.seq for e in await inner.read("h")]
        assert seqs == list(range(len(seqs)))
