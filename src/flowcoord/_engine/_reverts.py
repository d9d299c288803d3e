"""Reverting: the revert phase (reverse dependency order, independent reverts at once,
each shielded with a deadline; suspend and stop honoured), a scope's reverts, and the tasks a
cancel interrupted."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio
from anyio.abc import TaskGroup

from .._failure import Failure
from .._journal._events import EventKind
from .._model._task import Task
from .._states import FlowState, TaskState
from ..errors import FlowCancelled, JournalError, OwnershipLost
from ._children import current_child
from ._outcome import flow_error
from ._run_state import Halt, RunState

__all__ = ["Reverts"]

_P, _R, _S, _F = TaskState.PENDING, TaskState.RUNNING, TaskState.SUCCESS, TaskState.FAILURE
_REVERTABLE = (TaskState.SUCCESS, TaskState.FAILURE)


#: What a child flow's undo raises when the child could not journal or lost its owner: the
#: parent's run breaks (its flow stays for a resume), it is no revert failure.
BREAKS = (JournalError, OwnershipLost)


async def call_revert(
    revert: Callable[..., Awaitable[Any]],
    kwargs: dict[str, Any],
    deadline: float,
    what: str,
    *,
    child: bool = False,
) -> Failure | None:
    """Call a revert (or a workflow's compensation) shielded from cancellation, within
    ``deadline`` seconds; the failure if it raised or ran out of time. ``child``: the undo
    of a child flow, whose journal errors pass through (see :data:`BREAKS`)."""
    try:
        with anyio.move_on_after(deadline, shield=True) as cs:
            await revert(**kwargs)
        if cs.cancelled_caught:
            raise TimeoutError(f"{what} did not finish within {deadline}s")
    except Exception as exc:
        if child and isinstance(exc, BREAKS):
            raise
        return Failure.from_exception(exc)
    return None


class Reverts(RunState):
    """Undoing what a run did."""

    async def _record_interrupted(self) -> None:
        """After a cancel: journal the tasks that were interrupted as failed, to revert them:
        those cut short in this run, and those a previous run left running (its engine died
        mid-task; the task may have done its work)."""
        for i, node in enumerate(self.plan.nodes):
            if node.task is not None and self.tstate[i] is _P and self.attempts[i]:
                rec = self._replay.tasks.get(node.name) if self._replay else None
                if (
                    rec is not None
                    and rec.attempt >= self.attempts[i]
                    and rec.state is not TaskState.RUNNING
                ):
                    continue  # an attempt of an earlier run that was settled (reverted)
                failure = Failure(("flowcoord.errors.FlowCancelled",), "cancelled while running")
                data = self.writer.encode(
                    {"failure": failure.to_dict(), "attempt": self.attempts[i]}, what="failure"
                )
                await self.writer.write(EventKind.TASK_FAILED, node.name, data)
                self._set_task(i, _R)
                self._set_task(i, _F)
                self.failures[i] = failure

    async def _revert_phase(self) -> dict[str, Any]:
        cancelled = self._halt is Halt.CANCEL
        with anyio.CancelScope(shield=True):
            if self.state is not FlowState.REVERTING:
                await self._set_flow(FlowState.REVERTING, "cancelled" if cancelled else None)
            await self._settle_prestarted()
            while not await self._revert_nodes(None):
                # Suspended (or stopped) with reverts left: those in flight finished.
                if self._stop:
                    await self._set_flow(FlowState.SUSPENDED, "stopped")
                    raise FlowCancelled(
                        f"flow {self.flow_id} was stopped while reverting; resuming it "
                        "reverts what is left",
                        flow_id=self.flow_id,
                    )
                await self._set_flow(FlowState.SUSPENDED)
                if self._resumed is not None:
                    await self._resumed.wait()
                if self._fatal is not None:
                    raise self._fatal
                self._suspend = False
                await self._set_flow(FlowState.REVERTING, "cancelled" if cancelled else None)
            if cancelled:
                final = FlowState.CANCELLED
            else:
                final = FlowState.FAILED if self.revert_failures else FlowState.REVERTED
            await self._set_flow(final)
        raise self._error(cancelled)

    async def _settle_prestarted(self) -> None:
        """Tasks whose start was journaled with their last predecessor's success but that
        never ran: journal them reverted (there is nothing to undo; no revert is called)."""
        nodes, w = self.plan.nodes, self.writer
        for k in sorted(self._prestarted):
            if self.tstate[k] is _P:
                w.emit(EventKind.REVERT_STARTED, nodes[k].name)
                await w.write(EventKind.REVERT_DONE, nodes[k].name)
                self._set_task(k, TaskState.REVERTED)
        self._prestarted.clear()

    async def _revert_nodes(self, members: Sequence[int] | None) -> bool:
        """Revert ``members`` (None: the whole flow) in reverse dependency order; False if
        the flow was suspended with reverts left (only for the whole flow: a scope's
        reverts always finish)."""
        nodes = self.plan.nodes
        left = False
        subset: Sequence[int] = range(len(nodes)) if members is None else members
        inset = None if members is None else set(members)
        pending: dict[int, int] = {}
        for i in subset:
            succs = nodes[i].succs
            pending[i] = len(succs) if inset is None else sum(1 for s in succs if s in inset)
        limiter = anyio.CapacityLimiter(self._bound)
        flow_failures = {nodes[i].name: f for i, f in self.failures.items()}

        async def revert_one(i: int, tg: TaskGroup) -> None:
            nonlocal left
            if self._fatal is not None:
                return
            if members is None and self._suspend and self.tstate[i] in _REVERTABLE:
                left = True  # suspended: start no new revert (nor those that follow it)
                return
            async with limiter:
                try:
                    await self._revert_node(i, flow_failures)
                except (OwnershipLost, JournalError) as exc:
                    self._fatal_error(exc)
                    return
            for p in nodes[i].preds:
                if p in pending:
                    pending[p] -= 1
                    if pending[p] == 0:
                        tg.start_soon(revert_one, p, tg)

        async with anyio.create_task_group() as tg:
            for i in subset:
                if pending[i] == 0:
                    tg.start_soon(revert_one, i, tg)
        if self._fatal is not None:
            raise self._fatal
        return not left

    async def _revert_node(self, i: int, flow_failures: dict[str, Failure]) -> None:
        node = self.plan.nodes[i]
        state = self.tstate[i]
        if state not in _REVERTABLE:
            return
        t = node.task
        if t is None:
            self._set_task(i, TaskState.REVERTING)
            self._set_task(i, TaskState.REVERTED)
            return
        self._set_task(i, TaskState.REVERTING)
        w = self.writer
        revert = self.plan.reverts[i]
        if revert is not None:
            # Durable before the revert runs: a crash during it must leave the journal
            # saying the revert may have happened, so a resume reverts again.
            await w.write(EventKind.REVERT_STARTED, node.name)
            result: Any = self.results[i] if state is _S else self.failures.get(i)
            kwargs = t.revert_kwargs(
                self._inputs_for_revert(t), {"result": result, "flow_failures": flow_failures}
            )
            where = None
            if self._child_nodes and i in self._child_nodes:  # undo a child flow
                where = current_child.set(self._child_scope(i))
            try:
                failure = await call_revert(
                    revert,
                    kwargs,
                    self._revert_timeout,
                    f"revert of {t.name!r}",
                    child=where is not None,
                )
            finally:
                if where is not None:
                    current_child.reset(where)
            if failure is not None:
                self._log.error("revert_failed", task=node.name, error=str(failure))
                data = w.encode({"failure": failure.to_dict()}, what="failure")
                await w.write(EventKind.REVERT_FAILED, node.name, data)
                self.revert_failures[i] = failure
                self._set_task(i, TaskState.REVERT_FAILURE)
                return
        else:
            w.emit(EventKind.REVERT_STARTED, node.name)
        await w.write(EventKind.REVERT_DONE, node.name)
        self._set_task(i, TaskState.REVERTED)

    def _inputs_for_revert(self, t: Task) -> dict[str, Any]:
        values = self.values
        kwargs = {arg: values.get(name) for arg, name in t.required_args}
        for arg, name in t.optional_args:
            if name in values:
                kwargs[arg] = values[name]
        kwargs.update(t.inject)
        return kwargs

    # -- outcome -------------------------------------------------------------------------------

    def _error(self, cancelled: bool) -> BaseException:
        return flow_error(
            self.plan, self.flow_id, self.failures, self.revert_failures, cancelled=cancelled
        )

    def _finished(self) -> dict[str, Any]:
        if self.state is FlowState.SUCCESS:
            return self.values
        raise self._error(self.state is FlowState.CANCELLED)
