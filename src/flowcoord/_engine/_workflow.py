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

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import anyio
import structlog

from .._failure import Failure
from .._journal._events import EventKind
from .._journal._writer import FlowWriter
from .._model._task import Task
from .._model._workflow import Workflow
from .._states import FlowState
from ..errors import (
    ChildFlowConflict,
    FlowCancelled,
    JournalError,
    NonDeterministicWorkflow,
    OwnershipLost,
    RevertFailed,
    StepFailed,
)
from ._children import ChildFlow, Family, current_child
from ._context import Context
from ._listeners import Listeners, bound_log
from ._reverts import BREAKS, call_revert
from ._wf_checkpoints import StepCheckpoints
from ._wf_journal import StepRecord, WorkflowJournal, step_key
from ._wf_steps import StepRunner, replay_ended
from ._wf_waiting import Waiting

if TYPE_CHECKING:
    from ._engine import Engine

__all__ = ["WorkflowRun"]

log = structlog.get_logger("flowcoord.workflow")

_K = EventKind


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first leaf of an exception group (compensations raise journal errors only)."""
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


class WorkflowRun(StepRunner):
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
        listeners: Listeners,
        wrap: Callable[[str, str, Callable[..., Any], int | None], Callable[..., Any]]
        | None = None,
        engine: Engine | None = None,
        checkpoint_every: int | None = None,
    ) -> None:
        self.engine = engine
        self._family = Family()
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
        self._listeners = listeners.every
        self._starts = listeners.starts
        self._successes = listeners.successes
        self._told = listeners
        self._tasks: dict[int, Task] = {}  # position → the step's task, as the code called it
        self._replay_only = False
        self._scope: anyio.CancelScope | None = None
        self._cancelled = False
        self._lost: BaseException | None = None
        self._suspended = False
        self._stopping = False
        self._resumed = anyio.Event()
        self._running = 0
        self.waits = Waiting(lambda: self._log)  # see _wf_waiting
        # a journal write failed (or ownership was lost): the run ends with it, whatever the
        # workflow's code did with the exception; the flow stays for a resume
        self._broken: Exception | None = None
        self._ckpt = (
            StepCheckpoints(writer, checkpoint_every, journal)
            if checkpoint_every is not None and StepCheckpoints.wanted(writer)
            else None
        )

    @property
    def _log(self) -> Any:
        """This run's logger, bound on first use (see :func:`._listeners.bound_log`)."""
        return bound_log(self, log)

    # -- control (the handle's) ----------------------------------------------------------------

    def cancel(self) -> None:
        self._cancelled = True
        self._family.cancel()
        self._wake()
        if self._scope is not None:
            self._scope.cancel()

    def abort(self, reason: str) -> None:
        self._lost = OwnershipLost(f"flow {self.flow_id}: {reason}", flow_id=self.flow_id)
        self.writer.revoke(self._lost)
        self._family.abort(reason)
        self._wake()
        if self._scope is not None:
            self._scope.cancel()

    def suspend(self) -> None:
        self._suspended = True
        self._family.suspend()
        self._wake()  # a durable sleep gates at once

    def stop(self) -> None:
        self._suspended = self._stopping = True
        self._family.stop()
        self._wake()

    def resume(self) -> None:
        self._suspended = self._stopping = False
        self._family.resume()
        self._wake()

    def _wake(self) -> None:
        self._resumed.set()
        self._resumed = anyio.Event()

    def blocked(self, until: float | None = None) -> AbstractContextManager[None]:
        """Around what a sleep (``until``: when it wakes) or an event wait blocks on: the run
        may be only waiting."""
        return self.waits.blocked(lambda: self._running, until)

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
            except (NonDeterministicWorkflow, ChildFlowConflict, OwnershipLost, JournalError):
                raise  # the run ends; the flow stays as journaled
            except Exception as exc:
                error = exc
            finally:
                ctx._close()
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
            if self.state is not FlowState.SUSPENDED:  # (a sleep's gate may have said so)
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

    # -- compensation --------------------------------------------------------------------------

    async def _replay_for_reverts(self) -> None:
        """Call the code in replay only, to learn which task each journaled position ran."""
        await self.replay_only()

    async def replay_only(self) -> NonDeterministicWorkflow | None:
        """Call the code without running a step: every journaled step returns (or raises)
        what the journal says, and the run stops at the first point the journal lacks.
        Returns the mismatch with the journal, if the code no longer matches it."""
        self._replay_only = True
        ctx = Context(self)
        try:
            await self.workflow.fn(ctx, **self.inputs)
        except NonDeterministicWorkflow as exc:
            return exc
        except BaseException as exc:
            if not replay_ended(exc) and not isinstance(exc, Exception):
                raise
            return None  # stopped where the journal ends, or failed as it did
        finally:
            self._replay_only = False
            ctx._close()
        try:
            self._check_no_more_steps(ctx.position)
        except NonDeterministicWorkflow as exc:
            return exc
        return None

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
            revert = self._wrap(key, "revert", revert, None)
        await self._write(_K.REVERT_STARTED, key)
        self._notify(key, "SUCCESS", "REVERTING", rec.attempt)
        flow_failures = {} if failure is None else {"workflow": failure}
        kwargs = task.revert_kwargs(
            rec.args, {"result": rec.result, "flow_failures": flow_failures}
        )
        where = None
        if isinstance(task, ChildFlow):
            where = current_child.set(self._child_scope(key, rec.attempt))
        try:
            bad = await call_revert(
                revert,
                kwargs,
                self._revert_timeout,
                f"compensation of {key!r}",
                child=where is not None,
            )
        except BREAKS as exc:  # the child could not journal: the run breaks, no failure
            self._broken = self._broken or exc
            raise
        finally:
            if where is not None:
                current_child.reset(where)
        if bad is not None:
            await self._write(
                _K.REVERT_FAILED, key, self._encode({"failure": bad.to_dict()}, what="failure")
            )
            rec.revert_failure = bad
            self._log.error("revert_failed", step=key, error=str(bad))
            out.append(RevertFailed(bad, flow_id=self.flow_id, task=key))
            self._notify(key, "REVERTING", "REVERT_FAILURE", rec.attempt)
            return
        await self._write(_K.REVERT_DONE, key)
        rec.reverted = True
        self._notify(key, "REVERTING", "REVERTED", rec.attempt)
