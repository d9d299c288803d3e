"""JSON views of journal records (flows, tasks, entries, failures, a workflow's steps): one
shape for the HTTP API and the command line's ``--json``."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from ._codec import Codec
from ._failure import Failure
from ._journal._events import Entry, FlowRecord
from ._journal._replay import FlowReplay, TaskRecord
from ._states import TaskState, is_finished

__all__ = [
    "entry_view",
    "failure_view",
    "record_view",
    "status_view",
    "task_states",
]


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


def _task_view(name: str, t: TaskRecord) -> dict[str, Any]:
    duration = None
    if t.started_at is not None and t.finished_at is not None:
        duration = max(0.0, t.finished_at - t.started_at)
    return {
        "name": name,
        "state": t.state.value,
        "attempt": t.attempt,
        "started_at": t.started_at,
        "finished_at": t.finished_at,
        "duration": duration,
        "result": t.result,
        "failure": failure_view(t.failure),
        "revert_failure": failure_view(t.revert_failure),
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
    if entries is not None:
        from ._step_views import pattern_links, workflow_view  # it uses failure_view

        entries = entries if isinstance(entries, list | tuple) else list(entries)
        wf = workflow_view(entries, codec, finished=rep.state.finished)
        view.update(pattern_links(entries, codec or Codec()) if wf is None else wf)
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
