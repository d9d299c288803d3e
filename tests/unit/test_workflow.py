"""Code-first workflows: steps journaled by call order, resume, determinism guard, journaled
values, compensation (sagas), cancel; and crash-exactness at every journal cut."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest
import structlog

import flowcoord as fc
from flowcoord.errors import (
    FlowDefinitionError,
    MissingInputError,
    NonDeterministicWorkflow,
    RevertFailed,
    StepFailed,
)
from flowcoord.journal import Entry, EventKind, FlowRecord

pytestmark = pytest.mark.anyio


class World:
    """The outside world the steps change: a set of effects, and every call made."""

    def __init__(self) -> None:
        self.effects: set[str] = set()
        self.calls: list[str] = []
        self.fail_at: str | None = None
        self.fail_undo: str | None = None

    def make(self) -> fc.Workflow:
        world = self

        async def undo(what: str, result: str | None) -> None:
            # called for a step that failed or was cut short too (result None): undo by input
            world.calls.append(f"undo {what}")
            if world.fail_undo == what:
                raise RuntimeError(f"cannot undo {what}")
            assert result in (None, f"{what}!")
            world.effects.discard(f"{what}!")

        async def do(what: str) -> str:
            world.calls.append(what)
            world.effects.add(f"{what}!")
            if world.fail_at == what:
                raise ValueError(f"{what} broke")
            return f"{what}!"

        async def plain(what: str) -> str:
            world.calls.append(what)
            return what.upper()

        @fc.workflow(name="provision")
        async def provision(ctx: fc.Context, size: int) -> dict[str, Any]:
            vm = await ctx.step(do, f"vm{size}", revert=undo)
            ip, disk = await ctx.gather(
                ctx.step(do, "ip", revert=undo), ctx.step(do, "disk", revert=undo)
            )
            token = ctx.uuid()
            label = await ctx.step(plain, "label")
            await ctx.step(do, "publish", revert=undo)
            return {"vm": vm, "ip": ip, "disk": disk, "label": label, "token": token}

        return provision


async def test_steps_run_once_and_a_resume_returns_the_journaled_results() -> None:
    world = World()
    wf = world.make()
    journal = fc.MemoryJournal()
    async with fc.Engine(journal) as engine:
        out = await engine.run(wf, {"size": 2}, flow_id="w1")
        assert out.state is fc.FlowState.SUCCESS
        assert out.result["vm"] == "vm2!"
        assert out.result["label"] == "LABEL"
        assert out["result"] == out.result
        assert out["size"] == 2
        first = list(world.calls)
        assert first == ["vm2", "ip", "disk", "label", "publish"]
        again = await engine.run(wf, {"size": 2}, flow_id="w1")
        assert again.result == out.result
        assert world.calls == first
        rep = await engine.status("w1")
    assert list(rep.tasks) == ["1:do", "2:do", "3:do", "4:uuid", "5:plain", "6:do"]
    assert all(t.state is fc.TaskState.SUCCESS for t in rep.tasks.values())


async def test_a_failed_step_compensates_completed_steps_newest_first() -> None:
    world = World()
    world.fail_at = "publish"
    async with fc.Engine() as engine:
        with pytest.raises(StepFailed) as info:
            await engine.run(world.make(), {"size": 1}, flow_id="w2")
        rep = await engine.status("w2")
    assert info.value.failure.matches(ValueError)
    assert isinstance(info.value.__cause__, ValueError)
    assert rep.state is fc.FlowState.REVERTED
    undone = [c for c in world.calls if c.startswith("undo")]
    # publish (it failed: its effect may be there) first, the gathered pair at once, vm last
    assert undone[0] == "undo publish"
    assert undone[-1] == "undo vm1"
    assert set(undone[1:3]) == {"undo ip", "undo disk"}
    assert world.effects == set()


async def test_a_failing_compensation_ends_failed_and_says_so() -> None:
    world = World()
    world.fail_at, world.fail_undo = "publish", "ip"
    async with fc.Engine() as engine:
        with pytest.raises(RevertFailed):
            await engine.run(world.make(), {"size": 1}, flow_id="w3")
        rep = await engine.status("w3")
    assert rep.state is fc.FlowState.FAILED
    assert "undo vm1" in world.calls  # the others were still compensated
    assert world.effects == {"ip!"}


async def test_a_workflow_can_catch_a_step_failure_the_same_way_on_every_run() -> None:
    calls: list[str] = []

    async def flaky() -> None:
        calls.append("flaky")
        raise KeyError("gone")

    async def fallback() -> str:
        calls.append("fallback")
        return "ok"

    @fc.workflow
    async def careful(ctx: fc.Context) -> str:
        try:
            await ctx.step(flaky)
        except StepFailed as exc:
            if not exc.failure.matches(KeyError):
                raise
            return str(await ctx.step(fallback))
        return "unreachable"

    async with fc.Engine() as engine:
        assert (await engine.run(careful, flow_id="c1")).result == "ok"
        assert (await engine.run(careful, flow_id="c1")).result == "ok"
    assert calls == ["flaky", "fallback"]


async def test_changed_code_is_refused_before_anything_is_written() -> None:
    async def a() -> int:
        return 1

    async def b() -> int:
        return 2

    gate = anyio.Event()

    async def wait() -> None:
        await gate.wait()

    @fc.workflow(name="w")
    async def v1(ctx: fc.Context) -> None:
        await ctx.step(a)
        await ctx.step(wait)
        await ctx.step(b)

    @fc.workflow(name="w")
    async def v2(ctx: fc.Context) -> None:
        await ctx.step(b)
        await ctx.step(wait)

    journal = fc.MemoryJournal()
    async with fc.Engine(journal) as engine:
        handle = await engine.start(v1, flow_id="d1")
        await anyio.wait_all_tasks_blocked()
        handle.stop()
        gate.set()
        assert (await handle.wait()).state is fc.FlowState.SUSPENDED  # stopped before b
        before = await journal.read("d1")
        with pytest.raises(NonDeterministicWorkflow) as info:
            await engine.resume(v2, "d1")
        assert (info.value.position, info.value.journaled, info.value.called) == (1, "a", "b")
        after = await journal.read("d1")
    # only the RUNNING state a resume notes first may follow; no step entry was written
    assert [e for e in after[len(before) :] if e.task is not None] == []


async def test_bad_inputs_are_refused_before_anything_is_written() -> None:
    world = World()
    journal = fc.MemoryJournal()
    async with fc.Engine(journal) as engine:
        with pytest.raises(MissingInputError, match="size"):
            await engine.run(world.make(), {}, flow_id="i1")
        with pytest.raises(FlowDefinitionError, match="sise"):
            await engine.run(world.make(), {"size": 1, "sise": 2}, flow_id="i2")
    assert await journal.get_flow("i1") is None
    assert await journal.get_flow("i2") is None


async def test_cancel_compensates_and_ends_cancelled() -> None:
    world = World()
    gate = anyio.Event()

    async def hang(what: str) -> None:
        world.effects.add(what)
        await gate.wait()

    async def unhang(what: str) -> None:
        world.effects.discard(what)

    async def do(what: str) -> str:
        world.effects.add(what)
        return what

    async def undo(what: str) -> None:
        world.effects.discard(what)

    @fc.workflow
    async def slow(ctx: fc.Context) -> None:
        await ctx.step(do, "a", revert=undo)
        await ctx.step(hang, "b", revert=unhang)

    async with fc.Engine() as engine:
        handle = await engine.start(slow, flow_id="x1")
        await anyio.wait_all_tasks_blocked()
        assert world.effects == {"a", "b"}
        handle.cancel()
        with pytest.raises(fc.FlowCancelled):
            await handle.wait()
        assert (await engine.status("x1")).state is fc.FlowState.CANCELLED
    assert world.effects == set()


async def test_a_step_timeout_is_a_step_failure() -> None:
    async def sleepy() -> None:
        await anyio.sleep(10)

    @fc.workflow
    async def w(ctx: fc.Context) -> None:
        await ctx.step(sleepy, timeout=0.05)

    async with fc.Engine() as engine:
        with pytest.raises(StepFailed) as info:
            await engine.run(w)
    assert info.value.failure.matches(TimeoutError)


# -- crash-exactness: a resume from every durable prefix of the journal ends as the run did --


async def _reference(world: World, fail_at: str | None) -> tuple[list[Entry], fc.FlowState, Any]:
    world.fail_at = fail_at
    journal = fc.MemoryJournal()
    async with fc.Engine(journal) as engine:
        try:
            out = await engine.run(world.make(), {"size": 3}, flow_id="ref")
            state, result = out.state, out.result
        except StepFailed:
            state, result = (await engine.status("ref")).state, None
    return await journal.read("ref"), state, result


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
@pytest.mark.parametrize("fail_at", [None, "publish", "disk"])
async def test_every_journal_cut_resumes_to_the_same_end(
    fail_at: str | None, backend: str, tmp_path: Path
) -> None:
    ref_world = World()
    entries, state, result = await _reference(ref_world, fail_at)
    assert len(entries) > 10
    for cut in range(1, len(entries) + 1):
        world = World()
        world.fail_at = fail_at
        world.effects = _effects_after(entries[:cut])
        journal: fc.journal.JournalBackend = (
            fc.MemoryJournal() if backend == "memory" else fc.SQLiteJournal(tmp_path / f"{cut}.db")
        )
        async with journal:
            record = FlowRecord("ref", "provision", "RUNNING")
            assert await journal.create_flow(record, entries[:cut])
        async with fc.Engine(journal) as engine:
            try:
                out = await engine.resume(world.make(), "ref")
                got_state, got_result = out.state, out.result
            except StepFailed:
                got_state, got_result = (await engine.status("ref")).state, None
        assert got_state is state, cut
        if result is not None:  # a uuid not journaled before the crash is drawn anew
            assert {**got_result, "token": None} == {**result, "token": None}, cut
        assert world.effects == ref_world.effects, (cut, world.effects)
        async with journal:
            final = await journal.read("ref")
        assert [e.seq for e in final] == list(range(len(final))), cut
        assert final[:cut] == entries[:cut]


def _effects_after(prefix: list[Entry]) -> set[str]:
    """The world as a crash after ``prefix`` left it (worst case: every started step's
    effect happened, every started compensation may not have)."""
    effects: set[str] = set()
    args: dict[str, str] = {}
    for e in prefix:
        if e.kind is EventKind.TASK_STARTED and e.task is not None:
            what = fc.Codec().decode(e.data)["args"].get("what")
            if what is not None and e.task.endswith(":do"):
                args[e.task] = f"{what}!"
                effects.add(f"{what}!")
        elif e.kind is EventKind.REVERT_DONE and e.task in args:
            effects.discard(args[e.task])
    return effects


# -- retries and versioning ----------------------------------------------------------------


async def test_a_step_is_retried_each_failed_attempt_compensated_first() -> None:
    calls: list[str] = []

    async def flaky(what: str, ok: bool) -> str:
        calls.append(f"try {what} {ok}")
        if not ok:
            raise ConnectionError("not yet")
        return what

    async def unflaky(what: str) -> None:
        calls.append(f"undo {what}")

    @fc.workflow
    async def w(ctx: fc.Context) -> str:
        return str(
            await ctx.step(
                flaky, "x", revert=unflaky, retry=fc.ForEach([False, False, True], provides="ok")
            )
        )

    async with fc.Engine() as engine:
        out = await engine.run(w, flow_id="r1")
        rep = await engine.status("r1")
    assert out.result == "x"
    assert calls == ["try x False", "undo x", "try x False", "undo x", "try x True"]
    assert rep.tasks["1:flaky"].attempt == 3


async def test_a_step_fails_once_its_retry_controller_gives_up() -> None:
    tries: list[int] = []

    async def never() -> None:
        tries.append(1)
        raise ConnectionError("down")

    @fc.workflow
    async def w(ctx: fc.Context) -> None:
        await ctx.step(never, retry=fc.Times(3))

    async with fc.Engine() as engine:
        with pytest.raises(StepFailed) as info:
            await engine.run(w)
    assert len(tries) == 3
    assert info.value.failure.matches(ConnectionError)


async def test_patched_is_false_for_runs_journaled_before_the_change() -> None:
    seen: list[str] = []

    async def step(what: str) -> str:
        seen.append(what)
        return what

    gate = anyio.Event()

    async def wait() -> None:
        await gate.wait()

    @fc.workflow(name="p")
    async def before(ctx: fc.Context) -> list[str]:
        a = await ctx.step(step, "a")
        await ctx.step(wait)
        return [a, await ctx.step(step, "b")]

    @fc.workflow(name="p")
    async def after(ctx: fc.Context) -> list[str]:
        a = await ctx.step(step, "a")
        if ctx.patched("audit"):
            await ctx.step(step, "audit")
        await ctx.step(wait)
        return [a, await ctx.step(step, "b")]

    @fc.workflow(name="p")
    async def later(ctx: fc.Context) -> list[str]:
        a = await ctx.step(step, "a")
        ctx.deprecate_patch("audit")
        await ctx.step(step, "audit")
        await ctx.step(wait)
        return [a, await ctx.step(step, "b")]

    journal = fc.MemoryJournal()
    async with fc.Engine(journal) as engine:
        old = await engine.start(before, flow_id="old")  # journaled past the patch point
        await anyio.wait_all_tasks_blocked()
        old.stop()
        gate.set()
        await old.wait()
        gate = anyio.Event()
        gate.set()
        assert (await engine.resume(after, "old")).result == ["a", "b"]
        assert (await engine.run(after, flow_id="new")).result == ["a", "b"]
        assert seen == ["a", "b", "a", "audit", "b"]
        # after the deprecation the new run replays its marker; a brand-new run writes none
        assert (await engine.run(later, flow_id="new")).result == ["a", "b"]
        assert (await engine.run(later, flow_id="newer")).result == ["a", "b"]
        rep = await engine.status("newer")
    assert list(rep.tasks) == ["1:step", "2:step", "3:wait", "4:step"]


async def test_fork_reruns_a_workflow_from_a_step_reusing_what_still_stands() -> None:
    world = World()
    world.fail_at = "publish"
    async with fc.Engine() as engine:
        with pytest.raises(StepFailed):
            await engine.run(world.make(), {"size": 1}, flow_id="f1")
        # every compensated step runs again: nothing before publish still stands
        world.fail_at, world.calls = None, []
        out = await (await engine.fork(world.make(), "f1", from_task="6:do", flow_id="f2")).wait()
        assert out.state is fc.FlowState.SUCCESS
        assert world.calls == ["vm1", "ip", "disk", "label", "publish"]
        # from a successful run, the steps before the one named are reused
        world.calls = []
        again = await (await engine.fork(world.make(), "f2", from_task=5, flow_id="f3")).wait()
        assert world.calls == ["label", "publish"]
        assert {**again.result, "token": None} == {**out.result, "token": None}
        with pytest.raises(FlowDefinitionError, match="no step"):
            await engine.fork(world.make(), "f2", from_task="9:nope")


async def test_check_replay_finds_changed_code_without_running_or_writing() -> None:
    ran: list[str] = []

    async def step(what: str) -> str:
        ran.append(what)
        return what

    gate = anyio.Event()

    async def wait() -> None:
        await gate.wait()

    async def other(what: str) -> str:
        ran.append(what)
        return what

    def version(second: Any, *, patched: bool = False) -> fc.Workflow:
        @fc.workflow(name="c")
        async def wf(ctx: fc.Context) -> None:
            await ctx.step(step, "a")
            if patched and ctx.patched("p"):
                await ctx.step(other, "new")
            await ctx.step(second, "b")
            await ctx.step(wait)

        return wf

    journal = fc.MemoryJournal()
    async with fc.Engine(journal) as engine:
        h = await engine.start(version(step), flow_id="k1")
        await anyio.wait_all_tasks_blocked()
        h.stop()
        before = await journal.read("k1")
        ran.clear()
        assert await engine.check_replay(version(step), "k1") is None
        assert await engine.check_replay(version(step, patched=True), "k1") is None
        bad = await engine.check_replay(version(other), "k1")
        assert bad is not None
        assert (bad.position, bad.journaled, bad.called) == (2, "step", "other")
        assert await journal.read("k1") == before
        assert ran == []
        gate.set()
        await h.wait()


async def test_a_conductor_runs_a_registered_workflow_from_the_job_board() -> None:
    world = World()
    registry = fc.FlowRegistry()
    registry.register("provision", world.make())
    coord = fc.coordination.MemoryCoordinator()
    board = coord.board()
    await board.post("provision", {"size": 4}, flow_id="job-wf")
    async with (
        fc.Engine() as engine,
        fc.coordination.Conductor(board, engine, registry) as conductor,
    ):
        with anyio.fail_after(5):
            await conductor.wait_idle()
        rep = await engine.status("job-wf")
    assert rep.state is fc.FlowState.SUCCESS
    assert world.calls == ["vm4", "ip", "disk", "label", "publish"]
    assert await board.jobs() == []
    assert conductor.stats.consumed == 1


async def test_a_conductor_trashes_a_workflow_its_code_cannot_resume_with_the_reason() -> None:
    async def step(x: int) -> int:
        return x

    @fc.workflow(name="wf")
    async def v1(ctx: fc.Context) -> int:
        return await ctx.step(step, 1, name="a")

    @fc.workflow(name="wf")
    async def v2(ctx: fc.Context) -> int:
        return await ctx.step(step, 1, name="b")

    journal = fc.MemoryJournal()
    async with fc.Engine(journal) as engine:  # v1's run journaled step 1, then the owner died
        handle = await engine.start(v1, flow_id="job-nd")
        await handle.wait()
    entries = await journal.read("job-nd")
    async with fc.Engine(journal) as engine:
        cut = [e for e in entries if e.kind is not EventKind.FLOW_STATE or e.state == "RUNNING"]
        await journal.create_flow(FlowRecord("job-nd2", "wf", "RUNNING"), [
            Entry("job-nd2", k, e.kind, e.task, e.data, e.state) for k, e in enumerate(cut)
        ])  # fmt: skip
        registry = fc.FlowRegistry()
        registry.register("wf", v2)
        coord = fc.coordination.MemoryCoordinator()
        board = coord.board()
        await board.post("wf", {}, flow_id="job-nd2")
        async with fc.coordination.Conductor(board, engine, registry, max_claims=3) as conductor:
            with anyio.fail_after(5):
                await conductor.wait_idle()
        assert conductor.stats.claimed == 1  # not handed over again and again
        assert conductor.stats.trashed == 1
        trash = await board.trashed()
        assert len(trash) == 1
        assert "NonDeterministicWorkflow" in trash[0].reason or "journal has 'a'" in trash[0].reason
        rec = await journal.get_flow("job-nd2")
        assert rec is not None
        assert rec.state == "RUNNING"  # left as journaled, for the code that started it


@pytest.mark.parametrize(
    ("args", "kwargs", "why"),
    [
        ((1, 2, 3), {}, "too many"),
        ((1,), {"a": 1}, "multiple"),
        ((), {"zz": 1}, "unexpected"),
        ((), {}, "missing"),
    ],
)
async def test_a_step_called_with_bad_arguments_fails_before_it_runs(
    args: tuple[Any, ...], kwargs: dict[str, Any], why: str
) -> None:
    ran: list[int] = []

    async def two(a: int, b: int = 0) -> int:
        ran.append(a)
        return a + b

    @fc.workflow
    async def w(ctx: fc.Context) -> None:
        await ctx.step(two, *args, **kwargs)

    journal = fc.MemoryJournal()
    async with fc.Engine(journal) as engine:
        with pytest.raises(StepFailed) as info:
            await engine.run(w, flow_id="b1")
        entries = await journal.read("b1")
    assert info.value.failure.matches(TypeError), why
    assert ran == []
    assert not [e for e in entries if e.kind is EventKind.TASK_STARTED]


async def test_a_step_without_compensation_is_one_entry_with_its_start_time() -> None:
    async def plain(x: int) -> int:
        return x + 1

    async def undo(x: int) -> None:
        pass

    @fc.workflow(name="entries")
    async def entries(ctx: fc.Context) -> int:
        a = await ctx.step(plain, 1)
        return await ctx.step(plain, a, revert=undo, name="undoable")

    async with fc.Engine() as engine:
        out = await engine.run(entries, flow_id="e1")
        assert out.result == 3
        kinds = [(e.kind, e.task) for e in await engine.journal.read("e1") if e.task]
        assert kinds == [
            (EventKind.TASK_SUCCEEDED, "1:plain"),
            (EventKind.TASK_STARTED, "2:undoable"),
            (EventKind.TASK_SUCCEEDED, "2:undoable"),
        ]
        rep = await engine.status("e1")
        one = rep.tasks["1:plain"]
        assert one.state is fc.TaskState.SUCCESS
        assert one.attempt == 1
        assert one.started_at is not None
        assert one.finished_at is not None
        assert one.started_at <= one.finished_at


async def test_a_workflow_failure_is_journaled_alike_in_a_first_run_and_a_resumed_one() -> None:
    class Declined(Exception):
        pass

    async def book(what: str) -> str:
        return what

    async def unbook(what: str) -> None:
        pass

    async def charge() -> None:
        raise Declined("card declined")

    @fc.workflow(name="trip")
    async def trip(ctx: fc.Context) -> None:
        await ctx.step(book, "hotel", revert=unbook)
        await ctx.step(charge)

    def journaled_failure(entries: list[Entry]) -> fc.Failure:
        (reverting,) = [e for e in entries if e.state == "REVERTING"]
        return fc.Failure.from_dict(json.loads(reverting.data)["failure"])

    journal = fc.MemoryJournal()
    async with fc.Engine(journal) as engine:
        with pytest.raises(StepFailed):
            await engine.run(trip, flow_id="t1")
    entries = await journal.read("t1")
    first = journaled_failure(entries)
    cut = entries[: 1 + next(i for i, e in enumerate(entries) if e.kind is EventKind.TASK_FAILED)]
    await journal.create_flow(
        FlowRecord("t2", "trip", "RUNNING"),
        [Entry("t2", e.seq, e.kind, e.task, e.data, e.state) for e in cut],
    )
    async with fc.Engine(journal) as engine:
        with pytest.raises(StepFailed):
            await engine.resume(trip, "t2")
    resumed = journaled_failure(await journal.read("t2"))
    for f in (first, resumed):
        assert f.matches(StepFailed)
        assert f.cause is not None
        assert f.cause.matches(Declined)
        assert f.cause.message == "card declined"
    assert first.exc_types == resumed.exc_types
    assert first.message == resumed.message


async def test_a_long_workflow_resumes_through_its_checkpoints(tmp_path: Path) -> None:
    calls: list[int] = []

    async def step(i: int) -> int:
        calls.append(i)
        return i * i

    async def undo(i: int, result: int) -> None:
        calls.append(-i)

    @fc.workflow(name="long")
    async def long(ctx: fc.Context, n: int, fail: bool = False) -> int:
        total = 0
        for i in range(n):
            total += await ctx.step(step, i, revert=undo if i % 4 == 0 else None)
        if fail:
            await ctx.step(boom_step)
        return total

    async def boom_step() -> None:
        raise RuntimeError("boom")

    path = tmp_path / "j.sqlite"
    async with fc.Engine(fc.SQLiteJournal(path), checkpoint_every=5) as engine:
        out = await engine.run(long, {"n": 23}, flow_id="l1")
        assert out.result == sum(i * i for i in range(23))
        entries = await engine.journal.read("l1")
        assert sum(e.kind is EventKind.CHECKPOINT for e in entries) == 4
        short = await engine.journal.read_for_resume("l1")
        assert len(short) < len(entries) // 3
        # the same journal without its end, as a crash would leave it: resumed from the
        # checkpoints, nothing runs again
        cut = [e for e in entries if e.state != "SUCCESS"]
        await engine.backend.create_flow(
            FlowRecord("l2", "long", "RUNNING"),
            [Entry("l2", e.seq, e.kind, e.task, e.data, e.state) for e in cut],
        )
    calls.clear()
    async with fc.Engine(fc.SQLiteJournal(path), checkpoint_every=5) as engine:
        out = await engine.resume(long, "l2")
        assert out.result == sum(i * i for i in range(23))
        assert calls == []
        # a failure after the checkpoints: compensations get the arguments they summed up
        with pytest.raises(StepFailed):
            await engine.run(long, {"n": 23, "fail": True}, flow_id="l3")
        assert calls[-6:] == [-20, -16, -12, -8, -4, -0]
        entries = await engine.journal.read("l3")
        fail_at = next(k for k, e in enumerate(entries) if e.kind is EventKind.TASK_FAILED)
        cut = entries[: fail_at + 1]
        await engine.backend.create_flow(
            FlowRecord("l4", "long", "RUNNING"),
            [Entry("l4", e.seq, e.kind, e.task, e.data, e.state) for e in cut],
        )
    calls.clear()
    async with fc.Engine(fc.SQLiteJournal(path), checkpoint_every=5) as engine:
        with pytest.raises(StepFailed):
            await engine.resume(long, "l4")
    assert calls == [-20, -16, -12, -8, -4, -0]


async def test_a_workflow_logs_what_pattern_flows_log() -> None:
    async def fails() -> None:
        raise ValueError("no")

    async def bad_undo() -> None:
        raise RuntimeError("cannot")

    async def ok() -> int:
        return 1

    @fc.workflow(name="logged")
    async def logged(ctx: fc.Context) -> None:
        await ctx.step(ok, revert=bad_undo)
        await ctx.step(fails, retry=fc.Times(2))

    with structlog.testing.capture_logs() as logs:
        async with fc.Engine() as engine:
            with pytest.raises(RevertFailed):
                await engine.run(logged, flow_id="lg")
    events = [(e["event"], e.get("step"), e.get("new")) for e in logs if e.get("flow_id") == "lg"]
    assert ("step_failed", "2:fails", None) in events
    assert ("retry_decision", "2:fails", None) in events
    assert ("revert_failed", "1:ok", None) in events
    assert ("flow_state", None, "REVERTING") in events
    assert ("flow_state", None, "FAILED") in events
