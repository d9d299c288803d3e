"""PostgresJournal beyond the contract: schema versions, connection errors, fencing races."""

from __future__ import annotations

import itertools
import socket
import uuid
from collections.abc import AsyncIterator, Iterator

import anyio
import asyncpg
import pytest

from flowcoord._journal._events import Entry, EventKind, FlowRecord
from flowcoord._journal._postgres import PostgresJournal
from flowcoord._journal._postgres_conn import _is_transient
from flowcoord._journal._postgres_sql import SCHEMA_VERSION, Statements
from flowcoord.errors import (
    ConfigurationError,
    FlowNotFound,
    JournalError,
    JournalSchemaError,
    JournalUnavailable,
    OwnershipLost,
)
from flowcoord.testing import TemporaryPostgres

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


def _schema() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


def _rec(flow_id: str) -> FlowRecord:
    return FlowRecord(flow_id=flow_id, name="demo", state="PENDING")


def _e(flow_id: str, seq: int, token: int = 0) -> Entry:
    return Entry(flow_id, seq, EventKind.TASK_STARTED, task=f"t{seq}", token=token)


@pytest.fixture
async def journal(pg_dsn: str) -> AsyncIterator[PostgresJournal]:
    j = PostgresJournal(pg_dsn, schema=_schema(), max_size=10)
    async with j:
        yield j


async def _fetchval(dsn: str, query: str) -> object:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(query)
    finally:
        await conn.close()


# -- schema -------------------------------------------------------------------------------------


async def test_reopening_an_existing_schema_keeps_the_journal(pg_dsn: str) -> None:
    schema = _schema()
    async with PostgresJournal(pg_dsn, schema=schema) as j:
        assert await j.create_flow(_rec("f1"), [Entry("f1", 0, EventKind.FLOW_CREATED)])
        await j.append([_e("f1", 1)])
    async with PostgresJournal(pg_dsn, schema=schema) as j:
        assert [e.seq for e in await j.read("f1")] == [0, 1]
        assert not await j.create_flow(_rec("f1"), [])
    version = await _fetchval(
        pg_dsn, f"SELECT value FROM {schema}.meta WHERE key = 'schema_version'"
    )
    assert version == str(SCHEMA_VERSION)


async def test_a_version_1_schema_is_migrated_and_keeps_its_entries(pg_dsn: str) -> None:
    schema = _schema()
    sql = Statements(schema)
    conn = await asyncpg.connect(pg_dsn)
    try:  # the schema as flowcoord's first release left it
        target, statements = next(sql.migrations(0))
        assert target == 1
        for statement in statements:
            await conn.execute(statement)
        await conn.execute(sql.set_version, "1")
        await conn.execute(
            f"INSERT INTO {schema}.flows VALUES ('f1', 'demo', 'RUNNING', 0, 1.0, 1.0)"
        )
        await conn.execute(
            f"INSERT INTO {schema}.entries VALUES ('f1', 0, 'flow.created', NULL, '{{}}',"
            " NULL, 0, 1.0)"
        )
    finally:
        await conn.close()
    async with PostgresJournal(pg_dsn, schema=schema) as j:
        assert [e.seq for e in await j.read_for_resume("f1")] == [0]
        await j.append([_e("f1", 1)])
        assert [e.seq for e in await j.read("f1")] == [0, 1]
    index = f"{schema}.entries_resume_idx"
    assert await _fetchval(pg_dsn, f"SELECT to_regclass('{index}')::text") == index
    assert await _fetchval(pg_dsn, f"SELECT value FROM {schema}.meta") == str(SCHEMA_VERSION)


async def test_newer_schema_version_is_refused_and_nothing_is_written(pg_dsn: str) -> None:
    schema = _schema()
    async with PostgresJournal(pg_dsn, schema=schema) as j:
        await j.create_flow(_rec("f1"), [])
    await _fetchval(pg_dsn, f"UPDATE {schema}.meta SET value = '999'")
    with pytest.raises(JournalSchemaError, match="version 999, newer"):
        await PostgresJournal(pg_dsn, schema=schema).open()
    assert await _fetchval(pg_dsn, f"SELECT value FROM {schema}.meta") == "999"

    # A schema holding only a newer meta table: open() must not create the tables.
    other = _schema()
    await _fetchval(pg_dsn, f"CREATE SCHEMA {other}")
    await _fetchval(pg_dsn, f"CREATE TABLE {other}.meta (key text PRIMARY KEY, value text)")
    newer = str(SCHEMA_VERSION + 1)
    await _fetchval(pg_dsn, f"INSERT INTO {other}.meta VALUES ('schema_version', '{newer}')")
    backend = PostgresJournal(pg_dsn, schema=other)
    with pytest.raises(JournalSchemaError):
        await backend.open()
    assert await _fetchval(pg_dsn, f"SELECT to_regclass('{other}.flows')") is None
    with pytest.raises(JournalUnavailable, match="not open"):
        await backend.read("f1")


async def test_the_temporary_cluster_keeps_fsync_on(
    pg_dsn: str, postgres_server: TemporaryPostgres | None
) -> None:
    if postgres_server is None:
        pytest.skip("an external server (FLOWCOORD_TEST_PG_DSN) is configured by its owner")
    assert await _fetchval(pg_dsn, "SHOW fsync") == "on"
    assert await _fetchval(pg_dsn, "SHOW synchronous_commit") == "on"


async def test_concurrent_opens_of_a_new_schema_all_succeed(pg_dsn: str) -> None:
    schema = _schema()
    journals = [PostgresJournal(pg_dsn, schema=schema) for _ in range(4)]
    try:
        async with anyio.create_task_group() as tg:
            for j in journals:
                tg.start_soon(j.open)
        assert await journals[0].create_flow(_rec("f1"), [])
        assert await journals[3].get_flow("f1") is not None
    finally:
        for j in journals:
            await j.close()


# -- configuration and connection errors -------------------------------------------------------


@pytest.mark.parametrize("schema", ["Bad", "1abc", "a-b", 'x"; drop table y; --', ""])
def test_invalid_schema_name(schema: str) -> None:
    with pytest.raises(ConfigurationError, match="schema name"):
        PostgresJournal("postgresql://u@localhost/db", schema=schema)


@pytest.mark.parametrize(
    "dsn", ["mysql://u@localhost/db", "postgresql://u@localhost:port/db", "localhost:5432"]
)
def test_malformed_dsn(dsn: str) -> None:
    with pytest.raises(ConfigurationError, match="malformed PostgreSQL DSN") as info:
        PostgresJournal(dsn)
    assert isinstance(info.value, ValueError)


async def test_invalid_connection_settings_found_by_the_driver(pg_dsn: str) -> None:
    with pytest.raises(ConfigurationError, match="sslmode"):
        await PostgresJournal(pg_dsn + "?sslmode=bogus", schema=_schema()).open()


@pytest.mark.parametrize(
    "options",
    [{"min_size": 5, "max_size": 2}, {"retry_deadline": -1.0}, {"connect_timeout": 0.0}],
)
def test_invalid_options(options: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        PostgresJournal("postgresql://u@localhost/db", **options)  # type: ignore[arg-type]


async def test_missing_database(pg_dsn: str) -> None:
    dsn = pg_dsn.rsplit("/", 1)[0] + "/no_such_db"
    with pytest.raises(JournalUnavailable, match="database 'no_such_db' does not exist") as info:
        await PostgresJournal(dsn, schema=_schema()).open()
    assert "CREATE DATABASE" in str(info.value)


async def test_unreachable_port() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dsn = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    with anyio.fail_after(10), pytest.raises(JournalUnavailable, match="cannot reach") as info:
        await PostgresJournal(dsn, retry_deadline=0.5).open()
    assert f"127.0.0.1:{port}" in str(info.value)
    assert "ConnectionRefusedError" in str(info.value)


@pytest.fixture(scope="module")
def password_postgres() -> Iterator[TemporaryPostgres]:
    with TemporaryPostgres(password="s3cret") as server:
        yield server


async def test_wrong_password(password_postgres: TemporaryPostgres) -> None:
    good = password_postgres.dsn
    bad = good.replace(":s3cret@", ":wrong@")
    with pytest.raises(JournalUnavailable, match="refused the password for user 'postgres'"):
        await PostgresJournal(bad, schema=_schema()).open()
    async with PostgresJournal(good, schema=_schema()) as j:
        assert await j.create_flow(_rec("f1"), [])


async def test_driver_errors_leave_as_journal_errors(journal: PostgresJournal) -> None:
    await journal.create_flow(_rec("f1"), [])
    with pytest.raises(JournalError) as info:  # PostgreSQL text cannot hold NUL
        await journal.append([Entry("f1", 1, EventKind.STORE, data='{"x":"\x00"}')])
    assert not isinstance(info.value, JournalUnavailable)
    assert isinstance(info.value.__cause__, asyncpg.PostgresError | asyncpg.InterfaceError)
    assert [e.seq for e in await journal.read("f1")] == []


# -- appends and fencing -------------------------------------------------------------------------


async def test_duplicate_keys_in_one_batch_are_stored_once(journal: PostgresJournal) -> None:
    await journal.create_flow(_rec("f1"), [])
    batch = [_e("f1", 1), _e("f1", 1), Entry("f1", 2, EventKind.FLOW_STATE, state="RUNNING")]
    assert await journal.append(batch) == frozenset()
    assert await journal.append(batch) == frozenset()  # a re-sent batch
    assert [e.seq for e in await journal.read("f1")] == [1, 2]
    rec = await journal.get_flow("f1")
    assert rec is not None
    assert rec.state == "RUNNING"


async def test_fence_refused_for_an_older_token(journal: PostgresJournal) -> None:
    await journal.create_flow(_rec("f1"), [])
    assert await journal.fence("f1", 5) == 0
    with pytest.raises(OwnershipLost, match="newer token") as info:
        await journal.fence("f1", 3)
    assert info.value.flow_id == "f1"
    assert await journal.append([_e("f1", 1, token=4)]) == frozenset({"f1"})
    assert await journal.append([_e("f1", 1, token=5)]) == frozenset()
    rec = await journal.get_flow("f1")
    assert rec is not None
    assert rec.token == 5
    with pytest.raises(FlowNotFound):
        await journal.fence("missing", 1)


class _StaleWriters:
    """Writers appending one entry at a time with ``token`` until stopped."""

    def __init__(self, journal: PostgresJournal, token: int, seqs: Iterator[int], n: int) -> None:
        self.journal, self.token, self.seqs, self.n = journal, token, seqs, n
        self.accepted: set[int] = set()
        self.refused: set[int] = set()
        self.busy = anyio.Event()  # enough appends went through: more are in flight
        self.all_refused = anyio.Event()  # each writer has been refused once (on average)
        self.stop = anyio.Event()

    async def run(self) -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(self.n):
                tg.start_soon(self._writer)

    async def _writer(self) -> None:
        while not self.stop.is_set():
            seq = next(self.seqs)
            if await self.journal.append([_e("f", seq, self.token)]):
                self.refused.add(seq)
                if len(self.refused) >= self.n:
                    self.all_refused.set()
            else:
                self.accepted.add(seq)
                if len(self.accepted) >= 3 * self.n:
                    self.busy.set()


async def test_no_stale_append_lands_after_fence_returns(journal: PostgresJournal) -> None:
    """Writers append with the old token while fence() runs; once it returns, nothing more
    with the old token may land, and exactly the appends reported accepted are in the journal.
    """
    await journal.create_flow(_rec("f"), [])
    seqs = itertools.count(1)
    with anyio.fail_after(60):
        for token in range(5):
            writers = _StaleWriters(journal, token, seqs, n=8)
            async with anyio.create_task_group() as tg:
                tg.start_soon(writers.run)
                await writers.busy.wait()
                assert await journal.fence("f", token + 1) == token
                at_fence = {e.seq for e in await journal.read("f") if e.token == token}
                await writers.all_refused.wait()
                writers.stop.set()
            landed = {e.seq for e in await journal.read("f") if e.token == token}
            assert landed == at_fence
            assert landed == writers.accepted
            assert not writers.refused & landed


def _ice(message: str) -> BaseException:
    return asyncpg.exceptions.InternalClientError(message)


@pytest.mark.parametrize(
    ("exc", "retried"),
    [
        # The server's FATAL reached an idle connection before the end of its stream did.
        (_ice("cannot switch to state 12; another operation (2) is in progress"), True),
        (_ice('cannot switch to state 11; protocol is in the "failed" state'), True),
        (asyncpg.InterfaceError("cannot perform operation: connection is closed"), True),
        (asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
         True),
        (asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
         True),
        (asyncpg.exceptions.AdminShutdownError("terminating connection"), True),
        (ConnectionResetError(104, "Connection reset by peer"), True),
        (_ice("unexpected codec state"), False),
        (asyncpg.InterfaceError("the server expects 3 arguments, 2 were passed"), False),
        (asyncpg.exceptions.ClientConfigurationError("connection is closed"), False),
    ],
)  # fmt: skip
def test_which_driver_errors_are_retried(exc: BaseException, retried: bool) -> None:
    assert _is_transient(exc) is retried
