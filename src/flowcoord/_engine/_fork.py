"""Forking a pattern flow: a new flow with the source's inputs and the results that still
stand of every task upstream of the one to re-run from."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._journal._events import Entry, EventKind
from .._journal._replay import FlowReplay
from .._model._compile import Plan
from .._model._flow import Flow
from .._states import TaskState
from ..errors import FlowDefinitionError, FlowExists

if TYPE_CHECKING:
    from ._engine import Engine

__all__ = ["check_same_flow", "fork_flow"]


async def fork_flow(
    engine: Engine, flow: Flow, source_flow_id: str, from_task: str | None, new_id: str, token: int
) -> None:
    """Journal ``new_id`` as a fork of ``source_flow_id`` (see :meth:`Engine.fork`)."""
    plan = engine.compile(flow)
    src = await engine.status(source_flow_id)
    check_same_flow(flow, plan, src)
    if from_task is not None and from_task not in plan.by_name:
        raise FlowDefinitionError(
            f"flow {source_flow_id} has no task {from_task!r}",
            flow=flow.name,
            tasks=[from_task],
            flow_id=source_flow_id,
        )
    rerun: set[int] = set(range(len(plan.nodes)))
    if from_task is not None:
        rerun = set()
        stack = [plan.by_name[from_task]]
        while stack:
            i = stack.pop()
            if i not in rerun:
                rerun.add(i)
                stack.extend(plan.nodes[i].succs)
    entries: list[Entry] = []
    seq = 1
    for node in plan.nodes:
        rec = src.tasks.get(node.name)
        if node.task is None or node.index in rerun or rec is None:
            continue
        stands = rec.state is TaskState.SUCCESS or (
            rec.state is TaskState.REVERTED and not node.task.has_revert
        )
        if rec.result is None and rec.state is not TaskState.SUCCESS:
            stands = False
        if not stands:
            continue
        data = engine.codec.encode(
            {"result": rec.result, "attempt": rec.attempt, "forked": source_flow_id},
            what=f"result of {node.name!r}",
        )
        entries.append(Entry(new_id, seq, EventKind.TASK_SUCCEEDED, node.name, data, None, token))
        seq += 1
    from ._load import created  # it imports this module's check_same_flow

    record, first = created(
        engine,
        new_id,
        flow,
        plan,
        src.inputs,
        token,
        what="fork",
        forked_from=source_flow_id,
        from_task=from_task,
    )
    if not await engine.journal.create_flow(record, [first, *entries]):
        raise FlowExists(f"flow {new_id} exists already", flow_id=new_id)


def check_same_flow(flow: Flow, plan: Plan, rep: FlowReplay) -> None:
    if rep.name and rep.name != flow.name:
        raise FlowDefinitionError(
            f"flow {rep.flow_id} in the journal is {rep.name!r}, not {flow.name!r}",
            flow=flow.name,
            flow_id=rep.flow_id,
            hint="resume a journaled flow with the flow definition it was started with",
        )
    if rep.task_names and sorted(rep.task_names) != sorted(plan.task_names):
        ours, theirs = set(plan.task_names), set(rep.task_names)
        raise FlowDefinitionError(
            f"flow {rep.flow_id} was journaled with other tasks: missing here "
            f"{sorted(theirs - ours)}, new here {sorted(ours - theirs)}",
            flow=flow.name,
            flow_id=rep.flow_id,
            hint="resume with the same flow definition (version your flow names when they change)",
        )
