"""Retention, on every journal: ``delete_flows`` deletes ended flows that wrote nothing since
the cut-off (summary, entries, mailbox) and nothing else; ``prune_flows`` picks them, keeps
the children of flows still running, and deletes nothing on a dry run."""

from __future__ import annotations

import time

import anyio
import pytest

import flowcoord as fc
from flowcoord._journal._contract import JournalBackend
from flowcoord._journal._events import Entry, EventKind, FlowRecord
from flowcoord.errors import FlowNotFound
from flowcoord.journal import prune_flows

pytestmark = pytest.mark.anyio


async def _flow(journal: JournalBackend, flow_id: str, *states: str) -> None:
    """A flow whose entries take it through ``states`` (flow.state entries, after a task)."""
    created = Entry(flow_id, 0, EventKind.FLOW_CREATED, data='{"name":"demo","inputs":{}}')
    assert await journal.create_flow(FlowRecord(flow_id, "demo", "PENDING"), [created])
    entries = [Entry(flow_id, 1, EventKind.TASK_STARTED, task="t")]
    for i, state in enumerate(states, start=2):
        entries.append(Entry(flow_id, i, EventKind.FLOW_STATE, state=state))
    assert await journal.append(entries) == frozenset()


async def test_delete_flows_deletes_ended_flows_and_their_mailboxes_only(
    journal_backend: JournalBackend,
) -> None:
    j = journal_backend
    await _flow(j, "done", "RUNNING", "SUCCESS")
    await _flow(j, "failed", "RUNNING", "REVERTING", "REVERTED")
    await _flow(j, "live", "RUNNING")
    await _flow(j, "held", "RUNNING", "SUSPENDED")
    await j.send_event("done", "t", '"x"', "k")
    await anyio.sleep(0.02)
    cut = time.time()
    await anyio.sleep(0.02)
    await _flow(j, "recent", "RUNNING", "SUCCESS")  # ended after the cut-off
    asked = ["done", "failed", "live", "held", "recent", "never", "done"]
    deleted = await j.delete_flows(asked, ended_before=cut)
    assert sorted(deleted) == ["done", "failed"]
    for gone in ("done", "failed"):
        assert await j.get_flow(gone) is None
        assert await j.read(gone) == []
    assert await j.sent_events("done", "t") == []
    with pytest.raises(FlowNotFound):
        await j.send_event("done", "t", '"y"', "k2")  # no flow, no mailbox
    for kept in ("live", "held", "recent"):
        record = await j.get_flow(kept)
        assert record is not None
        assert await j.read(kept) != []
    assert sorted(r.flow_id for r in await j.list_flows()) == ["held", "live", "recent"]
    assert await j.delete_flows(["done"], ended_before=cut) == []  # gone already
    # the same id may be created anew
    await _flow(j, "done", "RUNNING")
    assert [e.seq for e in await j.read("done")] == [0, 1, 2]


async def test_a_flow_written_to_since_the_cut_off_is_kept(journal_backend: JournalBackend) -> None:
    j = journal_backend
    await _flow(j, "old", "RUNNING", "SUCCESS")
    await anyio.sleep(0.02)
    cut = time.time()
    await anyio.sleep(0.02)
    # written again after the cut-off (a fork or resume would): no longer "ended long ago"
    again = [Entry("old", 4, EventKind.FLOW_STATE, state="RUNNING")]
    assert await j.append(again) == frozenset()
    assert await j.append([Entry("old", 5, EventKind.FLOW_STATE, state="SUCCESS")]) == frozenset()
    assert await j.delete_flows(["old"], ended_before=cut) == []
    assert await j.get_flow("old") is not None


async def test_prune_keeps_children_of_running_flows_and_a_dry_run_deletes_nothing(
    journal_backend: JournalBackend,
) -> None:
    j = journal_backend
    await _flow(j, "p", "RUNNING")  # a parent still running ...
    await _flow(j, "p.2:child", "RUNNING", "SUCCESS")  # ... keeps its ended child
    await _flow(j, "q", "RUNNING", "SUCCESS")  # an ended parent ...
    await _flow(j, "q.1:child", "RUNNING", "SUCCESS")  # ... goes with its child
    await _flow(j, "solo", "RUNNING", "CANCELLED")
    long_parent = "L" * 120
    await _flow(j, long_parent, "RUNNING")  # a child of a long id is named by a digest
    await _flow(j, f"{long_parent[:100]}.0123456789abcdef", "RUNNING", "FAILED")
    await anyio.sleep(0.02)
    cut = time.time()
    dry = await prune_flows(j, ended_before=cut, dry_run=True)
    expected = ["q", "q.1:child", "solo"]
    assert (sorted(dry.deleted), dry.dry_run) == (expected, True)
    assert sorted(dry.kept) == sorted(["p.2:child", f"{long_parent[:100]}.0123456789abcdef"])
    assert len(await j.list_flows()) == 7  # nothing deleted
    limited = await prune_flows(j, ended_before=cut, limit=1)
    assert limited.deleted == ["q"]
    report = await prune_flows(j, ended_before=cut, batch=1)
    assert sorted(report.deleted) == ["q.1:child", "solo"]
    left = sorted(r.flow_id for r in await j.list_flows())
    assert left == sorted(["p", "p.2:child", long_parent, f"{long_parent[:100]}.0123456789abcdef"])
    assert (await prune_flows(j, ended_before=cut)).deleted == []


async def test_prune_through_an_engine_leaves_running_workflows_alone(
    journal_backend: JournalBackend,
) -> None:
    gate = anyio.Event()

    async def wait(hold: bool) -> None:
        if hold:
            await gate.wait()

    @fc.workflow(name="w")
    async def w(ctx: fc.Context, hold: bool) -> int:
        await ctx.step(wait, hold)
        return 1

    async with fc.Engine(journal_backend) as engine:
        ran = await engine.run(w, {"hold": False}, flow_id="ran")
        assert ran.state is fc.FlowState.SUCCESS
        handle = await engine.start(w, {"hold": True}, flow_id="runs")
        await anyio.sleep(0.05)
        report = await prune_flows(engine.backend, ended_before=time.time() + 60)
        assert report.deleted == ["ran"]
        gate.set()
        assert (await handle.wait()).result == 1  # its journal was left whole
        with pytest.raises(FlowNotFound):
            await engine.status("ran")


@pytest.mark.postgres
async def test_a_postgres_delete_waits_for_an_append_in_flight_and_sees_it(
    request: pytest.FixtureRequest,
) -> None:
    """An append of the flow (a resume, say) holds its row when the delete comes: the delete
    waits for it, then checks the committed row again and leaves the flow, running now."""
    import uuid

    import asyncpg

    from flowcoord._journal._postgres import PostgresJournal

    dsn: str = request.getfixturevalue("pg_dsn")
    schema = f"r_{uuid.uuid4().hex[:12]}"
    async with PostgresJournal(dsn, schema=schema) as j:
        await _flow(j, "old", "RUNNING", "SUCCESS")
        await _flow(j, "other", "RUNNING", "SUCCESS")
        cut = time.time() + 60
        conn = await asyncpg.connect(dsn)
        try:
            tx = conn.transaction()
            await tx.start()
            await conn.execute(
                f'SELECT 1 FROM "{schema}".flows WHERE flow_id = $1 FOR NO KEY UPDATE', "old"
            )
            await conn.execute(
                f'UPDATE "{schema}".flows SET state = $2, updated_at = $3 WHERE flow_id = $1',
                "old",
                "RUNNING",
                time.time(),
            )
            result: list[list[str]] = []

            async def delete() -> None:
                result.append(await j.delete_flows(["old", "other"], ended_before=cut))

            async with anyio.create_task_group() as tg:
                tg.start_soon(delete)
                await anyio.sleep(0.3)
                assert result == []  # waiting for the row
                await tx.commit()
            assert result == [["other"]]
        finally:
            await conn.close()
        record = await j.get_flow("old")
        assert record is not None
        assert record.state == "RUNNING"
        assert len(await j.read("old")) == 4
