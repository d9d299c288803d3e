"""Flow and task states, with the transitions each allows, and state-change listeners."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from .errors import InvalidStateTransition

__all__ = [
    "FlowState",
    "StateChange",
    "StateListener",
    "TaskState",
    "check_flow",
    "check_task",
    "is_finished",
]


class FlowState(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUSPENDED = "SUSPENDED"
    REVERTING = "REVERTING"
    SUCCESS = "SUCCESS"
    REVERTED = "REVERTED"  # failed, and every revert succeeded
    FAILED = "FAILED"  # failed, and some revert failed too
    CANCELLED = "CANCELLED"

    @property
    def finished(self) -> bool:
        return self in _FLOW_FINAL


class TaskState(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    REVERTING = "REVERTING"
    REVERTED = "REVERTED"
    REVERT_FAILURE = "REVERT_FAILURE"


_FLOW_FINAL = frozenset(
    {FlowState.SUCCESS, FlowState.REVERTED, FlowState.FAILED, FlowState.CANCELLED}
)
#: The final flow states' names, sorted (what a journal stores; retention deletes those).
FINAL_STATE_NAMES = tuple(sorted(s.value for s in _FLOW_FINAL))

_F = FlowState
FLOW_TRANSITIONS: dict[FlowState, frozenset[FlowState]] = {
    _F.PENDING: frozenset({_F.RUNNING, _F.REVERTING, _F.CANCELLED}),
    # RUNNING → RUNNING: a resumed flow picks up where the journal left it.
    _F.RUNNING: frozenset({_F.RUNNING, _F.SUCCESS, _F.REVERTING, _F.SUSPENDED, _F.CANCELLED}),
    _F.SUSPENDED: frozenset({_F.RUNNING, _F.REVERTING, _F.CANCELLED, _F.SUSPENDED}),
    # REVERTING → SUSPENDED: suspended (or stopped) while reverting; resuming reverts the rest.
    _F.REVERTING: frozenset({_F.REVERTING, _F.REVERTED, _F.FAILED, _F.CANCELLED, _F.SUSPENDED}),
    _F.SUCCESS: frozenset(),
    _F.REVERTED: frozenset(),
    _F.FAILED: frozenset(),
    _F.CANCELLED: frozenset(),
}

_T = TaskState
TASK_TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    _T.PENDING: frozenset({_T.RUNNING, _T.REVERTED}),
    # RUNNING → PENDING: interrupted (cancelled, engine stopped); it will run again.
    _T.RUNNING: frozenset({_T.SUCCESS, _T.FAILURE, _T.PENDING}),
    _T.SUCCESS: frozenset({_T.REVERTING}),
    _T.FAILURE: frozenset({_T.REVERTING, _T.PENDING}),
    _T.REVERTING: frozenset({_T.REVERTED, _T.REVERT_FAILURE}),
    _T.REVERTED: frozenset({_T.PENDING}),
    _T.REVERT_FAILURE: frozenset(),
}


def is_finished(state: str | FlowState) -> bool:
    """Whether a flow in ``state`` (a summary row's text, too) has ended; an unknown state
    has not."""
    try:
        return FlowState(state).finished
    except ValueError:
        return False


def check_flow(flow_id: str, old: FlowState, new: FlowState) -> None:
    if new not in FLOW_TRANSITIONS[old]:
        raise InvalidStateTransition(
            f"flow {flow_id}: cannot go from {old} to {new}", flow_id=flow_id
        )


def check_task(flow_id: str, task: str, old: TaskState, new: TaskState) -> None:
    if new not in TASK_TRANSITIONS[old]:
        raise InvalidStateTransition(
            f"flow {flow_id}: task {task!r} cannot go from {old} to {new}",
            flow_id=flow_id,
            task=task,
        )


# Not frozen: a frozen dataclass's __init__ costs ~4x more, and there is one per change.
# Treat changes as immutable all the same (they are hashable by value).
@dataclass(slots=True, unsafe_hash=True)
class StateChange:
    """A flow (``task is None``) or task changed state.

    For a task attempt (or a workflow step) that ended — SUCCESS, FAILURE, or PENDING when it
    was interrupted — ``elapsed`` is how long its body ran, in seconds (not counting the wait
    for its journal entry, which comes before the change is told), ``started_at`` when its
    body started (``time.time()``) and ``attempt`` which attempt it was (from 1). A start
    (RUNNING) carries ``attempt``. Each is ``None`` where it does not apply or is not known
    (a body that never ran)."""

    flow_id: str
    flow_name: str
    task: str | None
    old: str
    new: str
    elapsed: float | None = None
    attempt: int | None = None
    started_at: float | None = None


class StateListener(Protocol):
    def __call__(self, change: StateChange, /) -> None: ...
