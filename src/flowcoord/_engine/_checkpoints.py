"""Checkpoints of one flow run: one journal entry per ``every`` successes.

A checkpoint (:attr:`EventKind.CHECKPOINT`) lists the tasks that succeeded since the previous
one with their attempts and results, and ``from``: the lowest seq of a task still running, so
that every ``task.started`` / ``task.succeeded`` entry below it is summed up by the flow's
checkpoints and resuming need not read it (see ``resume_entries``).
"""

from __future__ import annotations

from collections import deque
from typing import Any

from .._journal._events import EventKind
from .._journal._writer import FlowWriter
from .._model._compile import Plan
from .._states import TaskState
from ..errors import FlowcoordError

__all__ = ["Checkpoints"]

_P, _R, _S = TaskState.PENDING, TaskState.RUNNING, TaskState.SUCCESS


class Checkpoints:
    """Made by a run whose flow is big enough to reach one checkpoint, has no retry scopes
    and journals to storage; the run drops it once anything but a success happens, so a
    checkpoint is never replayed after a later entry about a task it lists."""

    __slots__ = ("_all", "_done", "_every", "_plan", "_start_seq", "_started", "_writer")

    def __init__(self, plan: Plan, writer: FlowWriter, every: int) -> None:
        self._plan, self._writer, self._every = plan, writer, every
        self._done: list[int] = []  # successes in no checkpoint yet
        self._start_seq = [0] * len(plan.nodes)  # seq of each node's task.started
        self._started: deque[int] = deque()  # nodes in the order they started
        self._all = False  # the next checkpoint lists every success (after a resume)

    @staticmethod
    def wanted(plan: Plan, writer: FlowWriter, every: int) -> bool:
        return len(plan.task_names) >= every and not plan.scopes and not writer.immediate

    def started(self, i: int, seq: int) -> None:
        self._start_seq[i] = seq
        self._started.append(i)

    def restored(self) -> None:
        """A resumed run restored successes that no checkpoint may list yet."""
        self._all = True

    def succeeded(
        self, i: int, tstate: list[TaskState], attempts: list[int], results: list[Any]
    ) -> bool:
        """Note node ``i``'s durable success; journal a checkpoint when one is due. False if
        it could not be written (lost, journal down): checkpoints stop, the next write says
        why."""
        done = self._done
        done.append(i)
        if len(done) < self._every:
            return True
        started = self._started
        # done ones leave; a pending one stays: its start was journaled ahead of it (with
        # its last predecessor's success) and must stay readable until it is done
        while started and tstate[started[0]] is not _R and tstate[started[0]] is not _P:
            started.popleft()
        nodes, w = self._plan.nodes, self._writer
        if self._all:
            done = [k for k, st in enumerate(tstate) if st is _S and nodes[k].task is not None]
        try:
            data = w.encode(
                {
                    "from": self._start_seq[started[0]] if started else w.seq,
                    "tasks": [nodes[k].name for k in done],
                    "attempts": [attempts[k] for k in done],
                    "results": [results[k] for k in done],
                },
                what="checkpoint",
            )
            w.emit(EventKind.CHECKPOINT, None, data)
        except FlowcoordError:
            return False
        self._done, self._all = [], False
        return True
