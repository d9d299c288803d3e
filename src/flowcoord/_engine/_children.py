"""Child flows: a pattern flow or a workflow run as one step of a workflow (``ctx.run``) or
as one task of a pattern flow (:func:`flowcoord.child`).

A child has a deterministic id, its parent's id and the step's key (``"<parent>.<pos>"`` for
a workflow's step, ``"<parent>.<task>"`` for a pattern task, ``.<attempt>`` after a retry),
so a resumed parent finds the child its crashed run started and resumes it instead of
starting another. The parent journals the step's start (with the child's id) durably before
the child is created, the child's ``flow.created`` names its parent: the link is journaled
both ways. The child runs on the parent's engine under the parent's fencing token: a new
owner of the parent fences the child too when it resumes it.

The step is compensable: when the parent compensates, a child that succeeded is cancelled
(its own steps reverted newest first, ending CANCELLED), one still running is cancelled, one
that failed has reverted itself already. A cancelled parent cancels its running children and
waits for their rollback; suspend, stop and resume reach them too.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio

from .._failure import Failure
from .._ids import is_flow_id
from .._journal._events import EventKind, FlowRecord
from .._model._flow import Flow
from .._model._task import Task, _provides_spec
from .._model._workflow import Workflow
from .._states import FlowState
from ..errors import (
    ChildFlowConflict,
    JournalError,
    OwnershipLost,
    RevertFailed,
    WorkflowContextError,
)

if TYPE_CHECKING:
    from ._engine import Engine
    from ._handle import FlowHandle

__all__ = [
    "ChildFlow",
    "ChildScope",
    "ChildStopped",
    "check_child",
    "check_parent",
    "child",
    "child_flow_id",
    "current_child",
    "current_flow",
]


@dataclass(slots=True)
class Family:
    """What a parent run keeps of its running children, to pass its controls on."""

    running: dict[str, FlowHandle] = field(default_factory=dict)
    cancelled: bool = False
    lost: str | None = None

    def cancel(self) -> None:
        self.cancelled = True
        for h in list(self.running.values()):
            h.cancel()

    def abort(self, reason: str) -> None:
        self.lost = reason
        for h in list(self.running.values()):
            h.abort(reason)

    def suspend(self) -> None:
        for h in list(self.running.values()):
            h.suspend()

    def stop(self) -> None:
        for h in list(self.running.values()):
            h.stop()

    def resume(self) -> None:
        for h in list(self.running.values()):
            h.resume()


@dataclass(frozen=True, slots=True)
class ChildScope:
    """Where a child step runs: set (in a context variable) around the step's call and its
    compensation by the parent's run."""

    engine: Engine
    parent_id: str
    key: str  # the step's key in the parent ("3:provision") or the task's name
    attempt: int
    token: int
    family: Family
    fixed_id: str | None = None  # the child journaled by an attempt a crash cut short

    @property
    def child_id(self) -> str:
        if self.fixed_id is not None:
            return self.fixed_id
        return child_flow_id(self.parent_id, self.key, self.attempt)


current_child: ContextVar[ChildScope | None] = ContextVar("flowcoord_child", default=None)

#: The id of the flow whose run the current task belongs to (set by the engine per run): the
#: crash explorer tells a child's steps from its parent's by it.
current_flow: ContextVar[str | None] = ContextVar("flowcoord_flow", default=None)


class ChildStopped(Exception):
    """The child was stopped (or suspended and stopped) with its parent: the parent's step
    did not end; the parent's run ends SUSPENDED too, and resuming it resumes the child."""


def check_parent(
    name: str, flow_id: str, journaled: str | None, parent: tuple[str, str] | None
) -> None:
    """A child flow's id must be journaled as that parent's child (or not at all)."""
    if parent is not None and journaled != parent[0]:
        whose = "no parent" if journaled is None else f"parent {journaled}"
        raise ChildFlowConflict(
            f"flow {flow_id} is journaled already with {whose}, so it cannot be the child of "
            f"step {parent[1]!r} of flow {parent[0]}",
            flow=name,
            flow_id=flow_id,
            hint="a child's id is its parent's id and its position: give the other flow "
            "another id, or run the parent under another id",
        )


def child_flow_id(parent_id: str, key: str, attempt: int = 1) -> str:
    """The id of the child started by step ``key`` (attempt ``attempt``) of ``parent_id``."""
    raw = f"{parent_id}.{key}" if attempt <= 1 else f"{parent_id}.{key}.{attempt}"
    if is_flow_id(raw):
        return raw
    digest = hashlib.sha256(raw.encode()).hexdigest()[:16]
    return f"{parent_id[:100]}.{digest}"


def _inputs_of(flow: Flow | Workflow) -> tuple[tuple[str, ...], tuple[str, ...], bool]:
    """The child's required and optional inputs, and whether it takes any others."""
    if isinstance(flow, Workflow):
        return flow.requires, flow.optional, flow.takes_any
    from .._model._compile import compile_flow

    plan = compile_flow(flow)
    provided = set(plan.providers) | set(plan.scope_providers)
    needed: list[str] = []
    for node in plan.nodes:
        t = node.task
        if t is not None:
            needed += [n for n in t.requires if n not in provided and n not in needed]
    for scope in plan.scopes:
        needed += [n for n in scope.retry.requires if n not in provided and n not in needed]
    optional: list[str] = []
    for node in plan.nodes:
        t = node.task
        if t is not None:
            optional += [n for n in t.optional if n not in needed and n not in optional]
    return tuple(needed), tuple(optional), False


class ChildFlow(Task):
    """A pattern flow or a workflow run as a task: its inputs are the child's inputs, its
    result the workflow's result (a pattern flow's: its store), and its revert undoes the
    child (see the module's doc). Made by :func:`child`, and by ``ctx.run``."""

    def __init__(
        self,
        flow: Flow | Workflow,
        *,
        name: str | None = None,
        provides: Any = None,
        rebind: Any = None,
        inject: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(flow, Flow | Workflow):
            raise WorkflowContextError(
                f"a child flow is a Flow or a Workflow, got {flow!r}",
                hint="pass a flowcoord.Linear/Unordered/Graph or an @fc.workflow function",
            )
        self.flow = flow
        required, optional, takes_any = _inputs_of(flow)
        params = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY) for n in required]
        params += [
            inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=None) for n in optional
        ]
        if takes_any:
            params.append(inspect.Parameter("inputs", inspect.Parameter.VAR_KEYWORD))
        self._optional = frozenset(optional)
        sig = inspect.Signature(params)

        async def execute(**inputs: Any) -> Any:
            return await self._run(inputs)

        async def revert(**given: Any) -> None:
            await self._undo(given.get("flow_failures") or {})

        execute.__signature__ = sig  # type: ignore[attr-defined]
        self._execute = execute
        self._revert = revert
        super().__init__(name or flow.name, provides=provides, rebind=rebind, inject=inject)

    def _execute_fn(self) -> Any:
        return self._execute

    def _revert_fn(self) -> Any:
        return self._revert

    def copy(self, name: str) -> Task:
        return ChildFlow(
            self.flow,
            name=name,
            provides=_provides_spec(self),
            rebind=self._rebind_spec,
            inject=self.inject,
        )

    async def _run(self, inputs: dict[str, Any]) -> Any:
        scope = _scope(self.name)
        # an optional input left out is not passed (the child's own default applies)
        given = {k: v for k, v in inputs.items() if not (k in self._optional and v is None)}
        handle = await scope.engine._start_child(self.flow, given, scope)
        family = scope.family
        family.running[handle.flow_id] = handle
        try:
            try:
                outcome = await handle.wait()
            except anyio.get_cancelled_exc_class():
                if family.cancelled and family.lost is None:  # the parent was cancelled
                    handle.cancel()
                    with (
                        anyio.CancelScope(shield=True),
                        anyio.move_on_after(scope.engine.revert_timeout),
                        contextlib.suppress(Exception),  # it ended as it did
                    ):
                        await handle.wait()
                raise
            except Exception:
                if handle.state is FlowState.SUSPENDED:
                    raise ChildStopped(f"child flow {handle.flow_id} was stopped") from None
                raise
        finally:
            if family.running.get(handle.flow_id) is handle:
                del family.running[handle.flow_id]
        if outcome.state is FlowState.SUSPENDED:
            raise ChildStopped(f"child flow {handle.flow_id} was stopped")
        if isinstance(self.flow, Workflow):
            return outcome.result
        return {k: v for k, v in outcome.store.items() if k not in inputs}

    async def _undo(self, flow_failures: Mapping[str, Failure]) -> None:
        scope = _scope(self.name)
        engine, child_id = scope.engine, scope.child_id
        try:
            rec = await check_child(scope, self.flow.name)
        except ChildFlowConflict:
            return  # another flow's: this step never ran a child (refused), nothing to undo
        if rec is None:
            return  # never created: there is nothing to undo
        state = FlowState(rec.state) if rec.state in FlowState.__members__ else None
        if state in (FlowState.REVERTED, FlowState.CANCELLED):
            return  # it undid itself
        if state is FlowState.FAILED:
            raise RevertFailed(
                Failure(
                    ("flowcoord.errors.RevertFailed",),
                    f"child flow {child_id} ended FAILED: some of its reverts failed",
                ),
                flow_id=scope.parent_id,
                task=scope.key,
            )
        if state is FlowState.SUCCESS:
            await engine._reopen_for_revert(child_id, scope)
        handle = await engine._start_child(self.flow, None, scope, resume=True)
        handle.cancel()
        try:
            await handle.wait()
        except (JournalError, OwnershipLost):
            raise  # it could not journal: its parent's run breaks, both stay for a resume
        except Exception:
            pass  # judged by the state it ended in (FlowCancelled, when undone)
        rec = await engine.backend.get_flow(child_id)
        if rec is None or rec.state != FlowState.CANCELLED.value:
            ended = "nothing" if rec is None else rec.state
            raise RevertFailed(
                Failure(
                    ("flowcoord.errors.RevertFailed",),
                    f"child flow {child_id} could not be undone: it ended {ended}",
                ),
                flow_id=scope.parent_id,
                task=scope.key,
            )


async def check_child(scope: ChildScope, name: str) -> FlowRecord | None:
    """The summary row of ``scope``'s child if it is journaled; :class:`ChildFlowConflict`
    if that id is journaled as another flow than this parent's child."""
    engine, child_id = scope.engine, scope.child_id
    rec = await engine.backend.get_flow(child_id)
    if rec is None:
        return None
    entries = await engine.journal.read(child_id)
    parent: Any = None
    if entries and entries[0].kind is EventKind.FLOW_CREATED:
        try:
            parent = engine.codec.decode(entries[0].data).get("parent")
        except Exception:
            parent = None
    check_parent(
        name, child_id, parent if isinstance(parent, str) else None, (scope.parent_id, scope.key)
    )
    return rec


def _scope(name: str) -> ChildScope:
    scope = current_child.get()
    if scope is None:
        raise WorkflowContextError(
            f"child flow {name!r} was called outside a flow's run",
            hint="run it as a step (ctx.run) or a task of a flow, on an engine",
        )
    return scope


def child(
    flow: Flow | Workflow,
    *,
    name: str | None = None,
    provides: Any = None,
    rebind: Any = None,
    inject: Mapping[str, Any] | None = None,
) -> ChildFlow:
    """A pattern flow or a workflow as a task of a pattern flow::

        fc.Linear("order", reserve, fc.child(provision, provides="vm"), notify)

    The child runs with its own journal (id: the parent's id and the task's name), its
    inputs taken from the parent's store like any task's; its result is what the workflow
    returned (a pattern flow's: the names it provided). Reverting the task undoes the child."""
    return ChildFlow(flow, name=name, provides=provides, rebind=rebind, inject=inject)
