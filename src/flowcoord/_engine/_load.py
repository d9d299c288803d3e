"""Creating a pattern flow's journal, or reading it back, and making its run (the engine's;
``_wf_load`` does the same for workflows)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._journal._events import Entry, EventKind, FlowRecord
from .._journal._group_commit import GroupCommit
from .._journal._replay import FlowReplay, replay
from .._model._compile import Plan
from .._model._flow import Flow
from .._states import FlowState
from ..errors import FlowDefinitionError, FlowNotFound
from ._children import check_parent
from ._fork import check_same_flow
from ._runner import FlowRun

if TYPE_CHECKING:
    from ._engine import Engine

__all__ = ["created", "load_flow"]


def created(
    engine: Engine,
    flow_id: str,
    flow: Flow,
    plan: Plan,
    inputs: Mapping[str, Any],
    token: int,
    *,
    what: str,
    **extra: Any,
) -> tuple[FlowRecord, Entry]:
    """A new flow's summary row and ``flow.created`` entry (seq 0), for every way a flow
    is created (run, start, fork)."""
    data = engine.codec.encode(
        {"name": flow.name, "inputs": inputs, "tasks": plan.task_names, **extra}, what=what
    )
    record = FlowRecord(flow_id, flow.name, FlowState.PENDING.value, token)
    return record, Entry(flow_id, 0, EventKind.FLOW_CREATED, None, data, None, token)


async def load_flow(
    engine: Engine,
    journal: GroupCommit,
    flow: Flow,
    plan: Plan,
    inputs: dict[str, Any],
    flow_id: str,
    token: int,
    concurrency: int | None,
    resume: bool,
    parent: tuple[str, str] | None = None,
) -> FlowRun:
    rep: FlowReplay | None = None
    journaled = resume
    if not resume:
        try:
            plan.check_inputs(inputs)
        except FlowDefinitionError:
            # resuming a journaled flow needs no inputs; a new flow does
            if await engine.backend.get_flow(flow_id) is None:
                raise
            journaled = True
    if not journaled:  # create first: one round trip for a new flow
        link = {} if parent is None else {"parent": parent[0], "parent_step": parent[1]}
        record, first = created(
            engine, flow_id, flow, plan, inputs, token, what=f"inputs of flow {flow.name!r}", **link
        )
        journaled = not await journal.create_flow(record, [first])
    if journaled:
        if token:
            await engine.backend.fence(flow_id, token)
        entries = await journal.read_for_resume(flow_id)
        if not entries:
            raise FlowNotFound(f"no flow {flow_id!r} in the journal", flow_id=flow_id)
        rep = replay(flow_id, entries, engine.codec, compact=True)
        check_same_flow(flow, plan, rep)
        check_parent(flow.name, flow_id, rep.parent, parent)
        inputs = rep.inputs
    writer = journal.writer(
        flow_id, token=token, next_seq=rep.last_seq + 1 if rep is not None else 1
    )
    run = FlowRun(
        plan,
        flow_id,
        writer,
        inputs,
        concurrency=concurrency or engine.concurrency,
        revert_timeout=engine.revert_timeout,
        listeners=engine._listeners,
        replay=rep,
        checkpoint_every=engine.checkpoint_every,
    )
    run.engine = engine
    return run
