"""The engine on the in-memory journal: scheduling, reverts, retries, control, listeners."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
import tenacity
from anyio.lowlevel import checkpoint

import flowcoord as fc

pytestmark = pytest.mark.anyio


class Recorder:
    def __init__(self) -> None:
        self.events: list[str] = []

    def task(self, name: str, *, provides: Any = None, fail: bool = False, **kw: Any) -> fc.Task:
        rec = self

        async def body(**inputs: Any) -> Any:
            rec.events.append(f"run {name}")
            await checkpoint()
            if fail:
                raise RuntimeError(f"{name} broke")
            return f"{name}-result"

        async def undo(result: Any, flow_failures: dict[str, fc.Failure]) -> None:
            rec.events.append(f"revert {name}")

        return fc.FunctionTask(body, name, provides=provides, revert=undo, **kw)


async def test_linear_passes_results_by_name() -> None:
    @fc.task(provides=("a", "b"))
    async def two() -> tuple[int, int]:
        return 1, 2

    @fc.task(provides={"c", "d"})
    async def dicty(a: int, b: int) -> dict[str, int]:
        return {"c": a + b, "d": a * b, "ignored": 0}

    @fc.task(provides="e")
    async def total(c: int, d: int, k: int = 10) -> int:
        return c + d + k

    async with fc.Engine() as engine:
        out = await engine.run(fc.Linear("f", two, dicty, total))
    assert (out["a"], out["c"], out["d"], out["e"]) == (1, 3, 2, 15)
    assert out.state is fc.FlowState.SUCCESS
    assert "ignored" not in out.store


async def test_unordered_runs_concurrently_and_respects_the_bound() -> None:
    running = 0
    peak = 0
    gate = anyio.Event()

    @fc.task
    async def work() -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        if peak == 3:
            gate.set()
        await gate.wait()
        running -= 1

    flow = fc.Unordered("u", *(work.with_options(name=f"w{i}") for i in range(10)))
    async with fc.Engine(concurrency=3) as engine:
        await engine.run(flow)
    assert peak == 3


async def test_failure_reverts_in_reverse_dependency_order() -> None:
    rec = Recorder()
    flow = fc.Linear(
        "f",
        rec.task("a", provides="a"),
        fc.Unordered("mid", rec.task("b1"), rec.task("b2")),
        rec.task("c", fail=True),
    )
    async with fc.Engine() as engine:
        with pytest.raises(RuntimeError, match="c broke") as info:
            await engine.run(flow, flow_id="f1")
        rep = await engine.status("f1")
    assert "flow f1" in info.value.__notes__[0]
    reverts = [e for e in rec.events if e.startswith("revert")]
    assert reverts[0] == "revert c"  # the failed task is reverted too, first
    assert set(reverts[1:3]) == {"revert b1", "revert b2"}
    assert reverts[3] == "revert a"
    assert rep.state is fc.FlowState.REVERTED
    assert rep.tasks["c"].failure is not None
    assert rep.tasks["c"].failure.matches(RuntimeError)
    assert all(rep.tasks[n].state is fc.TaskState.REVERTED for n in ("a", "b1", "b2", "c"))


async def test_revert_gets_result_inputs_and_failures() -> None:
    seen: dict[str, Any] = {}

    @fc.task(provides="vm")
    async def allocate(size: int) -> str:
        return f"vm{size}"

    @allocate.on_revert
    async def _undo(size: int, result: Any, flow_failures: dict[str, fc.Failure]) -> None:
        seen.update(size=size, result=result, failures=flow_failures)

    @fc.task
    async def boom(vm: str) -> None:
        raise ValueError("no network")

    async with fc.Engine() as engine:
        with pytest.raises(ValueError, match="no network"):
            await engine.run(fc.Linear("f", allocate, boom), {"size": 2})
    assert seen["size"] == 2
    assert seen["result"] == "vm2"
    assert seen["failures"]["boom"].message == "no network"
    assert seen["failures"]["boom"].exc_types[0] == "ValueError"


async def test_revert_failures_are_raised_with_the_original() -> None:
    @fc.task
    async def ok() -> None:
        return None

    @ok.on_revert
    async def _bad() -> None:
        raise OSError("cannot undo")

    @fc.task
    async def fails() -> None:
        raise KeyError("k")

    async with fc.Engine() as engine:
        with pytest.raises(fc.FlowFailed) as info:
            await engine.run(fc.Linear("f", ok, fails), flow_id="x")
        rep = await engine.status("x")
    group = info.value
    assert isinstance(group, ExceptionGroup)
    assert [type(e) for e in group.exceptions] == [KeyError, fc.RevertFailed]
    assert isinstance(group.exceptions[1].__cause__, OSError)
    assert set(group.revert_failures) == {"ok"}
    assert rep.state is fc.FlowState.FAILED
    assert rep.tasks["ok"].state is fc.TaskState.REVERT_FAILURE


async def test_revert_is_bounded_by_its_deadline() -> None:
    @fc.task
    async def ok() -> None:
        return None

    @ok.on_revert
    async def _hang() -> None:
        await anyio.sleep_forever()

    @fc.task
    async def fails() -> None:
        raise RuntimeError("x")

    async with fc.Engine(revert_timeout=0.05) as engine:
        with pytest.raises(fc.FlowFailed) as info:
            await engine.run(fc.Linear("f", ok, fails))
    assert info.value.revert_failures["ok"].matches(TimeoutError)


async def test_times_retry_with_backoff_then_success() -> None:
    calls = 0
    waits: list[int] = []

    def wait(state: tenacity.RetryCallState) -> float:
        waits.append(state.attempt_number)
        return 0.0

    @fc.task(provides="v", retry=fc.Times(3, wait=wait))
    async def flaky() -> int:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ConnectionError("try again")
        return calls

    async with fc.Engine() as engine:
        out = await engine.run(fc.Linear("f", flaky), flow_id="r")
        entries = await engine.journal.read("r")
    assert out["v"] == 3
    assert waits == [1, 2]
    decisions = [json.loads(e.data) for e in entries if e.kind is fc.journal.EventKind.RETRY]
    assert [d["attempt"] for d in decisions] == [2, 3]
    assert all(d["decision"] == "retry" for d in decisions)


async def test_subflow_retry_exhausted_reverts_all() -> None:
    rec = Recorder()
    inner = fc.Linear("inner", rec.task("i1"), rec.task("i2", fail=True), retry=fc.Times(2))
    flow = fc.Linear("outer", rec.task("o1"), inner)
    async with fc.Engine() as engine:
        with pytest.raises(RuntimeError, match="i2 broke"):
            await engine.run(flow)
    assert rec.events.count("run i2") == 2
    assert rec.events.count("run i1") == 2
    assert rec.events.count("revert i1") == 2
    assert rec.events[-1] == "revert o1"


async def test_revert_all_decision_skips_parent_retry() -> None:
    rec = Recorder()
    inner = fc.Linear(
        "inner", rec.task("i1", fail=True), retry=fc.Times(1, on_exhausted=fc.Decision.REVERT_ALL)
    )
    flow = fc.Linear("outer", rec.task("o1"), inner, retry=fc.Times(5))
    async with fc.Engine() as engine:
        with pytest.raises(RuntimeError):
            await engine.run(flow)
    assert rec.events.count("run o1") == 1
    assert rec.events.count("run i1") == 1


async def test_nested_revert_lets_the_parent_retry() -> None:
    attempts = 0

    @fc.task
    async def sometimes() -> None:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise RuntimeError("not yet")

    inner = fc.Linear("inner", sometimes, retry=fc.Times(1))  # exhausted → REVERT → parent
    flow = fc.Linear("outer", inner, retry=fc.Times(5))
    async with fc.Engine() as engine:
        out = await engine.run(flow)
    assert out.state is fc.FlowState.SUCCESS
    assert attempts == 3


async def test_for_each_provides_values_until_one_works() -> None:
    tried: list[str] = []

    @fc.task(provides="host")
    async def connect(value: str) -> str:
        tried.append(value)
        if value != "c":
            raise OSError(value)
        return value

    flow = fc.Linear("f", connect, retry=fc.ForEach(["a", "b", "c", "d"]))
    async with fc.Engine() as engine:
        out = await engine.run(flow)
    assert tried == ["a", "b", "c"]
    assert out["host"] == "c"

    tried.clear()
    pflow = fc.Linear("p", connect.with_options(name="c2"), retry=fc.ParameterizedForEach("hosts"))
    async with fc.Engine() as engine:
        with pytest.raises(OSError):
            await engine.run(pflow, {"hosts": ["x", "y"]})
    assert tried == ["x", "y"]


async def test_retry_on_filters_failure_types() -> None:
    calls = 0

    @fc.task(retry=fc.Times(5, retry_on=[ConnectionError]))
    async def fails() -> None:
        nonlocal calls
        calls += 1
        raise ValueError("not retryable")

    async with fc.Engine() as engine:
        with pytest.raises(ValueError):
            await engine.run(fc.Linear("f", fails))
    assert calls == 1


async def test_task_timeout_fails_the_task() -> None:
    @fc.task(timeout=0.05)
    async def slow() -> None:
        await anyio.sleep(10)

    async with fc.Engine() as engine:
        with pytest.raises(TimeoutError):
            await engine.run(fc.Linear("f", slow))


async def test_unencodable_result_fails_the_task_naming_it() -> None:
    @fc.task
    async def weird() -> object:
        return object()

    async with fc.Engine() as engine:
        with pytest.raises(fc.EncodingError, match="result of 'weird'") as info:
            await engine.run(fc.Linear("f", weird))
    assert info.value.task == "weird"


async def test_codec_hook_carries_custom_types() -> None:
    class Point:
        def __init__(self, x: int) -> None:
            self.x = x

    codec = fc.Codec(default=lambda o: {"__point__": o.x})

    @fc.task(provides="p")
    async def make() -> Point:
        return Point(3)

    async with fc.Engine(codec=codec) as engine:
        out = await engine.run(fc.Linear("f", make), flow_id="c")
        entries = await engine.journal.read("c")
    assert isinstance(out["p"], Point)
    assert any('{"__point__":3}' in e.data for e in entries)


async def test_cancel_reverts_and_raises() -> None:
    rec = Recorder()
    started = anyio.Event()

    @fc.task
    async def hang() -> None:
        started.set()
        await anyio.sleep_forever()

    flow = fc.Linear("f", rec.task("a"), hang)
    async with fc.Engine() as engine:
        handle = await engine.start(flow, flow_id="c1")
        await started.wait()
        handle.cancel()
        with pytest.raises(fc.FlowCancelled):
            await handle.wait()
        rep = await engine.status("c1")
    assert rep.state is fc.FlowState.CANCELLED
    assert "revert a" in rec.events
    assert rep.tasks["hang"].state is fc.TaskState.REVERTED


async def test_suspend_lets_running_finish_and_starts_nothing_new() -> None:
    order: list[str] = []
    release = anyio.Event()
    started = anyio.Event()

    @fc.task
    async def first() -> None:
        started.set()
        await release.wait()
        order.append("first")

    @fc.task
    async def second() -> None:
        order.append("second")

    changes: list[fc.StateChange] = []
    async with fc.Engine(listeners=[changes.append]) as engine:
        handle = await engine.start(fc.Linear("f", first, second))
        await started.wait()
        handle.suspend()
        release.set()
        for _ in range(100):
            if handle.state is fc.FlowState.SUSPENDED:
                break
            await anyio.sleep(0.01)
        assert handle.state is fc.FlowState.SUSPENDED
        assert order == ["first"]
        handle.resume()
        out = await handle.wait()
    assert order == ["first", "second"]
    assert out.state is fc.FlowState.SUCCESS
    flow_states = [c.new for c in changes if c.task is None]
    assert flow_states == ["RUNNING", "SUSPENDED", "RUNNING", "SUCCESS"]
    assert ("second", "RUNNING", "SUCCESS") in [(c.task, c.old, c.new) for c in changes]


async def test_stop_then_resume_from_journal_skips_done_tasks() -> None:
    runs: list[str] = []
    started = anyio.Event()
    release = anyio.Event()

    @fc.task(provides="a")
    async def a() -> int:
        runs.append("a")
        started.set()
        await release.wait()
        return 1

    @fc.task(provides="b")
    async def b(a: int) -> int:
        runs.append("b")
        return a + 1

    journal = fc.MemoryJournal()

    def build() -> fc.Flow:
        return fc.Linear("f", a, b)

    async with fc.Engine(journal) as engine:
        handle = await engine.start(build(), flow_id="s")
        await started.wait()
        handle.stop()
        release.set()
        with pytest.raises(fc.FlowCancelled, match="stopped"):
            await handle.wait()
        assert (await engine.status("s")).state is fc.FlowState.SUSPENDED
        out = await engine.run(build(), flow_id="s")
    assert runs == ["a", "b"]
    assert out["b"] == 2


async def test_resume_reruns_only_in_flight_tasks() -> None:
    runs: list[str] = []
    in_c = anyio.Event()

    @fc.task(provides="a")
    async def ta() -> int:
        runs.append("a")
        return 1

    @fc.task(provides="b")
    async def tb() -> int:
        runs.append("b")
        return 2

    hang = True

    @fc.task(provides="c")
    async def tc(a: int, b: int) -> int:
        runs.append("c")
        if hang:
            in_c.set()
            await anyio.sleep_forever()
        return a + b

    journal = fc.MemoryJournal()
    async with fc.Engine(journal) as engine:
        async with anyio.create_task_group() as tg:

            async def go() -> None:
                await engine.run(fc.Graph("g", ta, tb, tc), flow_id="g1")

            tg.start_soon(go)
            await in_c.wait()
            tg.cancel_scope.cancel()  # the engine "dies": nothing more is written
        rep = await engine.status("g1")
        assert rep.tasks["tc"].state is fc.TaskState.RUNNING
        assert rep.state is fc.FlowState.RUNNING
    hang = False
    async with fc.Engine(journal) as engine:
        out = await engine.run(fc.Graph("g", ta, tb, tc), flow_id="g1")
        again = await engine.run(fc.Graph("g", ta, tb, tc), flow_id="g1")
    assert sorted(runs) == ["a", "b", "c", "c"]
    assert out["c"] == 3
    assert again["c"] == 3  # finished flows are not run again


async def test_resume_with_another_definition_is_refused() -> None:
    @fc.task
    async def one() -> None:
        return None

    journal = fc.MemoryJournal()
    async with fc.Engine(journal) as engine:
        await engine.run(fc.Linear("f", one), flow_id="d")
        with pytest.raises(fc.FlowDefinitionError, match="other tasks"):
            await engine.run(fc.Linear("f", one, one.with_options(name="two")), flow_id="d")
        with pytest.raises(fc.FlowDefinitionError, match="is 'f'"):
            await engine.run(fc.Linear("g", one), flow_id="d")


async def test_missing_input_is_refused_before_anything_is_written() -> None:
    @fc.task
    async def needs(x: int) -> None:
        return None

    journal = fc.MemoryJournal()
    async with fc.Engine(journal) as engine:
        with pytest.raises(fc.errors.MissingInputError):
            await engine.run(fc.Linear("f", needs), flow_id="m")
        assert await journal.get_flow("m") is None
        with pytest.raises(fc.EncodingError):
            await engine.run(fc.Linear("f", needs), {"x": object()}, flow_id="m")
        assert await journal.get_flow("m") is None


async def test_fenced_engine_stops_and_writes_nothing_more() -> None:
    journal = fc.MemoryJournal()
    started = anyio.Event()
    release = anyio.Event()

    @fc.task
    async def a() -> None:
        started.set()
        await release.wait()

    @fc.task
    async def b() -> None:
        raise AssertionError("must not run after ownership is lost")

    async with fc.Engine(journal) as engine:
        handle = await engine.start(fc.Linear("f", a, b), flow_id="o", token=1)
        await started.wait()
        await journal.fence("o", 2)  # a newer owner took over
        before = len(await journal.read("o"))
        release.set()
        with pytest.raises(fc.OwnershipLost):
            await handle.wait()
        assert len(await journal.read("o")) == before


async def test_failure_record_is_json_and_keeps_the_cause() -> None:
    try:
        try:
            raise KeyError("inner")
        except KeyError as exc:
            raise RuntimeError("outer") from exc
    except RuntimeError as exc:
        f = fc.Failure.from_exception(exc)
    data = json.loads(json.dumps(f.to_dict()))
    back = fc.Failure.from_dict(data)
    assert back.exc_types[:2] == ("RuntimeError", "Exception")
    assert back.cause is not None
    assert back.cause.matches("KeyError")
    assert "outer" in back.traceback
    assert back.exception is None


async def test_fork_reruns_from_a_task_reusing_standing_results() -> None:
    runs: list[str] = []

    @fc.task(provides="a")
    async def fa() -> int:
        runs.append("a")
        return 1

    @fc.task(provides="b")
    async def fb(a: int) -> int:
        runs.append("b")
        return a + 1

    fail = True

    @fc.task(provides="c")
    async def fc_(b: int) -> int:
        runs.append("c")
        if fail:
            raise RuntimeError("c failed")
        return b + 1

    def build() -> fc.Flow:
        return fc.Linear("f", fa, fb, fc_)

    async with fc.Engine() as engine:
        with pytest.raises(RuntimeError):
            await engine.run(build(), flow_id="src")
        fail = False
        # a and b have no revert function: their results still stand after the rollback
        handle = await engine.fork(build(), "src", from_task="fc_", flow_id="forked")
        out = await handle.wait()
        rep = await engine.status("forked")
        with pytest.raises(fc.FlowDefinitionError, match="no task 'zz'"):
            await engine.fork(build(), "src", from_task="zz")
    assert runs == ["a", "b", "c", "c"]
    assert out["c"] == 3
    assert rep.state is fc.FlowState.SUCCESS


async def test_errors_leave_the_engine_block_unwrapped() -> None:
    @fc.task
    async def boom() -> None:
        raise KeyError("x")

    with pytest.raises(KeyError):
        async with fc.Engine() as engine:
            await engine.run(fc.Linear("f", boom))
    with pytest.raises(ValueError, match="body"):
        async with fc.Engine():
            raise ValueError("body")


async def test_started_flow_is_visible_at_once_and_cannot_start_twice() -> None:
    gate = anyio.Event()

    @fc.task
    async def wait() -> None:
        await gate.wait()

    async with fc.Engine() as engine:
        handle = await engine.start(fc.Linear("f", wait), flow_id="once")
        assert engine.handle("once") is handle
        with pytest.raises(fc.FlowDefinitionError, match="already running"):
            await engine.start(fc.Linear("f", wait), flow_id="once")
        gate.set()
        await handle.wait()


@pytest.mark.parametrize(
    "cut_after", [fc.journal.EventKind.TASK_FAILED, fc.journal.EventKind.REVERT_STARTED]
)
async def test_resume_undoes_an_unsettled_failed_attempt_before_rerunning(
    cut_after: fc.journal.EventKind,
) -> None:
    """Crash right after a failed attempt (or while reverting it), before any retry
    decision was journaled: on resume the attempt is reverted, then the task runs again."""
    calls: list[str] = []
    fail_first = True

    @fc.task(provides="a")
    async def ta() -> int:
        calls.append("run a")
        return 1

    @fc.task(provides="b", retry=fc.Times(3))
    async def tb(a: int) -> int:
        nonlocal fail_first
        calls.append("run b")
        if fail_first:
            fail_first = False
            raise ConnectionError("flaky")
        return a + 1

    @tb.on_revert
    async def _undo_b(result: Any) -> None:
        calls.append(f"revert b ({type(result).__name__})")

    def build() -> fc.Flow:
        return fc.Linear("f", ta, tb)

    full = fc.MemoryJournal()
    async with fc.Engine(full) as engine:
        await engine.run(build(), flow_id="x")
    entries = await full.read("x")
    cut = next(k for k, e in enumerate(entries) if e.kind is cut_after and e.task == "tb")
    crashed = fc.MemoryJournal()
    record = fc.journal.FlowRecord("x", "f", "RUNNING")
    assert await crashed.create_flow(record, entries[: cut + 1])
    calls.clear()
    async with fc.Engine(crashed) as engine:
        out = await engine.run(build(), flow_id="x")
    assert out["b"] == 2
    assert calls == ["revert b (Failure)", "run b"]


async def test_resume_after_a_retry_decision_continues_with_the_next_value() -> None:
    """Crash right after a ForEach decided to retry: the resumed flow runs the next value,
    and the attempt counter carries on from the journal (the exhausted list is respected)."""
    tried: list[str] = []
    fail_on = {"a", "b"}

    @fc.task(provides="host")
    async def connect(value: str) -> str:
        tried.append(value)
        if value in fail_on:
            raise OSError(value)
        return value

    def build() -> fc.Flow:
        return fc.Linear("f", connect, retry=fc.ForEach(["a", "b", "c"]))

    full = fc.MemoryJournal()
    async with fc.Engine(full) as engine:
        await engine.run(build(), flow_id="r")
    assert tried == ["a", "b", "c"]
    entries = await full.read("r")
    first_retry = next(k for k, e in enumerate(entries) if e.kind is fc.journal.EventKind.RETRY)
    crashed = fc.MemoryJournal()
    assert await crashed.create_flow(
        fc.journal.FlowRecord("r", "f", "RUNNING"), entries[: first_retry + 1]
    )
    tried.clear()
    async with fc.Engine(crashed) as engine:
        out = await engine.run(build(), flow_id="r")
    assert tried == ["b", "c"]  # attempt 2 onwards, not from the start
    assert out["host"] == "c"
    decisions = [
        json.loads(e.data) for e in await crashed.read("r") if e.kind is fc.journal.EventKind.RETRY
    ]
    assert [d["attempt"] for d in decisions] == [2, 3]


async def test_nested_patterns_respect_links_data_and_structure() -> None:
    order: list[str] = []

    class Counter(fc.Task):
        """A class task with state: counts its own runs."""

        def __init__(self, name: str, **kw: Any) -> None:
            super().__init__(name, **kw)
            self.runs = 0

        async def execute(self, **inputs: Any) -> str:
            self.runs += 1
            order.append(self.name)
            await checkpoint()
            return self.name

    def t(name: str, provides: str | None = None, **kw: Any) -> Counter:
        return Counter(name, provides=provides, **kw)

    prep = t("prep")
    build_a, build_b = t("build_a", "a"), t("build_b", "b")
    ship = fc.FunctionTask(_ship, "ship", provides="shipped")
    notify = t("notify")
    g = fc.Graph("g", prep, fc.Unordered("builds", build_a, build_b), ship, notify)
    g.link(prep, g.items[1])  # prep before the whole unordered sub-flow
    g.link(ship, notify)  # explicit ordering, no data between them
    async with fc.Engine() as engine:
        out = await engine.run(fc.Linear("outer", g, t("cleanup")))
    assert order[0] == "prep"
    assert set(order[1:3]) == {"build_a", "build_b"}
    assert order[3:] == ["notify", "cleanup"]
    assert out["shipped"] == "a+b"
    assert prep.runs == 1


async def _ship(a: str, b: str) -> str:
    return f"{a[-1]}+{b[-1]}"
