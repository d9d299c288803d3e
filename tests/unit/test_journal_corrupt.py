"""A journal entry flowcoord cannot have written is a JournalCorrupt naming the flow, the
entry (seq, kind, task) and what is wrong with it: from replay() on entries, and from
Engine.status / resume / run on a SQLite journal edited behind flowcoord's back — raised
before anything is written."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Awaitable, Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

import flowcoord as fc
from flowcoord.errors import JournalCorrupt, JournalError
from flowcoord.journal import Entry, EventKind, replay

pytestmark = pytest.mark.anyio

FLOW = "f1"
TASKS = ["a", "b", "c"]
_HEAD = json.dumps({"name": "demo", "inputs": {"size": 2}, "tasks": TASKS})
_FAILURE = {"exc_types": ["ValueError", "Exception"], "message": "no", "traceback": ""}


def _entries() -> list[Entry]:
    """A journal flowcoord writes: a succeeds, b fails, is retried and succeeds, c runs."""
    rows: list[tuple[EventKind, str | None, Any, str | None]] = [
        (EventKind.FLOW_CREATED, None, _HEAD, None),
        (EventKind.FLOW_STATE, None, "{}", "RUNNING"),
        (EventKind.TASK_STARTED, "a", '{"attempt":1}', None),
        (EventKind.TASK_SUCCEEDED, "a", '{"result":3,"attempt":1}', None),
        (EventKind.STORE, None, '{"values":{"extra":1}}', None),
        (EventKind.TASK_STARTED, "b", '{"attempt":1}', None),
        (EventKind.TASK_FAILED, "b", {"failure": _FAILURE, "attempt": 1}, None),
        (EventKind.REVERT_STARTED, "b", "{}", None),
        (EventKind.REVERT_DONE, "b", "{}", None),
        (EventKind.RETRY, "task:b", {"decision": "retry", "attempt": 2, "reset": ["b"]}, None),
        (EventKind.TASK_STARTED, "b", '{"attempt":2}', None),
        (EventKind.TASK_SUCCEEDED, "b", '{"result":null,"attempt":2}', None),
        (
            EventKind.CHECKPOINT,
            None,
            {"from": 12, "tasks": ["a", "b"], "attempts": [1, 2], "results": [3, None]},
            None,
        ),
        (EventKind.TASK_STARTED, "c", '{"attempt":1}', None),
        (EventKind.TASK_FAILED, "c", {"failure": {**_FAILURE, "cause": _FAILURE}}, None),
        (EventKind.FLOW_STATE, None, '{"reason":"c failed"}', "REVERTING"),
        (EventKind.REVERT_STARTED, "c", "{}", None),
        (EventKind.REVERT_FAILED, "c", {"failure": _FAILURE}, None),
    ]
    return [
        Entry(FLOW, seq, kind, task, data if isinstance(data, str) else json.dumps(data), state)
        for seq, (kind, task, data, state) in enumerate(rows)
    ]


def _seq_of(entries: list[Entry], kind: EventKind, task: str | None = None) -> int:
    return next(e.seq for e in entries if e.kind is kind and (task is None or e.task == task))


def _with(entries: list[Entry], at: int, **changes: Any) -> list[Entry]:
    """``entries`` with entry seq ``at`` changed (``data`` given as an object is JSON-encoded)."""
    data = changes.get("data")
    if data is not None and not isinstance(data, str | int):
        changes["data"] = json.dumps(data)
    return [dataclasses.replace(e, **changes) if e.seq == at else e for e in entries]


def test_only_the_entry_flowcoord_cannot_have_written_is_refused() -> None:
    """The journal as written replays in full (a retry's scope key is not taken for a task
    name); the same journal with one task.succeeded of a task the flow lacks is refused."""
    entries = _entries()
    rep = replay(FLOW, entries)
    assert rep.state is fc.FlowState.REVERTING
    assert rep.task_names == TASKS
    assert rep.retries == {"task:b": 2}
    assert rep.tasks["b"].state is fc.TaskState.SUCCESS
    assert rep.tasks["c"].state is fc.TaskState.REVERT_FAILURE
    assert rep.tasks["c"].failure is not None
    assert rep.tasks["c"].failure.cause is not None
    assert rep.inputs == {"size": 2, "extra": 1}
    assert rep.last_seq == len(entries) - 1
    stray = Entry(FLOW, len(entries), EventKind.TASK_SUCCEEDED, "d", '{"result":null,"attempt":1}')
    with pytest.raises(JournalCorrupt, match="task 'd', which the flow does not have"):
        replay(FLOW, [*entries, stray])


def test_task_names_are_checked_once_flow_created_lists_them() -> None:
    """A partial list (no flow.created) replays as before: the flow's tasks are unknown, so
    only an empty name is refused."""
    partial = _entries()[2:4]
    assert replay(FLOW, _with(partial, 3, task="zzz")).tasks["zzz"].result == 3
    with pytest.raises(JournalCorrupt, match="it names no task"):
        replay(FLOW, _with(partial, 3, task=None))
    with pytest.raises(JournalCorrupt, match="task 'zzz', which the flow does not have"):
        replay(FLOW, _with(_entries(), 3, task="zzz"))


# (name, kind of the entry to change and its task, the change, what the message says)
_E, _S = EventKind, EventKind.TASK_SUCCEEDED
CASES: list[tuple[str, EventKind, str | None, dict[str, Any], str]] = [
    ("succeeded data not JSON", _S, "a", {"data": '{"result": 3, "attempt"'}, "not valid JSON"),
    ("fast path cut short", _S, "b", {"data": '{"result":null,"attempt":2'}, "not valid JSON"),
    ("succeeded data a list", _S, "a", {"data": "[3]"}, "its data is a list, not a JSON object"),
    ("succeeded attempt text", _S, "a", {"data": {"result": 3, "attempt": "1"}}, "attempt is '1'"),
    ("succeeded unknown task", _S, "a", {"task": "zzz"}, "task 'zzz', which the flow does not"),
    ("succeeded no task", _S, "a", {"task": None}, "it names no task"),
    ("started empty task", _E.TASK_STARTED, "a", {"task": ""}, "it names no task"),
    ("started attempt bool", _E.TASK_STARTED, "a", {"data": {"attempt": True}}, "attempt is True"),
    ("started odd digits", _E.TASK_STARTED, "a", {"data": '{"attempt":²}'}, "not valid JSON"),
    ("state unknown", _E.FLOW_STATE, None, {"state": "DONE"}, "state 'DONE' is not a flow state"),
    ("state missing", _E.FLOW_STATE, None, {"state": None}, "it has no state"),
    ("state reason", _E.FLOW_STATE, None, {"data": {"reason": 5}}, "its reason is 5, not a str"),
    ("failed data a string", _E.TASK_FAILED, "b", {"data": '"boom"'}, "not a JSON object"),
    (
        "failed failure text",
        _E.TASK_FAILED,
        "b",
        {"data": {"failure": "boom"}},
        "failure is 'boom'",
    ),
    ("failed no failure", _E.TASK_FAILED, "b", {"data": {"attempt": 1}}, "failure is missing"),
    (
        "failed exc_types",
        _E.TASK_FAILED,
        "b",
        {"data": {"failure": {**_FAILURE, "exc_types": "ValueError"}}},
        "failure.exc_types is 'ValueError', not a list of strings",
    ),
    (
        "failed exc_types items",
        _E.TASK_FAILED,
        "b",
        {"data": {"failure": {**_FAILURE, "exc_types": ["E", 3]}}},
        "failure.exc_types is a list, not a list of strings",
    ),
    (
        "failed message",
        _E.TASK_FAILED,
        "b",
        {"data": {"failure": {**_FAILURE, "message": ["x"]}}},
        "failure.message is a list, not a string",
    ),
    (
        "failed cause",
        _E.TASK_FAILED,
        "c",
        {"data": {"failure": {**_FAILURE, "cause": {**_FAILURE, "traceback": 1}}}},
        "failure.cause.traceback is 1, not a string",
    ),
    (
        "failed attempt",
        _E.TASK_FAILED,
        "b",
        {"data": {"failure": _FAILURE, "attempt": 1.0}},
        "attempt is 1.0, not an int",
    ),
    ("failed unknown task", _E.TASK_FAILED, "b", {"task": "x"}, "task 'x', which the flow"),
    ("revert failed failure", _E.REVERT_FAILED, "c", {"data": {"failure": []}}, "not an object"),
    ("revert started task", _E.REVERT_STARTED, "b", {"task": "q"}, "task 'q', which the flow"),
    ("revert done data", _E.REVERT_DONE, "b", {"data": "{"}, "not valid JSON"),
    (
        "checkpoint lengths",
        _E.CHECKPOINT,
        None,
        {"data": {"from": 12, "tasks": ["a", "b"], "attempts": [1], "results": [3, None]}},
        "its lists differ in length (2 tasks, 1 attempts, 2 results)",
    ),
    (
        "checkpoint not lists",
        _E.CHECKPOINT,
        None,
        {"data": {"from": 12, "tasks": "ab", "attempts": [1, 2], "results": [3, None]}},
        "not all lists",
    ),
    (
        "checkpoint attempts",
        _E.CHECKPOINT,
        None,
        {"data": {"from": 12, "tasks": ["a", "b"], "attempts": [1, "2"], "results": [3, None]}},
        "its attempts hold '2', not only ints",
    ),
    (
        "checkpoint names",
        _E.CHECKPOINT,
        None,
        {"data": {"from": 12, "tasks": ["a", 7], "attempts": [1, 2], "results": [3, None]}},
        "its tasks list is 7, not a task name",
    ),
    (
        "checkpoint unhashable name",
        _E.CHECKPOINT,
        None,
        {"data": {"from": 12, "tasks": ["a", ["b"]], "attempts": [1, 2], "results": [3, None]}},
        "its tasks list is a list, not a task name",
    ),
    (
        "checkpoint unknown task",
        _E.CHECKPOINT,
        None,
        {"data": {"from": 12, "tasks": ["a", "z"], "attempts": [1, 2], "results": [3, None]}},
        "its tasks list names task 'z', which the flow does not have",
    ),
    (
        "checkpoint from",
        _E.CHECKPOINT,
        None,
        {"data": {"tasks": [], "attempts": [], "results": []}},
        "its from is missing (or null), not an int",
    ),
    (
        "retry reset text",
        _E.RETRY,
        "task:b",
        {"data": {"decision": "retry", "attempt": 2, "reset": "b"}},
        "its reset is 'b', not a list of task names",
    ),
    (
        "retry reset items",
        _E.RETRY,
        "task:b",
        {"data": {"decision": "retry", "attempt": 2, "reset": ["b", None]}},
        "its reset list has an empty task name",
    ),
    (
        "retry reset unknown",
        _E.RETRY,
        "task:b",
        {"data": {"decision": "retry", "attempt": 2, "reset": ["nope"]}},
        "its reset list names task 'nope', which the flow does not have",
    ),
    (
        "retry decision",
        _E.RETRY,
        "task:b",
        {"data": {"decision": "maybe", "attempt": 2, "reset": []}},
        "its decision is 'maybe', not one of retry, revert, revert_all",
    ),
    (
        "retry attempt",
        _E.RETRY,
        "task:b",
        {"data": {"decision": "revert", "attempt": "2", "reset": []}},
        "its attempt is '2', not an int",
    ),
    ("retry no scope", _E.RETRY, "task:b", {"task": None}, "it names no retry scope"),
    ("store values", _E.STORE, None, {"data": {"values": [1]}}, "its values are a list"),
    ("created inputs", _E.FLOW_CREATED, None, {"data": {"inputs": 3}}, "its inputs are 3"),
    (
        "created tasks",
        _E.FLOW_CREATED,
        None,
        {"data": {"name": "demo", "tasks": ["a", 1]}},
        "its tasks are a list, not a list of task names",
    ),
    ("created name", _E.FLOW_CREATED, None, {"data": {"name": 1}}, "its name is 1, not a string"),
    ("data not text", _E.TASK_STARTED, "a", {"data": 7}, "its data is 7, not JSON text"),
    ("seq not an int", _E.TASK_STARTED, "a", {"seq": "2"}, "its seq '2' is not an integer"),
    ("kind unknown", _E.TASK_STARTED, "a", {"kind": "task.paused"}, "is not a journal entry kind"),
]


@pytest.mark.parametrize(
    ("kind", "task", "change", "fragment"),
    [pytest.param(*c[1:], id=c[0]) for c in CASES],
)
def test_a_corrupt_entry_is_a_journal_corrupt_naming_it(
    kind: EventKind, task: str | None, change: dict[str, Any], fragment: str
) -> None:
    entries = _entries()
    seq = _seq_of(entries, kind, task)
    with pytest.raises(JournalCorrupt) as info:
        replay(FLOW, _with(entries, seq, **change))
    err = info.value
    assert isinstance(err, JournalError)
    assert fragment in err.message
    assert err.flow_id == FLOW
    bad_seq = change.get("seq", seq)
    assert err.seq == (bad_seq if isinstance(bad_seq, int) else None)
    assert err.kind == str(change.get("kind", kind))
    named = change.get("task", task)
    assert err.task == (named if named and kind is not EventKind.RETRY else None)
    assert err.message.startswith(f"flow {FLOW!r}: journal entry (seq {bad_seq!r}, ")
    assert f", {err.kind}" in err.message
    assert err.hint is not None
    assert "repair or delete" in err.hint


@pytest.mark.parametrize("seq", [3, 2], ids=["repeats", "goes back"])
def test_a_seq_that_repeats_or_goes_back_is_corrupt(seq: int) -> None:
    entries = _entries()
    bad = [*entries[:4], _with(entries, 4, seq=seq)[4], *entries[5:]]
    with pytest.raises(JournalCorrupt, match="seq") as info:
        replay(FLOW, bad)
    assert info.value.seq == seq
    assert info.value.kind == "store"
    assert ("repeats" if seq == 3 else "goes backwards") in info.value.message


def test_a_second_flow_created_entry_is_corrupt() -> None:
    entries = _entries()
    again = Entry(FLOW, len(entries), EventKind.FLOW_CREATED, None, _HEAD)
    with pytest.raises(JournalCorrupt, match=r"earlier flow\.created") as info:
        replay(FLOW, [*entries, again])
    assert info.value.seq == len(entries)


def test_a_corrupt_entry_is_found_by_a_compact_replay_too() -> None:
    entries = _with(
        _entries(), 12, data={"from": 12, "tasks": ["a"], "attempts": [], "results": []}
    )
    with pytest.raises(JournalCorrupt, match="differ in length"):
        replay(FLOW, entries, compact=True)


# -- a SQLite journal edited by hand ----------------------------------------------------------


@fc.task(provides="a")
async def add(size: int) -> int:
    return size + 1


@fc.task(provides="b")
async def double(a: int) -> int:
    return a * 2


@fc.task
async def check(b: int) -> None:
    return None


def _flow() -> fc.Flow:
    return fc.Linear("demo", add, double, check)


def _sql(db: Path, sql: str, *params: object) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(db)) as conn, conn:
        return conn.execute(sql, params).fetchall()


def _dump(db: Path) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    return (
        _sql(db, "SELECT * FROM entries ORDER BY flow_id, seq"),
        _sql(db, "SELECT * FROM flows ORDER BY flow_id"),
    )


async def _crashed(db: Path, **engine: Any) -> None:
    """Flow f1 as a crash leaves it: a and b done, c not yet started."""
    async with fc.Engine(fc.SQLiteJournal(db), **engine) as e:
        await e.run(_flow(), {"size": 2}, flow_id=FLOW)
    started_c = _sql(db, "SELECT seq FROM entries WHERE kind = 'task.started' AND task = 'check'")
    _sql(db, "DELETE FROM entries WHERE seq >= ?", started_c[0][0])
    _sql(db, "UPDATE flows SET state = 'RUNNING'")


_ROW = "INSERT INTO entries VALUES ('f1', ?, ?, ?, ?, NULL, 0, 1.0)"
# (name, SQL that corrupts the crashed journal, seq, kind, task, what the message says)
SQLITE_CASES: list[tuple[str, str, tuple[object, ...], int, str, str | None, str]] = [
    (
        "succeeded data not JSON",
        'UPDATE entries SET data = \'{"result":3,"attempt"\' WHERE seq = 3',
        (),
        3,
        "task.succeeded",
        "add",
        "its data is not valid JSON",
    ),
    (
        "state unknown",
        "UPDATE entries SET state = 'DONE' WHERE seq = 1",
        (),
        1,
        "flow.state",
        None,
        "its state 'DONE' is not a flow state",
    ),
    (
        "failed data a list",
        _ROW,
        (6, "task.failed", "check", '["boom"]'),
        6,
        "task.failed",
        "check",
        "its data is a list, not a JSON object",
    ),
    (
        "failed failure text",
        _ROW,
        (6, "task.failed", "check", '{"failure":"boom","attempt":1}'),
        6,
        "task.failed",
        "check",
        "its failure is 'boom', not an object",
    ),
    (
        "succeeded unknown task",
        _ROW,
        (6, "task.succeeded", "zzz", '{"result":null,"attempt":1}'),
        6,
        "task.succeeded",
        "zzz",
        "it names task 'zzz', which the flow does not have",
    ),
    (
        "started no task",
        "UPDATE entries SET task = NULL WHERE seq = 4",
        (),
        4,
        "task.started",
        None,
        "it names no task",
    ),
    (
        "attempt text",
        'UPDATE entries SET data = \'{"attempt":"1"}\' WHERE seq = 4',
        (),
        4,
        "task.started",
        "double",
        "its attempt is '1', not an int",
    ),
    (
        "data a blob",
        "UPDATE entries SET data = X'7b7d' WHERE seq = 2",  # a BLOB, not TEXT
        (),
        2,
        "task.started",
        "add",
        "its data is a bytes, not JSON text",
    ),
]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "journal.sqlite"


@pytest.mark.parametrize(
    ("sql", "params", "seq", "kind", "task", "fragment"),
    [pytest.param(*c[1:], id=c[0]) for c in SQLITE_CASES],
)
async def test_status_resume_and_run_refuse_a_corrupt_sqlite_journal_writing_nothing(
    db: Path,
    sql: str,
    params: tuple[object, ...],
    seq: int,
    kind: str,
    task: str | None,
    fragment: str,
) -> None:
    await _crashed(db)
    async with fc.Engine(fc.SQLiteJournal(db)) as engine:
        assert (await engine.status(FLOW)).state is fc.FlowState.RUNNING  # good until edited
    _sql(db, sql, *params)
    before = _dump(db)

    async with fc.Engine(fc.SQLiteJournal(db)) as engine:
        calls: dict[str, Callable[[], Awaitable[object]]] = {
            "status": lambda: engine.status(FLOW),
            "resume": lambda: engine.resume(_flow(), FLOW),
            "run": lambda: engine.run(_flow(), flow_id=FLOW),
            "run with inputs": lambda: engine.run(_flow(), {"size": 2}, flow_id=FLOW),
        }
        for how, call in calls.items():
            with pytest.raises(JournalCorrupt) as info:
                await call()
            err = info.value
            assert (err.flow_id, err.seq, err.kind, err.task) == (FLOW, seq, kind, task), how
            assert fragment in err.message, how
            assert f"seq {seq}, {kind}" in err.message, how
            assert _dump(db) == before, how  # nothing written: not an entry, not the summary
        assert not engine.running


async def test_a_corrupt_checkpoint_is_refused_on_resume(db: Path) -> None:
    await _crashed(db, checkpoint_every=2)
    rows = _sql(db, "SELECT seq, data FROM entries WHERE kind = 'flow.checkpoint'")
    assert rows, "the run wrote a checkpoint"
    ckpt_seq, data = rows[0]
    bad = {**json.loads(data), "attempts": [1]}  # "from" still first: resume reads past it
    _sql(db, "UPDATE entries SET data = ? WHERE seq = ?", json.dumps(bad), ckpt_seq)
    before = _dump(db)
    async with fc.Engine(fc.SQLiteJournal(db)) as engine:
        for call in (lambda: engine.resume(_flow(), FLOW), lambda: engine.status(FLOW)):
            with pytest.raises(JournalCorrupt, match="lists differ in length") as info:
                await call()
            assert (info.value.seq, info.value.kind) == (ckpt_seq, "flow.checkpoint")
        assert _dump(db) == before
        # repaired, as the hint says: the flow resumes, from its checkpoint
        _sql(db, "UPDATE entries SET data = ? WHERE seq = ?", data, ckpt_seq)
        out = await engine.resume(_flow(), FLOW)
    assert out.state is fc.FlowState.SUCCESS
    assert out["b"] == 6


async def test_a_seq_stored_as_text_is_corrupt(db: Path) -> None:
    await _crashed(db)
    _sql(db, _ROW, "x", "task.started", "check", '{"attempt":1}')
    async with fc.Engine(fc.SQLiteJournal(db)) as engine:
        with pytest.raises(JournalCorrupt, match="its seq 'x' is not an integer") as info:
            await engine.status(FLOW)
    assert (info.value.seq, info.value.kind, info.value.task) == (None, "task.started", "check")
