"""Checkpoints of a workflow's run: one journal entry per ``every`` successes, so that a
resumed long workflow reads its checkpoints instead of every step's entries.

A workflow's checkpoint is the pattern flows' :attr:`~flowcoord.journal.EventKind.CHECKPOINT`
entry (``from``, ``tasks``, ``attempts``, ``results``) with, for the steps that have a
compensation, their arguments and gather groups (``args``, ``groups``, by step key): what
their ``task.started`` entries said, which the compensation needs. ``from`` is the lowest seq
of a ``task.started`` of a step that has not succeeded (running, or failed: its start says it
may have had an effect), so every ``task.started`` / ``task.succeeded`` entry below it belongs
to a step some checkpoint lists, and resuming need not read it. Every other kind of entry
(failures, retry decisions, compensations) is always read.
"""

from __future__ import annotations

from .._journal._events import EventKind
from .._journal._writer import FlowWriter
from ..errors import FlowcoordError
from ._wf_journal import WorkflowJournal, step_key

__all__ = ["StepCheckpoints"]


class StepCheckpoints:
    """Made by a workflow run on a journal that stores (the in-memory one keeps nothing to
    read back); told of every durable start (of a step with a compensation) and success."""

    __slots__ = ("_done", "_every", "_journal", "_open", "_writer")

    def __init__(self, writer: FlowWriter, every: int, journal: WorkflowJournal) -> None:
        self._writer, self._every, self._journal = writer, every, journal
        steps = journal.steps
        # successes listed in no checkpoint yet (also those a crashed run journaled)
        self._done = [p for p, r in steps.items() if r.succeeded and not r.checkpointed]
        # position → seq of the task.started of a step that has not succeeded
        self._open = {
            p: r.started_seq
            for p, r in steps.items()
            if r.started and not r.succeeded and r.started_seq >= 0
        }

    @staticmethod
    def wanted(writer: FlowWriter) -> bool:
        return not writer.immediate

    def started(self, pos: int, seq: int) -> None:
        self._open[pos] = seq

    def succeeded(self, pos: int) -> None:
        """Step ``pos`` succeeded (durably, or emitted: a checkpoint is emitted after it, so
        it can only be durable with it); journal a checkpoint when one is due."""
        self._open.pop(pos, None)
        self._done.append(pos)
        if len(self._done) >= self._every:
            self._write()

    def _write(self) -> None:
        w, steps = self._writer, self._journal.steps
        recs = [steps[p] for p in self._done if p in steps and steps[p].succeeded]
        keys = [step_key(r.pos, r.name) for r in recs]
        undoable = [(k, r) for k, r in zip(keys, recs, strict=True) if r.revertible]
        try:
            data = w.encode(
                {
                    "from": min(self._open.values(), default=w.seq),
                    "tasks": keys,
                    "attempts": [r.attempt for r in recs],
                    "results": [r.result for r in recs],
                    "args": {k: r.args for k, r in undoable},
                    "groups": {k: r.group for k, r in undoable if r.group is not None},
                },
                what="checkpoint",
            )
            w.emit(EventKind.CHECKPOINT, None, data)
        except FlowcoordError:
            return  # journal down or ownership lost: the next write says so
        for r in recs:
            r.checkpointed = True
        self._done = []
