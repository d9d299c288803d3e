"""Restore a run's state from its journal replay: a pure function of the plan and the replay.

Successes keep their results and do not run again. Work that was in flight runs again
(at-least-once for it alone), unless failure handling was under way when the engine
stopped: then the resumed run takes up that handling where it was, as the uncrashed run
would have. A failure not yet settled by a journaled retry decision is handed to the retry
scope that would have decided (its attempts counted from the journal), or, outside any
scope, turns the flow to reverting; tasks that were running beside it are reverted as
interrupted attempts, reverts cut short are done again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .._failure import Failure
from .._journal._replay import FlowReplay, TaskRecord
from .._model._compile import Plan, Scope
from .._states import FlowState, TaskState

__all__ = ["Restored", "restore", "task_outputs"]

_P, _R, _S, _F = TaskState.PENDING, TaskState.RUNNING, TaskState.SUCCESS, TaskState.FAILURE
_REVERTING, _REVERTED, _REVERT_FAILURE = (
    TaskState.REVERTING,
    TaskState.REVERTED,
    TaskState.REVERT_FAILURE,
)
_CANCELLED = "flowcoord.errors.FlowCancelled"
_INTERRUPTED = Failure(("flowcoord.errors.TaskFailed",), "interrupted: the engine stopped mid-task")


def task_outputs(t: Any, result: Any) -> dict[str, Any]:
    """The store names task ``t`` provides, taken from its ``result``."""
    kind = t.provides_kind
    if kind == "single":
        return {t.provided[0]: result}
    if kind == "none":
        return {}
    if kind == "tuple":
        if not isinstance(result, (list, tuple)) or len(result) != len(t.provided):
            raise TypeError(
                f"task {t.name!r} provides {t.provided} but returned {result!r} "
                f"(needs a sequence of {len(t.provided)} values)"
            )
        return dict(zip(t.provided, result, strict=True))
    if not isinstance(result, Mapping) or any(k not in result for k in t.provided):
        raise TypeError(
            f"task {t.name!r} provides {sorted(t.provided)} but returned {result!r} "
            "(needs a mapping with those keys)"
        )
    return {k: result[k] for k in t.provided}


@dataclass(slots=True)
class Restored:
    """What a resumed run starts from."""

    tstate: list[TaskState]
    results: list[Any]
    attempts: list[int]
    values: dict[str, Any]
    scope_attempt: list[int]
    failures: dict[int, Failure] = field(default_factory=dict)
    revert_failures: dict[int, Failure] = field(default_factory=dict)
    done: int = 0
    #: the flow must be reverted (it was reverting, or a failure outside any retry scope
    #: was not handled yet); ``cancelled``: because it was cancelled
    reverting: bool = False
    cancelled: bool = False
    #: retry scopes whose failure handling must run first, with the failures they decide on
    pending: dict[int, dict[str, Failure]] = field(default_factory=dict)
    #: successes restored (checkpoints must list them)
    restored: bool = False
    #: per scope: its controller's value for the attempt is in ``values`` already
    valued: list[bool] = field(default_factory=list)


def restore(plan: Plan, r: FlowReplay, store: Mapping[str, Any]) -> Restored:
    """The state a run of ``plan`` resumes from, given what the journal says (``r``)."""
    n = len(plan.nodes)
    out = Restored(
        [_P] * n,
        [None] * n,
        [0] * n,
        dict(store),
        [max(1, r.retries.get(s.key, 1)) for s in plan.scopes],
    )
    out.cancelled = r.cancelled
    out.reverting = r.reverting or r.state.finished
    if not out.reverting:
        _find_pending(plan, r, out)
    _restore_tasks(plan, r, out)
    if out.reverting:
        for name, f in r.failures.items():
            idx = plan.by_name.get(name)
            if idx is not None:
                out.failures.setdefault(idx, f)
    out.valued = [not s.retry.provides for s in plan.scopes]
    if not out.reverting or r.state is FlowState.SUCCESS:
        for k, s in enumerate(plan.scopes):
            if s.retry.provides:
                try:
                    out.values.update(s.retry.value(out.scope_attempt[k], out.values))
                except Exception:  # needs a value no task provided yet: set when one runs
                    continue
                out.valued[k] = True
    return out


def _deciding(scope: Scope | None, gave_up: set[str]) -> Scope | None:
    """The scope that decides on a failure in ``scope``: the innermost one that has not
    given up already (a "revert" decision hands the failure to its parent)."""
    while scope is not None and scope.key in gave_up:
        scope = scope.parent
    return scope


def _find_pending(plan: Plan, r: FlowReplay, out: Restored) -> None:
    """Failures (and reverts cut short) that no journaled decision settled yet."""
    gave_up = r.gave_up
    nodes, by_name = plan.nodes, plan.by_name
    for name, rec in r.tasks.items():
        st = rec.state
        if rec.failure is None and st is not _REVERTING and st is not _REVERT_FAILURE:
            continue
        i = by_name.get(name)
        if i is None:
            continue
        scopes = nodes[i].scopes
        scope = _deciding(scopes[0] if scopes else None, gave_up)
        if scope is None:  # the flow itself decides: revert everything
            out.reverting = True
            # a task interrupted by a cancel is journaled failed with FlowCancelled
            out.cancelled = out.cancelled or (
                rec.failure is not None and rec.failure.matches(_CANCELLED)
            )
            out.pending.clear()
            return
        failures = out.pending.setdefault(scope.index, {})
        if rec.failure is not None:
            failures[name] = rec.failure


def _restore_tasks(plan: Plan, r: FlowReplay, out: Restored) -> None:
    nodes = plan.nodes
    reverting = out.reverting
    pending = out.pending
    records, summed = r.tasks, r.summed
    tstate, attempts, results, values = out.tstate, out.attempts, out.results, out.values
    done = 0
    for i in plan.order:
        node = nodes[i]
        t = node.task
        if t is None:
            if all(tstate[p] is _S for p in node.preds):
                tstate[i] = _S
                done += 1
            continue
        rec = records.get(node.name)
        if rec is None:  # a success only a checkpoint tells of, or nothing
            summary = summed.get(node.name)
            if summary is None:
                continue
            attempt, result = summary
            attempts[i] = attempt
            tstate[i] = _S
            done += 1
            results[i] = result
            out.restored = True
            if t.provides_kind != "none":
                with contextlib.suppress(TypeError):
                    values.update(task_outputs(t, result))
            continue
        attempts[i] = rec.attempt
        st = rec.state
        if st is _S and rec.failure is None:
            tstate[i] = _S
            done += 1
            results[i] = rec.result
            out.restored = True
            if t.provides_kind != "none":
                with contextlib.suppress(TypeError):
                    values.update(task_outputs(t, rec.result))
            continue
        handling = reverting or (pending and any(s.index in pending for s in node.scopes))
        if not handling:
            # In flight (or reverted long ago by an old journal's rules): it runs again.
            continue
        done += _handled(i, t, rec, out)
    out.done = done


def _handled(i: int, t: Any, rec: TaskRecord, out: Restored) -> int:
    """Restore task ``i`` whose failure handling is under way; 1 if it counts as done."""
    st = rec.state
    if st is _P:  # reset by a retry decision, not started since
        return 0
    if st is _REVERTED or st is _REVERT_FAILURE:
        out.tstate[i] = st
        if rec.revert_failure is not None:
            out.revert_failures[i] = rec.revert_failure
        if rec.failure is not None:
            out.failures[i] = rec.failure
        return 0
    if rec.failure is not None:  # failed (maybe its revert was cut short): revert it
        out.tstate[i] = _F
        out.failures[i] = rec.failure
        return 0
    if st is _REVERTING:  # a success whose revert was cut short: revert it again
        out.tstate[i] = _S
        out.results[i] = rec.result
        if t.provides_kind != "none":  # the reverts of its dependents need them
            with contextlib.suppress(TypeError):
                out.values.update(task_outputs(t, rec.result))
        return 1
    # Running when the engine stopped: it may have done its work; revert it.
    out.tstate[i] = _F
    out.failures[i] = _INTERRUPTED
    return 0
