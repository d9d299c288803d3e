"""The crash explorer's checks: what a crashed-and-resumed flow must have in common with the
uncrashed (reference) run.

Effects are modelled as idempotent: a task's body sets its effect, its revert clears it. An
operation cut short by a crash (or that raised, or was cancelled) may or may not have taken
effect, so each task's final effect is a *set of possibilities*; the crashed world must allow
no final effect the reference does not. This is the at-least-once contract of in-flight work:
a task or revert running at a crash runs again, and must be idempotent.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from .._journal._events import Entry, EventKind
from .._journal._replay import replay
from .._states import FlowState, TaskState
from ._trace import Op, Trace

__all__ = ["Segment", "Violation", "check_journal", "check_reruns", "effects"]

Effects = dict[str, frozenset[bool]]


@dataclass(frozen=True, slots=True)
class Segment:
    """The part of a trace that happened: everything logged before ``cut`` (a crash), or the
    whole trace (``cut`` None)."""

    trace: Trace
    cut: int | None = None

    def ops(self) -> Iterable[tuple[Op, bool]]:
        """Each operation that began, with True if it surely took effect."""
        cut = len(self.trace.log) if self.cut is None else self.cut
        for op in self.trace.ops:
            if op.begin >= cut:
                break
            yield op, op.end is not None and op.end < cut and op.outcome == "ok"


@dataclass(frozen=True, slots=True)
class Violation:
    """One way a scenario broke crash-exactness."""

    scenario: str
    rule: str
    detail: str

    def __str__(self) -> str:
        return f"{self.scenario}: {self.rule}: {self.detail}"


def effects(history: Sequence[Segment]) -> Effects:
    """Each task's possible final effects after ``history`` (segments in order)."""
    out: dict[str, frozenset[bool]] = {}
    none, done, undone = frozenset({False}), frozenset({True}), frozenset({False})
    for seg in history:
        for op, sure in seg.ops():
            now = out.get(op.task, none)
            if op.kind == "run":
                out[op.task] = done if sure else now | done
            elif op.kind == "revert":
                out[op.task] = undone if sure else now | undone
    return out


def compare_effects(
    ref: Effects, got: Effects, scenario: str, irreversible: frozenset[str] = frozenset()
) -> list[Violation]:
    """``got`` must allow no final effect ``ref`` does not. For a task without a revert
    (``irreversible``) only a lost effect counts: a crash may run it where the uncrashed run
    did not (its start rides along with the next commit; nothing could undo it anyway)."""
    bad = []
    for task in sorted(set(ref) | set(got)):
        r, g = ref.get(task, frozenset({False})), got.get(task, frozenset({False}))
        if task in irreversible and (r != {True} or False not in g):
            continue
        if not g <= r:
            bad.append(
                Violation(
                    scenario,
                    "effects",
                    f"task {task!r} may end {_effect(g)} here but {_effect(r)} without the crash",
                )
            )
    return bad


def _effect(possible: frozenset[bool]) -> str:
    if possible == {True}:
        return "applied"
    if possible == {False}:
        return "not applied (or undone)"
    return "applied or not"


def check_reruns(
    prefix: Sequence[Entry], after: Sequence[Segment], scenario: str, *, flow: str = ""
) -> list[Violation]:
    """A task the prefix shows done must not run again unless it is reverted first; a task
    whose revert the prefix shows done must not be reverted again before it runs again.
    ``prefix`` is the journal of the flow at path ``flow`` in its family (the root's by
    default); only that flow's operations count."""
    rep = replay("prefix", prefix)
    last_kind: dict[str, EventKind] = {}
    for e in prefix:
        if e.task is not None and e.kind is not EventKind.RETRY:
            last_kind[e.task] = e.kind
    done = {n for n, r in rep.tasks.items() if r.state is TaskState.SUCCESS}
    undone = {n for n, k in last_kind.items() if k is EventKind.REVERT_DONE}
    first: dict[str, Op] = {}
    for seg in after:
        for op, _ in seg.ops():
            if op.flow == flow:
                first.setdefault(op.local, op)
    bad = []
    for task, op in first.items():
        if task in done and op.kind == "run":
            bad.append(
                Violation(scenario, "re-run", f"task {task!r} was journaled done, ran again")
            )
        if task in undone and op.kind == "revert":
            bad.append(
                Violation(
                    scenario, "re-revert", f"task {task!r} was journaled reverted, reverted again"
                )
            )
    return bad


def check_journal(
    prefix: Sequence[Entry],
    entries: Sequence[Entry],
    limits: Mapping[str, int],
    scenario: str,
) -> list[Violation]:
    """The journal after the resume: it starts with the prefix unchanged, its seqs are
    contiguous, a task runs again after an outcome only when a retry decision reset it, and
    no retry scope goes past its limit."""
    bad = []
    for a, b in zip(prefix, entries, strict=False):
        if (a.seq, a.kind, a.task, a.data, a.state) != (b.seq, b.kind, b.task, b.data, b.state):
            bad.append(Violation(scenario, "lost", f"entry {a.seq} ({a.kind}) was changed"))
            break
    if len(entries) < len(prefix):
        bad.append(
            Violation(scenario, "lost", f"{len(prefix) - len(entries)} journaled entries are gone")
        )
    seqs = [e.seq for e in entries]
    if seqs != list(range(len(seqs))):
        holes = sorted(set(range(max(seqs, default=-1) + 1)) - set(seqs))
        bad.append(Violation(scenario, "hole", f"seqs not contiguous (missing {holes[:10]})"))
    settled: dict[str, int] = {}  # task -> seq of its outcome not yet reset by a retry
    for e in entries:
        kind, task = e.kind, e.task
        if kind is EventKind.RETRY and task is not None:
            data = _json(e.data)
            limit = limits.get(task)
            attempt = data.get("attempt")
            if limit is not None and isinstance(attempt, int) and attempt > limit:
                bad.append(
                    Violation(
                        scenario,
                        "retry limit",
                        f"scope {task!r} reached attempt {attempt} > {limit}",
                    )
                )
            reset = data.get("reset")
            if data.get("decision") == "retry" and isinstance(reset, list):
                for name in reset:
                    settled.pop(str(name), None)
        elif task is None:
            continue
        elif kind in (EventKind.TASK_SUCCEEDED, EventKind.TASK_FAILED):
            settled.setdefault(task, e.seq)
        elif kind is EventKind.TASK_STARTED and task in settled:
            bad.append(
                Violation(
                    scenario,
                    "re-run",
                    f"task {task!r} started again at seq {e.seq} after its outcome at seq "
                    f"{settled[task]} with no retry decision between",
                )
            )
            settled.pop(task)
    return bad


def final_state(entries: Sequence[Entry]) -> FlowState:
    return replay("final", entries).state


def _json(text: str) -> dict[str, object]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
