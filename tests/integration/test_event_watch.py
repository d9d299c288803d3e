"""Events sent by another engine (another process: another journal object on the same
store) wake a waiting run at once where the journal tells of sends (PostgreSQL's
LISTEN/NOTIFY, SQLite's data version looked at every 50 ms, the memory journal's watchers),
also after the listening connection was cut; and a run still finds events by looking when
the journal cannot tell.

The look-again interval is set to an hour here, so a run that finishes was woken by a notice
(a notice lost while nobody listened yet is covered by sending again, boundedly)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import asyncpg
import pytest

import flowcoord as fc
from flowcoord._engine import _wf_events
from flowcoord._journal._memory import MemoryJournal
from flowcoord._journal._postgres import PostgresJournal
from flowcoord._journal._sqlite import SQLiteJournal
from flowcoord.journal import FlowRecord, JournalBackend

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def _no_looking(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_wf_events, "POLL_INTERVAL", 3600.0)


@fc.workflow(name="gate")
async def gate(ctx: fc.Context) -> Any:
    return await ctx.wait_event("open")


Pair = tuple[JournalBackend, JournalBackend]


@asynccontextmanager
async def _pair(kind: str, request: pytest.FixtureRequest) -> AsyncIterator[Pair]:
    """Two journal objects on one store: what two processes would hold."""
    if kind == "memory":
        shared = MemoryJournal()
        yield shared, shared
        return
    if kind == "sqlite":
        path = request.getfixturevalue("tmp_path") / "j.sqlite"
        async with SQLiteJournal(path) as a, SQLiteJournal(path) as b:
            yield a, b
        return
    dsn: str = request.getfixturevalue("pg_dsn")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    async with PostgresJournal(dsn, schema=schema) as a, PostgresJournal(dsn, schema=schema) as b:
        yield a, b


KINDS = ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


async def _send_until(handle: fc.FlowHandle, sender: fc.Engine, value: str) -> fc.Outcome:
    """Send ``value`` until the run ends (each send a new event; the run takes the first
    it is woken for); its outcome."""
    waiting = anyio.Event()
    handle.on_waiting(lambda now: waiting.set() if now else None)
    with anyio.fail_after(30):
        if not handle.waiting:
            await waiting.wait()
        for i in range(300):
            await sender.send_event(handle.flow_id, "open", value, key=f"k{i}")
            with anyio.move_on_after(0.1):
                return await handle.wait()
    raise AssertionError("the waiting run was never woken")


@pytest.mark.parametrize("kind", KINDS)
async def test_another_engines_send_wakes_a_waiting_run(
    kind: str, request: pytest.FixtureRequest
) -> None:
    async with _pair(kind, request) as (a, b), fc.Engine(a) as runner, fc.Engine(b) as sender:
        handle = await runner.start(gate, flow_id="g1")
        out = await _send_until(handle, sender, "now")
    assert out.state is fc.FlowState.SUCCESS
    assert out.result == "now"


@pytest.mark.postgres
async def test_a_watch_whose_connection_was_cut_listens_again(
    request: pytest.FixtureRequest,
) -> None:
    dsn: str = request.getfixturevalue("pg_dsn")
    async with _pair("postgres", request) as (a, b), fc.Engine(a) as runner:
        handle = await runner.start(gate, flow_id="g2")
        conn = await asyncpg.connect(dsn)
        try:
            with anyio.fail_after(30):
                cut = 0
                while not cut:  # the watcher's connection (once it is there): cut it
                    cut = await conn.fetchval(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                        " WHERE application_name = 'flowcoord-events' AND pid <> pg_backend_pid()"
                    )
                    await anyio.sleep(0.05)
        finally:
            await conn.close()
        async with fc.Engine(b) as sender:
            out = await _send_until(handle, sender, "again")
    assert out.result == "again"


async def test_watch_events_tells_of_each_new_send_not_of_a_resend() -> None:
    journal = MemoryJournal()
    woken: list[tuple[str, str]] = []
    assert await journal.create_flow(FlowRecord("f1", "wf", "RUNNING"), [])
    async with journal.watch_events(lambda f, t: woken.append((f, t))):
        await journal.send_event("f1", "t", "1", "k")
        await journal.send_event("f1", "t", "1", "k")  # the same key: nothing sent
    await journal.send_event("f1", "t", "2", "k2")  # nobody watches any more
    assert woken == [("f1", "t")]


async def test_a_sqlite_watch_tells_of_each_send_from_another_connection_once(
    tmp_path: Any,
) -> None:
    path = tmp_path / "j.sqlite"
    woken: list[tuple[str, str]] = []
    async with SQLiteJournal(path) as journal, SQLiteJournal(path) as other:
        for flow_id in ("f1", "f2"):
            assert await other.create_flow(FlowRecord(flow_id, "wf", "RUNNING"), [])
        async with journal.watch_events(lambda f, t: woken.append((f, t))):
            await anyio.sleep(0.2)
            assert woken == []  # commits, but no send
            await other.send_event("f1", "t", "1", "k")
            await other.send_event("f2", "u", "2", "k")
            with anyio.fail_after(5):
                while len(woken) < 2:  # noqa: ASYNC110 - bounded
                    await anyio.sleep(0.01)
            await other.send_event("f1", "t", "1", "k")  # the same key: nothing sent
            assert await other.create_flow(FlowRecord("f3", "wf", "RUNNING"), [])  # a commit
            await anyio.sleep(0.3)
            assert sorted(woken) == [("f1", "t"), ("f2", "u")]
            await other.send_event("f1", "t", "3", "k3")
            with anyio.fail_after(5):
                while len(woken) < 3:  # noqa: ASYNC110 - bounded
                    await anyio.sleep(0.01)
            assert woken[2] == ("f1", "t")


class _Mute(SQLiteJournal):
    """A journal that cannot tell of sends (the contract's default)."""

    def watch_events(self, wake: Any) -> Any:
        return JournalBackend.watch_events(self, wake)


async def test_a_journal_that_cannot_tell_is_looked_at(tmp_path: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(_wf_events, "POLL_INTERVAL", 0.05)
    path = tmp_path / "j.sqlite"
    async with fc.Engine(_Mute(path)) as runner, fc.Engine(_Mute(path)) as sender:
        handle = await runner.start(gate, flow_id="g3")
        out = await _send_until(handle, sender, "looked")
    assert out.result == "looked"
