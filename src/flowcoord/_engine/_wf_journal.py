"""What a workflow's journal says, step by step: the entries folded into one record per
position, for a resumed run to return journaled results and to finish a rollback.

A step is journaled as a task named ``"<position>:<step name>"`` with the pattern flows'
entry kinds (``task.started`` carries the step's arguments and its gather group,
``task.succeeded`` its result, ``task.failed`` its failure, ``revert.*`` its compensation), so
status, the CLI, the API and the dashboard read workflows as they read pattern flows.
``flow.state`` entries carry the workflow's result (SUCCESS) or its failure (REVERTING).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .._codec import Codec
from .._failure import Failure
from .._journal._events import Entry, EventKind
from .._states import FlowState
from ..errors import JournalCorrupt

__all__ = ["StepRecord", "WorkflowJournal", "split_key", "step_key"]


def step_key(pos: int, name: str) -> str:
    return f"{pos}:{name}"


def split_key(key: str) -> tuple[int, str] | None:
    head, sep, name = key.partition(":")
    if not sep or not head.isdigit():
        return None
    return int(head), name


@dataclass(slots=True)
class StepRecord:
    """One position of a workflow, as journaled."""

    pos: int
    name: str
    started: bool = False
    succeeded: bool = False
    failure: Failure | None = None
    result: Any = None
    args: dict[str, Any] = field(default_factory=dict)
    attempt: int = 0
    group: int | None = None
    revertible: bool = False  # journaled with a compensation to call
    reverted: bool = False
    revert_failure: Failure | None = None
    decided: bool = False  # a retry decision follows the last failed attempt
    started_seq: int = -1  # the seq of its latest task.started (a step with a compensation)
    elapsed: float | None = None  # how long its latest attempt's body ran (this run)
    began_at: float | None = None  # when that body started (time.time(); this run)
    checkpointed: bool = False  # its success is listed in a checkpoint


@dataclass(slots=True)
class WorkflowJournal:
    """A workflow's journal folded: its state, steps by position, result or failure."""

    flow_id: str
    name: str = ""
    state: FlowState = FlowState.PENDING
    inputs: dict[str, Any] = field(default_factory=dict)
    steps: dict[int, StepRecord] = field(default_factory=dict)
    result: Any = None
    failure: Failure | None = None
    cancelled: bool = False
    reverting: bool = False
    last_seq: int = -1
    parent: str | None = None  # a child's parent flow id

    @classmethod
    def fold(cls, flow_id: str, entries: Iterable[Entry], codec: Codec) -> WorkflowJournal:
        j = cls(flow_id)
        for e in entries:
            try:
                j._apply(e, codec)
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise JournalCorrupt(
                    f"flow {flow_id}: entry {e.seq} ({e.kind}) is not a workflow entry: {exc}",
                    flow_id=flow_id,
                    seq=e.seq,
                    kind=str(e.kind),
                    task=e.task,
                ) from None
            j.last_seq = e.seq
        return j

    def _apply(self, e: Entry, codec: Codec) -> None:
        data = codec.decode(e.data) if e.data and e.data != "{}" else {}
        kind = e.kind
        if kind is EventKind.FLOW_CREATED:
            self.name = str(data["name"])
            self.inputs = dict(data.get("inputs") or {})
            parent = data.get("parent")
            self.parent = None if parent is None else str(parent)
            return
        if kind is EventKind.FLOW_STATE:
            self.state = FlowState(e.state or "")
            if self.state is FlowState.REVERTING:
                self.reverting = True
                self.cancelled = data.get("reason") == "cancelled"
                if isinstance(data.get("failure"), dict):
                    self.failure = Failure.from_dict(data["failure"])
            elif self.state is FlowState.SUCCESS:
                self.result = data.get("result")
            return
        if kind is EventKind.CHECKPOINT:
            self._checkpoint(data)
            return
        if e.task is None:
            return
        where = split_key(e.task)
        if where is None:
            raise ValueError(f"task {e.task!r} is not a workflow step")
        pos, name = where
        rec = self.steps.get(pos)
        if rec is None:
            rec = self.steps[pos] = StepRecord(pos, name)
        if kind is EventKind.TASK_STARTED:  # a new attempt: what the last one did is undone
            rec.succeeded, rec.failure, rec.result = False, None, None
            rec.reverted = rec.decided = False
            rec.started, rec.started_seq, rec.checkpointed = True, e.seq, False
            rec.attempt = int(data.get("attempt", rec.attempt + 1))
            rec.args = dict(data.get("args") or {})
            rec.group = data.get("group")
            rec.revertible = bool(data.get("revert"))
        elif kind is EventKind.TASK_SUCCEEDED:
            # a step without a compensation journals this one entry (no task.started)
            rec.succeeded, rec.failure = True, None
            rec.result = data.get("result")
            rec.attempt = int(data.get("attempt", rec.attempt or 1))
            if "group" in data:
                rec.group = data["group"]
        elif kind is EventKind.TASK_FAILED:
            rec.failure = Failure.from_dict(data["failure"])
            rec.attempt = int(data.get("attempt", rec.attempt or 1))
            rec.decided = False  # a retry decision follows the failure it decides on
            if "args" in data:  # a step without task.started: the failure has its call
                rec.args = dict(data["args"] or {})
                rec.group = data.get("group")
        elif kind is EventKind.RETRY:
            rec.decided = True
        elif kind is EventKind.REVERT_DONE:
            rec.reverted = True
        elif kind is EventKind.REVERT_FAILED:
            rec.revert_failure = Failure.from_dict(data["failure"])

    def _checkpoint(self, data: dict[str, Any]) -> None:
        """Successes summed up (see :class:`~flowcoord._engine._wf_checkpoints.StepCheckpoints`):
        each as its ``task.started`` and ``task.succeeded`` would have said."""
        keys, attempts, results = data["tasks"], data["attempts"], data["results"]
        args, groups = data.get("args") or {}, data.get("groups") or {}
        if not len(keys) == len(attempts) == len(results):
            raise ValueError("the checkpoint's lists differ in length")
        for key, attempt, result in zip(keys, attempts, results, strict=True):
            where = split_key(key)
            if where is None:
                raise ValueError(f"task {key!r} is not a workflow step")
            pos, name = where
            rec = self.steps.get(pos)
            if rec is None:
                rec = self.steps[pos] = StepRecord(pos, name)
            rec.succeeded, rec.failure, rec.result = True, None, result
            rec.reverted = rec.decided = False
            rec.attempt, rec.checkpointed = int(attempt), True
            if key in args:  # a step with a compensation: what it is given
                rec.started, rec.revertible = True, True
                rec.args = dict(args[key] or {})
                rec.group = groups.get(key)

    def to_compensate(self) -> list[list[StepRecord]]:
        """Steps to compensate, newest first, one list per gather group (reverted at once):
        every step journaled with a compensation that started (succeeded, failed or cut
        short: its effect may be there, as for a pattern flow's tasks) and was not reverted
        yet."""
        todo = [
            r
            for r in self.steps.values()
            if r.revertible and r.started and not r.reverted and r.revert_failure is None
        ]
        todo.sort(key=lambda r: r.pos, reverse=True)
        groups: list[list[StepRecord]] = []
        for r in todo:
            if groups and r.group is not None and groups[-1][0].group == r.group:
                groups[-1].append(r)
            else:
                groups.append([r])
        return groups
