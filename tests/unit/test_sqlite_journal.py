"""SQLite-specific journal behaviour (the shared rules are in tests/contract)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from flowcoord._journal import _sqlite
from flowcoord._journal._events import Entry, EventKind, FlowRecord
from flowcoord._journal._sqlite import SQLiteJournal
from flowcoord.errors import ConfigurationError, JournalSchemaError, JournalUnavailable

pytestmark = pytest.mark.anyio


def _rec(flow_id: str) -> FlowRecord:
    return FlowRecord(flow_id=flow_id, name="demo", state="PENDING")


def _e(flow_id: str, seq: int, token: int = 0) -> Entry:
    return Entry(flow_id, seq, EventKind.TASK_STARTED, task=f"t{seq}", token=token)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "journal.sqlite"


@pytest.fixture
async def journal(db: Path) -> AsyncIterator[SQLiteJournal]:
    async with SQLiteJournal(db) as j:
        yield j


def _sql(db: Path, sql: str, *params: object) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(db)) as conn, conn:
        return conn.execute(sql, params).fetchall()


async def test_data_survives_close_and_reopen(db: Path) -> None:
    async with SQLiteJournal(db) as j:
        assert await j.create_flow(_rec("f1"), [Entry("f1", 0, EventKind.FLOW_CREATED)])
        await j.fence("f1", 3)
        await j.append([Entry("f1", 1, EventKind.FLOW_STATE, state="RUNNING", token=3)])
    await j.close()  # idempotent
    async with SQLiteJournal(db) as again:
        assert [e.seq for e in await again.read("f1")] == [0, 1]
        rec = await again.get_flow("f1")
        assert rec is not None
        assert (rec.state, rec.token) == ("RUNNING", 3)
    assert _sql(db, "PRAGMA journal_mode") == [("wal",)]
    assert _sql(db, "SELECT value FROM flowcoord_meta") == [("1",)]


async def test_newer_schema_is_refused_and_nothing_written(db: Path) -> None:
    async with SQLiteJournal(db) as j:
        await j.create_flow(_rec("f1"), [])
    _sql(db, "UPDATE flowcoord_meta SET value = '2' WHERE key = 'schema_version'")
    before = await anyio.Path(db).read_bytes()
    with pytest.raises(JournalSchemaError, match="schema version 2") as info:
        await SQLiteJournal(db).open()
    assert "upgrade flowcoord" in str(info.value)
    assert await anyio.Path(db).read_bytes() == before


async def test_foreign_tables_are_refused(db: Path) -> None:
    _sql(db, "CREATE TABLE flows (x)")
    with pytest.raises(JournalSchemaError, match="not a flowcoord journal"):
        await SQLiteJournal(db).open()


async def test_missing_directory_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "journal.sqlite"
    with pytest.raises(JournalUnavailable, match="does not exist") as info:
        await SQLiteJournal(path).open()
    assert str(path) in str(info.value)
    assert "create the directory" in str(info.value)
    assert not path.parent.exists()


async def test_directory_path_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(JournalUnavailable, match=str(tmp_path)) as info:
        await SQLiteJournal(tmp_path).open()
    assert isinstance(info.value.__cause__, sqlite3.Error)


async def test_not_a_database_is_unavailable(db: Path) -> None:
    await anyio.Path(db).write_bytes(b"this is not a database, just text " * 100)
    before = await anyio.Path(db).read_bytes()
    with pytest.raises(JournalUnavailable, match="not a database") as info:
        await SQLiteJournal(db).open()
    assert isinstance(info.value.__cause__, sqlite3.DatabaseError)
    assert "another path" in str(info.value)
    assert await anyio.Path(db).read_bytes() == before


async def test_bad_synchronous_and_closed_use(db: Path) -> None:
    with pytest.raises(ConfigurationError):
        SQLiteJournal(db, synchronous="SOMETIMES")
    j = SQLiteJournal(db, synchronous="normal")
    with pytest.raises(JournalUnavailable, match="not open"):
        await j.read("f1")
    await j.open()
    await j.close()
    with pytest.raises(JournalUnavailable, match="closed"):
        await j.append([_e("f1", 1)])


async def test_concurrent_appends_each_commit_their_own(journal: SQLiteJournal) -> None:
    """Batching is the group commit's (one call at a time); here every call is one
    transaction, and concurrent callers all land, in order per flow."""
    tasks, per_task = 200, 10
    for i in range(tasks):
        await journal.create_flow(_rec(f"f{i:03}"), [])
    before = journal.transactions

    async def writer(flow_id: str) -> None:
        for seq in range(per_task):
            assert await journal.append([_e(flow_id, seq)]) == frozenset()

    async with anyio.create_task_group() as tg:
        for i in range(tasks):
            tg.start_soon(writer, f"f{i:03}")
    assert journal.append_calls == tasks * per_task
    assert journal.batches == journal.transactions - before == journal.append_calls
    for i in range(tasks):
        assert [e.seq for e in await journal.read(f"f{i:03}")] == list(range(per_task))


async def test_each_call_decides_per_flow(journal: SQLiteJournal) -> None:
    await journal.create_flow(_rec("a"), [])
    await journal.create_flow(_rec("b"), [])
    await journal.fence("a", 5)
    results: dict[str, frozenset[str]] = {}

    async def call(name: str, entries: list[Entry]) -> None:
        results[name] = await journal.append(entries)

    async with anyio.create_task_group() as tg:
        tg.start_soon(call, "first", [_e("b", 9)])
        tg.start_soon(call, "fresh", [_e("a", 1, token=5)])
        tg.start_soon(call, "stale", [_e("a", 2, token=4), _e("b", 1)])
        tg.start_soon(call, "unknown", [_e("nope", 1)])
    assert results == {
        "first": frozenset(),
        "fresh": frozenset(),
        "stale": frozenset({"a"}),
        "unknown": frozenset({"nope"}),
    }
    assert journal.batches == 4
    assert [e.seq for e in await journal.read("a")] == [1]
    assert [e.seq for e in await journal.read("b")] == [1, 9]


async def test_cancelled_callers_do_not_stall_the_others(journal: SQLiteJournal) -> None:
    await journal.create_flow(_rec("f"), [])
    done: list[int] = []

    async def call(seq: int) -> None:
        await journal.append([_e("f", seq)])
        done.append(seq)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            scopes = []
            for seq in range(40):
                scope = anyio.CancelScope()
                scopes.append(scope)

                async def run(seq: int = seq, scope: anyio.CancelScope = scope) -> None:
                    with scope:
                        await call(seq)

                tg.start_soon(run)
            await anyio.lowlevel.checkpoint()
            for scope in scopes[::2]:
                scope.cancel()
        assert await journal.append([_e("f", 100)]) == frozenset()
    assert set(range(1, 40, 2)) <= set(done)
    landed = {e.seq for e in await journal.read("f")}
    assert set(done) | {100} <= landed


async def test_busy_file_waits_then_fails_with_a_hint(
    db: Path, journal: SQLiteJournal, monkeypatch: pytest.MonkeyPatch
) -> None:
    await journal.create_flow(_rec("f"), [])
    with closing(sqlite3.connect(db, isolation_level=None)) as other:
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock briefly
        async with anyio.create_task_group() as tg:
            tg.start_soon(journal.append, [_e("f", 1)])
            await anyio.sleep(0.2)
            other.execute("COMMIT")
        assert [e.seq for e in await journal.read("f")] == [1]

        monkeypatch.setattr(_sqlite, "BUSY_TIMEOUT", 0.05)
        async with SQLiteJournal(db) as impatient:
            other.execute("BEGIN IMMEDIATE")
            failures: list[BaseException] = []

            async def call(seq: int) -> None:
                try:
                    await impatient.append([_e("f", seq)])
                except JournalUnavailable as exc:
                    failures.append(exc)

            async with anyio.create_task_group() as tg:
                for seq in range(2, 12):
                    tg.start_soon(call, seq)
            other.execute("ROLLBACK")
            assert len(failures) == 10
            assert all("write lock" in str(exc) for exc in failures)
            assert all(isinstance(exc.__cause__, sqlite3.Error) for exc in failures)
            assert await impatient.append([_e("f", 2)]) == frozenset()


async def test_two_journals_on_one_file(db: Path) -> None:
    async with SQLiteJournal(db) as one, SQLiteJournal(db) as two:
        await one.create_flow(_rec("a"), [])
        await two.create_flow(_rec("b"), [])
        assert not await two.create_flow(_rec("a"), [])

        async def writer(j: SQLiteJournal, flow_id: str) -> None:
            for seq in range(50):
                assert await j.append([_e(flow_id, seq)]) == frozenset()

        async with anyio.create_task_group() as tg:
            tg.start_soon(writer, one, "a")
            tg.start_soon(writer, two, "b")
        for j in (one, two):
            for flow_id in ("a", "b"):
                assert [e.seq for e in await j.read(flow_id)] == list(range(50))
        assert await two.fence("a", 3) == 0
        assert await one.append([_e("a", 99, token=2)]) == frozenset({"a"})
        assert [r.flow_id for r in await one.list_flows()] == ["a", "b"]


async def test_next_flusher_cancelled_before_it_runs(journal: SQLiteJournal) -> None:
    # Plain asyncio cancellation: it lands even when the awaited event is already set.
    await journal.create_flow(_rec("f"), [])
    tasks: dict[str, asyncio.Task[frozenset[str]]] = {}

    async def first() -> frozenset[str]:
        refused = await journal.append([_e("f", 1)])
        tasks["b"].cancel()  # B was just handed the flusher's role and has not run yet
        return refused

    with anyio.fail_after(10):
        tasks["a"] = asyncio.create_task(first())
        for _ in range(3):
            await asyncio.sleep(0)  # A's batch is in the worker thread
        tasks["b"] = asyncio.create_task(journal.append([_e("f", 2)]))
        tasks["c"] = asyncio.create_task(journal.append([_e("f", 3)]))
        await asyncio.wait(tasks.values())
    assert tasks["b"].cancelled()
    assert tasks["a"].result() == tasks["c"].result() == frozenset()
    assert [e.seq for e in await journal.read("f")] == [1, 3]


async def test_opening_a_fresh_file_another_connection_is_writing_waits_for_it(
    tmp_path: Path,
) -> None:
    """A second process creating the schema of a fresh file holds its write lock in rollback
    mode; switching to WAL then fails at once (SQLite calls no busy handler there): opening
    waits for the lock as the busy timeout would, instead of failing."""
    path = tmp_path / "j.sqlite"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    with closing(other):
        other.execute("CREATE TABLE unrelated (a)")
        other.execute("BEGIN IMMEDIATE")
        other.execute("INSERT INTO unrelated VALUES (1)")

        async def release() -> None:
            await anyio.sleep(0.3)
            other.execute("COMMIT")

        async with anyio.create_task_group() as tg:
            tg.start_soon(release)
            with anyio.fail_after(5):
                async with SQLiteJournal(path) as journal:
                    assert await journal.list_flows() == []


async def test_a_journal_made_before_mailboxes_gains_them_on_open(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)  # the schema as a flowcoord before events left it
    for stmt in _sqlite._SCHEMA:
        conn.execute(stmt)
    conn.execute("INSERT INTO flowcoord_meta VALUES ('schema_version', '1')")
    conn.execute("INSERT INTO flows VALUES ('old', 'demo', 'RUNNING', 0, 5.0, 6.0)")
    conn.commit()
    conn.close()
    async with SQLiteJournal(path) as journal:
        sent = await journal.send_event("old", "note", '"hi"', "k")
        assert await journal.sent_events("old", "note") == [sent]
        assert sent.seq == 1
    conn = sqlite3.connect(path)
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    conn.close()
    assert {"sent_events", "sent_events_by_key", "sent_events_by_time", "flows_by_created"} <= names
