"""The crash explorer: resume a flow from every durable prefix of its journal and check that
the crash changed nothing but the time the flow took."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio

from .._codec import Codec
from .._journal._contract import JournalBackend
from .._journal._events import Entry, EventKind
from .._journal._memory import MemoryJournal
from .._model._compile import compile_flow
from .._model._flow import Flow
from .._model._workflow import Workflow
from .._states import FlowState, StateChange, is_finished
from ..errors import FlowcoordError
from ._family import Family, cut_points, load_family, member_id, qualify, read_family, renamed
from ._invariants import (
    Segment,
    Violation,
    check_journal,
    check_reruns,
    compare_effects,
    effects,
    final_state,
)
from ._trace import Fault, InstrumentedEngine, RecordingBackend, Trace

__all__ = ["Action", "CrashExactnessError", "CrashExplorer", "ExplorationReport"]

_MAX_PROCESSES = 4  # a scenario's processes: the first, then resumes after a stop or a fault


class CrashExactnessError(AssertionError):
    """The explorer found scenarios in which a crash or a fault changed a flow's outcome."""

    def __init__(self, report: ExplorationReport) -> None:
        self.report = report
        shown = "\n  ".join(str(v) for v in report.violations[:20])
        more = len(report.violations) - 20
        super().__init__(
            f"{len(report.violations)} crash-exactness violations in flow {report.flow!r} "
            f"on {report.backend}:\n  {shown}" + (f"\n  ... and {more} more" if more > 0 else "")
        )


@dataclass(frozen=True, slots=True)
class Action:
    """A control call the explorer makes in every scenario: when ``task`` (``None``: the
    flow itself) enters ``state``, call the handle's ``do``. A suspended flow is resumed on
    the same engine; a stopped one on a fresh engine; a cancel requested before a crash is
    requested again of the resumed flow (the caller retries it with the new owner)."""

    do: Literal["cancel", "suspend", "stop"]
    state: str
    task: str | None = None

    @property
    def name(self) -> str:
        return f"{self.do}@{self.task or 'flow'}:{self.state}"


@dataclass(slots=True)
class ExplorationReport:
    """What :meth:`CrashExplorer.explore` did and found."""

    flow: str
    backend: str
    reference: FlowState = FlowState.PENDING
    entries: int = 0
    cuts: int = 0
    second_cuts: int = 0
    faults: int = 0
    seconds: float = 0.0
    violations: list[Violation] = field(default_factory=list)

    @property
    def scenarios(self) -> int:
        return self.cuts + self.second_cuts + self.faults

    def check(self) -> None:
        """Raise :class:`CrashExactnessError` if any scenario broke crash-exactness."""
        if self.violations:
            raise CrashExactnessError(self)

    def __str__(self) -> str:
        return (
            f"{self.flow} on {self.backend}: reference {self.reference.value}, "
            f"{self.entries} entries; {self.cuts} cuts, {self.second_cuts} second cuts, "
            f"{self.faults} faults in {self.seconds:.2f}s; {len(self.violations)} violations"
        )


@dataclass(slots=True)
class _Scenario:
    """One simulated history of a flow: its processes' combined trace and how it ended."""

    flow_id: str
    trace: Trace
    store: Mapping[str, Any] | None = None
    error: BaseException | None = None
    fired: set[str] = field(default_factory=set)


class CrashExplorer:
    """Checks that ``flow`` is crash-exact on ``journal`` (in-memory when None).

    It runs the flow once for a reference journal and the reference effects, then, for every
    durable prefix of that journal (each entry boundary, which includes every flush
    boundary), simulates a crash: a fresh engine over a journal holding exactly that prefix,
    in-memory state gone, resumes the flow. With ``depth=2`` every resume is itself crashed at
    each of its own entry boundaries. With ``faults`` the backend's writes fail at each call
    (before writing, and after writing with the reply lost) and a fresh engine resumes.

    ``flow`` is a :class:`~flowcoord.Flow` or a zero-argument callable returning one (called
    once per simulated process, as a restarted process would build it). Task bodies and
    reverts are instrumented to record their calls; they must behave the same when called
    again with the same inputs. ``sample``: explore at most this many cuts (evenly spread,
    first and last included) — for big flows. Every scenario is bounded by ``timeout``.
    """

    def __init__(
        self,
        flow: Flow | Workflow | Callable[[], Flow | Workflow],
        inputs: Mapping[str, Any] | None = None,
        *,
        journal: JournalBackend | None = None,
        depth: int = 1,
        faults: bool = True,
        actions: Sequence[Action] = (),
        sample: int | None = None,
        timeout: float = 30.0,
        codec: Codec | None = None,
        concurrency: int = 16,
        revert_timeout: float = 10.0,
        checkpoint_every: int = 1000,
        cut: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        if depth not in (1, 2):
            raise ValueError(f"depth must be 1 or 2, got {depth!r}")
        self._flow = flow
        self._inputs = dict(inputs or {})
        self._backend = journal if journal is not None else MemoryJournal()
        self._depth = depth
        self._faults = faults
        self._actions = tuple(actions)
        self._sample = sample
        self._timeout = timeout
        self._options: dict[str, Any] = {
            "codec": codec,
            "concurrency": concurrency,
            "revert_timeout": revert_timeout,
            "checkpoint_every": checkpoint_every,
        }
        self._rec = RecordingBackend(self._backend)
        self._rec.cut = cut
        self._prefix = f"x{uuid.uuid4().hex[:10]}"
        self._name = ""  # the flow's name, known once explore() built it

    def _make(self) -> Flow | Workflow:
        flow = self._flow
        return flow if isinstance(flow, Flow | Workflow) else flow()

    # -- driving -------------------------------------------------------------------------------

    async def explore(self) -> ExplorationReport:
        """Run every scenario; return the report (call its :meth:`~ExplorationReport.check`)."""
        began = time.perf_counter()
        probe = self._make()
        plan = None if isinstance(probe, Workflow) else compile_flow(probe)
        limits = {
            s.key: n
            for s in (plan.scopes if plan is not None else ())
            if (n := _limit(s.retry, self._inputs)) is not None
        }
        self._name = probe.name
        report = ExplorationReport(probe.name, type(self._backend).__name__)
        async with self._backend:
            self._rec.calls = {}
            ref = await self._scenario(f"{self._prefix}-ref", set(), fresh=True)
            ref_family = await read_family(self._backend, ref.flow_id)
            ref_entries = ref_family.get("", [])
            ref_calls = dict(self._rec.calls)
            limits.update(self._rec.step_limits)  # a workflow's steps' retry limits
            report.reference = final_state(ref_entries)
            report.entries = sum(len(v) for v in ref_family.values())
            ref_effects = effects([Segment(ref.trace)])
            if not ref.trace.log or not report.reference.finished:
                report.violations.append(
                    Violation("reference", "unfinished", f"the uncrashed run ended {ref.error!r}")
                )
                report.seconds = time.perf_counter() - began
                return report
            irreversible = frozenset(
                qualify(member_id(ref.flow_id, path), task)
                for path, entries in ref_family.items()
                for task in _without_revert(entries, self._rec.no_revert)
            )
            ctx = _Context(ref, ref_family, ref_effects, limits, report, irreversible)
            points = cut_points(ref.trace, ref.flow_id)
            for k in self._cuts(len(points)):
                await self._explore_cut(ctx, k, points[k - 1])
            if self._faults:
                for fault in _faults(ref_calls, cut=self._rec.cut is not None):
                    await self._explore_fault(ctx, fault)
        report.seconds = time.perf_counter() - began
        return report

    def _cuts(self, n: int) -> list[int]:
        cuts = list(range(1, n + 1))
        if self._sample is None or self._sample >= n:
            return cuts
        step = (n - 1) / max(1, self._sample - 1)
        picked = {1 + round(i * step) for i in range(self._sample)}
        return sorted(picked)

    async def _explore_cut(self, ctx: _Context, k: int, point: tuple[int, dict[str, int]]) -> None:
        ref = ctx.ref
        pos, counts = point
        prefix = {path: ctx.ref_family[path][:n] for path, n in counts.items()}
        last = max((e for es in prefix.values() for e in es[-1:]), key=lambda e: e.at, default=None)
        name = f"crash {k}"
        if last is not None:
            where = qualify(last.flow_id, last.task) if last.task else "flow"
            name = f"crash {k}, after entry {last.seq} ({last.kind} {where})"
        cid = f"{self._prefix}-c{k}"
        await load_family(
            self._backend,
            cid,
            {p: renamed(es, ref.flow_id, cid, p) for p, es in prefix.items()},
        )
        loaded = {p: renamed(es, ref.flow_id, cid, p) for p, es in prefix.items()}
        redo = {a for a in ref.trace.actions_before(pos)}
        resumed = await self._scenario(cid, redo, fresh=False)
        history = [Segment(ref.trace, pos), Segment(resumed.trace)]
        ctx.report.cuts += 1
        family = await self._check(ctx, name, cid, loaded, history, resumed)
        if self._depth < 2 or family is None:
            return
        for k2, (pos2, counts2) in enumerate(cut_points(resumed.trace, cid), 1):
            prefix2 = {
                p: es[: max(len(loaded.get(p, ())), counts2.get(p, 0))] for p, es in family.items()
            }
            name2 = f"{name}, then crash {k2} of the resume"
            cid2 = f"{cid}-{k2}"
            moved = {p: renamed(es, cid, cid2, p) for p, es in prefix2.items()}
            await load_family(self._backend, cid2, moved)
            redo2 = redo | resumed.trace.actions_before(pos2)
            again = await self._scenario(cid2, redo2, fresh=False)
            ctx.report.second_cuts += 1
            history2 = [Segment(ref.trace, pos), Segment(resumed.trace, pos2), Segment(again.trace)]
            await self._check(ctx, name2, cid2, moved, history2, again)

    async def _explore_fault(self, ctx: _Context, fault: Fault) -> None:
        fid = f"{self._prefix}-f{ctx.report.faults}"
        self._rec.fault, self._rec.calls = fault, {}
        try:
            run = await self._scenario(fid, set(), fresh=True)
        finally:
            self._rec.fault = None
        ctx.report.faults += 1
        name = (
            f"{fault.method} call {fault.call}: connection cut first"
            if fault.when == "cut"
            else f"{fault.method} call {fault.call} fails {fault.when} writing ({fault.error})"
        )
        await self._check(ctx, name, fid, {}, [Segment(run.trace)], run)

    async def _check(
        self,
        ctx: _Context,
        name: str,
        flow_id: str,
        prefixes: Mapping[str, Sequence[Entry]],
        history: Sequence[Segment],
        run: _Scenario,
    ) -> Family | None:
        bad: list[Violation] = []
        family = await read_family(self._backend, flow_id)
        entries = family.get("", [])
        state = final_state(entries)
        if state is not ctx.report.reference:
            bad.append(
                Violation(
                    name,
                    "outcome",
                    f"ended {state.value} (raised {run.error!r}), not {ctx.report.reference.value}",
                )
            )
        elif state is FlowState.SUCCESS and run.store is not None:
            want = ctx.ref.store or {}
            diff = sorted(k for k in set(want) | set(run.store) if want.get(k) != run.store.get(k))
            if diff:
                bad.append(Violation(name, "outputs", f"outputs differ: {diff}"))
        for path, ref_entries in ctx.ref_family.items():
            if not path:
                continue
            want_state = final_state(ref_entries)
            got = family.get(path)
            got_state = final_state(got) if got else None
            if got_state is not want_state:
                shown = "not journaled" if got_state is None else f"ended {got_state.value}"
                bad.append(
                    Violation(
                        name,
                        "child outcome",
                        f"child {path!r} {shown}, not {want_state.value} as without the crash",
                    )
                )
        bad += compare_effects(ctx.ref_effects, effects(history), name, ctx.irreversible)
        for path, entries_m in family.items():
            prefix = prefixes.get(path, [])
            bad += check_reruns(prefix, history[-1:], name, flow=path)
            bad += check_journal(prefix, entries_m, _limits_of(ctx.limits, path), name)
        ctx.report.violations += bad
        return family

    async def _scenario(self, flow_id: str, redo: set[str], *, fresh: bool) -> _Scenario:
        """Run ``flow_id`` to its end: a first process (creating it if ``fresh``), then a
        fresh one after each stop or journal failure, as an operator or supervisor would."""
        trace = self._rec.trace = Trace()
        sc = _Scenario(flow_id, trace, fired=set(redo))
        create = fresh
        for n in range(_MAX_PROCESSES):
            if n:
                trace.log.append(("process", n))
                create = await self._backend.get_flow(flow_id) is None
            # a cancel is asked again of every new owner until the flow ends (the caller
            # retries it); a stop or a suspend was answered by the process that ended
            again = redo if not n else sc.fired
            finished = await self._process(sc, create=create, redo=again)
            if finished:
                break
            if sc.error is not None and not isinstance(sc.error, FlowcoordError):
                break  # not something a restart would help with: report it
        return sc

    async def _passed(self, sc: _Scenario) -> list[Action]:
        """The actions whose point the journal shows passed but that no process took (the
        fault or crash came between the point and the call): whoever calls them watches the
        flow, and sees that point in the journal."""
        waiting = [a for a in self._actions if a.name not in sc.fired]
        if not waiting:
            return []
        entries = await self._backend.read(sc.flow_id)
        late = []
        for a in waiting:
            if a.task is None:
                passed = any(e.kind is EventKind.FLOW_STATE and e.state == a.state for e in entries)
            else:
                kind = _ENTERED.get(a.state)
                passed = any(e.kind is kind and e.task == a.task for e in entries)
            if passed:
                late.append(a)
        return late

    async def _process(self, sc: _Scenario, *, create: bool, redo: set[str]) -> bool:
        """One simulated process running the flow; True if the flow finished."""
        engine = InstrumentedEngine(self._rec, **self._options)
        flow = self._make()
        sc.error, sc.store = None, None
        async with anyio.create_task_group() as tg:

            def control(change: StateChange) -> None:
                handle = engine.handle(sc.flow_id)
                if handle is None or change.flow_id != sc.flow_id:
                    return
                for a in self._actions:
                    if a.name not in sc.fired and change.task == a.task and change.new == a.state:
                        _take(sc, a, handle)
                if (
                    change.task is None
                    and change.new == FlowState.SUSPENDED.value
                    and any(a.do == "suspend" and a.name in sc.fired for a in self._actions)
                ):
                    tg.start_soon(_resume_soon, handle)

            engine.add_listener(control)
            try:
                with anyio.fail_after(self._timeout):
                    async with engine:
                        late = [] if create else await self._passed(sc)
                        if create:
                            handle = await engine.start(flow, self._inputs, flow_id=sc.flow_id)
                        else:
                            handle = await engine.start(flow, flow_id=sc.flow_id, resume=True)
                        for a in self._actions:
                            if a.name in redo and a.do == "cancel":
                                handle.cancel()
                        for a in late:  # before the run starts: as if called meanwhile
                            _take(sc, a, handle)
                        outcome = await handle.wait()
                        sc.store = dict(outcome.store)
            except TimeoutError as exc:
                sc.error = exc
                tg.cancel_scope.cancel()
                return True  # a hang: reported by the checks, not retried
            except Exception as exc:
                sc.error = exc
        record = await self._backend.get_flow(sc.flow_id)
        return record is not None and is_finished(record.state)


_ENTERED = {
    "RUNNING": EventKind.TASK_STARTED,
    "SUCCESS": EventKind.TASK_SUCCEEDED,
    "FAILURE": EventKind.TASK_FAILED,
    "REVERTING": EventKind.REVERT_STARTED,
    "REVERTED": EventKind.REVERT_DONE,
    "REVERT_FAILURE": EventKind.REVERT_FAILED,
}


@dataclass(slots=True)
class _Context:
    ref: _Scenario
    ref_family: Family
    ref_effects: dict[str, frozenset[bool]]
    limits: dict[str, int]
    report: ExplorationReport
    irreversible: frozenset[str] = frozenset()


def _take(sc: _Scenario, action: Action, handle: Any) -> None:
    """Take ``action`` on the flow (once in a scenario) and log it in the trace."""
    sc.fired.add(action.name)
    sc.trace.action(action.name)
    getattr(handle, action.do)()


async def _resume_soon(handle: Any) -> None:
    await anyio.sleep(0.001)
    handle.resume()


def _limit(retry: Any, store: Mapping[str, Any]) -> int | None:
    try:
        n = retry.max_attempts(store)
    except Exception:
        return None
    return n if isinstance(n, int) else None


def _faults(calls: Mapping[str, int], *, cut: bool) -> list[Fault]:
    out = []
    for method in ("create_flow", "append"):
        for c in range(1, calls.get(method, 0) + 1):
            out.append(Fault(method, c, "before", "unavailable"))
            out.append(Fault(method, c, "before", "error"))
            out.append(Fault(method, c, "after", "unavailable"))
            if cut:
                out.append(Fault(method, c, "cut"))
    return out


def _without_revert(entries: Sequence[Entry], no_revert: Set[str]) -> frozenset[str]:
    """The tasks of a flow's journal that have nothing to undo them: a pattern flow's tasks
    without a revert (``no_revert``: the names the engine compiled so), a workflow's steps
    journaled without a compensation (no ``task.started`` with ``"revert":true``)."""
    workflow = bool(entries) and '"workflow":true' in entries[0].data
    tasks = {e.task for e in entries if e.task is not None}
    if not workflow:
        return frozenset(t for t in tasks if t in no_revert)
    undoable = {
        e.task
        for e in entries
        if e.kind is EventKind.TASK_STARTED and e.task is not None and '"revert":true' in e.data
    }
    return frozenset(t for t in tasks if t not in undoable)


def _limits_of(limits: Mapping[str, int], path: str) -> dict[str, int]:
    """The retry limits of the family member at ``path``, by its own task names."""
    if not path:
        return {k: n for k, n in limits.items() if "/" not in k}
    head = path + "/"
    return {k[len(head) :]: n for k, n in limits.items() if k.startswith(head)}
