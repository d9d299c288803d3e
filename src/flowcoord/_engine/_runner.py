"""One flow's run: the scheduler, failure handling, retry scopes and reverts."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import anyio
import structlog
from anyio.abc import TaskGroup

from .._compile import Plan, Scope
from .._failure import Failure
from .._journal._events import EventKind
from .._journal._journal import FlowWriter
from .._journal._replay import FlowReplay
from .._retry import Decision, RetryHistory
from .._states import FlowState, StateChange, StateListener, TaskState, check_flow, check_task
from .._task import Task
from ..errors import (
    EncodingError,
    FlowCancelled,
    FlowcoordError,
    FlowFailed,
    JournalError,
    OwnershipLost,
    RevertFailed,
    TaskFailed,
)
from ._checkpoints import Checkpoints
from ._restore import restore, task_outputs

__all__ = ["FlowRun", "task_outputs"]

log = structlog.get_logger("flowcoord.engine")

_P, _R, _S, _F = TaskState.PENDING, TaskState.RUNNING, TaskState.SUCCESS, TaskState.FAILURE
_REVERTABLE = (TaskState.SUCCESS, TaskState.FAILURE)
_STARTED, _SUCCEEDED = EventKind.TASK_STARTED, EventKind.TASK_SUCCEEDED
# Journal data of the commonest entries, made once: 138 bytes a task less, no formatting.
_STARTED_DATA = tuple(f'{{"attempt":{a}}}' for a in range(17))
_NONE_RESULT_DATA = tuple(f'{{"result":null,"attempt":{a}}}' for a in range(17))


class FlowRun:
    """Runs (or resumes) one flow. Created by :class:`~flowcoord.Engine`; single use."""

    def __init__(
        self,
        plan: Plan,
        flow_id: str,
        writer: FlowWriter,
        store: Mapping[str, Any],
        *,
        concurrency: int,
        revert_timeout: float,
        listeners: Sequence[StateListener] = (),
        replay: FlowReplay | None = None,
        checkpoint_every: int = 1000,
    ) -> None:
        self.plan = plan
        self.flow_id = flow_id
        self.name = plan.flow.name
        self.writer = writer
        self.values: dict[str, Any] = dict(store)
        self._stored = frozenset(store)
        self._bound = max(1, concurrency)
        self._revert_timeout = revert_timeout
        self._listeners = listeners
        n = len(plan.nodes)
        self.tstate: list[TaskState] = [_P] * n
        self.results: list[Any] = [None] * n
        self.attempts: list[int] = [0] * n
        self.failures: dict[int, Failure] = {}
        self.revert_failures: dict[int, Failure] = {}
        self._remaining = [len(node.preds) for node in plan.nodes]
        self._ready: deque[int] = deque()
        self._done = 0
        self._workers = 0
        self._busy = 0
        self._handlers = 0
        # Tasks done whose success is not durable yet (pipelined: their worker moved on;
        # dependents start once the entry is durable). Only with journals that flush.
        self._inflight = 0
        self._pipeline = not writer.immediate
        writer.settle = self._settled
        self._scope_running = [0] * len(plan.scopes)
        self._scope_halted = [False] * len(plan.scopes)
        self._scope_idle = [anyio.Event() for _ in plan.scopes]
        self._scope_failures: list[dict[str, Failure]] = [{} for _ in plan.scopes]
        self._scope_attempt = [1] * len(plan.scopes)
        self._scope_valued = [not s.retry.provides for s in plan.scopes]
        self.state = FlowState.PENDING
        self._halt: str | None = None  # "fail" | "cancel" | "lost" | "journal"
        self._fatal: BaseException | None = None
        self._suspend = False
        self._stop = False
        self._changed = anyio.Event()
        self._resumed: anyio.Event | None = None  # made by suspend()
        self._tg: TaskGroup | None = None
        self._fwd: anyio.CancelScope | None = None
        self._replay = replay
        # From the journal on resume: retry scopes whose failure handling must run first
        # (with the failures to decide on), and whether the flow was being cancelled.
        self._pending_scopes: dict[int, dict[str, Failure]] = {}
        self._cancelled_before = False
        # Checkpoints (see EventKind.CHECKPOINT) for flows big enough to reach one, without
        # retry scopes, on journals that store (the in-memory one keeps no file to read
        # back): successes not in one yet; None once anything but success happened.
        self._ckpt = (
            Checkpoints(plan, writer, checkpoint_every)
            if Checkpoints.wanted(plan, writer, checkpoint_every)
            else None
        )

    @property
    def _log(self) -> Any:
        """This flow's logger, bound on first use: binding costs more than a no-op task, and
        a flow that goes well logs nothing."""
        bound = self.__dict__.get("_bound_log")
        if bound is None:
            bound = self.__dict__["_bound_log"] = log.bind(flow_id=self.flow_id, flow=self.name)
        return bound

    # -- control (from FlowHandle) -------------------------------------------------------------

    def cancel(self) -> None:
        self._no_checkpoints()
        if self._halt not in ("cancel", "lost", "journal"):
            self._halt = "cancel"
            if self._fwd is not None:
                self._fwd.cancel()
        self._wake_resumed()
        self._changed.set()

    def suspend(self) -> None:
        self._suspend = True
        self._resumed = anyio.Event()
        self._changed.set()

    def _wake_resumed(self) -> None:
        if self._resumed is not None:
            self._resumed.set()

    def resume(self) -> None:
        self._suspend = False
        self._wake_resumed()
        self._changed.set()
        if self._tg is not None:
            self._pump()

    def abort(self, reason: str) -> None:
        """Ownership is gone: cancel running tasks and write nothing more, not even reverts."""
        exc = OwnershipLost(
            f"flow {self.flow_id}: {reason}; this engine stopped working on it",
            flow_id=self.flow_id,
        )
        self.writer.revoke(exc)
        self._fatal_error(exc)  # no checkpoints from here on, either
        self._wake_resumed()

    def stop(self) -> None:
        """Start nothing new, let running tasks finish, end the run without reverting."""
        self._stop = True
        self._suspend = True
        self._wake_resumed()
        self._changed.set()

    # -- states and listeners ------------------------------------------------------------------

    def _notify(self, task: str | None, old: str, new: str) -> None:
        change = StateChange(self.flow_id, self.name, task, old, new)
        for listener in self._listeners:
            try:
                listener(change)
            except Exception:
                self._log.exception("listener_failed", listener=repr(listener))

    def _set_task(self, i: int, new: TaskState) -> None:
        old = self.tstate[i]
        node = self.plan.nodes[i]
        check_task(self.flow_id, node.name, old, new)
        self.tstate[i] = new
        if new is _S:
            self._done += 1
        elif old is _S:
            self._done -= 1
        if self._listeners and node.task is not None:
            self._notify(node.name, old.value, new.value)

    async def _set_flow(self, new: FlowState, reason: str | None = None) -> None:
        old = self.state
        check_flow(self.flow_id, old, new)
        data = "{}" if reason is None else self.writer.encode({"reason": reason}, what="reason")
        if new is FlowState.RUNNING:
            # Nothing waits on it: a crash before it lands leaves a resumable flow all the
            # same, so it rides along with the first task entries instead of costing a commit.
            self.writer.emit(EventKind.FLOW_STATE, None, data, new.value)
        else:
            await self.writer.write(EventKind.FLOW_STATE, None, data, new.value)
        self.state = new
        if new not in (FlowState.RUNNING, FlowState.SUCCESS):  # those: listeners, not logs
            self._log.info("flow_state", old=old.value, new=new.value, reason=reason)
        if self._listeners:
            self._notify(None, old.value, new.value)

    # -- the run -------------------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        """Run to the end; return the store (inputs and every provided name)."""
        r = self._replay
        if r is not None and r.exists:
            self.state = r.state
            reverting = self._restore(r)
            if r.state.finished:
                return self._finished()
            if reverting:
                self._halt = "cancel" if self._cancelled_before else "fail"
                return await self._revert_phase()
        await self._set_flow(FlowState.RUNNING)
        await self._forward()
        if self._halt is None and not self._stop:
            await self._set_flow(FlowState.SUCCESS)
            return self.values
        if self._halt is None:  # stopped (detached)
            if self.state is not FlowState.SUSPENDED:
                await self._set_flow(FlowState.SUSPENDED, "stopped")
            raise FlowCancelled(
                f"flow {self.flow_id} was stopped; it can be resumed from its journal",
                flow_id=self.flow_id,
            )
        if self._fatal is not None:
            raise self._fatal
        return await self._revert_phase()

    async def _forward(self) -> None:
        n = len(self.plan.nodes)
        for i in range(n):
            if self.tstate[i] is _P and self._remaining[i] == 0:
                self._ready.append(i)
        with anyio.CancelScope() as fwd:
            self._fwd = fwd
            if self._halt == "cancel":
                fwd.cancel()
            async with anyio.create_task_group() as tg:
                self._tg = tg
                pending, self._pending_scopes = self._pending_scopes, {}
                for k, failures in pending.items():  # failure handling a crash cut short
                    self._fail_scope(self.plan.scopes[k], failures)
                self._drain_virtual()
                self._pump()
                while True:
                    if self._done == n and not self._handlers:
                        break
                    if self._halt is not None or self._stop:
                        if not self._busy and not self._handlers and not self._inflight:
                            break
                    elif (
                        self._suspend
                        and not self._busy
                        and not self._inflight
                        and not self._handlers
                    ):
                        try:
                            if self.state is FlowState.RUNNING:
                                await self._set_flow(FlowState.SUSPENDED)
                            if self._resumed is not None:
                                await self._resumed.wait()
                            if self._halt is None and not self._stop:
                                await self._set_flow(FlowState.RUNNING)
                                self._pump()
                        except (OwnershipLost, JournalError) as exc:
                            self._fatal_error(exc)
                        continue
                    elif not (self._busy or self._handlers or self._workers or self._inflight):
                        if not self._ready:
                            raise FlowcoordError(
                                f"flow {self.flow_id}: scheduler stalled with "
                                f"{n - self._done} nodes left (a bug in flowcoord)",
                                flow_id=self.flow_id,
                            )
                        self._pump()
                    await self._changed.wait()
                    self._changed = anyio.Event()
                if self._workers or self._handlers:
                    tg.cancel_scope.cancel()
        self._tg = None
        self._fwd = None
        if self._inflight:  # cancelled: let pipelined successes settle before reverting
            with anyio.CancelScope(shield=True):
                while self._inflight:
                    await self._changed.wait()
                    self._changed = anyio.Event()
        if self._halt == "cancel":  # even if nothing ran: a previous run may have left some
            try:
                await self._record_interrupted()
            except (OwnershipLost, JournalError) as exc:
                self._fatal_error(exc)

    def _pump(self) -> None:
        tg = self._tg
        if tg is None or self._halt is not None or self._suspend:
            return
        # Adaptive pool: keep as many idle workers as there are busy ones (at least one), so
        # tasks that never suspend run back to back on one worker, while tasks that do
        # suspend double the pool each loop iteration, up to the concurrency bound.
        want = min(len(self._ready), max(1, self._busy))
        while self._workers < self._bound and self._workers - self._busy < want:
            self._workers += 1
            tg.start_soon(self._worker)

    async def _worker(self) -> None:
        ready = self._ready
        try:
            while ready and self._halt is None and not self._suspend:
                i = ready.popleft()
                if not self._admit(i):
                    continue
                self._busy += 1
                if ready and self._workers - self._busy < self._busy:
                    self._pump()
                try:
                    await self._execute(i)
                finally:
                    self._busy -= 1
        finally:
            self._workers -= 1
            if not self._workers or (not self._busy and (self._halt is not None or self._suspend)):
                self._changed.set()

    def _admit(self, i: int) -> bool:
        if self.tstate[i] is not _P or self._remaining[i]:
            return False
        scopes = self.plan.nodes[i].scopes
        if not scopes:
            return True
        halted = self._scope_halted
        return not any(halted[s.index] for s in scopes)

    def _complete(self, i: int) -> None:
        """Mark node ``i`` done and make its dependents ready; barriers complete at once."""
        nodes = self.plan.nodes
        remaining = self._remaining
        stack = [i]
        while stack:
            j = stack.pop()
            for k in nodes[j].succs:
                remaining[k] -= 1
                if remaining[k] == 0:
                    if nodes[k].task is None:
                        if not any(self._scope_halted[s.index] for s in nodes[k].scopes):
                            self._pass_barrier(k)
                            stack.append(k)
                    else:
                        self._ready.append(k)

    def _pass_barrier(self, i: int) -> None:
        """A virtual node whose predecessors are all done is done itself."""
        self._set_task(i, _R)
        self._set_task(i, _S)

    def _drain_virtual(self) -> None:
        nodes = self.plan.nodes
        virtual = [i for i in self._ready if nodes[i].task is None]
        if not virtual:
            return
        self._ready = deque(i for i in self._ready if nodes[i].task is not None)
        for i in virtual:
            self._pass_barrier(i)
            self._complete(i)

    def _inputs(self, t: Task) -> dict[str, Any]:
        values = self.values
        kwargs = {arg: values[name] for arg, name in t.required_args}
        for arg, name in t.optional_args:
            if name in values:
                kwargs[arg] = values[name]
        if t.inject:
            kwargs.update(t.inject)
        return kwargs

    async def _execute(self, i: int) -> None:
        node = self.plan.nodes[i]
        t = node.task
        assert t is not None
        fn = self.plan.fns[i]
        assert fn is not None
        for s in node.scopes:
            k = s.index
            self._scope_running[k] += 1
            if not self._scope_valued[k]:
                self._scope_valued[k] = True
                self.values.update(s.retry.value(self._scope_attempt[k], self.values))
        try:
            self.attempts[i] = attempt = self.attempts[i] + 1
            if self._listeners:
                self._set_task(i, _R)
            else:  # admitted: PENDING -> RUNNING is always allowed
                self.tstate[i] = _R
            w = self.writer
            started = _STARTED_DATA[attempt] if attempt < 17 else f'{{"attempt":{attempt}}}'
            if self._pipeline and self.plan.reverts[i] is not None:
                # A task with a revert: its start is durable before it runs, so a crash can
                # never leave work done that no resumed revert knows of.
                seq = w.seq
                try:
                    await w.write(_STARTED, node.name, started)
                except anyio.get_cancelled_exc_class():
                    self._set_task(i, _P)  # it did not start (its entry may land: harmless)
                    raise
            else:  # nothing to undo: the start rides along with the next commit
                seq = w.emit(_STARTED, node.name, started)
            if self._ckpt is not None:
                self._ckpt.started(i, seq)
            try:
                if t.timeout is None:
                    result = await (fn() if self.plan.bare[i] else fn(**self._inputs(t)))
                else:
                    with anyio.fail_after(t.timeout):
                        result = await fn(**self._inputs(t))
                outputs = task_outputs(t, result)
                if result is None:
                    data = (
                        _NONE_RESULT_DATA[attempt]
                        if attempt < 17
                        else f'{{"result":null,"attempt":{attempt}}}'
                    )
                else:
                    data = w.encode(
                        {"result": result, "attempt": attempt}, what=f"result of {t.name!r}"
                    )
            except anyio.get_cancelled_exc_class():
                self._set_task(i, _P)  # interrupted: at-least-once, it runs again on resume
                raise
            except Exception as exc:
                if isinstance(exc, EncodingError):
                    exc.flow_id, exc.task = self.flow_id, t.name
                await self._failed(i, exc)
                return
            if not self._pipeline:  # durable at once: nothing to wait for
                await w.write(_SUCCEEDED, node.name, data)
            elif node.scopes:
                # Shielded: once submitted the entry becomes durable even if we are
                # cancelled, and the task must then count as done (so that a cancel reverts
                # it); a retry scope waits for its members to settle.
                with anyio.CancelScope(shield=True):
                    await w.write(_SUCCEEDED, node.name, data)
            elif self._ready and self._inflight < self._bound:
                # More to run: move on now; dependents start once this entry is durable.
                self._inflight += 1
                w.write_then(_SUCCEEDED, node.name, data, (i, result, outputs))
                return
            else:
                batch = w.submit(_SUCCEEDED, node.name, data)
                assert batch is not None
                try:
                    await batch.wait()
                except BaseException:
                    # Cancelled with the entry on its way: it settles in the background,
                    # as a pipelined one does (_forward waits for that; a cancel reverts it).
                    self._inflight += 1
                    w.then(batch, (i, result, outputs))
                    raise
                w.check(batch)
            self._succeeded(i, result, outputs)
        except (OwnershipLost, JournalError) as exc:
            self._fatal_error(exc)
            if self.tstate[i] is _R:
                self._set_task(i, _P)
        finally:
            for s in node.scopes:
                k = s.index
                self._scope_running[k] -= 1
                if not self._scope_running[k]:
                    self._scope_idle[k].set()

    def _settled(
        self, items: list[tuple[int, Any, dict[str, Any]]], error: BaseException | None
    ) -> None:
        """Pipelined successes became durable in one commit (or could not be written)."""
        self._inflight -= len(items)
        if error is not None:
            self._fatal_error(error)
            for i, _, _ in items:
                if self.tstate[i] is _R:
                    self._set_task(i, _P)
        else:
            for i, result, outputs in items:
                self._succeeded(i, result, outputs)
            self._pump()
        if not self._inflight or self._done == len(self.tstate):
            self._changed.set()

    def _succeeded(self, i: int, result: Any, outputs: dict[str, Any]) -> None:
        """Task ``i``'s success is durable: keep its result, release its dependents."""
        self.results[i] = result
        if outputs:
            self.values.update(outputs)
        if self._listeners or self.tstate[i] is not _R:
            self._set_task(i, _S)
        else:  # admitted and running: RUNNING -> SUCCESS is always allowed
            self.tstate[i] = _S
            self._done += 1
        self._complete(i)
        ckpt = self._ckpt
        if ckpt is not None and not ckpt.succeeded(i, self.tstate, self.attempts, self.results):
            self._ckpt = None

    def _no_checkpoints(self) -> None:
        """Something other than a success happened: checkpoints stop for this run (their
        successes must never be replayed after a later entry about the same task)."""
        self._ckpt = None

    def _fatal_error(self, exc: BaseException) -> None:
        self._no_checkpoints()
        if self._fatal is None:
            self._fatal = exc
            self._halt = "lost" if isinstance(exc, OwnershipLost) else "journal"
            self._log.warning("flow_abandoned", error=str(exc))
            if self._fwd is not None:
                self._fwd.cancel()
        self._changed.set()

    async def _failed(self, i: int, exc: Exception) -> None:
        self._no_checkpoints()
        node = self.plan.nodes[i]
        failure = Failure.from_exception(exc)
        self._log.warning(
            "task_failed", task=node.name, attempt=self.attempts[i], error=str(failure)
        )
        data = self.writer.encode(
            {"failure": failure.to_dict(), "attempt": self.attempts[i]}, what="failure"
        )
        with anyio.CancelScope(shield=True):  # see the success write in _execute
            await self.writer.write(EventKind.TASK_FAILED, node.name, data)
        self.failures[i] = failure
        self._set_task(i, _F)
        self._on_failure(i, {node.name: failure})

    def _on_failure(self, i: int, failures: dict[str, Failure]) -> None:
        scopes = self.plan.nodes[i].scopes
        if not scopes or self._halt is not None:
            self._halt_all()
        else:
            self._fail_scope(scopes[0], failures)

    def _halt_all(self) -> None:
        self._no_checkpoints()
        if self._halt is None:
            self._halt = "fail"
        self._changed.set()

    def _fail_scope(self, scope: Scope, failures: dict[str, Failure]) -> None:
        k = scope.index
        self._scope_failures[k].update(failures)
        if self._scope_halted[k]:
            return
        self._scope_halted[k] = True
        self._scope_idle[k] = anyio.Event()
        if not self._scope_running[k]:
            self._scope_idle[k].set()
        assert self._tg is not None
        self._handlers += 1
        self._tg.start_soon(self._handle_scope, scope)

    async def _handle_scope(self, scope: Scope) -> None:
        k = scope.index
        try:
            await self._scope_idle[k].wait()
            if self._halt is not None:
                return
            attempt = self._scope_attempt[k]
            failures = dict(self._scope_failures[k])
            try:
                decision = scope.retry.on_failure(RetryHistory(attempt, failures, self.values))
            except Exception:
                self._log.exception("retry_controller_failed", scope=scope.key)
                decision = Decision.REVERT_ALL
            self._log.info("retry_decision", scope=scope.key, attempt=attempt, decision=decision)
            if decision is Decision.REVERT_ALL:
                self._halt_all()
                return
            with anyio.CancelScope(shield=True):
                await self._revert_nodes(scope.members)
            if self._halt is not None:
                return
            if decision is Decision.REVERT:
                data = self.writer.encode(
                    {"decision": "revert", "attempt": attempt, "reset": []}, what="retry"
                )
                await self.writer.write(EventKind.RETRY, scope.key, data)
                if scope.parent is None:
                    self._halt_all()
                else:
                    self._fail_scope(scope.parent, failures)
                return
            delay = scope.retry.delay(attempt)
            data = self.writer.encode(
                {
                    "decision": "retry",
                    "attempt": attempt + 1,
                    "reset": scope.task_names,
                    # nested scopes start again at their first attempt
                    "scopes": [
                        s.key for s in self.plan.scopes if s is not scope and s.within(scope)
                    ],
                    "delay": delay,
                },
                what="retry",
            )
            await self.writer.write(EventKind.RETRY, scope.key, data)
            if delay:
                await anyio.sleep(delay)
            if self._halt is not None:
                return
            self._reset_scope(scope, attempt + 1)
        except (OwnershipLost, JournalError) as exc:
            self._fatal_error(exc)
        finally:
            self._handlers -= 1
            self._changed.set()

    def _reset_scope(self, scope: Scope, attempt: int) -> None:
        nodes = self.plan.nodes
        members = scope.members
        for m in members:
            if self.tstate[m] is not _P:
                self._set_task(m, _P)
            self.failures.pop(m, None)
            self.results[m] = None
        for s in self.plan.scopes:
            if s.within(scope):
                self._scope_halted[s.index] = False
                self._scope_failures[s.index].clear()
                if s is not scope:
                    self._scope_attempt[s.index] = 1
        self._scope_attempt[scope.index] = attempt
        self._scope_valued[scope.index] = True
        self.values.update(scope.retry.value(attempt, self.values))
        tstate = self.tstate
        for m in members:
            self._remaining[m] = sum(1 for p in nodes[m].preds if tstate[p] is not _S)
        for m in members:
            if self._remaining[m] == 0:
                if nodes[m].task is None:
                    self._pass_barrier(m)
                    self._complete(m)
                else:
                    self._ready.append(m)
        self._pump()

    # -- reverting -----------------------------------------------------------------------------

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
        cancelled = self._halt == "cancel"
        with anyio.CancelScope(shield=True):
            if self.state is not FlowState.REVERTING:
                await self._set_flow(FlowState.REVERTING, "cancelled" if cancelled else None)
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
            try:
                with anyio.move_on_after(self._revert_timeout, shield=True) as cs:
                    await revert(**kwargs)
                if cs.cancelled_caught:
                    raise TimeoutError(
                        f"revert of {t.name!r} did not finish within {self._revert_timeout}s"
                    )
            except Exception as exc:
                failure = Failure.from_exception(exc)
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
        nodes = self.plan.nodes
        if cancelled:
            return FlowCancelled(
                f"flow {self.flow_id} ({self.name!r}) was cancelled"
                + ("" if not self.revert_failures else "; some reverts failed"),
                flow_id=self.flow_id,
            )
        originals: list[Exception] = []
        for i, f in self.failures.items():
            exc = f.exception
            if isinstance(exc, Exception):
                originals.append(exc)
            else:
                originals.append(TaskFailed(f, flow_id=self.flow_id, task=nodes[i].name))
        for i, f in self.revert_failures.items():
            err = RevertFailed(f, flow_id=self.flow_id, task=nodes[i].name)
            err.__cause__ = f.exception
            originals.append(err)
        if len(originals) == 1 and not self.revert_failures:
            exc = originals[0]
            ((i, _),) = self.failures.items()
            exc.add_note(
                f"flowcoord: task {nodes[i].name!r} of flow {self.flow_id} failed; "
                "the flow was reverted"
            )
            return exc
        if not originals:
            return FlowCancelled(f"flow {self.flow_id} was reverted", flow_id=self.flow_id)
        return FlowFailed(
            f"flow {self.flow_id} ({self.name!r}) failed",
            originals,
            flow_id=self.flow_id,
            failures=((nodes[i].name, f) for i, f in self.failures.items()),
            revert_failures=((nodes[i].name, f) for i, f in self.revert_failures.items()),
        )

    def _finished(self) -> dict[str, Any]:
        if self.state is FlowState.SUCCESS:
            return self.values
        raise self._error(self.state is FlowState.CANCELLED)

    def _restore(self, r: FlowReplay) -> bool:
        """Take up the state the journal tells of (see :func:`restore`); True if the flow
        must be reverted."""
        got = restore(self.plan, r, self.values)
        self.tstate, self.results, self.attempts = got.tstate, got.results, got.attempts
        self.values, self.failures, self.revert_failures = (
            got.values,
            got.failures,
            got.revert_failures,
        )
        self._done = got.done
        self._scope_attempt = got.scope_attempt
        self._scope_valued = got.valued
        self._pending_scopes = got.pending
        self._cancelled_before = got.cancelled
        tstate, remaining = self.tstate, self._remaining
        for i, node in enumerate(self.plan.nodes):
            left = 0
            for p in node.preds:
                if tstate[p] is not _S:
                    left += 1
            remaining[i] = left
        if got.reverting or got.pending:
            self._no_checkpoints()
        elif self._ckpt is not None and got.restored:
            self._ckpt.restored()
        return got.reverting
