"""Creating a workflow's journal, or reading it back, and making its run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._journal._events import Entry, EventKind, FlowRecord
from .._model._workflow import Workflow
from .._states import FlowState
from ..errors import FlowDefinitionError, FlowNotFound
from ._wf_journal import WorkflowJournal
from ._workflow import WorkflowRun

if TYPE_CHECKING:
    from ._engine import Engine

__all__ = ["load_workflow"]


async def load_workflow(
    engine: Engine, wf: Workflow, inputs: dict[str, Any], flow_id: str, token: int, resume: bool
) -> WorkflowRun:
    """Create (or read back) the workflow ``flow_id`` and make its run (the engine's)."""
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
        data = engine.codec.encode(
            {"name": wf.name, "inputs": inputs, "workflow": True},
            what=f"inputs of workflow {wf.name!r}",
        )
        record = FlowRecord(flow_id, wf.name, FlowState.PENDING.value, token)
        first = Entry(flow_id, 0, EventKind.FLOW_CREATED, None, data, None, token)
        journaled = not await journal.create_flow(record, [first])
    entries: list[Entry] = []
    if journaled:
        if token:
            await engine.backend.fence(flow_id, token)
        entries = await journal.read(flow_id)
        if not entries:
            raise FlowNotFound(f"no flow {flow_id!r} in the journal", flow_id=flow_id)
    wj = WorkflowJournal.fold(flow_id, entries, engine.codec)
    if journaled and wj.name != wf.name:
        raise FlowDefinitionError(
            f"flow {flow_id} in the journal is {wj.name!r}, not {wf.name!r}",
            flow=wf.name,
            flow_id=flow_id,
            hint="resume a journaled flow with the workflow it was started with",
        )
    if journaled:
        inputs = wj.inputs
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
    )
