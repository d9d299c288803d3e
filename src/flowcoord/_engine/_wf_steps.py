"""A workflow's steps, as its code calls them: the journal's result, or one live attempt
after another under the step's retry controller; journaled values and patch markers; and
the run's journal writes (every write that fails breaks the run)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel

from .._failure import Failure
from .._journal._events import EventKind
from .._journal._writer import FlowWriter
from .._model._retry import Decision, RetryHistory
from .._model._task import Task
from .._model._workflow import Workflow
from .._states import FlowState, StateChange, StateListener, check_flow
from ..errors import (
    ChildFlowConflict,
    JournalError,
    NonDeterministicWorkflow,
    OwnershipLost,
    RevertFailed,
    StepFailed,
    WorkflowContextError,
)
from ._children import (
    ChildFlow,
    ChildScope,
    ChildStopped,
    Family,
    check_child,
    current_child,
)
from ._context import Context, Step
from ._listeners import Listeners, tell, tell_success
from ._wf_bind import bind
from ._wf_checkpoints import StepCheckpoints
from ._wf_journal import StepRecord, WorkflowJournal, step_key
from ._wf_waiting import Waiting

if TYPE_CHECKING:
    from ._engine import Engine

__all__ = ["ReplayEnd", "StepRunner", "replay_ended"]

_K = EventKind
#: Results whose JSON is their str (or a constant): a step's success data is made by hand.
_SCALAR: dict[type, Callable[[Any], str]] = {
    int: int.__repr__,
    bool: lambda b: "true" if b else "false",
    type(None): lambda _: "null",
}
_AS_IS = frozenset({int, float, str, bool, type(None)})  # what JSON gives back unchanged


class _Named:
    """``what`` for the codec, made only if encoding fails: a closure in
    :meth:`StepRunner._attempt` would cost every step a cell for the name it captures."""

    __slots__ = ("key", "prefix")

    def __init__(self, prefix: str, key: str) -> None:
        self.prefix, self.key = prefix, key

    def __call__(self) -> str:
        return f"{self.prefix} {self.key!r}"


class _AttemptFailed(Exception):
    """One attempt of a step failed (journaled); its retry controller decides what next."""

    def __init__(self, record: StepRecord) -> None:
        self.record = record


class ReplayEnd(BaseException):
    """A replay-only run (finishing a rollback, checking compatibility) reached a point the
    journal lacks. A BaseException, so that the workflow's own ``except Exception`` cannot
    swallow it."""


def replay_ended(exc: BaseException) -> bool:
    """Whether ``exc`` is a :class:`ReplayEnd`, or a group holding one (``ctx.gather``)."""
    if isinstance(exc, BaseExceptionGroup):
        return any(replay_ended(e) for e in exc.exceptions)
    return isinstance(exc, ReplayEnd)


class StepRunner:
    """What a workflow run is made of besides control and compensation (see
    :class:`~flowcoord._engine._workflow.WorkflowRun`, which sets every attribute)."""

    workflow: Workflow
    engine: Engine | None
    _family: Family
    flow_id: str
    name: str
    writer: FlowWriter
    journal: WorkflowJournal
    state: FlowState
    _wrap: Callable[[str, str, Callable[..., Any], int | None], Callable[..., Any]] | None
    _listeners: list[StateListener]  # every listener
    _starts: list[StateListener]  # those told of starts
    _successes: list[tuple[float, StateListener]]
    _told: Listeners
    _log: Any  # the run's structlog logger, bound on first use
    _tasks: dict[int, Task]
    _replay_only: bool
    _scope: anyio.CancelScope | None
    _cancelled: bool
    _lost: BaseException | None
    _suspended: bool
    _stopping: bool
    _resumed: anyio.Event
    _running: int
    _broken: Exception | None
    _ckpt: StepCheckpoints | None
    waits: Waiting

    async def _compensate(
        self, rec: StepRecord, failure: Failure | None, out: list[RevertFailed]
    ) -> None:
        raise NotImplementedError

    def _wake(self) -> None:
        raise NotImplementedError

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

    def patch(self, ctx: Context, patch_id: str, *, mark: bool) -> bool:
        """``ctx.patched`` / ``ctx.deprecate_patch``: a journaled marker at the next position
        says the run took the patch; a journal past this point without it says it did not."""
        pos, name = ctx.position + 1, f"patch:{patch_id}"
        rec = self.journal.steps.get(pos)
        if rec is not None:
            if rec.name != name:
                return False  # journaled by the code before the patch: its step is here
            ctx._take(pos)
            return True
        if any(p > pos for p in self.journal.steps):
            return False
        if not mark:
            return True
        if self._replay_only:
            raise ReplayEnd
        ctx._take(pos)
        self._emit(_K.TASK_SUCCEEDED, step_key(pos, name), '{"result":true,"attempt":1}')
        self.journal.steps[pos] = StepRecord(pos, name, succeeded=True, result=True, attempt=1)
        if self._ckpt is not None:
            self._ckpt.succeeded(pos)
        return True

    def value(self, pos: int, name: str, make: Callable[[], Any]) -> Any:
        """A journaled value (``ctx.now()`` …): the journal's, or made now and journaled."""
        rec = self._journaled(pos, name)
        if rec is not None and rec.succeeded:
            return rec.result
        if self._replay_only:
            raise ReplayEnd
        value = make()
        data = self._encode({"result": value, "attempt": 1}, what=f"{name} value")
        self._emit(_K.TASK_SUCCEEDED, step_key(pos, name), data)
        self._kept(pos, name, value)
        return value

    async def write_value(self, pos: int, name: str, value: Any) -> None:
        """Journal ``value`` at ``pos`` as :meth:`value` does, and wait until it is durable
        (a sleep's wake-up time, the event a wait took: a crash after must not lose it)."""
        data = self._encode({"result": value, "attempt": 1}, what=f"{name} value")
        await self._write(_K.TASK_SUCCEEDED, step_key(pos, name), data)
        self._kept(pos, name, value)

    def _kept(self, pos: int, name: str, value: Any) -> None:
        """The run's record of a journaled value (and its checkpoints'), once it is written."""
        self.journal.steps[pos] = StepRecord(pos, name, succeeded=True, result=value, attempt=1)
        if self._ckpt is not None:
            self._ckpt.succeeded(pos)

    def awaited(self, step: Step[Any]) -> Awaitable[Any]:
        """What awaiting ``step`` awaits. A new step without a retry controller (the common
        case) is its one attempt, awaited directly (no coroutine around it); anything else
        goes through :meth:`run_step`."""
        pos, task = step.pos, step.task
        if (
            task.retry is not None
            or pos in self.journal.steps
            or self._replay_only
            or self._suspended
            or self.state is FlowState.SUSPENDED
        ):
            return self.run_step(step)
        self._tasks[pos] = task
        key = f"{pos}:{task.name}"  # step_key, inline
        fn = task._execute_fn()
        inject, kwargs = task.inject, step.kwargs
        try:
            args = bind(fn, step.args, {**inject, **kwargs} if inject else kwargs, task)
        except TypeError as exc:
            raise StepFailed(Failure.from_exception(exc), flow_id=self.flow_id, task=key) from exc
        if self._wrap is not None:
            fn = self._wrap(key, "run", fn, None)
        return self._attempt(step, key, fn, args, 1, final=True)

    async def run_step(self, step: Step[Any]) -> Any:
        pos, task = step.pos, step.task
        key = step_key(pos, task.name)
        self._tasks[pos] = task
        rec = self._journaled(pos, task.name)
        if rec is not None:
            if rec.succeeded:
                return rec.result
            if rec.failure is not None and not self._retries(task, rec):
                raise StepFailed(rec.failure, flow_id=self.flow_id, task=key)
        if self._replay_only:
            raise ReplayEnd
        if self._suspended or self.state is FlowState.SUSPENDED:
            await self._gate()
        fn = task._execute_fn()
        try:
            args = bind(fn, step.args, {**task.inject, **step.kwargs}, task)
        except TypeError as exc:
            raise StepFailed(Failure.from_exception(exc), flow_id=self.flow_id, task=key) from exc
        if self._wrap is not None:
            limit = task.retry.max_attempts(args) if task.retry is not None else None
            fn = self._wrap(key, "run", fn, limit)
        cause: BaseException | None = None
        while True:
            if rec is not None and rec.failure is not None:
                # the failed attempt a retry follows: journal the decision (once), undo the
                # attempt, then wait and run again
                if not rec.decided:
                    decision = {"decision": "retry", "attempt": rec.attempt, "reset": [key]}
                    await self._write(_K.RETRY, key, self._encode(decision, what="decision"))
                    self._log.info("retry_decision", step=key, attempt=rec.attempt)
                    rec.decided = True
                await self._undo_attempt(rec)
                await anyio.sleep(task.retry.delay(rec.attempt) if task.retry else 0.0)
            if rec is None:
                attempt = 1
            elif rec.failure is None and not rec.succeeded and rec.attempt:
                attempt = rec.attempt  # cut short by a crash: the same attempt again
            else:
                attempt = rec.attempt + 1
            try:
                return await self._attempt(step, key, fn, args, attempt)
            except _AttemptFailed as failed:
                rec, cause = failed.record, failed.__cause__
            assert rec.failure is not None
            if not self._retries(task, rec):
                raise StepFailed(rec.failure, flow_id=self.flow_id, task=key) from cause

    def _retries(self, task: Task, rec: StepRecord) -> bool:
        """Whether the step's retry controller runs the step again after ``rec``'s failure
        (decided from the journal alone: the same decision on every run)."""
        if task.retry is None or rec.failure is None:
            return False
        history = RetryHistory(rec.attempt, {step_key(rec.pos, rec.name): rec.failure}, rec.args)
        return task.retry.on_failure(history) is Decision.RETRY

    async def _undo_attempt(self, rec: StepRecord) -> None:
        if not rec.revertible or rec.reverted:
            return
        out: list[RevertFailed] = []
        await self._compensate(rec, rec.failure, out)
        if out:
            raise out[0]

    async def _attempt(
        self,
        step: Step[Any],
        key: str,
        fn: Callable[..., Any],
        args: dict[str, Any],
        attempt: int,
        *,
        final: bool = False,
    ) -> Any:
        """One attempt of ``step``. A failure is journaled, then raised as
        :class:`_AttemptFailed` for the retry controller to decide on, or (``final``: there
        is none) as the step's :class:`~flowcoord.errors.StepFailed`."""
        pos, task = step.pos, step.task
        revertible = task.has_revert
        record = StepRecord(pos, task.name, started=revertible, args=args, attempt=attempt)
        record.group, record.revertible = step.group, revertible
        # ForEach & co. provide a value per attempt; else the arguments as they are (unpacked
        # into the call: never changed by it)
        call = {**args, **task.retry.value(attempt, args)} if task.retry is not None else args
        self._running += 1
        if self.waits.count:  # a step beside a sleep: the run works again
            self.waits.update(self._running)
        where = None
        try:
            if revertible:  # write-ahead: the effect may exist only once this is durable
                head = {"attempt": attempt, "args": args, "group": step.group, "revert": True}
                if isinstance(task, ChildFlow):  # the parent's half of the link
                    scope = self._child_scope(key, attempt)
                    try:
                        await check_child(scope, task.flow.name)  # free, or this parent's
                    except ChildFlowConflict as exc:
                        self._broken = exc  # ends the run, whatever the code catches
                        raise
                    head["child"] = scope.child_id
                    where = current_child.set(scope)
                started = self._encode(head, what=_Named("arguments of step", key))
                if self._ckpt is not None:
                    self._ckpt.started(pos, self.writer.seq)  # the seq this entry gets
                await self._write(_K.TASK_STARTED, key, started)
                t0 = None
            else:  # one entry, at its end: a crash before it runs the step again, as it would
                t0 = time.time()
            self.journal.steps[pos] = record
            if self._starts:
                change = StateChange(
                    self.flow_id, self.name, key, "PENDING", "RUNNING", attempt=attempt
                )
                tell(self._log, self._starts, change)
            if self._listeners:
                record.began_at = t0 if t0 is not None else time.time()
            began = time.perf_counter()
            try:
                try:
                    if task.timeout is not None:
                        with anyio.fail_after(task.timeout):
                            result = await fn(**call)
                    else:
                        result = await fn(**call)
                finally:
                    record.elapsed = time.perf_counter() - began
                scalar = _SCALAR.get(result.__class__)
                if scalar is not None and t0 is not None and step.group is None:
                    # what the codec would write, without its encoder (the common case)
                    data = f'{{"result":{scalar(result)},"attempt":{attempt},"started_at":{t0!r}}}'
                else:
                    done: dict[str, Any] = {"result": result, "attempt": attempt}
                    if t0 is not None:  # no task.started: this entry says when, in which gather
                        done["started_at"] = t0
                        if step.group is not None:
                            done["group"] = step.group
                    data = self._encode(done, what=_Named("result of", key))
            except (JournalError, OwnershipLost) as exc:
                if where is None:  # the step's own code raised it: a failure like any
                    await self._failed(record, exc, attempt, t0)
                    raise self._failure(record, final) from exc
                # the child could not journal (or lost its owner): not a failure of the
                # step, the run breaks here and the family stays for a resume
                self._broken = self._broken or exc
                raise
            except ChildStopped:
                # the child was stopped: this step did not end; the run stops here too (a
                # resume resumes the child)
                self._suspended = self._stopping = True
                if self._scope is not None:
                    self._scope.cancel()
                await anyio.lowlevel.checkpoint()  # raises the cancellation
                raise
            except Exception as exc:
                await self._failed(record, exc, attempt, t0)
                raise self._failure(record, final) from exc
            try:  # as _write does, without a coroutine or awaitable of its own (the hot path)
                writer = self.writer
                batch = writer.write_batch(_K.TASK_SUCCEEDED, key, data)
                if batch is not None:
                    await batch.wait()
                    writer.check(batch)
            except Exception as exc:
                self._broken = self._broken or exc
                raise
            # the code sees the journaled value (a tuple comes back a list), also the first time
            if result.__class__ not in _AS_IS:
                result = self.writer.codec.decode(data)["result"]
            record.succeeded, record.result = True, result
            if self._ckpt is not None:
                self._ckpt.succeeded(pos)
            if self._listeners and (where is not None or record.elapsed >= self._told.least):
                change = StateChange(
                    self.flow_id,
                    self.name,
                    key,
                    "RUNNING",
                    "SUCCESS",
                    record.elapsed,
                    attempt,
                    record.began_at,
                )
                tell_success(self._log, self._successes, change, where is not None)
            return record.result
        finally:
            if where is not None:
                current_child.reset(where)
            self._running -= 1
            if self.waits.count:
                self.waits.update(self._running)
            if self._suspended:
                self._wake()  # a gate waits for the steps running to finish

    def _failure(self, record: StepRecord, final: bool) -> Exception:
        """What a failed attempt raises: the step's failure when no retry can follow."""
        if not final:
            return _AttemptFailed(record)
        assert record.failure is not None
        return StepFailed(
            record.failure, flow_id=self.flow_id, task=step_key(record.pos, record.name)
        )

    async def _failed(
        self, record: StepRecord, exc: Exception, attempt: int, t0: float | None
    ) -> StepRecord:
        """Journal a failed attempt of ``record``'s step."""
        key = step_key(record.pos, record.name)
        failure = Failure.from_exception(exc)
        what: dict[str, Any] = {"failure": failure.to_dict(), "attempt": attempt}
        if t0 is not None:  # no task.started: the failure says what was called
            what.update(args=record.args, group=record.group, started_at=t0)
        await self._write(_K.TASK_FAILED, key, self._encode(what, what="failure"))
        self._log.warning("step_failed", step=key, attempt=attempt, error=str(failure))
        record.failure = failure
        if self._listeners:
            change = StateChange(
                self.flow_id,
                self.name,
                key,
                "RUNNING",
                "FAILURE",
                record.elapsed,
                attempt,
                record.began_at,
            )
            tell(self._log, self._listeners, change)
        return record

    def _child_scope(self, key: str, attempt: int) -> ChildScope:
        if self.engine is None:
            raise WorkflowContextError(
                f"step {key!r} runs a child flow, which needs an engine", flow=self.name
            )
        return ChildScope(self.engine, self.flow_id, key, attempt, self.writer.token, self._family)

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

    def _encode(self, value: Any, *, what: str | Callable[[], str]) -> str:
        return self.writer.encode(value, what=what)

    # -- states --------------------------------------------------------------------------------

    async def _set_flow(self, new: FlowState, data: str = "{}") -> None:
        old = self.state
        check_flow(self.flow_id, old, new)
        if new is FlowState.RUNNING:
            self._emit(_K.FLOW_STATE, None, data, new.value)
        else:
            await self._write(_K.FLOW_STATE, None, data, new.value)
        self.state = new
        if new is not FlowState.RUNNING and new is not FlowState.SUCCESS:  # as pattern flows
            self._log.info("flow_state", old=old.value, new=new.value)
        self._notify(None, old.value, new.value)

    def _notify(self, task: str | None, old: str, new: str, attempt: int | None = None) -> None:
        if self._listeners:
            change = StateChange(self.flow_id, self.name, task, old, new, attempt=attempt)
            tell(self._log, self._listeners, change)
