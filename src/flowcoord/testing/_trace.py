"""What the crash explorer records of a run: task operations and journal durability, in order.

A :class:`Trace` is one simulated process's timeline. Instrumented task bodies and reverts log
when they begin and end; the :class:`RecordingBackend` logs each time entries of a flow
became durable. The explorer cuts a trace where a crash would have happened: every operation
that began before the cut happened in the crashed process; one that had not ended (or that
raised, or was cancelled) may or may not have taken effect.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio

from .._engine._children import current_flow
from .._engine._engine import Engine
from .._journal._contract import FlowPage, JournalBackend, Listing
from .._journal._events import Entry, FlowRecord
from .._journal._sent import SentEvent
from .._model._compile import Plan
from .._model._flow import Flow
from .._states import StateChange
from ..errors import JournalError, JournalUnavailable

__all__ = ["Fault", "InstrumentedEngine", "Op", "RecordingBackend", "Trace"]

OpKind = Literal["run", "revert", "noop-revert"]
Outcome = Literal["ok", "raised", "cancelled"]


@dataclass(slots=True)
class Op:
    """One call of a task's body (``run``) or revert; ``noop-revert`` stands for the revert
    of a task that has none (it undoes nothing, but counts as reverting the task)."""

    task: str  # a child flow's task or step: prefixed by the child's path ("2:disk/1:do")
    kind: OpKind
    begin: int  # position in the trace's log
    end: int | None = None
    outcome: Outcome | None = None
    flow: str = ""  # the path of the flow it belongs to below the root ("" for the root)

    @property
    def local(self) -> str:
        """The task's or step's name in its own flow."""
        return self.task[len(self.flow) + 1 :] if self.flow else self.task


@dataclass(slots=True)
class Trace:
    """One process's timeline: ``log`` holds ``("op", op)``, ``("end", op)``,
    ``("durable", flow_id, seq + 1)`` and ``("action", name)`` events in the order they
    happened."""

    log: list[tuple[Any, ...]] = field(default_factory=list)
    ops: list[Op] = field(default_factory=list)

    def begin(self, task: str, kind: OpKind, flow: str = "") -> Op:
        op = Op(f"{flow}/{task}" if flow else task, kind, len(self.log), flow=flow)
        self.ops.append(op)
        self.log.append(("op", op))
        return op

    def end(self, op: Op, outcome: Outcome) -> None:
        op.end, op.outcome = len(self.log), outcome
        self.log.append(("end", op))

    def action(self, name: str) -> None:
        self.log.append(("action", name))

    def wrote(self, entries: Sequence[Entry]) -> None:
        """Entries became durable: log ``("durable", flow_id, seq + 1)`` for each."""
        for e in entries:
            self.log.append(("durable", e.flow_id, e.seq + 1))

    def cut(self, flow_id: str, k: int) -> int:
        """The log position of the crash that leaves exactly the first ``k`` entries of
        ``flow_id`` durable: just before the entry of seq ``k`` became durable (the end of
        the log, if it never did)."""
        for pos, ev in enumerate(self.log):
            if ev[0] == "durable" and ev[1] == flow_id and ev[2] > k:
                return pos
        return len(self.log)

    def actions_before(self, pos: int) -> set[str]:
        return {ev[1] for ev in self.log[:pos] if ev[0] == "action"}


@dataclass(frozen=True, slots=True)
class Fault:
    """Make backend call number ``call`` (counting calls of ``method``) fail: ``before``
    writing anything, or ``after`` the write went through (a lost reply)."""

    method: str  # "append" | "create_flow" | "read_for_resume" | "read" | "fence"
    call: int
    #: "before" / "after": raise; "cut": call the explorer's ``cut`` hook (e.g. the fault
    #: proxy's ``cut()``: the connection dies under the call) and let the call go on
    when: Literal["before", "after", "cut"] = "before"
    error: Literal["unavailable", "error"] = "unavailable"

    def exception(self) -> JournalError:
        text = f"injected fault: {self.method} call {self.call} ({self.when})"
        return JournalUnavailable(text) if self.error == "unavailable" else JournalError(text)


class RecordingBackend(JournalBackend):
    """Delegates to a backend, logging durability to the current trace and injecting faults.

    ``open``/``close`` do nothing: the explorer opens the real backend once and many
    simulated processes (engines) use it in turn.
    """

    def __init__(self, inner: JournalBackend) -> None:
        self.inner = inner
        self.immediate = inner.immediate
        self.batch_creates = inner.batch_creates
        self.trace = Trace()
        self.fault: Fault | None = None
        self.calls: dict[str, int] = {}
        self.cut: Callable[[], Awaitable[object]] | None = None
        #: the names of tasks without a revert in every plan an engine compiled over it
        self.no_revert: set[str] = set()
        #: workflow steps' retry limits, by step key (a child's prefixed by its path)
        self.step_limits: dict[str, int] = {}

    def _count(self, method: str) -> Fault | None:
        n = self.calls[method] = self.calls.get(method, 0) + 1
        f = self.fault
        if f is not None and f.method == method and f.call == n:
            if f.when == "before":
                raise f.exception()
            return f
        return None

    async def _call(self, method: str) -> Fault | None:
        fault = self._count(method)
        if fault is not None and fault.when == "cut":
            if self.cut is not None:
                await self.cut()
            return None
        return fault

    def append_now(self, entries: Sequence[Entry]) -> frozenset[str]:
        fault = self._count("append")
        refused = self.inner.append_now(entries)
        self._wrote(entries, refused)
        if fault is not None:
            raise fault.exception()
        return refused

    def _wrote(self, entries: Sequence[Entry], refused: frozenset[str]) -> None:
        self.trace.wrote([e for e in entries if e.flow_id not in refused])

    async def create_flow(self, record: FlowRecord, entries: Sequence[Entry]) -> bool:
        fault = await self._call("create_flow")
        created = await self.inner.create_flow(record, entries)
        if created:
            self.trace.wrote(entries)
        if fault is not None:
            raise fault.exception()
        return created

    async def create_flows(
        self, batch: Sequence[tuple[FlowRecord, Sequence[Entry]]]
    ) -> frozenset[str]:
        fault = await self._call("create_flow")
        created = await self.inner.create_flows(batch)
        for record, entries in batch:
            if record.flow_id in created:
                self.trace.wrote(entries)
        if fault is not None:
            raise fault.exception()
        return created

    async def append(self, entries: Sequence[Entry]) -> frozenset[str]:
        fault = await self._call("append")
        refused = await self.inner.append(entries)
        self._wrote(entries, refused)
        if fault is not None:
            raise fault.exception()
        return refused

    async def fence(self, flow_id: str, token: int) -> int:
        fault = await self._call("fence")
        previous = await self.inner.fence(flow_id, token)
        if fault is not None:
            raise fault.exception()
        return previous

    async def read(self, flow_id: str, *, after_seq: int = -1) -> list[Entry]:
        await self._call("read")
        return await self.inner.read(flow_id, after_seq=after_seq)

    async def read_for_resume(self, flow_id: str) -> list[Entry]:
        await self._call("read_for_resume")
        return await self.inner.read_for_resume(flow_id)

    async def get_flow(self, flow_id: str) -> FlowRecord | None:
        return await self.inner.get_flow(flow_id)

    async def list_flows(
        self, *, state: str | None = None, limit: int = 100, after: str | None = None
    ) -> list[FlowRecord]:
        return await self.inner.list_flows(state=state, limit=limit, after=after)

    async def newest_page(self, listing: Listing) -> FlowPage:
        return await self.inner.newest_page(listing)

    async def send_event(self, flow_id: str, topic: str, data: str, key: str) -> SentEvent:
        return await self.inner.send_event(flow_id, topic, data, key)

    async def sent_events(
        self, flow_id: str, topic: str, *, after: int = 0, limit: int = 1
    ) -> list[SentEvent]:
        await self._call("sent_events")
        return await self.inner.sent_events(flow_id, topic, after=after, limit=limit)


class InstrumentedEngine(Engine):
    """An engine whose plans log every task body and revert call to ``backend.trace``.

    A task without a revert is logged as a ``noop-revert`` when it enters REVERTING (seen by
    a listener), so the engine journals exactly what it would uninstrumented.
    """

    def __init__(self, backend: RecordingBackend, **options: Any) -> None:
        super().__init__(backend, **options)
        self._recording = backend
        self._instrumented: dict[int, tuple[Flow, Plan]] = {}
        self._no_revert: set[str] = set()
        self.add_listener(self._noted)

    def compile(self, flow: Flow) -> Plan:
        hit = self._instrumented.get(id(flow))
        if hit is not None and hit[0] is flow:
            return hit[1]
        plan = copy.copy(super().compile(flow))
        plan.fns = [
            None if fn is None else self._wrap(node.name, "run", fn)
            for node, fn in zip(plan.nodes, plan.fns, strict=True)
        ]
        plan.reverts = [
            None if fn is None else self._wrap(node.name, "revert", fn)
            for node, fn in zip(plan.nodes, plan.reverts, strict=True)
        ]
        self._no_revert |= {
            n.name for n, fn in zip(plan.nodes, plan.reverts, strict=True) if fn is None
        }
        self._recording.no_revert |= self._no_revert
        plan.bare = [False] * len(plan.nodes)  # the wrapper takes keywords (maybe none)
        self._instrumented[id(flow)] = (flow, plan)
        return plan

    def _wrap_step(
        self, key: str, kind: str, fn: Callable[..., Any], limit: int | None = None
    ) -> Callable[..., Any]:
        if limit is not None:  # a step's retry limit, for the journal checks
            path = _path(current_flow.get())
            self._recording.step_limits[f"{path}/{key}" if path else key] = limit
        return self._wrap(key, "run" if kind == "run" else "revert", fn)

    def _noted(self, change: StateChange) -> None:
        if change.new == "REVERTING" and change.task in self._no_revert:
            trace = self._recording.trace
            op = trace.begin(change.task, "noop-revert", _path(change.flow_id))
            trace.end(op, "ok")

    def _wrap(self, task: str, kind: OpKind, fn: Callable[..., Any]) -> Callable[..., Any]:
        recording = self._recording

        async def call(**kwargs: Any) -> Any:
            trace = recording.trace
            op = trace.begin(task, kind, _path(current_flow.get()))
            try:
                result = await fn(**kwargs)
            except anyio.get_cancelled_exc_class():
                trace.end(op, "cancelled")
                raise
            except BaseException:
                trace.end(op, "raised")
                raise
            trace.end(op, "ok")
            return result

        return call


def _path(flow_id: str | None) -> str:
    """A flow's path below the explorer's root (whose ids have no dot): "" for the root."""
    return flow_id.partition(".")[2] if flow_id else ""
