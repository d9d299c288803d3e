"""Checkpoints: resuming from what they sum up restores exactly what a full replay restores,
wherever the journal was cut (a crash), and resuming re-runs no task they list."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio.lowlevel
import pytest

import flowcoord as fc
from flowcoord._engine._runner import FlowRun
from flowcoord._journal._events import Entry, EventKind, FlowRecord, resume_entries
from flowcoord._journal._group_commit import GroupCommit
from flowcoord._journal._replay import FlowReplay, replay
from flowcoord._model._compile import Plan

pytestmark = pytest.mark.anyio

EVERY = 4


class Calls:
    def __init__(self) -> None:
        self.names: list[str] = []


def _task(name: str, calls: Calls, *, fail: bool = False, requires: str | None = None) -> fc.Task:
    async def body(dep: Any = None) -> dict[str, Any]:
        calls.names.append(name)
        for _ in range(hash(name) % 4):  # several tasks in flight at once, finishing out of order
            await anyio.lowlevel.checkpoint()
        if fail:
            raise RuntimeError(f"{name} breaks")
        return {"n": len(name), "dep": dep}

    async def undo(**kw: Any) -> None:
        calls.names.append(f"undo {name}")

    return fc.FunctionTask(
        body, name, provides=name, rebind={"dep": requires} if requires else None, revert=undo
    )


def _flows(calls: Calls) -> dict[str, fc.Flow]:
    return {
        "unordered": fc.Unordered("u", *(_task(f"u{i}", calls) for i in range(23))),
        "linear": fc.Linear("l", *(_task(f"l{i}", calls) for i in range(17))),
        "graph": fc.Graph(
            "g",
            *(_task(f"a{i}", calls) for i in range(9)),
            *(_task(f"b{i}", calls, requires=f"a{i}") for i in range(9)),
        ),
        "failing": fc.Unordered("f", *(_task(f"f{i}", calls, fail=i == 14) for i in range(20))),
    }


def _restored(plan: Plan, rep: FlowReplay) -> tuple[Any, ...]:
    """What a run restores from ``rep``: every piece of state resuming depends on."""
    writer = GroupCommit(fc.MemoryJournal()).writer(rep.flow_id, token=0, next_seq=rep.last_seq + 1)
    run = FlowRun(
        plan, rep.flow_id, writer, rep.inputs, concurrency=4, revert_timeout=5, replay=rep
    )
    run.state = rep.state
    run._restore(rep)
    return (
        rep.state,
        rep.last_seq,
        rep.inputs,
        rep.retries,
        sorted(rep.failures),
        run.tstate,
        run.results,
        run.attempts,
        run.values,
        sorted(run.failures),
        sorted(run.revert_failures),
        run._pending_scopes,
        run._remaining,
    )


def _check_every_cut(plan: Plan, entries: list[Entry]) -> None:
    assert any(e.kind is EventKind.CHECKPOINT for e in entries)
    skipped = 0
    for k in range(1, len(entries) + 1):
        cut = entries[:k]
        fast = resume_entries(cut)
        skipped = max(skipped, len(cut) - len(fast))
        flow_id = cut[0].flow_id
        restored = _restored(plan, replay(flow_id, fast, compact=True))  # as the engine does
        assert restored == _restored(plan, replay(flow_id, cut)), k
    assert skipped >= EVERY  # the checkpoints really spare reading


async def _copy(entries: list[Entry], path: Path) -> fc.SQLiteJournal:
    """A new journal holding ``entries`` (a journal cut short by a crash)."""
    backend = fc.SQLiteJournal(path)
    async with backend:
        first = entries[0]
        await backend.create_flow(FlowRecord(first.flow_id, "x", "RUNNING"), [first])
        await backend.append(entries[1:])
    return fc.SQLiteJournal(path)


@pytest.mark.parametrize("kind", ["unordered", "linear", "graph", "failing"])
async def test_resuming_from_checkpoints_restores_what_a_full_replay_does(
    kind: str, tmp_path: Path
) -> None:
    calls = Calls()
    flow = _flows(calls)[kind]
    journal = fc.SQLiteJournal(tmp_path / "j.sqlite")  # flushes: successes are pipelined
    async with fc.Engine(journal, checkpoint_every=EVERY, concurrency=3) as engine:
        plan = engine.compile(flow)
        try:
            await engine.run(flow, flow_id="x")
        except RuntimeError:  # raised as it is: the flow was reverted
            assert kind == "failing"
        entries = await engine.backend.read("x")
    _check_every_cut(plan, entries)
    if kind == "failing":  # nothing is summed up after the failure
        failed = next(e.seq for e in entries if e.kind is EventKind.TASK_FAILED)
        assert not [e for e in entries if e.kind is EventKind.CHECKPOINT and e.seq > failed]


@pytest.mark.parametrize("kind", ["unordered", "linear", "graph"])
async def test_a_resumed_run_checkpoints_what_it_restored(kind: str, tmp_path: Path) -> None:
    calls = Calls()
    flow = _flows(calls)[kind]
    journal = fc.SQLiteJournal(tmp_path / "j.sqlite")
    async with fc.Engine(journal, checkpoint_every=EVERY, concurrency=3) as engine:
        plan = engine.compile(flow)
        await engine.run(flow, flow_id="x")
        entries = await engine.backend.read("x")
    # Crash past the second checkpoint, with tasks in flight; resume on a copy.
    second = [e.seq for e in entries if e.kind is EventKind.CHECKPOINT][1]
    # (the latest cut past it that leaves enough tasks for a checkpoint of the resumed run)
    cut = [e for e in entries if e.seq <= second]
    for extra in range(1, 6):
        longer = [e for e in entries if e.seq <= second + extra]
        left = set(plan.task_names) - {e.task for e in longer if e.kind is EventKind.TASK_SUCCEEDED}
        if len(left) >= EVERY:
            cut = longer
    done = {e.task for e in cut if e.kind is EventKind.TASK_SUCCEEDED}
    calls.names.clear()
    backend = await _copy(cut, tmp_path / "copy.sqlite")
    async with fc.Engine(backend, checkpoint_every=EVERY, concurrency=3) as engine:
        out = await engine.resume(flow, "x")
        resumed = await backend.read("x")
    assert out.state is fc.FlowState.SUCCESS
    assert not done & set(calls.names)  # nothing journaled as done ran again
    assert set(calls.names) == set(plan.task_names) - done
    after = [e for e in resumed if e.kind is EventKind.CHECKPOINT and e.seq > cut[-1].seq]
    assert done <= set(json.loads(after[0].data)["tasks"])  # the restored ones, listed again
    _check_every_cut(plan, resumed)


async def test_resume_needs_a_journaled_flow() -> None:
    flow = fc.Linear("l", _task("a", Calls()))
    async with fc.Engine() as engine:
        with pytest.raises(fc.FlowNotFound, match="nope"):
            await engine.resume(flow, "nope")
        await engine.run(flow, flow_id="yes")
        assert (await engine.resume(flow, "yes")).state is fc.FlowState.SUCCESS
        handle = await engine.start(flow, flow_id="yes", resume=True)
        assert (await handle.wait()).state is fc.FlowState.SUCCESS


async def test_which_flows_write_checkpoints(tmp_path: Path) -> None:
    calls = Calls()
    scoped = fc.Unordered("s", *(_task(f"s{i}", calls) for i in range(12)), retry=fc.Times(2))
    small = fc.Unordered("m", *(_task(f"m{i}", calls) for i in range(EVERY - 1)))
    big = fc.Unordered("b", *(_task(f"b{i}", calls) for i in range(EVERY)))
    sqlite = fc.SQLiteJournal(tmp_path / "j.sqlite")
    journals: list[tuple[fc.journal.JournalBackend, tuple[fc.Flow, ...]]] = [
        (sqlite, (scoped, small, big)),
        (fc.MemoryJournal(), (big,)),
    ]
    for journal, flows in journals:
        async with fc.Engine(journal, checkpoint_every=EVERY) as engine:
            for flow in flows:
                await engine.run(flow, flow_id=flow.name)
                kinds = {e.kind for e in await engine.backend.read(flow.name)}
                # only a big flow without retry scopes, on a journal that stores
                assert (EventKind.CHECKPOINT in kinds) == (flow is big and journal is sqlite)
    with pytest.raises(fc.ConfigurationError, match="checkpoint_every"):
        fc.Engine(checkpoint_every=0)
