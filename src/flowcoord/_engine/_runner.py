"""One flow's run: the scheduler core. The parts it is built on: :mod:`._run_state` (state,
listeners, halting), :mod:`._reverts`, :mod:`._scopes` (retry decisions), :mod:`._restore`
(state from the journal) and :mod:`._outcome` (the error raised)."""

from __future__ import annotations

from collections import deque
from time import perf_counter
from typing import Any

import anyio

from .._journal._events import EventKind
from .._journal._replay import FlowReplay
from .._journal._writer import Durable
from .._model._task import Task
from .._states import FlowState, StateChange, TaskState
from ..errors import EncodingError, FlowCancelled, FlowcoordError, JournalError, OwnershipLost
from ._children import ChildStopped, current_child
from ._listeners import tell
from ._restore import restore, task_outputs
from ._run_state import Halt
from ._scopes import Scopes

__all__ = ["FlowRun", "task_outputs"]

_P, _R, _S = TaskState.PENDING, TaskState.RUNNING, TaskState.SUCCESS
_STARTED, _SUCCEEDED = EventKind.TASK_STARTED, EventKind.TASK_SUCCEEDED
# Journal data of the commonest entries, made once: 138 bytes a task less, no formatting.
_NONE_RESULT_DATA = tuple(f'{{"result":null,"attempt":{a}}}' for a in range(17))


class FlowRun(Scopes):
    """Runs (or resumes) one flow. Created by :class:`~flowcoord.Engine`; single use."""

    # -- control (from FlowHandle) -------------------------------------------------------------

    def cancel(self) -> None:
        self._no_checkpoints()
        self._family.cancel()
        if self._halt not in (Halt.CANCEL, Halt.LOST, Halt.JOURNAL):
            self._halt = Halt.CANCEL
            if self._fwd is not None:
                self._fwd.cancel()
        self._wake_resumed()
        self._changed.set()

    def suspend(self) -> None:
        self._family.suspend()
        self._suspend = True
        self._resumed = anyio.Event()
        self._changed.set()

    def _wake_resumed(self) -> None:
        if self._resumed is not None:
            self._resumed.set()

    def resume(self) -> None:
        self._family.resume()
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
        self._family.abort(reason)
        self._fatal_error(exc)  # no checkpoints from here on, either
        self._wake_resumed()

    def stop(self) -> None:
        """Start nothing new, let running tasks finish, end the run without reverting."""
        self._family.stop()
        self._stop = True
        self._suspend = True
        self._wake_resumed()
        self._changed.set()

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
                cancelled = self._cancelled_before or self._halt is Halt.CANCEL
                self._halt = Halt.CANCEL if cancelled else Halt.FAIL
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
            if self._halt is Halt.CANCEL:
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
        if self._halt is Halt.CANCEL:  # even if nothing ran: a previous run may have left some
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
            # admitted: PENDING -> RUNNING is always allowed
            old, self.tstate[i] = self.tstate[i], _R
            if self._starts:
                tell(
                    self._log,
                    self._starts,
                    StateChange(
                        self.flow_id,
                        self.name,
                        node.name,
                        old._value_,
                        "RUNNING",
                        attempt=attempt,
                    ),
                )
            ahead = self._journal_start(i, node.name, attempt)
            if ahead is not None:  # write-ahead: its start is durable before it runs
                try:
                    await ahead
                except anyio.get_cancelled_exc_class():
                    self._set_task(i, _P)  # it did not start (its entry may land: harmless)
                    raise
            where = None
            if self._child_nodes and i in self._child_nodes:  # a child flow (fc.child)
                where = current_child.set(self._child_scope(i))
            began = perf_counter() if self._listeners else 0.0
            try:
                try:
                    if t.timeout is None:
                        result = await (fn() if self.plan.bare[i] else fn(**self._inputs(t)))
                    else:
                        with anyio.fail_after(t.timeout):
                            result = await fn(**self._inputs(t))
                finally:
                    if began:
                        self._body_time[i] = (began, perf_counter() - began)
                outputs = task_outputs(t, result)
                if result is None:
                    data = (
                        _NONE_RESULT_DATA[attempt]
                        if attempt < 17
                        else f'{{"result":null,"attempt":{attempt}}}'
                    )
                else:
                    data = self.writer.encode(
                        {"result": result, "attempt": attempt}, what=f"result of {t.name!r}"
                    )
            except anyio.get_cancelled_exc_class():
                self._set_task(i, _P)  # interrupted: at-least-once, it runs again on resume
                raise
            except ChildStopped:  # its child was stopped: so is this flow (resumed together)
                self._set_task(i, _P)
                self.stop()
                return
            except Exception as exc:
                if where is not None and isinstance(exc, JournalError | OwnershipLost):
                    raise  # the child could not journal: the run breaks (below), no failure
                if isinstance(exc, EncodingError):
                    exc.flow_id, exc.task = self.flow_id, t.name
                await self._failed(i, exc)
                return
            finally:
                if where is not None:
                    current_child.reset(where)
            await self._journal_success(i, node.name, data, result, outputs)
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

    # -- journaling a task: every choice of a way to write on the task path is made here -------

    def _journal_start(self, i: int, name: str, attempt: int) -> Durable | None:
        """Journal task ``i``'s start; return what must be durable before it runs, if any."""
        pre = self._prestarted.pop(i, None) if self._prestarted else None
        if pre is not None and pre[1] == attempt:
            return None  # journaled with its last predecessor's success: durable now
        w = self.writer
        data = self._start_data(i, attempt)
        if self._pipeline and self.plan.reverts[i] is not None:
            # A task with a revert: append and wait, so that a crash can never leave work
            # done that no resumed revert knows of.
            if self._ckpt is not None:
                self._ckpt.started(i, w.seq)
            return w.write(_STARTED, name, data)
        seq = w.emit(_STARTED, name, data)  # nothing to undo: it rides along, nobody waits
        if self._ckpt is not None:
            self._ckpt.started(i, seq)
        return None

    async def _journal_success(
        self, i: int, name: str, data: str, result: Any, outputs: dict[str, Any]
    ) -> None:
        """Journal task ``i``'s success and mark it done once that is durable: at once on an
        immediate backend; after waiting for its commit; or, pipelined, when the commit
        returns (:meth:`_settled`: the worker moves on, dependents start then)."""
        durable = self.writer.write(_SUCCEEDED, name, data)
        if not self._pipeline:  # durable at once: nothing to wait for
            self._succeeded(i, result, outputs)
            return
        if self.plan.revert_succs[i]:
            self._prestart(i)  # in the same commit
        if self.plan.nodes[i].scopes:
            # Shielded: once appended the entry becomes durable even if we are cancelled,
            # and the task must then count as done (so that a cancel reverts it); a retry
            # scope waits for its members to settle.
            with anyio.CancelScope(shield=True):
                await durable
        elif self._ready and self._inflight < self._bound:
            # More to run: append and call back; the worker moves on now.
            self._inflight += 1
            durable.then((i, result, outputs))
            return
        else:
            try:
                await durable
            except BaseException as exc:
                if not isinstance(exc, Exception):
                    # Cancelled with the entry on its way: it settles in the background, as
                    # a pipelined one does (_forward waits for that; a cancel reverts it).
                    self._inflight += 1
                    durable.then((i, result, outputs))
                raise
        self._succeeded(i, result, outputs)

    def _prestart(self, i: int) -> None:
        """Task ``i``'s success was just queued: journal, in the same commit, the start of
        each dependent with a revert that it releases (its last unfinished predecessor), so
        that the dependent need not wait for a commit of its own before it runs."""
        nodes, remaining, tstate = self.plan.nodes, self._remaining, self.tstate
        for k in self.plan.revert_succs[i]:
            if remaining[k] != 1 or tstate[k] is not _P:
                continue
            node = nodes[k]
            if any(self._scope_halted[s.index] for s in node.scopes):
                continue
            attempt = self.attempts[k] + 1
            data = self._start_data(k, attempt)
            seq = self.writer.emit(_STARTED, node.name, data)
            self._prestarted[k] = (seq, attempt)
            if self._ckpt is not None:  # its start stays readable until it is done
                self._ckpt.started(k, seq)

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
        if self.tstate[i] is not _R:
            self._set_task(i, _S)
        else:  # admitted and running: RUNNING -> SUCCESS is always allowed
            self.tstate[i] = _S
            self._done += 1
            node = self.plan.nodes[i]
            if self._listeners and node.task is not None:
                took = self._body_time.pop(i, None)
                # most successes of a traced flow are told to no one: checked before a
                # change is made
                if took is None or took[1] >= self._told.least or i in self._child_nodes:
                    self._notify_end(i, "RUNNING", "SUCCESS", took)
        self._complete(i)
        ckpt = self._ckpt
        if ckpt is not None and not ckpt.succeeded(i, self.tstate, self.attempts, self.results):
            self._ckpt = None

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
        for i in self._child_nodes:  # the child its latest attempt journaled
            rec = r.tasks.get(self.plan.nodes[i].name)
            if rec is not None and rec.child:
                # cut short by a crash: the next attempt resumes that child, not a new one
                last = rec.attempt + 1 if rec.state is _R else rec.attempt
                self._child_of[i] = (rec.child, last)
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
