"""Creating a workflow's journal, or reading it back, and making its run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._journal._events import Entry, EventKind, FlowRecord
from .._model._workflow import Workflow
from .._states import FlowState
from ..errors import (
    FlowDefinitionError,
    FlowExists,
    FlowNotFound,
    NonDeterministicWorkflow,
)
from ._children import check_parent
from ._listeners import Listeners
from ._wf_journal import WorkflowJournal, split_key, step_key
from ._workflow import WorkflowRun

if TYPE_CHECKING:
    from ._engine import Engine

__all__ = ["check_workflow", "fork_workflow", "load_workflow"]

_STARTED, _SUCCEEDED = EventKind.TASK_STARTED, EventKind.TASK_SUCCEEDED


def _created(
    engine: Engine, wf: Workflow, flow_id: str, inputs: Any, token: int, **extra: Any
) -> tuple[FlowRecord, Entry]:
    """A new workflow's summary row and ``flow.created`` entry, for every way one is created
    (run, start, fork). No task list: a workflow's steps are known as its code calls them."""
    data = engine.codec.encode(
        {"name": wf.name, "inputs": inputs, "workflow": True, **extra},
        what=f"inputs of workflow {wf.name!r}",
    )
    record = FlowRecord(flow_id, wf.name, FlowState.PENDING.value, token)
    return record, Entry(flow_id, 0, EventKind.FLOW_CREATED, None, data, None, token)


async def _journaled(engine: Engine, wf: Workflow, flow_id: str) -> WorkflowJournal:
    """The journal of workflow ``flow_id``, folded; FlowNotFound, or a FlowDefinitionError
    when the journal holds another flow than ``wf``."""
    entries = await engine.journal.read_for_resume(flow_id)  # through its checkpoints
    if not entries:
        raise FlowNotFound(f"no flow {flow_id!r} in the journal", flow_id=flow_id)
    wj = WorkflowJournal.fold(flow_id, entries, engine.codec)
    if wj.name != wf.name:
        raise FlowDefinitionError(
            f"flow {flow_id} in the journal is {wj.name!r}, not {wf.name!r}",
            flow=wf.name,
            flow_id=flow_id,
            hint="resume a journaled flow with the workflow it was started with",
        )
    return wj


async def load_workflow(
    engine: Engine,
    wf: Workflow,
    inputs: dict[str, Any],
    flow_id: str,
    token: int,
    resume: bool,
    *,
    parent: tuple[str, str] | None = None,
) -> WorkflowRun:
    """Create (or read back) the workflow ``flow_id`` and make its run (the engine's);
    ``parent``: the parent's flow id and step, for a child flow."""
    journal = engine.journal
    journaled = resume
    if not resume:
        try:
            wf.check_inputs(inputs)
        except FlowDefinitionError:
            if await engine.backend.get_flow(flow_id) is None:
                raise
            journaled = True
    if not journaled:
        link = {} if parent is None else {"parent": parent[0], "parent_step": parent[1]}
        record, first = _created(engine, wf, flow_id, inputs, token, **link)
        journaled = not await journal.create_flow(record, [first])
    if journaled:
        if token:
            await engine.backend.fence(flow_id, token)
        wj = await _journaled(engine, wf, flow_id)
        check_parent(wf.name, flow_id, wj.parent, parent)
        inputs = wj.inputs
    else:
        wj = WorkflowJournal(flow_id, wf.name)  # just created: nothing but flow.created
    writer = journal.writer(flow_id, token=token, next_seq=wj.last_seq + 1 if journaled else 1)
    return WorkflowRun(
        wf,
        flow_id,
        writer,
        inputs,
        wj,
        revert_timeout=engine.revert_timeout,
        listeners=engine._listeners,
        wrap=engine._wrap_step,
        engine=engine,
        checkpoint_every=engine.checkpoint_every,
    )


async def fork_workflow(
    engine: Engine,
    wf: Workflow,
    source_flow_id: str,
    from_step: str | int | None,
    new_id: str,
    token: int,
) -> None:
    """Journal ``new_id``: the source workflow's inputs and its steps before ``from_step``
    (a position, or a step key such as ``"3:attach"``) whose results still stand —
    succeeded and not compensated — up to the first that does not; the rest runs again."""
    src = await _journaled(engine, wf, source_flow_id)
    stop = max(src.steps, default=0) + 1
    if from_step is not None:
        if isinstance(from_step, int):
            pos: int | None = from_step
        else:
            where = split_key(from_step)
            pos = where[0] if where is not None else None
        if pos is None or pos not in src.steps:
            raise FlowDefinitionError(
                f"flow {source_flow_id} has no step {from_step!r}",
                flow=wf.name,
                flow_id=source_flow_id,
                hint="name a step by its position or its key, e.g. '3:attach'",
            )
        stop = pos
    codec = engine.codec
    record, first = _created(engine, wf, new_id, src.inputs, token, forked_from=source_flow_id)
    copied = [first]
    for pos in range(1, stop):
        rec = src.steps.get(pos)
        if rec is None or not rec.succeeded or (rec.revertible and rec.reverted):
            break
        key = step_key(pos, rec.name)
        if rec.started:
            what = {"attempt": rec.attempt, "args": rec.args, "group": rec.group}
            started = codec.encode({**what, "revert": rec.revertible}, what="fork")
            copied.append(
                Entry(new_id, len(copied), EventKind.TASK_STARTED, key, started, None, token)
            )
        done = codec.encode(
            {"result": rec.result, "attempt": rec.attempt, "forked": source_flow_id}, what="fork"
        )
        copied.append(Entry(new_id, len(copied), EventKind.TASK_SUCCEEDED, key, done, None, token))
    if not await engine.journal.create_flow(record, copied):
        raise FlowExists(f"flow {new_id} exists already", flow_id=new_id)


async def check_workflow(
    engine: Engine, wf: Workflow, flow_id: str
) -> NonDeterministicWorkflow | None:
    """Replay the journaled workflow ``flow_id`` against ``wf`` without running a step or
    writing anything; the mismatch, if its code no longer matches the journal."""
    wj = await _journaled(engine, wf, flow_id)
    writer = engine.journal.writer(flow_id, token=0, next_seq=wj.last_seq + 1)
    writer.revoke(FlowDefinitionError("a compatibility check writes nothing", flow_id=flow_id))
    run = WorkflowRun(
        wf,
        flow_id,
        writer,
        wj.inputs,
        wj,
        revert_timeout=engine.revert_timeout,
        listeners=Listeners(),
    )
    return await run.replay_only()
