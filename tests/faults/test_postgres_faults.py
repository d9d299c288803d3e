"""PostgresJournal under real faults: connections cut, replies lost, server crashed."""

from __future__ import annotations

import collections
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import anyio
import asyncpg
import pytest

import flowcoord as fc
from flowcoord._journal._events import Entry, EventKind, FlowRecord
from flowcoord._journal._postgres import PostgresJournal
from flowcoord.errors import JournalUnavailable
from flowcoord.testing import FaultProxy, TemporaryPostgres

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

_T = TypeVar("_T")


def _schema() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


def _via(dsn: str, port: int) -> str:
    """``dsn`` with its host and port replaced by the proxy's."""
    url = urlsplit(dsn)
    auth = url.netloc.rpartition("@")[0]
    return urlunsplit(
        url._replace(netloc=f"{auth}@127.0.0.1:{port}" if auth else f"127.0.0.1:{port}")
    )


@pytest.fixture
async def proxy(pg_dsn: str) -> AsyncIterator[FaultProxy]:
    url = urlsplit(pg_dsn)
    async with FaultProxy(url.hostname or "127.0.0.1", url.port or 5432) as p:
        yield p


class Workload:
    """``flows`` writers, each appending ``batches`` batches of ``size`` entries to its flow."""

    def __init__(self, journal: PostgresJournal, *, flows: int, batches: int, size: int) -> None:
        self.journal = journal
        self.flow_ids = [f"w{i}" for i in range(flows)]
        self.batches = batches
        self.size = size
        self.done = 0
        self.finished = False
        self._progress = anyio.Condition()

    async def setup(self) -> None:
        for fid in self.flow_ids:
            assert await self.journal.create_flow(FlowRecord(fid, "load", "RUNNING"), [])

    async def run(self) -> None:
        async with anyio.create_task_group() as tg:
            for fid in self.flow_ids:
                tg.start_soon(self._writer, fid)
        self.finished = True
        async with self._progress:
            self._progress.notify_all()

    async def _writer(self, flow_id: str) -> None:
        for b in range(self.batches):
            seqs = range(b * self.size, (b + 1) * self.size)
            entries = [Entry(flow_id, s, EventKind.TASK_STARTED, task=f"t{s}") for s in seqs]
            assert await self.journal.append(entries) == frozenset()
            self.done += 1
            async with self._progress:
                self._progress.notify_all()

    async def wait_for(self, appends: int) -> bool:
        """Wait until ``appends`` appends returned in all; False if the work ended first."""
        async with self._progress:
            while self.done < appends and not self.finished:
                await self._progress.wait()
        return self.done >= appends

    async def check(self, journal: PostgresJournal) -> None:
        """Each (flow_id, seq) is in the journal exactly once, none missing."""
        expected = list(range(self.batches * self.size))
        for fid in self.flow_ids:
            assert [e.seq for e in await journal.read(fid)] == expected


async def test_appends_survive_connection_cuts(pg_dsn: str, proxy: FaultProxy) -> None:
    schema = _schema()
    journal = PostgresJournal(_via(pg_dsn, proxy.port), schema=schema, max_size=4)
    cuts = 0
    with anyio.fail_after(90):
        async with journal:
            work = Workload(journal, flows=8, batches=60, size=5)
            await work.setup()
            async with anyio.create_task_group() as tg:
                tg.start_soon(work.run)
                for i in range(1, 7):
                    if not await work.wait_for(40 * i):
                        break
                    cuts += await proxy.cut()
            await work.check(journal)
        assert cuts >= 6
        assert proxy.accepted > cuts  # the journal reconnected after the cuts
        direct = PostgresJournal(pg_dsn, schema=schema)
        async with direct:
            await work.check(direct)


async def test_appends_survive_server_crashes(fresh_postgres: TemporaryPostgres) -> None:
    journal = PostgresJournal(fresh_postgres.dsn, schema=_schema(), max_size=4)
    with anyio.fail_after(100):
        async with journal:
            work = Workload(journal, flows=6, batches=50, size=5)
            await work.setup()
            async with anyio.create_task_group() as tg:
                tg.start_soon(work.run)
                for i in range(1, 4):
                    assert await work.wait_for(60 * i)
                    await anyio.to_thread.run_sync(fresh_postgres.stop, "immediate")
                    await anyio.to_thread.run_sync(fresh_postgres.start)
            await work.check(journal)
    assert "database system was interrupted" in fresh_postgres.log_text()


async def _wait_until_stored(journal: PostgresJournal, flow_id: str, seq: int) -> None:
    # The database is the only witness that the commit happened; poll it (bounded by caller).
    while True:
        if [e for e in await journal.read(flow_id, after_seq=seq - 1) if e.seq == seq]:
            return
        await anyio.sleep(0.01)


async def test_retry_after_a_lost_commit_reply(pg_dsn: str, proxy: FaultProxy) -> None:
    """The server commits, the reply is lost with the connection: the retry must neither
    duplicate nor fail, for an append and for create_flow."""
    schema = _schema()
    # One connection, on which each statement is prepared before its reply is lost: with
    # replies held, a statement's first use would wait for its prepare reply, never executing.
    journal = PostgresJournal(_via(pg_dsn, proxy.port), schema=schema, min_size=0, max_size=1)
    direct = PostgresJournal(pg_dsn, schema=schema)
    warm = iter(range(100))

    async def reply_lost(call: Callable[[], Awaitable[_T]], flow_id: str, seq: int) -> _T:
        n = next(warm)
        await journal.create_flow(FlowRecord(f"warm{n}", "demo", "RUNNING"), [])
        await journal.append([Entry(f"warm{n}", 1, EventKind.TASK_STARTED)])
        results: list[_T] = []

        async def run() -> None:
            results.append(await call())

        proxy.pause(to_server=False)  # requests go through, replies are held
        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            await _wait_until_stored(direct, flow_id, seq)
            assert await proxy.cut() == 1
            proxy.resume()
        return results[0]

    with anyio.fail_after(60):
        async with journal, direct:
            await journal.create_flow(FlowRecord("a", "demo", "RUNNING"), [])
            batch = [Entry("a", s, EventKind.TASK_STARTED) for s in (1, 2, 3)]
            assert await reply_lost(partial(journal.append, batch), "a", 3) == frozenset()
            record, first = FlowRecord("b", "x", "NEW"), [Entry("b", 0, EventKind.FLOW_CREATED)]
            assert await reply_lost(partial(journal.create_flow, record, first), "b", 0)
            assert [e.seq for e in await direct.read("a")] == [1, 2, 3]
            assert [e.seq for e in await direct.read("b")] == [0]
            assert not await journal.create_flow(record, first)  # a real duplicate still is one


async def test_black_hole_then_recovery(pg_dsn: str, proxy: FaultProxy) -> None:
    journal = PostgresJournal(
        _via(pg_dsn, proxy.port), schema=_schema(), retry_deadline=1.5, attempt_timeout=0.5
    )
    with anyio.fail_after(60):
        async with journal:
            await journal.create_flow(FlowRecord("a", "demo", "RUNNING"), [])
            proxy.pause()
            with pytest.raises(JournalUnavailable, match="cannot reach"):
                await journal.append([Entry("a", 1, EventKind.TASK_STARTED)])
            proxy.resume()
            assert await journal.append([Entry("a", 1, EventKind.TASK_STARTED)]) == frozenset()

            proxy.refuse(True)
            await proxy.cut()
            with pytest.raises(JournalUnavailable, match="cannot reach"):
                await journal.read("a")
            proxy.refuse(False)
            assert [e.seq for e in await journal.read("a")] == [1]


# -- connections the server closed: terminated backends, a fast restart ------------------------


async def _terminate_journal_backends(admin: asyncpg.Connection[asyncpg.Record]) -> int:
    """Ask the server to end every journal connection (``application_name`` flowcoord)."""
    n: int = await admin.fetchval(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
        " WHERE pid <> pg_backend_pid() AND application_name = $1",
        "flowcoord",
    )
    return n


async def _admin(dsn: str) -> asyncpg.Connection[asyncpg.Record]:
    return await asyncpg.connect(dsn, server_settings={"application_name": "flowcoord-admin"})


async def test_appends_survive_terminated_backends(fresh_postgres: TemporaryPostgres) -> None:
    """The server ends the journal's idle connections between appends (``pg_terminate_backend``,
    what a fast shutdown does): each append is retried on a new connection and succeeds."""
    journal = PostgresJournal(fresh_postgres.dsn, schema=_schema(), max_size=4)
    admin = await _admin(fresh_postgres.dsn)
    terminated = 0
    try:
        with anyio.fail_after(60):
            async with journal:
                assert await journal.create_flow(FlowRecord("a", "demo", "RUNNING"), [])
                for seq in range(40):
                    terminated += await _terminate_journal_backends(admin)
                    entry = Entry("a", seq, EventKind.TASK_STARTED, task=f"t{seq}")
                    assert await journal.append([entry]) == frozenset()
                assert [e.seq for e in await journal.read("a")] == list(range(40))
    finally:
        await admin.close()
    assert terminated >= 40


class _Ran(collections.Counter[str]):
    """How often each ``flow/task`` ran; ``reached(n)`` waits until ``n`` runs in all."""

    def __init__(self) -> None:
        super().__init__()
        self._changed = anyio.Event()

    def count(self, key: str) -> None:
        self[key] += 1
        self._changed.set()

    async def reached(self, n: int) -> None:
        while self.total() < n:
            await self._changed.wait()
            self._changed = anyio.Event()


def _chain(flow_id: str, tasks: int, ran: _Ran) -> fc.Flow:
    def make(name: str) -> fc.FunctionTask:
        async def body() -> str:
            ran.count(f"{flow_id}/{name}")
            await anyio.sleep(0.002)
            return name

        return fc.FunctionTask(body, name, provides=name)

    return fc.Linear("chain", *[make(f"t{i}") for i in range(tasks)])


async def _check_flows(dsn: str, schema: str, flow_ids: list[str]) -> None:
    """Each flow's journal: seqs 0..n-1 without a gap or a repeat, ending SUCCESS."""
    async with PostgresJournal(dsn, schema=schema) as journal:
        for flow_id in flow_ids:
            entries = await journal.read(flow_id)
            assert [e.seq for e in entries] == list(range(len(entries))), flow_id
            record = await journal.get_flow(flow_id)
            assert record is not None
            assert record.state == "SUCCESS", flow_id


async def test_flows_survive_terminated_backends(fresh_postgres: TemporaryPostgres) -> None:
    """``pg_terminate_backend`` of the journal's connections while flows run on an Engine:
    every flow ends SUCCESS, each task ran once, the journal's seqs are contiguous."""
    schema, flows, tasks = _schema(), 20, 10
    ran = _Ran()
    flow_ids = [f"f{i:02d}" for i in range(flows)]
    admin = await _admin(fresh_postgres.dsn)
    terminated = 0
    states: dict[str, str] = {}
    try:
        with anyio.fail_after(60):
            journal = PostgresJournal(fresh_postgres.dsn, schema=schema, max_size=4)
            async with fc.Engine(journal) as engine:

                async def one(flow_id: str) -> None:
                    out = await engine.run(_chain(flow_id, tasks, ran), flow_id=flow_id)
                    states[flow_id] = out.state.value

                async with anyio.create_task_group() as tg:
                    for flow_id in flow_ids:
                        tg.start_soon(one, flow_id)
                    for _ in range(200):  # bounded: until every flow has ended
                        if len(states) == flows:
                            break
                        terminated += await _terminate_journal_backends(admin)
                        await anyio.sleep(0.01)
    finally:
        await admin.close()
    assert states == dict.fromkeys(flow_ids, "SUCCESS")
    assert ran == {f"{f}/t{i}": 1 for f in flow_ids for i in range(tasks)}
    assert terminated >= 5
    await _check_flows(fresh_postgres.dsn, schema, flow_ids)


async def test_flows_survive_a_fast_restart(fresh_postgres: TemporaryPostgres) -> None:
    """``pg_ctl restart -m fast`` twice while four engines run flows: all end SUCCESS."""
    schema, engines, flows, tasks = _schema(), 4, 48, 10
    ran = _Ran()
    flow_ids = [f"f{i:02d}" for i in range(flows)]
    states: dict[str, str] = {}

    async def engine_runs(mine: list[str]) -> None:
        journal = PostgresJournal(fresh_postgres.dsn, schema=schema, max_size=4)
        async with fc.Engine(journal) as engine:

            async def one(flow_id: str) -> None:
                out = await engine.run(_chain(flow_id, tasks, ran), flow_id=flow_id)
                states[flow_id] = out.state.value

            async with anyio.create_task_group() as tg:
                for flow_id in mine:
                    tg.start_soon(one, flow_id)

    with anyio.fail_after(90):
        async with anyio.create_task_group() as tg:
            for k in range(engines):
                tg.start_soon(engine_runs, flow_ids[k::engines])
            for n in (flows * tasks // 5, flows * tasks // 2):
                await ran.reached(n)
                assert len(states) < flows  # the restart lands while flows run
                await anyio.to_thread.run_sync(fresh_postgres.restart, "fast")
    assert states == dict.fromkeys(flow_ids, "SUCCESS")
    assert ran == {f"{f}/t{i}": 1 for f in flow_ids for i in range(tasks)}
    await _check_flows(fresh_postgres.dsn, schema, flow_ids)
    assert fresh_postgres.log_text().count("received fast shutdown request") == 2
