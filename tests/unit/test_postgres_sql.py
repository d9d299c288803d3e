"""How the PostgreSQL journal encodes a batch of entries (no server needed)."""

from __future__ import annotations

import asyncpg

from flowcoord._journal._events import Entry, EventKind
from flowcoord._journal._postgres_codec import _pack
from flowcoord._journal._postgres_conn import _is_transient


def test_pack_joins_each_column_and_marks_nulls() -> None:
    entries = [
        Entry("f1", 1, EventKind.TASK_STARTED, "t1", '{"attempt":1}', None, 3, 0.1),
        Entry("f2", 7, EventKind.FLOW_STATE, None, "{}", "RUNNING", 4, 1e-300),
    ]
    assert _pack(entries) == (
        "f1\x1ff2",
        "1,7",
        "task.started\x1fflow.state",
        "t1\x1f\x1e",
        '{"attempt":1}\x1f{}',
        "\x1e\x1fRUNNING",
        "3,4",
        "0.1,1e-300",
    )


def test_pack_gives_up_on_values_that_would_split_wrongly() -> None:
    def one(task: str | None, data: str = "{}") -> list[Entry]:
        return [Entry("f", 1, EventKind.TASK_STARTED, task, data)]

    assert _pack(one("t")) is not None
    assert _pack(one(None)) is not None
    assert _pack(one("a\x1fb")) is None  # a separator inside a value
    assert _pack(one("\x1e")) is None  # a value that reads as NULL
    assert _pack(one("t", data="")) is None  # a lone empty string splits into no element
    assert _pack([*one("t", data=""), *one("t")]) is not None  # not alone: kept


def test_only_a_lost_connection_makes_a_driver_error_transient() -> None:
    assert _is_transient(asyncpg.InterfaceError("connection is closed"))
    assert _is_transient(asyncpg.InterfaceError("cannot perform operation: connection is closed"))
    assert _is_transient(asyncpg.exceptions.ConnectionDoesNotExistError("closed mid-operation"))
    assert _is_transient(ConnectionResetError())
    assert _is_transient(
        asyncpg.InterfaceError(
            "cannot call Connection.fetch(): connection has been released back to the pool"
        )
    )
    assert not _is_transient(
        asyncpg.InterfaceError("the server expects 10 arguments for this query, 11 were passed")
    )
    assert not _is_transient(asyncpg.exceptions._base.DataError("invalid input for query argument"))
    assert not _is_transient(asyncpg.exceptions.UniqueViolationError("duplicate key"))
