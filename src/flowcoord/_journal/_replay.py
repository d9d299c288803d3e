"""Replay: rebuild a flow's state from its journal entries."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .._codec import Codec
from .._failure import Failure
from .._states import FlowState, TaskState
from ._events import Entry, EventKind

__all__ = ["FlowReplay", "TaskRecord", "replay"]


@dataclass(slots=True)
class TaskRecord:
    state: TaskState = TaskState.PENDING
    attempt: int = 0
    result: Any = None
    failure: Failure | None = None
    revert_failure: Failure | None = None
    started_at: float | None = None
    finished_at: float | None = None


@dataclass(slots=True)
class FlowReplay:
    """What the journal says about one flow."""

    flow_id: str
    name: str = ""
    state: FlowState = FlowState.PENDING
    inputs: dict[str, Any] = field(default_factory=dict)
    task_names: list[str] = field(default_factory=list)
    tasks: dict[str, TaskRecord] = field(default_factory=dict)
    retries: dict[str, int] = field(default_factory=dict)  # scope key → attempts made
    failures: dict[str, Failure] = field(default_factory=dict)
    last_seq: int = -1
    created_at: float | None = None
    updated_at: float | None = None

    def task(self, name: str) -> TaskRecord:
        rec = self.tasks.get(name)
        if rec is None:
            rec = self.tasks[name] = TaskRecord()
        return rec

    @property
    def exists(self) -> bool:
        return self.last_seq >= 0


def replay(flow_id: str, entries: Iterable[Entry], codec: Codec | None = None) -> FlowReplay:
    """Fold ``entries`` (ordered by seq) into a :class:`FlowReplay`. Data is JSON, decoded
    with ``codec``; nothing is unpickled or evaluated."""
    codec = codec or Codec()
    r = FlowReplay(flow_id)
    for e in entries:
        r.last_seq = max(r.last_seq, e.seq)
        r.updated_at = e.at
        kind = e.kind
        if kind is EventKind.TASK_STARTED:
            rec = r.task(e.task or "")
            rec.state = TaskState.RUNNING
            d = e.data
            if d.startswith('{"attempt":') and d[11:-1].isdigit() and d[-1] == "}":
                rec.attempt = int(d[11:-1])  # what the engine writes: no JSON parse needed
            else:
                rec.attempt = codec.decode(d).get("attempt", rec.attempt + 1)
            rec.started_at = e.at
            rec.finished_at = None
        elif kind is EventKind.TASK_SUCCEEDED:
            rec = r.task(e.task or "")
            rec.state = TaskState.SUCCESS
            d = e.data
            if d.startswith('{"result":null,'):
                rec.result = None
            else:
                data = codec.decode(d)
                rec.result = data.get("result")
                if not rec.attempt:  # no task.started seen (e.g. a result copied by a fork)
                    rec.attempt = int(data.get("attempt", 0))
            rec.failure = None
            rec.finished_at = e.at
        elif kind is EventKind.TASK_FAILED:
            rec = r.task(e.task or "")
            rec.state = TaskState.FAILURE
            rec.failure = Failure.from_dict(codec.decode(e.data).get("failure", {}))
            rec.finished_at = e.at
            r.failures[e.task or ""] = rec.failure
        elif kind is EventKind.REVERT_STARTED:
            r.task(e.task or "").state = TaskState.REVERTING
        elif kind is EventKind.REVERT_DONE:
            r.task(e.task or "").state = TaskState.REVERTED
        elif kind is EventKind.REVERT_FAILED:
            rec = r.task(e.task or "")
            rec.state = TaskState.REVERT_FAILURE
            rec.revert_failure = Failure.from_dict(codec.decode(e.data).get("failure", {}))
        elif kind is EventKind.FLOW_STATE:
            r.state = FlowState(e.state or r.state)
        elif kind is EventKind.RETRY:
            data = codec.decode(e.data)
            r.retries[e.task or ""] = int(data.get("attempt", 0))
            if data.get("decision") == "retry":
                for name in data.get("reset", ()):
                    r.tasks[name] = TaskRecord()
                    r.failures.pop(name, None)
        elif kind is EventKind.FLOW_CREATED:
            data = codec.decode(e.data)
            r.name = data.get("name", "")
            r.inputs = dict(data.get("inputs", {}))
            r.task_names = list(data.get("tasks", []))
            r.created_at = e.at
        elif kind is EventKind.STORE:
            r.inputs.update(codec.decode(e.data).get("values", {}))
    return r
