"""JSON views of journal records (flows, tasks, entries, failures, a workflow's steps): one
shape for the HTTP API and the command line's ``--json``."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import structlog

from ._codec import Codec
from ._failure import Failure
from ._journal._events import Entry, EventKind, FlowRecord
from ._journal._replay import FlowReplay, TaskRecord
from ._states import FlowState, TaskState, is_finished

__all__ = [
    "DEFAULT_MAX_VALUE",
    "Redactor",
    "ValuePolicy",
    "entry_view",
    "failed_tasks",
    "failure_view",
    "record_view",
    "status_view",
    "task_states",
]

log = structlog.get_logger("flowcoord.views")

#: A redaction hook: ``redact(field, value)`` returns what is shown instead of ``value``
#: (``value`` itself to show it). ``field`` says where the value is: ``inputs.<name>``,
#: ``tasks.<task>.result``, ``tasks.<task>.args`` (a workflow step's arguments),
#: ``result`` (a workflow's), ``retries.<scope>.value``.
Redactor = Callable[[str, Any], Any]
#: Values longer than this (characters of JSON) are shown cut, by default.
DEFAULT_MAX_VALUE = 4096
_PREVIEW = 512
_FAILED_TASK_STATES = frozenset(
    {TaskState.FAILURE, TaskState.REVERTING, TaskState.REVERTED, TaskState.REVERT_FAILURE}
)
_CUT_SHORT = ("FlowCancelled", "CancelledError")
_ENDED_BADLY = frozenset({FlowState.REVERTED, FlowState.FAILED, FlowState.CANCELLED})


def failure_view(f: Failure | None) -> dict[str, Any] | None:
    if f is None:
        return None
    return {
        "type": f.exc_type,
        "types": list(f.exc_types),
        "message": f.message,
        "traceback": f.traceback,
        "cause": failure_view(f.cause),
    }


def record_view(rec: FlowRecord) -> dict[str, Any]:
    return {
        "flow_id": rec.flow_id,
        "name": rec.name,
        "state": rec.state,
        "finished": is_finished(rec.state),
        "token": rec.token,
        "created_at": rec.created_at or None,
        "updated_at": rec.updated_at or None,
    }


def _failed(t: TaskRecord) -> bool:
    """The task's latest attempt failed and that stands: it failed the flow (reverted since,
    or not), rather than being reverted because another task failed, or cut short by a
    cancel (a ``FlowCancelled`` failure)."""
    return (
        t.failure is not None
        and t.state in _FAILED_TASK_STATES
        and not t.failure.matches(*_CUT_SHORT)
    )


def failed_tasks(rep: FlowReplay) -> list[str]:
    """The tasks whose failure stands (see :func:`_failed`), the first to fail first."""
    failed = [(t.finished_at or 0.0, n) for n, t in rep.tasks.items() if n and _failed(t)]
    return [n for _, n in sorted(failed)]


def _task_view(name: str, t: TaskRecord) -> dict[str, Any]:
    duration = None
    if t.started_at is not None and t.finished_at is not None:
        duration = max(0.0, t.finished_at - t.started_at)
    return {
        "name": name,
        "state": t.state.value,
        "failed": _failed(t),
        "attempt": t.attempt,
        "started_at": t.started_at,
        "finished_at": t.finished_at,
        "duration": duration,
        "result": t.result,
        "failure": failure_view(t.failure),
        "revert_failure": failure_view(t.revert_failure),
    }


def _summary(
    rep: FlowReplay, tasks: list[dict[str, Any]], phases: list[dict[str, Any]] | None
) -> dict[str, Any] | None:
    """What went wrong, for the top of a flow's page: None while nothing did."""
    failed = failed_tasks(rep)
    revert_failed = [t["name"] for t in tasks if t["revert_failure"] is not None]
    if not (failed or revert_failed or rep.reverting or rep.state in _ENDED_BADLY):
        return None
    first = rep.tasks.get(failed[0]) if failed else None
    reverts = [p for p in phases or () if p["state"] == FlowState.REVERTING.value]
    cancelled = rep.cancelled or (rep.state is FlowState.CANCELLED and not failed)
    return {
        "cause": "cancelled" if cancelled else "failure" if failed else None,
        "task": failed[0] if failed else None,
        "failure": failure_view(first.failure) if first is not None else None,
        "attempt": first.attempt if first is not None else None,
        "at": first.finished_at if first is not None else None,
        "failed": failed,
        "reverted": [t["name"] for t in tasks if t["state"] == TaskState.REVERTED.value],
        "reverting": [t["name"] for t in tasks if t["state"] == TaskState.REVERTING.value],
        "revert_failed": revert_failed,
        "revert_started_at": reverts[-1]["at"] if reverts else None,
        "ended_at": rep.updated_at if rep.state.finished else None,
    }


def task_states(rep: FlowReplay) -> dict[str, str]:
    """Task name → state for every task of the flow (PENDING when never started)."""
    out = {name: TaskState.PENDING.value for name in rep.task_names}
    out.update({name: t.state.value for name, t in rep.tasks.items() if name})
    return out


def status_view(
    rep: FlowReplay,
    rec: FlowRecord | None,
    *,
    running_here: bool,
    live_state: str | None,
    entries: Iterable[Entry] | None = None,
    codec: Codec | None = None,
) -> dict[str, Any]:
    """Everything the journal says about a flow, in one JSON object. Given the flow's
    ``entries`` (those ``rep`` was replayed from), it also says which kind of flow it is
    and, for a workflow, its steps (see :func:`workflow_view`)."""
    names = list(rep.task_names) + [n for n in rep.tasks if n and n not in rep.task_names]
    tasks = [_task_view(n, rep.tasks.get(n) or TaskRecord()) for n in names]
    counts: dict[str, int] = {}
    for t in tasks:
        counts[t["state"]] = counts.get(t["state"], 0) + 1
    view: dict[str, Any] = {
        "flow_id": rep.flow_id,
        "name": rep.name,
        "state": rep.state.value,
        "finished": rep.state.finished,
        "running_here": running_here,
        "live_state": live_state,
        "token": rec.token if rec is not None else None,
        "created_at": rep.created_at,
        "updated_at": rep.updated_at,
        "inputs": rep.inputs,
        "progress": {"done": counts.get("SUCCESS", 0), "total": len(tasks)},
        "counts": counts,
        "tasks": tasks,
        "retries": rep.retries,
        "failures": {k: failure_view(v) for k, v in rep.failures.items()},
        "last_seq": rep.last_seq,
    }
    phases: list[dict[str, Any]] | None = None
    if entries is not None:
        from ._step_views import flow_timeline, pattern_links, workflow_view  # they use ours

        entries = entries if isinstance(entries, list | tuple) else list(entries)
        wf = workflow_view(entries, codec, finished=rep.state.finished)
        view.update(pattern_links(entries, codec or Codec()) if wf is None else wf)
        timeline = flow_timeline(entries, codec or Codec(), finished=rep.state.finished)
        phases = timeline["phases"]
        view["phases"] = phases
        view["retry_decisions"] = timeline["retry_decisions"]
        spans = timeline["spans"]
        for t in tasks:
            t["spans"] = spans.get(t["name"], [])
    summary = view["summary"] = _summary(rep, tasks, phases)
    if summary is not None and view.get("kind") == "pattern":
        view["failure"] = summary["failure"]  # what made it revert
    return view


def entry_view(e: Entry) -> dict[str, Any]:
    try:
        data: Any = json.loads(e.data)
    except ValueError:
        data = e.data
    return {
        "seq": e.seq,
        "kind": e.kind.value,
        "task": e.task,
        "state": e.state,
        "token": e.token,
        "at": e.at,
        "data": data,
    }


# -- what is shown of values: redacted, then cut to a size ----------------------------------------


class ValuePolicy:
    """How the faces show journaled values (inputs, results, a step's arguments): each goes
    through ``redact(field, value)`` (see :data:`Redactor`) and is then cut when its JSON is
    longer than ``max_size`` characters, to ``{"$truncated": <its length>, "preview":
    <its first characters>}``. A ``redact`` that raises hides the value (fails closed)."""

    __slots__ = ("max_size", "redact")

    def __init__(
        self, redact: Redactor | None = None, max_size: int | None = DEFAULT_MAX_VALUE
    ) -> None:
        self.redact = redact
        self.max_size = max_size

    @property
    def active(self) -> bool:
        return self.redact is not None or self.max_size is not None

    def value(self, field: str, value: Any) -> Any:
        """``value`` as shown at ``field``."""
        if value is None:
            return None
        if self.redact is not None:
            try:
                value = self.redact(field, value)
            except Exception as exc:  # no traceback: its locals would show the value
                log.warning("redact_failed", field=field, error=type(exc).__name__)
                return "[hidden: the redaction hook failed]"
        if self.max_size is None:
            return value
        try:
            text = json.dumps(value, ensure_ascii=False, default=repr)
        except (ValueError, TypeError, RecursionError):
            text = repr(value)
        if len(text) <= self.max_size:
            return value
        return {"$truncated": len(text), "preview": text[: min(_PREVIEW, self.max_size)]}

    def status(self, view: dict[str, Any]) -> dict[str, Any]:
        """A :func:`status_view`, its values as shown (changed in place, and returned)."""
        if not self.active:
            return view
        inputs = view.get("inputs")
        if isinstance(inputs, dict):
            view["inputs"] = {k: self.value(f"inputs.{k}", v) for k, v in inputs.items()}
        for t in view.get("tasks") or ():
            t["result"] = self.value(f"tasks.{t['name']}.result", t.get("result"))
        for st in view.get("steps") or ():
            st["result"] = self.value(f"tasks.{st['key']}.result", st.get("result"))
        if "result" in view:
            view["result"] = self.value("result", view["result"])
        return view

    def entry(self, view: dict[str, Any]) -> dict[str, Any]:
        """An :func:`entry_view`, the values in its data as shown (in place, and returned)."""
        data = view.get("data")
        if not self.active or not isinstance(data, dict):
            return view
        kind, task = view.get("kind"), view.get("task") or ""
        values = data.get("inputs") if kind == EventKind.FLOW_CREATED else None
        if kind == EventKind.STORE:
            values = data.get("values")
        if isinstance(values, dict):
            shown = {k: self.value(f"inputs.{k}", v) for k, v in values.items()}
            data["inputs" if kind == EventKind.FLOW_CREATED else "values"] = shown
        if "result" in data:
            field = f"tasks.{task}.result" if kind == EventKind.TASK_SUCCEEDED else "result"
            data["result"] = self.value(field, data["result"])
        if isinstance(data.get("args"), dict):
            if kind == EventKind.CHECKPOINT:  # {step key: its args}
                data["args"] = {
                    k: self.value(f"tasks.{k}.args", v) for k, v in data["args"].items()
                }
            else:
                data["args"] = self.value(f"tasks.{task}.args", data["args"])
        names, results = data.get("tasks"), data.get("results")
        if kind == EventKind.CHECKPOINT and isinstance(names, list) and isinstance(results, list):
            data["results"] = [
                self.value(f"tasks.{n}.result", r) for n, r in zip(names, results, strict=False)
            ]
        if kind == EventKind.RETRY and "value" in data:
            data["value"] = self.value(f"retries.{task}.value", data["value"])
        return view
