"""A workflow's run: the code called from the top on every run, its steps journaled by
position, compensation of completed steps in reverse order when it fails or is cancelled.

Crash-exactness, as for pattern flows: a step with a compensation has its ``task.started``
(with its arguments) durable before it runs, and every ``revert.started`` is durable before
its compensation runs, so a crash can never leave an effect the journal does not show as
maybe done. A step's result is durable before the workflow's code sees it. A resumed run
that finds the workflow reverting runs the code again in replay only (no step runs) to learn
each position's compensation, then finishes the rollback.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import anyio
import structlog

from .._failure import Failure
from .._journal._events import Entry, EventKind, FlowRecord
from .._journal._journal import FlowWriter
from .._model._task import Task
from .._model._workflow import Workflow
from .._states import FlowState, StateChange, StateListener, check_flow
from ..errors import (
    FlowCancelled,
    FlowDefinitionError,
    FlowNotFound,
    JournalError,
    NonDeterministicWorkflow,
    OwnershipLost,
    RevertFailed,
    StepFailed,
)
from ._context import Context, Step
from ._wf_journal import StepRecord, WorkflowJournal, step_key

if TYPE_CHECKING:
    from ._engine import Engine

__all__ = ["WorkflowRun", "load_workflow"]

log = structlog.get_logger("flowcoord.workflow")

_K = EventKind


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first leaf of an exception group (compensations raise journal errors only)."""
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


class _ReplayEnd(Exception):
    """Replay-only run (finishing a rollback): the code reached a step the journal lacks."""


class WorkflowRun:
    """One run of a workflow on an engine (the engine's handle drives it)."""

    def __init__(
        self,
        wf: Workflow,
        flow_id: str,
        writer: FlowWriter,
        inputs: Mapping[str, Any],
        journal: WorkflowJournal,
        *,
        revert_timeout: float,
        listeners: list[StateListener],
        wrap: Callable[[str, str, Callable[..., Any]], Callable[..., Any]] | None = None,
    ) -> None:
        self.workflow = wf
        self.flow_id = flow_id
        self.name = wf.name
        self.writer = writer
        self.inputs = dict(inputs)
        self.journal = journal
        self.state = journal.state
        self.result: Any = None
        self._revert_timeout = revert_timeout
        self._wrap = wrap
        self._listeners = listeners
        self._log = log.bind(flow_id=flow_id, flow=wf.name)
        self._tasks: dict[int, Task] = {}  # position → the step's task, as the code called it
        self._replay_only = False
        self._scope: anyio.CancelScope | None = None
        self._cancelled = False
        self._lost: BaseException | None = None
        self._suspended = False
        self._stopping = False
        self._resumed = anyio.Event()
        self._running = 0
        # a journal write failed (or ownership was lost): the run ends with it, whatever the
        # workflow's code did with the exception; the flow stays for a resume
        self._broken: Exception | None = None

    # -- control (the handle's) ----------------------------------------------------------------

    def cancel(self) -> None:
        self._cancelled = True
        self._wake()
        if self._scope is not None:
            self._scope.cancel()

    def abort(self, reason: str) -> None:
        self._lost = OwnershipLost(f"flow {self.flow_id}: {reason}", flow_id=self.flow_id)
        self.writer.revoke(self._lost)
        self._wake()
        if self._scope is not None:
            self._scope.cancel()

    def suspend(self) -> None:
        self._suspended = True

    def stop(self) -> None:
        self._suspended = self._stopping = True

    def resume(self) -> None:
        self._suspended = self._stopping = False
        self._wake()

    def _wake(self) -> None:
        self._resumed.set()
        self._resumed = anyio.Event()

    # -- the run -------------------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        j = self.journal
        if self.state is FlowState.SUCCESS:
            self.result = j.result
            return self._store()
        if self.state.finished:
            raise self._journaled_end()
        if j.reverting:
            await self._replay_for_reverts()
            return await self._rollback(j.failure, cancelled=j.cancelled)
        await self._set_flow(FlowState.RUNNING)
        error: Exception | None = None
        with anyio.CancelScope() as scope:
            self._scope = scope
            ctx = Context(self)
            try:
                result = await self.workflow.fn(ctx, **self.inputs)
            except (NonDeterministicWorkflow, OwnershipLost, JournalError):
                raise
            except Exception as exc:
                error = exc
        self._scope = None
        if self._lost is not None:
            raise self._lost
        if self._broken is not None:
            raise self._broken
        if error is None and not scope.cancelled_caught and not self._cancelled:
            self._check_no_more_steps(ctx.position)
            data = self._encode({"result": result}, what="the workflow's result")
            self.result = self.writer.codec.decode(data)["result"]
            await self._set_flow(FlowState.SUCCESS, data)
            return self._store()
        if self._stopping and not self._cancelled and error is None:
            await self._set_flow(FlowState.SUSPENDED)
            return self._store()
        failure = None if error is None else Failure.from_exception(error)
        return await self._rollback(failure, cancelled=error is None)

    def _journaled_end(self) -> Exception:
        """The error a finished, unsuccessful workflow ended with, from its journal."""
        j = self.journal
        if j.cancelled or self.state is FlowState.CANCELLED:
            return FlowCancelled(f"flow {self.flow_id} was cancelled", flow_id=self.flow_id)
        bad = [r for r in j.steps.values() if r.revert_failure is not None]
        if bad:
            key = step_key(bad[0].pos, bad[0].name)
            assert bad[0].revert_failure is not None
            return RevertFailed(bad[0].revert_failure, flow_id=self.flow_id, task=key)
        if j.failure is not None:
            return StepFailed(j.failure, flow_id=self.flow_id)
        return FlowCancelled(f"flow {self.flow_id} ended {self.state}", flow_id=self.flow_id)

    def _store(self) -> dict[str, Any]:
        return {**self.inputs, "result": self.result}

    def _check_no_more_steps(self, reached: int) -> None:
        later = [r for p, r in self.journal.steps.items() if p > reached]
        if later:
            first = min(later, key=lambda r: r.pos)
            raise NonDeterministicWorkflow(
                f"the workflow returned after position {reached}, but the journal has step "
                f"{first.pos} ({first.name!r})",
                flow=self.name,
                flow_id=self.flow_id,
                position=first.pos,
                journaled=first.name,
                called=None,
            )

    # -- steps (the context's) -----------------------------------------------------------------

    def _journaled(self, pos: int, name: str) -> StepRecord | None:
        rec = self.journal.steps.get(pos)
        if rec is not None and rec.name != name:
            raise NonDeterministicWorkflow(
                f"position {pos} calls {name!r} but the journal has {rec.name!r} there",
                flow=self.name,
                flow_id=self.flow_id,
                position=pos,
                journaled=rec.name,
                called=name,
            )
        return rec

    def value(self, pos: int, name: str, make: Callable[[], Any]) -> Any:
        """A journaled value (``ctx.now()`` …): the journal's, or made now and journaled."""
        rec = self._journaled(pos, name)
        if rec is not None and rec.succeeded:
            return rec.result
        if self._replay_only:
            raise _ReplayEnd
        value = make()
        data = self._encode({"result": value, "attempt": 1}, what=f"{name} value")
        self._emit(_K.TASK_SUCCEEDED, step_key(pos, name), data)
        self.journal.steps[pos] = StepRecord(pos, name, succeeded=True, result=value)
        return value

    async def run_step(self, step: Step[Any]) -> Any:
        pos, task = step.pos, step.task
        self._tasks[pos] = task
        rec = self._journaled(pos, task.name)
        if rec is not None:
            if rec.succeeded:
                return rec.result
            if rec.failure is not None:
                raise StepFailed(rec.failure, flow_id=self.flow_id, task=step_key(pos, task.name))
        if self._replay_only:
            raise _ReplayEnd
        await self._gate()
        fn = task._execute_fn()
        try:
            bound = inspect.signature(fn).bind(*step.args, **{**task.inject, **step.kwargs})
        except TypeError as exc:
            raise StepFailed(
                Failure.from_exception(exc), flow_id=self.flow_id, task=step_key(pos, task.name)
            ) from exc
        args = dict(bound.arguments)
        attempt = (rec.attempt if rec is not None else 0) + 1
        key = step_key(pos, task.name)
        if self._wrap is not None:
            fn = self._wrap(key, "run", fn)
        started = self._encode(
            {"attempt": attempt, "args": args, "group": step.group, "revert": task.has_revert},
            what=f"arguments of step {key!r}",
        )
        record = StepRecord(pos, task.name, started=True, args=args, attempt=attempt)
        record.group, record.revertible = step.group, task.has_revert
        self._running += 1
        try:
            if task.has_revert:  # write-ahead: the effect may exist only once this is durable
                await self._write(_K.TASK_STARTED, key, started)
            else:
                self._emit(_K.TASK_STARTED, key, started)
            self.journal.steps[pos] = record
            self._notify(key, "PENDING", "RUNNING")
            try:
                if task.timeout is not None:
                    with anyio.fail_after(task.timeout):
                        result = await fn(**args)
                else:
                    result = await fn(**args)
                data = self._encode(
                    {"result": result, "attempt": attempt}, what=f"result of {key!r}"
                )
            except Exception as exc:
                failure = Failure.from_exception(exc)
                await self._write(
                    _K.TASK_FAILED,
                    key,
                    self._encode(
                        {"failure": failure.to_dict(), "attempt": attempt}, what="failure"
                    ),
                )
                record.failure = failure
                self._notify(key, "RUNNING", "FAILURE")
                raise StepFailed(failure, flow_id=self.flow_id, task=key) from exc
            await self._write(_K.TASK_SUCCEEDED, key, data)
            record.succeeded, record.result = True, self.writer.codec.decode(data)["result"]
            self._notify(key, "RUNNING", "SUCCESS")
            return record.result
        finally:
            self._running -= 1
            if self._suspended:
                self._wake()  # a gate waits for the steps running to finish

    async def _gate(self) -> None:
        """Suspended: start no new step until resumed; stopped: end the run once the steps
        running finish."""
        while self._suspended and not self._cancelled and self._lost is None:
            if self._stopping and self._running == 0 and self._scope is not None:
                self._scope.cancel()
            if self.state is FlowState.RUNNING and self._running == 0:
                await self._set_flow(FlowState.SUSPENDED)
            await self._resumed.wait()
        if self.state is FlowState.SUSPENDED and not self._cancelled:
            await self._set_flow(FlowState.RUNNING)

    async def _write(
        self, kind: EventKind, task: str | None = None, data: str = "{}", state: str | None = None
    ) -> None:
        """Append and wait until durable; a failure breaks the run (see :meth:`run`)."""
        try:
            await self.writer.write(kind, task, data, state)
        except Exception as exc:
            self._broken = self._broken or exc
            raise

    def _emit(
        self, kind: EventKind, task: str | None = None, data: str = "{}", state: str | None = None
    ) -> None:
        try:
            self.writer.emit(kind, task, data, state)
        except Exception as exc:
            self._broken = self._broken or exc
            raise

    def _encode(self, value: Any, *, what: str) -> str:
        return self.writer.encode(value, what=what)

    # -- compensation --------------------------------------------------------------------------

    async def _replay_for_reverts(self) -> None:
        """Call the code in replay only, to learn which task each journaled position ran."""
        self._replay_only = True
        try:
            with anyio.CancelScope():
                await self.workflow.fn(Context(self), **self.inputs)
        except (_ReplayEnd, Exception):
            pass
        finally:
            self._replay_only = False

    async def _rollback(self, failure: Failure | None, *, cancelled: bool) -> dict[str, Any]:
        if self.state is not FlowState.REVERTING:
            data: dict[str, Any] = {"reason": "cancelled" if cancelled else "failed"}
            if failure is not None:
                data["failure"] = failure.to_dict()
            await self._set_flow(FlowState.REVERTING, self._encode(data, what="failure"))
        revert_failures: list[RevertFailed] = []
        for group in self.journal.to_compensate():
            try:
                async with anyio.create_task_group() as tg:
                    for rec in group:
                        tg.start_soon(self._compensate, rec, failure, revert_failures)
            except BaseExceptionGroup as group_error:
                raise _first(group_error) from None
        for rec in sorted(self.journal.steps.values(), key=lambda r: r.pos, reverse=True):
            # failed compensations journaled by an earlier run count as much as this run's
            if rec.revert_failure is not None and not any(
                f.task == step_key(rec.pos, rec.name) for f in revert_failures
            ):
                key = step_key(rec.pos, rec.name)
                revert_failures.append(
                    RevertFailed(rec.revert_failure, flow_id=self.flow_id, task=key)
                )
        if revert_failures:
            await self._set_flow(FlowState.FAILED)
        else:
            await self._set_flow(FlowState.CANCELLED if cancelled else FlowState.REVERTED)
        if cancelled and not revert_failures:
            raise FlowCancelled(f"flow {self.flow_id} was cancelled", flow_id=self.flow_id)
        if failure is not None and failure.exception is not None and not revert_failures:
            raise failure.exception
        if failure is not None and not revert_failures:
            raise StepFailed(failure, flow_id=self.flow_id)
        raise revert_failures[0]

    async def _compensate(
        self, rec: StepRecord, failure: Failure | None, out: list[RevertFailed]
    ) -> None:
        task = self._tasks.get(rec.pos)
        key = step_key(rec.pos, rec.name)
        if task is None or task.name != rec.name:
            raise NonDeterministicWorkflow(
                f"step {rec.pos} ({rec.name!r}) is journaled with a compensation, but the "
                "code no longer calls it there",
                flow=self.name,
                flow_id=self.flow_id,
                position=rec.pos,
                journaled=rec.name,
                called=None if task is None else task.name,
            )
        revert = task._revert_fn()
        if revert is None:
            return
        if self._wrap is not None:
            revert = self._wrap(key, "revert", revert)
        await self._write(_K.REVERT_STARTED, key)
        self._notify(key, "SUCCESS", "REVERTING")
        flow_failures = {} if failure is None else {"workflow": failure}
        kwargs = task.revert_kwargs(
            rec.args, {"result": rec.result, "flow_failures": flow_failures}
        )
        try:
            with anyio.move_on_after(self._revert_timeout, shield=True) as cs:
                await revert(**kwargs)
            if cs.cancelled_caught:
                raise TimeoutError(
                    f"compensation of {key!r} did not finish within {self._revert_timeout}s"
                )
        except Exception as exc:
            bad = Failure.from_exception(exc)
            await self._write(
                _K.REVERT_FAILED, key, self._encode({"failure": bad.to_dict()}, what="failure")
            )
            rec.revert_failure = bad
            out.append(RevertFailed(bad, flow_id=self.flow_id, task=key))
            self._notify(key, "REVERTING", "REVERT_FAILURE")
            return
        await self._write(_K.REVERT_DONE, key)
        rec.reverted = True
        self._notify(key, "REVERTING", "REVERTED")

    # -- states --------------------------------------------------------------------------------

    async def _set_flow(self, new: FlowState, data: str = "{}") -> None:
        old = self.state
        check_flow(self.flow_id, old, new)
        if new is FlowState.RUNNING:
            self._emit(_K.FLOW_STATE, None, data, new.value)
        else:
            await self._write(_K.FLOW_STATE, None, data, new.value)
        self.state = new
        self._notify(None, old.value, new.value)

    def _notify(self, task: str | None, old: str, new: str) -> None:
        if not self._listeners:
            return
        change = StateChange(self.flow_id, self.name, task, old, new)
        for listener in self._listeners:
            try:
                listener(change)
            except Exception:
                self._log.exception("listener_failed", listener=repr(listener))


async def load_workflow(
    engine: Engine, wf: Workflow, inputs: dict[str, Any], flow_id: str, token: int, resume: bool
) -> WorkflowRun:
    """Create (or read back) the workflow ``flow_id`` and make its run (the engine's)."""
    journal = engine.journal
    journaled = resume
    if not resume:
        try:
            wf.check_inputs(inputs)
        except FlowDefinitionError:
            if await engine.backend.get_flow(flow_id) is None:
                raise
            journaled = True
    if not journaled:
        data = engine.codec.encode(
            {"name": wf.name, "inputs": inputs, "workflow": True},
            what=f"inputs of workflow {wf.name!r}",
        )
        record = FlowRecord(flow_id, wf.name, FlowState.PENDING.value, token)
        first = Entry(flow_id, 0, EventKind.FLOW_CREATED, None, data, None, token)
        journaled = not await journal.create_flow(record, [first])
    entries: list[Entry] = []
    if journaled:
        if token:
            await engine.backend.fence(flow_id, token)
        entries = await journal.read(flow_id)
        if not entries:
            raise FlowNotFound(f"no flow {flow_id!r} in the journal", flow_id=flow_id)
    wj = WorkflowJournal.fold(flow_id, entries, engine.codec)
    if journaled and wj.name != wf.name:
        raise FlowDefinitionError(
            f"flow {flow_id} in the journal is {wj.name!r}, not {wf.name!r}",
            flow=wf.name,
            flow_id=flow_id,
            hint="resume a journaled flow with the workflow it was started with",
        )
    if journaled:
        inputs = wj.inputs
    writer = journal.writer(flow_id, token=token, next_seq=wj.last_seq + 1 if journaled else 1)
    return WorkflowRun(
        wf,
        flow_id,
        writer,
        inputs,
        wj,
        revert_timeout=engine.revert_timeout,
        listeners=engine._listeners,
        wrap=engine._wrap_step,
    )
