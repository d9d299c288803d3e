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
    #: successes known from checkpoints only, as ``name: (attempt, result)``; kept apart
    #: (not in ``tasks``) by ``replay(..., compact=True)``, which resuming uses
    summed: dict[str, tuple[int, Any]] = field(default_factory=dict)

    def task(self, name: str) -> TaskRecord:
        rec = self.tasks.get(name)
        if rec is None:
            done = self.summed.pop(name, None)
            if done is None:
                rec = self.tasks[name] = TaskRecord()
            else:
                rec = self.tasks[name] = TaskRecord(TaskState.SUCCESS, done[0], done[1])
        return rec

    @property
    def exists(self) -> bool:
        return self.last_seq >= 0


def replay(
    flow_id: str, entries: Iterable[Entry], codec: Codec | None = None, *, compact: bool = False
) -> FlowReplay:
    """Fold ``entries`` (ordered by seq) into a :class:`FlowReplay`. Data is JSON, decoded
    with ``codec``; nothing is unpickled or evaluated. ``compact``: leave the successes
    that only checkpoints tell of in ``summed`` rather than make a record of each."""
    codec = codec or Codec()
    r = FlowReplay(flow_id)
    _fold(r, entries, codec)
    if not compact:
        for name in list(r.summed):
            r.task(name)  # makes the record, takes it out of summed
    return r


def _fold(r: FlowReplay, entries: Iterable[Entry], codec: Codec) -> None:
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
            data = codec.decode(e.data)
            rec.failure = Failure.from_dict(data.get("failure", {}))
            rec.attempt = int(data.get("attempt", rec.attempt))  # its task.started may be summed up
            rec.finished_at = e.at
            r.failures[e.task or ""] = rec.failure
        elif kind is EventKind.CHECKPOINT:
            # Successes summed up: the same as their task.succeeded entries (which a resume
            # does not read; a full read sees both, to the same effect).
            data = codec.decode(e.data)
            tasks, summed = r.tasks, r.summed
            for name, attempt, result in zip(
                data["tasks"], data["attempts"], data["results"], strict=True
            ):
                known = tasks.get(name)
                if known is None:
                    summed[name] = (attempt, result)
                else:
                    known.state, known.attempt, known.result, known.failure = (
                        TaskState.SUCCESS, attempt, result, None
                    )  # fmt: skip
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
                    r.summed.pop(name, None)
                    r.failures.pop(name, None)
        elif kind is EventKind.FLOW_CREATED:
            data = codec.decode(e.data)
            r.name = data.get("name", "")
            r.inputs = dict(data.get("inputs", {}))
            r.task_names = list(data.get("tasks", []))
            r.created_at = e.at
        elif kind is EventKind.STORE:
            r.inputs.update(codec.decode(e.data).get("values", {}))
