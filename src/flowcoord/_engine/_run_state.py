"""A flow run's state: per-node arrays, state changes and listeners, halting, and the
dependency bookkeeping every part of a run shares (see :class:`FlowRun` for the whole)."""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Mapping
from time import perf_counter, time
from typing import Any

import anyio
import structlog
from anyio.abc import TaskGroup

from .._failure import Failure
from .._journal._events import EventKind
from .._journal._replay import FlowReplay
from .._journal._writer import FlowWriter
from .._model._compile import Plan
from .._states import FlowState, StateChange, TaskState, check_flow, check_task
from ..errors import OwnershipLost
from ._checkpoints import Checkpoints
from ._children import ChildFlow, ChildScope, Family, child_flow_id
from ._listeners import Listeners, bound_log, tell, tell_success

#: ``task.started`` data of attempts 0-16, made once
STARTED_DATA = tuple(f'{{"attempt":{a}}}' for a in range(17))

__all__ = ["Halt", "RunState"]

log = structlog.get_logger("flowcoord.engine")

_P, _R, _S, _F = TaskState.PENDING, TaskState.RUNNING, TaskState.SUCCESS, TaskState.FAILURE


class Halt(enum.Enum):
    """Why a run stopped going forward."""

    FAIL = "fail"  # a failure nothing retries: revert the flow
    CANCEL = "cancel"  # cancelled: revert, end CANCELLED
    LOST = "lost"  # ownership lost: write nothing more
    JOURNAL = "journal"  # the journal failed: write nothing more


class RunState:
    """What a run knows and how it changes; the parts of a run (reverts, retry scopes, the
    scheduler) are layered on it."""

    def __init__(
        self,
        plan: Plan,
        flow_id: str,
        writer: FlowWriter,
        store: Mapping[str, Any],
        *,
        concurrency: int,
        revert_timeout: float,
        listeners: Listeners | None = None,
        replay: FlowReplay | None = None,
        checkpoint_every: int = 1000,
    ) -> None:
        self.plan = plan
        self.flow_id = flow_id
        self.name = plan.flow.name
        self.engine: Any = None  # the engine running it (set by the engine: child flows)
        self.writer = writer
        writer.settle = self._settled
        self.values: dict[str, Any] = dict(store)
        self._bound = max(1, concurrency)
        self._revert_timeout = revert_timeout
        told = listeners if listeners is not None else Listeners()
        self._listeners = told.every  # any at all: flow changes, failures, reverts
        self._starts = told.starts
        self._successes = told.successes
        self._told = told
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
        self._scope_running = [0] * len(plan.scopes)
        self._scope_halted = [False] * len(plan.scopes)
        self._scope_idle = [anyio.Event() for _ in plan.scopes]
        self._scope_failures: list[dict[str, Failure]] = [{} for _ in plan.scopes]
        self._scope_attempt = [1] * len(plan.scopes)
        self._scope_valued = [not s.retry.provides for s in plan.scopes]
        self.state = FlowState.PENDING
        self._halt: Halt | None = None
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
        self._prestarted: dict[int, tuple[int, int]] = {}  # see FlowRun._prestart
        # child flows run as tasks (flowcoord.child): their nodes, and the running children
        self._child_nodes = frozenset(n.index for n in plan.nodes if isinstance(n.task, ChildFlow))
        self._family = Family()
        # with listeners: when a body started (perf_counter()) and how long it ran
        self._body_time: dict[int, tuple[float, float]] = {}
        # node → (child id, last attempt): the child a child task's latest attempt journaled,
        # for that attempt (its revert) and, if a crash cut it short, the next (its re-run)
        self._child_of: dict[int, tuple[str, int]] = {}
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
        """This flow's logger, bound on first use (see :func:`._listeners.bound_log`)."""
        return bound_log(self, log)

    # -- states and listeners ------------------------------------------------------------------

    def _notify(self, task: str | None, old: str, new: str) -> None:
        tell(self._log, self._listeners, StateChange(self.flow_id, self.name, task, old, new))

    def _notify_end(
        self, i: int, old: str, new: str, took: tuple[float, float] | None = None
    ) -> None:
        """Task ``i``'s attempt ended (or was interrupted): tell with its timing (``took``:
        its ``_body_time``, popped already by the caller or popped here)."""
        if took is None:
            took = self._body_time.pop(i, None)
        at = elapsed = None
        if took is not None:
            began, elapsed = took
            at = time() - (perf_counter() - began)  # when the body began, on the wall clock
        change = StateChange(
            self.flow_id,
            self.name,
            self.plan.nodes[i].name,
            old,
            new,
            elapsed,
            self.attempts[i],
            at,
        )
        if new == "SUCCESS":
            tell_success(self._log, self._successes, change, i in self._child_nodes)
        else:
            tell(self._log, self._listeners, change)

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
            # _value_: the member's str, without the enum's descriptor (one per change)
            if new is _R:
                if self._starts:
                    change = StateChange(
                        self.flow_id,
                        self.name,
                        node.name,
                        old._value_,
                        "RUNNING",
                        attempt=self.attempts[i],
                    )
                    tell(self._log, self._starts, change)
            elif new is _S or new is _F or (new is _P and old is _R):
                self._notify_end(i, old._value_, new._value_)
            else:  # reverts: of the task's latest attempt
                change = StateChange(
                    self.flow_id,
                    self.name,
                    node.name,
                    old._value_,
                    new._value_,
                    attempt=self.attempts[i] or None,
                )
                tell(self._log, self._listeners, change)

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

    # -- halting -------------------------------------------------------------------------------

    def _no_checkpoints(self) -> None:
        """Something other than a success happened: checkpoints stop for this run (their
        successes must never be replayed after a later entry about the same task)."""
        self._ckpt = None

    def _fatal_error(self, exc: BaseException) -> None:
        self._no_checkpoints()
        if self._fatal is None:
            self._fatal = exc
            self._halt = Halt.LOST if isinstance(exc, OwnershipLost) else Halt.JOURNAL
            self._log.warning("flow_abandoned", error=str(exc))
            if self._fwd is not None:
                self._fwd.cancel()
        self._changed.set()

    def _halt_all(self) -> None:
        self._no_checkpoints()
        if self._halt is None:
            self._halt = Halt.FAIL
        self._changed.set()

    # -- dependencies --------------------------------------------------------------------------

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

    def _pump(self) -> None:
        """Start workers for ready tasks (the scheduler's)."""
        raise NotImplementedError

    def _settled(self, items: list[Any], error: BaseException | None) -> None:
        """Successes became durable in one commit, or could not be written (the
        scheduler's; see :meth:`FlowWriter.settle <flowcoord._journal._writer.FlowWriter>`)."""
        raise NotImplementedError

    def _child_scope(self, i: int) -> ChildScope:
        """Where node ``i``'s child flow runs (its attempt as journaled)."""
        name, attempt = self.plan.nodes[i].name, self.attempts[i]
        cut = self._child_of.get(i)
        fixed = cut[0] if cut is not None and attempt <= cut[1] else None
        return ChildScope(
            self.engine, self.flow_id, name, attempt, self.writer.token, self._family, fixed
        )

    def _start_data(self, i: int, attempt: int) -> str:
        """A task's ``task.started`` data; a child flow's names the child (the link)."""
        if self._child_nodes and i in self._child_nodes:
            cut = self._child_of.get(i)
            if cut is not None and attempt <= cut[1]:
                child = cut[0]
            else:
                child = child_flow_id(self.flow_id, self.plan.nodes[i].name, attempt)
            return self.writer.encode({"attempt": attempt, "child": child}, what="start")
        return STARTED_DATA[attempt] if attempt < 17 else f'{{"attempt":{attempt}}}'
