"""The JSON view of a workflow's steps, folded from its journal (position, name, kind,
attempts with their times, compensation, gather group, child flows), and the parent/child
links of any flow: part of a flow's status for the HTTP API and ``--json``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._codec import Codec
from ._failure import Failure
from ._journal._events import Entry, EventKind
from ._states import TaskState
from ._views import failure_view

__all__ = ["flow_timeline", "pattern_links", "workflow_view"]


# -- a workflow's steps -------------------------------------------------------------------------

#: Names of the values ``ctx.now()``, ``ctx.random()``, ``ctx.uuid()`` journal.
_VALUES = frozenset({"now", "random", "uuid", "sleep"})  # sleep: its wake-up time
_K = EventKind
_STEP_KINDS = frozenset(
    {_K.TASK_STARTED, _K.TASK_SUCCEEDED, _K.TASK_FAILED, _K.RETRY}
    | {_K.REVERT_STARTED, _K.REVERT_DONE, _K.REVERT_FAILED}
)


@dataclass(slots=True)
class _Attempt:
    attempt: int
    state: str  # RUNNING, SUCCESS, FAILURE
    started_at: float | None
    finished_at: float | None = None
    failure: Failure | None = None
    revert_state: str | None = None


@dataclass(slots=True)
class _Step:
    pos: int
    name: str
    key: str
    attempts: list[_Attempt] = field(default_factory=list)
    result: Any = None
    group: int | None = None
    child: str | None = None
    revertible: bool = False
    started_entry: bool = False  # some attempt was journaled with a task.started
    timed: bool = False  # some entry carried the step's started_at
    forked: str | None = None
    retrying: bool = False
    revert_state: str | None = None
    revert_failure: Failure | None = None


def _data(codec: Codec, text: Any) -> dict[str, Any]:
    """An entry's data as an object; ``{}`` when it is not one (the replay already said
    whether the journal is sound: a view shows what it can)."""
    if text.__class__ is not str or text in ("", "{}"):
        return {}
    try:
        data = codec.decode(text)
    except (ValueError, TypeError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def _num(value: Any) -> float | None:
    return float(value) if value.__class__ in (int, float) else None


def _pos_int(value: Any) -> int | None:
    return value if value.__class__ is int else None


def _text(value: Any) -> str | None:
    return value if value.__class__ is str and value else None


def _fail(value: Any) -> Failure | None:
    if not isinstance(value, dict):
        return None
    try:
        return Failure.from_dict(value)
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def _links(created: dict[str, Any]) -> dict[str, Any]:
    return {
        "parent": _text(created.get("parent")),
        "parent_step": _text(created.get("parent_step")),
        "forked_from": _text(created.get("forked_from")),
    }


def _child(
    children: dict[str, dict[str, Any]], data: dict[str, Any], step: str, pos: int | None
) -> str | None:
    """Note the child flow a ``task.started`` entry names (once per child id)."""
    child = _text(data.get("child"))
    if child is not None and child not in children:
        attempt = _pos_int(data.get("attempt"))
        children[child] = {"flow_id": child, "step": step, "position": pos, "attempt": attempt}
    return child


def pattern_links(entries: Sequence[Entry], codec: Codec) -> dict[str, Any]:
    """The fields a pattern flow's status has beside a workflow's: its parent and the child
    flows its tasks started (no steps)."""
    created = _data(codec, entries[0].data) if entries else {}
    children: dict[str, dict[str, Any]] = {}
    for e in entries:
        if e.kind is _K.TASK_STARTED and '"child"' in e.data:
            _child(children, _data(codec, e.data), e.task or "", None)
    return {
        "kind": "pattern",
        **_links(created),
        "children": list(children.values()),
        "result": None,
        "failure": None,
        "steps": None,
    }


def _step_of(steps: dict[int, _Step], key: Any) -> _Step | None:
    if key.__class__ is not str:
        return None
    head, sep, name = key.partition(":")
    if not sep or not head.isdigit():
        return None
    pos = int(head)
    s = steps.get(pos)
    if s is None or s.name != name:  # a name changed at a position: the latest call shows
        s = steps[pos] = _Step(pos, name, key)
    return s


def _end(s: _Step, data: dict[str, Any], at: float | None) -> _Attempt:
    """The attempt a ``task.succeeded`` / ``task.failed`` entry ends: the one its
    ``task.started`` began, or (a step journaled in one entry) a new one."""
    number = _pos_int(data.get("attempt"))
    last = s.attempts[-1] if s.attempts else None
    if last is not None and last.state == "RUNNING" and number in (None, last.attempt):
        a = last
    else:
        a = _Attempt(number or len(s.attempts) + 1, "RUNNING", None)
        s.attempts.append(a)
        s.revert_state = s.revert_failure = None
    t0 = _num(data.get("started_at"))
    if t0 is not None:
        a.started_at, s.timed = t0, True
    group = _pos_int(data.get("group"))
    if group is not None:
        s.group = group
    a.finished_at = at
    s.retrying = False
    return a


def _fold_step(
    s: _Step, e: Entry, data: dict[str, Any], children: dict[str, dict[str, Any]]
) -> None:
    kind, at = e.kind, _num(e.at)
    if kind is _K.TASK_STARTED:
        number = _pos_int(data.get("attempt")) or len(s.attempts) + 1
        a = _Attempt(number, "RUNNING", at)
        if s.attempts and s.attempts[-1].attempt == number and s.attempts[-1].state == "RUNNING":
            s.attempts[-1] = a  # the same attempt journaled again (a resumed run)
        else:
            s.attempts.append(a)
        s.started_entry, s.retrying, s.result = True, False, None
        s.revert_state = s.revert_failure = None
        s.revertible = data.get("revert") is True
        s.group = _pos_int(data.get("group"))
        s.child = _child(children, data, s.key, s.pos) or s.child
    elif kind is _K.TASK_SUCCEEDED:
        a = _end(s, data, at)
        a.state, a.failure = "SUCCESS", None
        s.result = data.get("result")
        s.forked = _text(data.get("forked"))
    elif kind is _K.TASK_FAILED:
        a = _end(s, data, at)
        a.state, a.failure = "FAILURE", _fail(data.get("failure"))
        s.result = None
    elif kind is _K.RETRY:
        s.retrying = data.get("decision") == "retry"
    else:
        state = {
            _K.REVERT_STARTED: "REVERTING",
            _K.REVERT_DONE: "REVERTED",
            _K.REVERT_FAILED: "REVERT_FAILURE",
        }[kind]
        s.revert_state = state
        if s.attempts:
            s.attempts[-1].revert_state = state
        if kind is _K.REVERT_FAILED:
            s.revert_failure = _fail(data.get("failure"))


def _step_kind(s: _Step) -> str:
    if s.child is not None:
        return "child"
    if not s.started_entry and not s.timed and s.forked is None:
        if s.name.startswith("patch:"):
            return "patch"
        if s.name in _VALUES or s.name.startswith("event:"):  # event: which one was taken
            return "value"
    return "step"


def _attempt_view(a: _Attempt, state: str) -> dict[str, Any]:
    f = a.failure
    return {
        "attempt": a.attempt,
        "state": state,
        "started_at": a.started_at,
        "finished_at": a.finished_at,
        "duration": _duration(a.started_at, a.finished_at),
        "error": None if f is None else f"{f.exc_type}: {f.message}",
        "revert_state": a.revert_state,
    }


def _duration(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else max(0.0, end - start)


def _step_view(s: _Step, groups: set[int], finished: bool) -> dict[str, Any]:
    def state_of(a: _Attempt) -> str:
        # started and never ended in a flow that has ended: cut short (cancelled, or the
        # engine stopped and the flow was rolled back without it)
        return "INTERRUPTED" if a.state == "RUNNING" and finished else a.state

    last = s.attempts[-1] if s.attempts else None
    state = TaskState.PENDING.value if last is None else state_of(last)
    starts = [a.started_at for a in s.attempts if a.started_at is not None]
    started_at = min(starts) if starts else None
    finished_at = last.finished_at if last is not None else None
    group = s.group
    if group is None and s.pos in groups:  # a gather's first step (its position names it)
        group = s.pos
    return {
        "position": s.pos,
        "name": s.name,
        "key": s.key,
        "kind": _step_kind(s),
        "state": state,
        "attempt": last.attempt if last is not None else 0,
        "started_at": started_at,
        "finished_at": finished_at,
        "duration": _duration(started_at, finished_at),
        "result": s.result if state == "SUCCESS" else None,
        "failure": failure_view(last.failure if last is not None else None),
        "revert_state": s.revert_state,
        "revert_failure": failure_view(s.revert_failure),
        "revertible": s.revertible,
        "retrying": s.retrying and not finished and state == "FAILURE",
        "group": group,
        "child": s.child,
        "forked": s.forked,
        "attempts": [_attempt_view(a, state_of(a)) for a in s.attempts],
    }


def workflow_view(
    entries: Iterable[Entry], codec: Codec | None = None, *, finished: bool = False
) -> dict[str, Any] | None:
    """The workflow fields of a flow's status, folded from its journal ``entries``: None
    when its ``flow.created`` entry does not say it is a workflow. ``steps`` is ordered by
    position; a step's ``started_at`` is when its first attempt started (``attempts`` has
    each attempt's own times). ``finished``: the flow has ended (a step started and never
    ended was then cut short: INTERRUPTED)."""
    codec = codec or Codec()
    it = iter(entries)
    first = next(it, None)
    if first is None or first.kind is not _K.FLOW_CREATED:
        return None
    created = _data(codec, first.data)
    if created.get("workflow") is not True:
        return None
    steps: dict[int, _Step] = {}
    children: dict[str, dict[str, Any]] = {}
    result: Any = None
    failure: Failure | None = None
    for e in it:
        kind = e.kind
        if kind in _STEP_KINDS:
            s = _step_of(steps, e.task)
            if s is not None:
                _fold_step(s, e, _data(codec, e.data), children)
        elif kind is _K.FLOW_STATE:
            if e.state == "SUCCESS":
                result = _data(codec, e.data).get("result")
            elif e.state == "REVERTING":
                failure = _fail(_data(codec, e.data).get("failure")) or failure
            elif e.state == "RUNNING":
                failure = None
    groups = {s.group for s in steps.values() if s.group is not None}
    views = [_step_view(steps[p], groups, finished) for p in sorted(steps)]
    return {
        "kind": "workflow",
        **_links(created),
        "children": list(children.values()),
        "result": result,
        "failure": failure_view(failure),
        "steps": views,
    }


# -- any flow's timeline: spans per task, the flow's phases, retry decisions ---------------------

_REVERT_END = {_K.REVERT_DONE: "REVERTED", _K.REVERT_FAILED: "REVERT_FAILURE"}


def flow_timeline(
    entries: Sequence[Entry], codec: Codec, *, finished: bool = False
) -> dict[str, Any]:
    """What a time axis of the flow shows, folded from its journal: per task, its ``spans``
    in journal order (one per attempt, ``kind`` ``"run"``, and one per revert, ``kind``
    ``"revert"``; each ``{"kind", "attempt", "state", "started_at", "finished_at"}``);
    the flow's ``phases`` (``{"state", "at", "reason"}`` for each ``flow.state`` entry:
    when it ran, reverted, was suspended); and its ``retry_decisions`` (``{"scope", "at",
    "decision", "attempt", "reset"}``). A run span cut short is ``INTERRUPTED``: by a
    cancel (its failure is a ``FlowCancelled``), or without an end in a flow that has
    ended."""
    spans: dict[str, list[dict[str, Any]]] = {}
    phases: list[dict[str, Any]] = []
    decisions: list[dict[str, Any]] = []

    def last_open(task: str, kind: str) -> dict[str, Any] | None:
        own = spans.get(task)
        if own and own[-1]["kind"] == kind and own[-1]["finished_at"] is None:
            return own[-1]
        return None

    def new(task: str, kind: str, attempt: int | None, state: str, t0: float | None) -> Any:
        span = {
            "kind": kind,
            "attempt": attempt,
            "state": state,
            "started_at": t0,
            "finished_at": None,
        }
        spans.setdefault(task, []).append(span)
        return span

    for e in entries:
        kind, at = e.kind, _num(e.at)
        if kind is _K.FLOW_STATE:
            reason = _text(_data(codec, e.data).get("reason")) if e.data != "{}" else None
            phases.append({"state": e.state, "at": at, "reason": reason})
            continue
        task = e.task
        if task.__class__ is not str or not task:
            continue
        if kind is _K.TASK_STARTED:
            attempt = _attempt_of(codec, e.data)
            new(task, "run", attempt, "RUNNING", at)
        elif kind is _K.TASK_SUCCEEDED or kind is _K.TASK_FAILED:
            data = _data(codec, e.data)
            attempt = _pos_int(data.get("attempt"))
            span = last_open(task, "run")
            if span is None:  # journaled in one entry (a workflow step), or summed up
                span = new(task, "run", attempt, "RUNNING", _num(data.get("started_at")))
            span["state"] = "SUCCESS" if kind is _K.TASK_SUCCEEDED else "FAILURE"
            if kind is _K.TASK_FAILED and _cut_short(data.get("failure")):
                span["state"] = "INTERRUPTED"  # a cancel cut it short: it did not fail
            span["finished_at"] = at
            if span["attempt"] is None:
                span["attempt"] = attempt
        elif kind is _K.REVERT_STARTED:
            runs = [x for x in spans.get(task, ()) if x["kind"] == "run"]
            new(task, "revert", runs[-1]["attempt"] if runs else None, "REVERTING", at)
        elif kind in _REVERT_END:
            span = last_open(task, "revert") or new(task, "revert", None, "REVERTING", None)
            span["state"] = _REVERT_END[kind]
            span["finished_at"] = at
        elif kind is _K.RETRY:
            data = _data(codec, e.data)
            reset = data.get("reset")
            decisions.append(
                {
                    "scope": task,
                    "at": at,
                    "decision": _text(data.get("decision")),
                    "attempt": _pos_int(data.get("attempt")),
                    "reset": [n for n in reset if n.__class__ is str]
                    if isinstance(reset, list)
                    else [],
                }
            )
    if finished:
        for own in spans.values():
            for span in own:
                if span["kind"] == "run" and span["state"] == "RUNNING":
                    span["state"] = "INTERRUPTED"
    return {"spans": spans, "phases": phases, "retry_decisions": decisions}


def _cut_short(failure: Any) -> bool:
    """Whether a journaled failure is a cancellation's (``FlowCancelled``, ``CancelledError``)."""
    f = _fail(failure)
    return f is not None and f.matches("FlowCancelled", "CancelledError")


def _attempt_of(codec: Codec, text: str) -> int | None:
    if text.startswith('{"attempt":') and text[11:-1].isdecimal() and text[-1] == "}":
        return int(text[11:-1])  # what the engine writes: no JSON parse needed
    return _pos_int(_data(codec, text).get("attempt"))
