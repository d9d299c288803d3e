"""The engine: runs and resumes flows on the current event loop, journaling as it goes."""

from __future__ import annotations

import contextlib
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any

import anyio
import structlog
from anyio.abc import TaskGroup

from .._codec import Codec
from .._ids import check_flow_id
from .._journal._contract import JournalBackend
from .._journal._events import EventKind
from .._journal._group_commit import GroupCommit
from .._journal._memory import MemoryJournal
from .._journal._replay import FlowReplay, replay
from .._journal._sent import SentEvent
from .._model._compile import Plan, compile_flow
from .._model._flow import Flow
from .._model._workflow import Workflow
from .._states import FlowState, StateListener, is_finished
from ..errors import (
    ConfigurationError,
    FlowDefinitionError,
    FlowFinished,
    FlowNotFound,
    FlowRunning,
    JournalUnavailable,
    NonDeterministicWorkflow,
)
from ._children import ChildScope, current_flow
from ._fork import fork_flow
from ._handle import FlowHandle, FlowOutcome
from ._listeners import Listeners
from ._load import load_flow
from ._mailbox import Mailbox
from ._runner import FlowRun
from ._wf_load import check_workflow, fork_workflow, load_workflow
from ._workflow import WorkflowRun

__all__ = ["Engine", "FlowHandle", "FlowOutcome"]

log = structlog.get_logger("flowcoord.engine")

_PLAN_CACHE = 16  # plans an engine keeps compiled, the newest (see Engine.compile)


class Engine:
    """Runs flows on the current event loop and journals every step.

    ``async with Engine(journal) as engine: outcome = await engine.run(flow, {"x": 1})``.
    Without a journal the engine keeps one in memory. The engine opens the backend it is given
    and closes it on exit. ``concurrency`` bounds the tasks one flow runs at once;
    ``revert_timeout`` bounds each revert (reverts are shielded from cancellation).
    ``checkpoint_every``: a flow journals a checkpoint each time this many of its tasks have
    succeeded since the last one (results in one entry), so that resuming a big flow reads
    and replays the checkpoints and what followed the last one, not one entry per step (on
    SQLite and PostgreSQL; the in-memory journal writes none).
    Leaving the block waits for flows begun with :meth:`start`; stop or cancel them to leave
    sooner. An error raised in the block cancels them (they write nothing more) and passes
    through unwrapped.
    """

    def __init__(
        self,
        journal: JournalBackend | None = None,
        *,
        codec: Codec | None = None,
        concurrency: int = 256,
        revert_timeout: float = 60.0,
        listeners: Sequence[StateListener] = (),
        checkpoint_every: int = 1000,
    ) -> None:
        if not isinstance(concurrency, int) or concurrency < 1:
            raise ConfigurationError(f"concurrency must be an int >= 1, got {concurrency!r}")
        if not isinstance(checkpoint_every, int) or checkpoint_every < 1:
            raise ConfigurationError(
                f"checkpoint_every must be an int >= 1, got {checkpoint_every!r}"
            )
        self.checkpoint_every = checkpoint_every
        if not revert_timeout > 0:
            raise ConfigurationError(f"revert_timeout must be positive, got {revert_timeout!r}")
        self.backend = journal if journal is not None else MemoryJournal()
        self.codec = codec or Codec()
        self.mailbox = Mailbox(self.backend, self.codec)
        self.concurrency = concurrency
        self.revert_timeout = revert_timeout
        self._listeners = Listeners(listeners)
        self._flush_listeners: list[Callable[[int, float, bool], None]] = []
        self._journal: GroupCommit | None = None
        self._stack: AsyncExitStack | None = None
        self._tg: TaskGroup | None = None
        self._handles: dict[str, FlowHandle] = {}
        self._reserved: set[str] = set()
        # The last _PLAN_CACHE plans compiled, by id(flow), newest last. Bounded: a
        # conductor or the API builds a fresh flow per job. A cached plan holds its flow,
        # so its id cannot be reused while it is cached.
        self._plans: OrderedDict[int, Plan] = OrderedDict()

    # -- lifecycle -----------------------------------------------------------------------------

    async def __aenter__(self) -> Engine:
        stack = AsyncExitStack()
        await stack.__aenter__()
        try:
            await stack.enter_async_context(self.backend)
            journal = GroupCommit(self.backend, codec=self.codec)
            journal.flush_listeners = self._flush_listeners  # the same list: added any time
            await stack.enter_async_context(journal.running())
            # events sent by others wake this engine's waiting runs at once, where the
            # journal can tell (PostgreSQL, memory): watched from the first wait for an
            # event on (no connection for an engine that never waits), until the runs end
            watch = await stack.enter_async_context(anyio.create_task_group())
            stack.callback(watch.cancel_scope.cancel)

            def start_watching() -> None:
                watch.start_soon(self._watch_events)

            self.mailbox.on_first_wait = start_watching
            self._tg = await stack.enter_async_context(anyio.create_task_group())
        except BaseException:
            await stack.aclose()
            raise
        self._journal, self._stack = journal, stack
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        stack, self._stack = self._stack, None
        tg, self._tg = self._tg, None
        try:
            if stack is None:
                return None
            if exc is not None and not isinstance(exc, anyio.get_cancelled_exc_class()):
                # The caller's own error: cancel background flows (they write nothing more)
                # and let the error through as it is, not wrapped in an ExceptionGroup.
                if tg is not None:
                    tg.cancel_scope.cancel()
                await stack.__aexit__(None, None, None)
                return None
            return await stack.__aexit__(exc_type, exc, tb)
        finally:
            self._journal = None

    async def _watch_events(self) -> None:
        async with self.backend.watch_events(self.mailbox.wake):
            await anyio.sleep_forever()

    @property
    def journal(self) -> GroupCommit:
        if self._journal is None:
            raise JournalUnavailable("the engine is not running; use 'async with Engine(...)'")
        return self._journal

    def add_listener(
        self, listener: StateListener, *, starts: bool = True, min_elapsed: float = 0.0
    ) -> None:
        """Call ``listener(change)`` on every flow and task state change.

        ``starts=False``: not told of task and step starts (a task's ``PENDING → RUNNING``):
        the end of each attempt carries its ``attempt``, ``started_at`` and ``elapsed``
        instead. ``min_elapsed`` (seconds, with ``starts=False``): not told of an attempt
        that succeeded faster than that either (failures, interruptions, reverts, flow
        changes and a child flow's step are always told). The two make a listener that only
        needs slow or failed attempts cost next to nothing on a fast flow's hot path; see
        :class:`flowcoord.otel.Tracing`."""
        self._listeners.add(listener, starts=starts, min_elapsed=min_elapsed)

    def add_flush_listener(self, listener: Callable[[int, float, bool], None]) -> None:
        """Call ``listener(entries, seconds, failed)`` after each journal flush (one backend
        append carrying the entries of every flow queued meanwhile): for metrics. Not called
        on the in-memory journal, which writes each entry at once."""
        self._flush_listeners.append(listener)

    async def send_event(
        self, flow_id: str, topic: str, value: Any = None, *, key: str | None = None
    ) -> SentEvent:
        """Send ``value`` to flow ``flow_id`` under ``topic``: the workflow's next
        ``ctx.wait_event(topic)`` returns it (a run of this engine at once; of another at once
        when the journal tells of sends, as PostgreSQL does, else within about a second).
        Durable when it returns; idempotent under ``key`` (default: a new one each call).
        :class:`~flowcoord.FlowNotFound` if the journal has no such flow."""
        return await self.mailbox.send(flow_id, topic, value, key=key)

    # -- running -------------------------------------------------------------------------------

    def compile(self, flow: Flow) -> Plan:
        """Validate ``flow`` (cached per flow object, for the last few flows compiled)."""
        plans = self._plans
        plan = plans.get(id(flow))
        if plan is not None and plan.flow is flow:
            plans.move_to_end(id(flow))
            return plan
        plan = plans[id(flow)] = compile_flow(flow)
        plans.move_to_end(id(flow))
        while len(plans) > _PLAN_CACHE:
            plans.popitem(last=False)
        return plan

    async def run(
        self,
        flow: Flow | Workflow,
        store: Mapping[str, Any] | None = None,
        *,
        flow_id: str | None = None,
        token: int = 0,
        concurrency: int | None = None,
    ) -> FlowOutcome:
        """Run ``flow`` to the end, or resume it if ``flow_id`` is already journaled.

        Returns the outcome on success. On failure the flow is reverted and the original
        exception is raised (a :class:`FlowFailed` group when there were several, or revert
        failures). ``token`` is the ownership fencing token stamped on every entry.
        """
        run = await self._prepare(flow, store, flow_id, token, concurrency)
        return await self._drive(run, FlowHandle(run))

    async def resume(
        self, flow: Flow | Workflow, flow_id: str, *, token: int = 0, concurrency: int | None = None
    ) -> FlowOutcome:
        """Resume the journaled flow ``flow_id`` (a crash, a take-over) and run it to the end,
        as :meth:`run` would, but without first trying to create it: for big flows that
        saves journaling its definition again. :class:`FlowNotFound` if it is not journaled.
        """
        run = await self._prepare(flow, None, flow_id, token, concurrency, resume=True)
        return await self._drive(run, FlowHandle(run))

    async def take_over(
        self, flow: Flow | Workflow, flow_id: str, *, cancel: bool = False
    ) -> FlowHandle:
        """Take a journaled, unfinished flow over from whoever ran it (an engine that died,
        or a stale one) and run it here in the background: the journal is fenced with the
        next token, so the previous owner can never write to it again, and the flow resumes
        (or, with ``cancel``, is cancelled: reverted, ending CANCELLED).
        :class:`FlowNotFound` if there is no such flow, :class:`FlowFinished` if it has
        ended, :class:`FlowRunning` if this engine runs it already.

        The journal side of a take-over: it fences whoever writes to the flow, dead or
        alive, and knows nothing of job boards. Where flows are claimed from a board, take
        over through :func:`flowcoord.coordination.take_over`, which first refuses a flow
        whose claim a live owner holds (unless forced) and then calls this; the CLI's
        ``flows resume|cancel`` and the HTTP API's ``resume``/``cancel`` go through it."""
        check_flow_id(flow_id)
        rec = await self.backend.get_flow(flow_id)
        if rec is None:
            raise FlowNotFound(f"no flow {flow_id!r} in the journal", flow_id=flow_id)
        if is_finished(rec.state):
            action = "cancel" if cancel else "resume"
            raise FlowFinished(
                f"flow {flow_id} has finished ({rec.state}); there is nothing to {action}",
                flow_id=flow_id,
                state=rec.state,
            )
        handle = await self.start(flow, flow_id=flow_id, token=rec.token + 1, resume=True)
        if cancel:
            handle.cancel()
        return handle

    async def start(
        self,
        flow: Flow | Workflow,
        store: Mapping[str, Any] | None = None,
        *,
        flow_id: str | None = None,
        token: int = 0,
        concurrency: int | None = None,
        resume: bool = False,
    ) -> FlowHandle:
        """Validate and journal ``flow``, then run it in the background; returns a handle,
        which :meth:`handle` knows from then on until the run ends. ``resume=True``:
        ``flow_id`` is journaled already, resume it (see :meth:`resume`). An engine runs a
        flow id once at a time: :class:`~flowcoord.errors.FlowRunning` if ``flow_id`` is
        being started or is running here already."""
        if self._tg is None:
            raise JournalUnavailable("the engine is not running; use 'async with Engine(...)'")
        run = await self._prepare(flow, store, flow_id, token, concurrency, resume=resume)
        handle = FlowHandle(run)
        self._handles[run.flow_id] = handle  # visible to handle() as soon as start() returns
        self._tg.start_soon(self._drive_quietly, run, handle)
        return handle

    async def check_replay(self, flow: Workflow, flow_id: str) -> NonDeterministicWorkflow | None:
        """Replay the journaled workflow ``flow_id`` against this code without running a
        step or writing anything: the :class:`~flowcoord.errors.NonDeterministicWorkflow`
        a resume would raise (position, journaled and called step), or None if it would
        replay. Run it over unfinished flows before deploying new code
        (``flowcoord check-compat``)."""
        return await check_workflow(self, flow, check_flow_id(flow_id))

    def handle(self, flow_id: str) -> FlowHandle | None:
        """The handle of a flow this engine is running now."""
        return self._handles.get(flow_id)

    @property
    def running(self) -> list[FlowHandle]:
        return list(self._handles.values())

    async def status(self, flow_id: str) -> FlowReplay:
        """What the journal says about ``flow_id``."""
        entries = await self.journal.read(flow_id)
        if not entries:
            raise FlowNotFound(f"no flow {flow_id!r} in the journal", flow_id=flow_id)
        return replay(flow_id, entries, self.codec)

    async def fork(
        self,
        flow: Flow | Workflow,
        source_flow_id: str,
        *,
        from_task: str | int | None = None,
        flow_id: str | None = None,
        token: int = 0,
    ) -> FlowHandle:
        """Start a new flow that re-runs ``source_flow_id`` from ``from_task`` on.

        The new flow gets the source's inputs, and the journaled results of every task that
        is neither ``from_task`` nor downstream of it, provided that result still stands: the
        task succeeded and was not reverted (or was "reverted" without a revert function).
        Everything else runs again. Without ``from_task`` every task runs again.
        """
        if flow_id is not None:
            check_flow_id(flow_id, what="new flow id")
        if isinstance(flow, Workflow):  # from_task: a step's position or key ("3:attach")
            new = flow_id or uuid.uuid4().hex
            await fork_workflow(self, flow, source_flow_id, from_task, new, token)
            return await self.start(flow, flow_id=new, token=token)
        if isinstance(from_task, int):
            raise FlowDefinitionError(
                "a pattern flow is forked from a task name", flow=flow.name, flow_id=source_flow_id
            )
        new_id = flow_id or uuid.uuid4().hex
        await fork_flow(self, flow, source_flow_id, from_task, new_id, token)
        return await self.start(flow, flow_id=new_id, token=token)

    async def _drive_quietly(self, run: FlowRun | WorkflowRun, handle: FlowHandle) -> None:
        with contextlib.suppress(Exception):  # delivered through handle.wait()
            await self._drive(run, handle)

    async def _drive(self, run: FlowRun | WorkflowRun, handle: FlowHandle) -> FlowOutcome:
        self._handles[run.flow_id] = handle
        outcome: FlowOutcome | None = None
        error: BaseException | None = None
        this = current_flow.set(run.flow_id)
        try:
            store = await run.run()
            result = run.result if isinstance(run, WorkflowRun) else None
            outcome = FlowOutcome(run.flow_id, run.name, run.state, dict(store), result)
            return outcome
        except BaseException as exc:
            error = exc
            raise
        finally:
            current_flow.reset(this)
            if self._handles.get(run.flow_id) is handle:
                del self._handles[run.flow_id]
            handle._finish(outcome, error)

    async def _prepare(
        self,
        flow: Flow | Workflow,
        store: Mapping[str, Any] | None,
        flow_id: str | None,
        token: int,
        concurrency: int | None,
        *,
        resume: bool = False,
        parent: tuple[str, str] | None = None,
    ) -> FlowRun | WorkflowRun:
        if isinstance(flow, Workflow):
            flow_id = self._reserve(flow.name, flow_id, resume)
            try:
                return await load_workflow(
                    self, flow, dict(store or {}), flow_id, token, resume, parent=parent
                )
            finally:
                self._reserved.discard(flow_id)
        if not isinstance(flow, Flow):
            raise FlowDefinitionError(
                f"engine.run() needs a Flow, got {flow!r}",
                hint="wrap tasks in flowcoord.Linear/Unordered/Graph",
            )
        journal = self.journal
        plan = self.compile(flow)
        inputs = dict(store or {})
        flow_id = self._reserve(flow.name, flow_id, resume)
        try:
            return await load_flow(
                self, journal, flow, plan, inputs, flow_id, token, concurrency, resume, parent
            )
        finally:
            self._reserved.discard(flow_id)

    async def _start_child(
        self,
        flow: Flow | Workflow,
        inputs: Mapping[str, Any] | None,
        scope: ChildScope,
        *,
        resume: bool = False,
    ) -> FlowHandle:
        """Start (or resume, when journaled) the child flow of ``scope`` in the background,
        under its parent's token; the handle of the run if it runs here already."""
        child_id = scope.child_id
        running = self._handles.get(child_id)
        if running is not None:
            return running
        if self._tg is None:
            raise JournalUnavailable("the engine is not running; use 'async with Engine(...)'")
        parent = (scope.parent_id, scope.key)
        run = await self._prepare(
            flow, inputs, child_id, scope.token, None, resume=resume, parent=parent
        )
        handle = FlowHandle(run)
        self._handles[child_id] = handle
        self._tg.start_soon(self._drive_quietly, run, handle)
        return handle

    async def _reopen_for_revert(self, child_id: str, scope: ChildScope) -> None:
        """A child that succeeded, to be undone because its parent compensates: journal it
        REVERTING (cancelled by its parent), so resuming it reverts every step it did."""
        if scope.token:
            await self.backend.fence(child_id, scope.token)
        entries = await self.journal.read(child_id)
        if not entries:
            raise FlowNotFound(f"no flow {child_id!r} in the journal", flow_id=child_id)
        writer = self.journal.writer(child_id, token=scope.token, next_seq=entries[-1].seq + 1)
        data = self.codec.encode(
            {"reason": "cancelled", "by": "parent", "parent": scope.parent_id}, what="reason"
        )
        await writer.write(EventKind.FLOW_STATE, None, data, FlowState.REVERTING.value)

    def _wrap_step(
        self, key: str, kind: str, fn: Callable[..., Any], limit: int | None = None
    ) -> Callable[..., Any]:
        """A workflow step's body (``kind`` "run") or compensation ("revert") as it is called;
        the crash explorer's instrumented engine records the calls here."""
        return fn

    def _reserve(self, name: str, flow_id: str | None, resume: bool) -> str:
        """The flow id a run will have (checked, or new), reserved on this engine."""
        if resume and not flow_id:
            raise FlowDefinitionError("resuming a flow needs its flow_id", flow=name)
        flow_id = uuid.uuid4().hex if flow_id is None else check_flow_id(flow_id)
        if flow_id in self._handles or flow_id in self._reserved:  # starting or running
            raise FlowRunning(f"flow {flow_id} is already running on this engine", flow_id=flow_id)
        self._reserved.add(flow_id)
        return flow_id
