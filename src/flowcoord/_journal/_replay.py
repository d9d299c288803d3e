"""Replay: rebuild a flow's state from its journal entries."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Container, Iterable
from dataclasses import dataclass, field
from typing import Any

from .._codec import Codec
from .._failure import Failure
from .._states import FlowState, TaskState
from ..errors import JournalCorrupt
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
    child: str | None = None  # the child flow its latest attempt started (a child task)


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
    #: the flow was reverting when its journal ends (REVERTING, or SUSPENDED while
    #: reverting); ``cancelled``: because it was cancelled
    reverting: bool = False
    cancelled: bool = False
    #: retry scopes whose latest decision gave up ("revert": their parent decides next)
    gave_up: set[str] = field(default_factory=set)
    #: a child flow's parent: its flow id and the parent's step (or task) that started it
    parent: str | None = None
    parent_step: str | None = None
    workflow: bool = False  # a code-first workflow's journal

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


class _Bad(Exception):
    """What is wrong with the entry being folded; :func:`_fold` makes it a JournalCorrupt."""


class _AnyTask:
    """The task names of a flow whose ``flow.created`` entry did not list them (or has not
    been read): every non-empty name."""

    __slots__ = ()

    def __contains__(self, name: object) -> bool:
        return name.__class__ is str and name != ""


_ANY_TASK: Container[Any] = _AnyTask()
_DECISIONS = ("retry", "revert", "revert_all")
_HINT = (
    "the journal was changed by something other than flowcoord, and nothing was added to it: "
    "repair or delete that entry in the journal store, then try again"
)


def _fold(r: FlowReplay, entries: Iterable[Entry], codec: Codec) -> None:
    """Fold ``entries`` into ``r``, checking each: :class:`JournalCorrupt` names the first
    one that flowcoord cannot have written. The checks are the cheap kind (a comparison, a
    class test) on the hot path; what ``json`` or a field's use would raise on anyway is
    caught rather than looked for."""
    known: Container[Any] = _ANY_TASK  # the flow's task names, once flow.created is read
    tasks = r.tasks  # a record there is of a known task: no need to look its name up again
    created = False
    last = r.last_seq
    e: Entry | None = None
    for e in entries:
        try:
            seq = e.seq
            if seq <= last:
                raise _Bad(
                    f"its seq repeats an earlier entry's ({seq})"
                    if seq == last
                    else f"its seq goes backwards (after seq {last})"
                )
            last = seq
            kind = e.kind
            if kind is EventKind.TASK_STARTED:
                name = e.task or ""
                rec = tasks.get(name)
                if rec is None:  # a name not seen yet: is it one of the flow's tasks?
                    if name not in known:
                        raise _Bad(_no_task(e.task, known))
                    rec = r.task(name)
                rec.state = TaskState.RUNNING
                d = e.data
                if d.startswith('{"attempt":') and d[11:-1].isdecimal() and d[-1] == "}":
                    rec.attempt = int(d[11:-1])  # what the engine writes: no JSON parse needed
                else:
                    data = _obj(codec, d)
                    rec.attempt = _int(data, "attempt", rec.attempt + 1)
                    rec.child = _str(data, "child")
                rec.started_at = e.at
                rec.finished_at = None
            elif kind is EventKind.TASK_SUCCEEDED:
                name = e.task or ""
                rec = tasks.get(name)
                if rec is None:  # a name not seen yet: is it one of the flow's tasks?
                    if name not in known:
                        raise _Bad(_no_task(e.task, known))
                    rec = r.task(name)
                rec.state = TaskState.SUCCESS
                d = e.data
                if d.startswith('{"result":null,') and d[-1] == "}" and "started_at" not in d:
                    rec.result = None
                else:
                    data = _obj(codec, d)
                    rec.result = data.get("result")
                    attempt = _int(data, "attempt", 0)
                    if not rec.attempt:  # no task.started seen (e.g. a result copied by a fork)
                        rec.attempt = attempt
                    t0 = data.get("started_at")
                    if t0.__class__ is float:  # a workflow step journaled in one entry
                        rec.attempt, rec.started_at = attempt or rec.attempt, t0
                rec.failure = None
                rec.finished_at = e.at
            elif kind is EventKind.CHECKPOINT:
                # Successes summed up: the same as their task.succeeded entries (which a
                # resume does not read; a full read sees both, to the same effect).
                data = _obj(codec, e.data)
                if data.get("from").__class__ is not int:
                    raise _Bad(f"its from is {_what(data.get('from'))}, not an int")
                names, attempts, results = (
                    data.get("tasks"),
                    data.get("attempts"),
                    data.get("results"),
                )
                if not (
                    names.__class__ is list
                    and attempts.__class__ is list
                    and results.__class__ is list
                ):
                    raise _Bad("its tasks, attempts and results are not all lists")
                if not len(names) == len(attempts) == len(results):
                    raise _Bad(
                        f"its lists differ in length ({len(names)} tasks, {len(attempts)} "
                        f"attempts, {len(results)} results)"
                    )
                _check_names(names, known, "its tasks list")
                summed = r.summed
                for name, attempt, result in zip(names, attempts, results, strict=True):
                    if attempt.__class__ is not int:
                        raise _Bad(f"its attempts hold {_what(attempt)}, not only ints")
                    got = tasks.get(name)
                    if got is None:
                        summed[name] = (attempt, result)
                    else:
                        got.state, got.attempt, got.result, got.failure = (
                            TaskState.SUCCESS, attempt, result, None
                        )  # fmt: skip
            elif kind is EventKind.TASK_FAILED:
                name = e.task or ""
                if name not in known:
                    raise _Bad(_no_task(e.task, known))
                data = _obj(codec, e.data)
                failure = _failure(data)
                rec = r.task(name)
                rec.state = TaskState.FAILURE
                rec.failure = failure
                rec.attempt = _int(data, "attempt", rec.attempt)  # its started may be summed up
                rec.finished_at = e.at
                t0 = data.get("started_at")
                if t0.__class__ is float:  # a workflow step journaled in one entry
                    rec.started_at = t0
                r.failures[name] = failure
            elif kind is EventKind.FLOW_STATE:
                state = e.state
                if state not in _FLOW_STATES:
                    raise _Bad(
                        "it has no state"
                        if state is None
                        else f"its state {_short(state)} is not a flow state (one of "
                        f"{_STATE_NAMES})"
                    )
                reason = _str(_obj(codec, e.data), "reason") if e.data != "{}" else None
                new = r.state = _FLOW_STATES[state]
                if new is FlowState.REVERTING:
                    r.reverting = True
                    r.cancelled = r.cancelled or reason == "cancelled"
                elif new is FlowState.RUNNING:
                    r.reverting = r.cancelled = False
            elif kind is EventKind.REVERT_STARTED or kind is EventKind.REVERT_DONE:
                name = e.task or ""
                if name not in known:
                    raise _Bad(_no_task(e.task, known))
                if e.data != "{}":
                    _obj(codec, e.data)
                r.task(name).state = (
                    TaskState.REVERTING if kind is EventKind.REVERT_STARTED else TaskState.REVERTED
                )
            elif kind is EventKind.REVERT_FAILED:
                name = e.task or ""
                if name not in known:
                    raise _Bad(_no_task(e.task, known))
                failure = _failure(_obj(codec, e.data))
                rec = r.task(name)
                rec.state = TaskState.REVERT_FAILURE
                rec.revert_failure = failure
            elif kind is EventKind.RETRY:
                scope = e.task  # a retry scope's key, not a task name
                if scope.__class__ is not str or not scope:
                    raise _Bad("it names no retry scope (its task is empty)")
                data = _obj(codec, e.data)
                decision = data.get("decision")
                if decision.__class__ is not str or decision not in _DECISIONS:
                    raise _Bad(
                        f"its decision is {_what(decision)}, not one of {', '.join(_DECISIONS)}"
                    )
                attempt = _int(data, "attempt", 0)
                reset = data.get("reset", [])
                if reset.__class__ is not list:
                    raise _Bad(f"its reset is {_what(reset)}, not a list of task names")
                _check_names(reset, known, "its reset list")
                r.retries[scope] = attempt
                if decision == "revert":
                    r.gave_up.add(scope)
                if decision == "retry":
                    r.gave_up.discard(scope)
                    nested = data.get("scopes", [])  # none in entries written before 'scopes'
                    if nested.__class__ is not list or not _all_str(nested):
                        raise _Bad(f"its scopes are {_what(nested)}, not a list of scope keys")
                    for key in nested:  # nested scopes start again at their first attempt
                        r.retries.pop(key, None)
                        r.gave_up.discard(key)
                    for name in reset:
                        r.tasks[name] = TaskRecord()
                        r.summed.pop(name, None)
                        r.failures.pop(name, None)
            elif kind is EventKind.FLOW_CREATED:
                if created:
                    raise _Bad("the flow has an earlier flow.created entry")
                created = True
                data = _obj(codec, e.data)
                r.name = _str(data, "name") or ""
                inputs = data.get("inputs", {})
                if not isinstance(inputs, dict):
                    raise _Bad(f"its inputs are {_what(inputs)}, not an object")
                r.inputs = dict(inputs)
                r.parent, r.parent_step = _str(data, "parent"), _str(data, "parent_step")
                r.workflow = data.get("workflow") is True
                names = data.get("tasks")
                if names is not None:
                    if names.__class__ is not list or not _all_str(names):
                        raise _Bad(f"its tasks are {_what(names)}, not a list of task names")
                    known = frozenset(names)
                    if "" in known:
                        raise _Bad("its tasks list has an empty task name")
                    r.task_names = list(names)
                r.created_at = e.at
            elif kind is EventKind.STORE:
                values = _obj(codec, e.data).get("values", {})
                if not isinstance(values, dict):
                    raise _Bad(f"its values are {_what(values)}, not an object")
                r.inputs.update(values)
            else:
                raise _Bad(f"its kind {_short(kind)} is not a journal entry kind")
        except _Bad as bad:
            raise _corrupt(r.flow_id, e, str(bad)) from None
        except (ValueError, TypeError, AttributeError, KeyError, IndexError, RecursionError) as exc:
            raise _corrupt(r.flow_id, e, _cannot_read(e, exc)) from exc
    r.last_seq = last
    if e is not None:
        r.updated_at = e.at


_FLOW_STATES: dict[object, FlowState] = {s.value: s for s in FlowState}
_STATE_NAMES = ", ".join(s.value for s in FlowState)


def _obj(codec: Codec, text: str) -> dict[str, Any]:
    data = codec.decode(text)
    if not isinstance(data, dict):
        raise _Bad(f"its data is {_what(data)}, not a JSON object")
    return data


def _int(data: dict[str, Any], key: str, default: int) -> int:
    value = data.get(key, default)
    if value.__class__ is not int:
        raise _Bad(f"its {key} is {_what(value)}, not an int")
    return value


def _str(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is not None and value.__class__ is not str:
        raise _Bad(f"its {key} is {_what(value)}, not a string")
    return value


def _failure(data: dict[str, Any]) -> Failure:
    """The entry's ``failure``, checked all the way down its causes."""
    f = data.get("failure")
    path = "failure"
    while True:
        if not isinstance(f, dict):
            raise _Bad(f"its {path} is {_what(f)}, not an object")
        types = f.get("exc_types", [])
        if types.__class__ is not list or not all(t.__class__ is str for t in types):
            raise _Bad(f"its {path}.exc_types is {_what(types)}, not a list of strings")
        for key in ("message", "traceback"):
            value = f.get(key, "")
            if value.__class__ is not str:
                raise _Bad(f"its {path}.{key} is {_what(value)}, not a string")
        f = f.get("cause")
        if f is None:
            break
        path += ".cause"
    return Failure.from_dict(data["failure"])


def _all_str(items: list[Any]) -> bool:
    """Whether every one of ``items`` is a ``str``: ``str.join`` checks that in C, faster
    than any loop over them."""
    try:
        "".join(items)
    except TypeError:
        return False
    return True


def _check_names(names: list[Any], known: Container[Any], where: str) -> None:
    """That every one of ``names`` is a task of the flow (``known``)."""
    if isinstance(known, frozenset):
        with contextlib.suppress(TypeError):  # unhashable names: found below
            if known.issuperset(names):
                return
    elif _all_str(names) and "" not in names:
        return
    bad = next(n for n in names if n.__class__ is not str or n not in known)
    raise _Bad(_no_task(bad, known, where))


def _no_task(name: object, known: Container[Any], where: str = "") -> str:
    if name is None or name == "":
        return "it names no task" if not where else f"{where} has an empty task name"
    if name.__class__ is not str:
        return f"{where or 'its task'} is {_what(name)}, not a task name"
    names = f"{where} names" if where else "it names"
    return f"{names} task {_short(name)}, which the flow does not have"


def _what(value: object) -> str:
    """A value, shortly, for a message: ``'abc'``, ``3``, ``a list``…"""
    if value is None:
        return "missing (or null)"
    if isinstance(value, bool | int | float) or (isinstance(value, str) and len(value) <= 40):
        return repr(value)
    if isinstance(value, str):
        return "a long string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _cannot_read(e: Entry, exc: BaseException) -> str:
    """What is wrong with ``e``, which raised ``exc`` while being folded."""
    if not isinstance(e.seq, int):
        return f"its seq {_short(e.seq)} is not an integer"
    if not isinstance(e.data, str):
        return f"its data is {_what(e.data)}, not JSON text"
    if e.task is not None and not isinstance(e.task, str):
        return f"its task is {_what(e.task)}, not a name"
    if isinstance(exc, json.JSONDecodeError):
        return f"its data is not valid JSON ({exc})"
    if isinstance(exc, RecursionError):
        return "its data is nested too deeply"
    return f"its data cannot be read ({type(exc).__name__}: {exc})"


def _corrupt(flow_id: str, e: Entry | None, what: str) -> JournalCorrupt:
    if e is None:  # not reached: an error is about an entry
        return JournalCorrupt(f"flow {flow_id!r}: {what}", flow_id=flow_id, hint=_HINT)
    kind = e.kind.value if isinstance(e.kind, EventKind) else str(e.kind)
    seq = e.seq if isinstance(e.seq, int) else None
    name = e.task if isinstance(e.task, str) and e.task else None
    where = f"seq {e.seq!r}, {kind}"
    if name is not None:
        where += f", {'scope' if e.kind is EventKind.RETRY else 'task'} {_short(name)}"
    return JournalCorrupt(
        f"flow {flow_id!r}: journal entry ({where}) is corrupt: {what}",
        flow_id=flow_id,
        task=None if e.kind is EventKind.RETRY else name,
        seq=seq,
        kind=kind,
        hint=_HINT,
    )
