"""The journal backend contract (see ``flowcoord._journal._contract``)."""

from __future__ import annotations

import sqlite3
import uuid
from contextlib import closing
from pathlib import Path
from typing import Any

import anyio
import pytest

from flowcoord._journal._contract import JournalBackend
from flowcoord._journal._events import Entry, EventKind, FlowRecord, resume_entries
from flowcoord._journal._memory import MemoryJournal
from flowcoord.errors import ConfigurationError, FlowNotFound, OwnershipLost
from flowcoord.testing._trace import RecordingBackend

pytestmark = pytest.mark.anyio


def _rec(flow_id: str, state: str = "PENDING") -> FlowRecord:
    return FlowRecord(flow_id=flow_id, name="demo", state=state)


def _e(flow_id: str, seq: int, kind: EventKind = EventKind.TASK_STARTED, **kw: object) -> Entry:
    return Entry(flow_id=flow_id, seq=seq, kind=kind, task=kw.pop("task", f"t{seq}"), **kw)  # type: ignore[arg-type]


async def test_create_then_read_back_in_order(journal_backend: JournalBackend) -> None:
    first = Entry("f1", 0, EventKind.FLOW_CREATED, data='{"name":"demo","inputs":{"x":1}}')
    assert await journal_backend.create_flow(_rec("f1"), [first])
    refused = await journal_backend.append([_e("f1", 2), _e("f1", 1, data='{"a":[1,"é"]}')])
    assert refused == frozenset()
    got = await journal_backend.read("f1")
    assert [e.seq for e in got] == [0, 1, 2]
    assert got[0].kind is EventKind.FLOW_CREATED
    assert got[0].data == '{"name":"demo","inputs":{"x":1}}'
    assert got[1].data == '{"a":[1,"é"]}'
    assert got[1].task == "t1"
    assert [e.seq for e in await journal_backend.read("f1", after_seq=0)] == [1, 2]


async def test_create_twice_writes_nothing(journal_backend: JournalBackend) -> None:
    assert await journal_backend.create_flow(_rec("f1"), [Entry("f1", 0, EventKind.FLOW_CREATED)])
    again = Entry("f1", 0, EventKind.FLOW_CREATED, data='{"other":true}')
    assert not await journal_backend.create_flow(_rec("f1"), [again])
    got = await journal_backend.read("f1")
    assert len(got) == 1
    assert got[0].data == "{}"


async def test_append_is_idempotent_by_key(journal_backend: JournalBackend) -> None:
    await journal_backend.create_flow(_rec("f1"), [])
    e = _e("f1", 1, EventKind.TASK_SUCCEEDED, data='{"result":3}')
    assert await journal_backend.append([e]) == frozenset()
    assert await journal_backend.append([e, _e("f1", 2)]) == frozenset()
    assert await journal_backend.append([e]) == frozenset()
    assert [x.seq for x in await journal_backend.read("f1")] == [1, 2]


async def test_a_batch_resent_in_part_stores_the_rest_once_and_keeps_the_first(
    journal_backend: JournalBackend,
) -> None:
    """A retried flush can carry entries stored already (its reply was lost) beside new
    ones, of several flows, with state changes and a refused flow: the stored entries keep
    what was written first, the others land once, the summary follows the newest state."""
    for f in ("a", "b", "old"):
        await journal_backend.create_flow(_rec(f, "RUNNING"), [])
    await journal_backend.fence("old", 3)
    first = _e("a", 1, EventKind.TASK_SUCCEEDED, data='{"result":1}')
    assert await journal_backend.append([first]) == frozenset()
    resent = [
        _e("a", 1, EventKind.TASK_SUCCEEDED, data='{"result":"changed"}'),
        _e("a", 2, EventKind.FLOW_STATE, task=None, state="SUCCESS"),
        _e("b", 1),
        _e("b", 1),  # twice in one batch: stored once
        _e("old", 1, token=2),  # stale: refused, the others land all the same
    ]
    assert await journal_backend.append(resent) == frozenset({"old"})
    a = await journal_backend.read("a")
    assert [(x.seq, x.data) for x in a] == [(1, '{"result":1}'), (2, "{}")]
    assert [x.seq for x in await journal_backend.read("b")] == [1]
    assert await journal_backend.read("old") == []
    got = await journal_backend.get_flow("a")
    assert got is not None
    assert got.state == "SUCCESS"


async def test_unknown_flow_is_refused_alone(journal_backend: JournalBackend) -> None:
    await journal_backend.create_flow(_rec("f1"), [])
    refused = await journal_backend.append([_e("nope", 1), _e("f1", 1)])
    assert refused == frozenset({"nope"})
    assert [x.seq for x in await journal_backend.read("f1")] == [1]
    assert await journal_backend.read("nope") == []


async def test_fencing_refuses_older_tokens_per_flow(journal_backend: JournalBackend) -> None:
    await journal_backend.create_flow(_rec("a"), [])
    await journal_backend.create_flow(_rec("b"), [])
    assert await journal_backend.fence("a", 5) == 0
    refused = await journal_backend.append(
        [_e("a", 1, token=5), _e("a", 2, token=4), _e("b", 1, token=0)]
    )
    # One stale entry refuses the whole batch of that flow, and only that flow.
    assert refused == frozenset({"a"})
    assert await journal_backend.read("a") == []
    assert [x.seq for x in await journal_backend.read("b")] == [1]
    assert await journal_backend.append([_e("a", 1, token=5), _e("a", 2, token=7)]) == frozenset()
    assert [x.seq for x in await journal_backend.read("a")] == [1, 2]
    rec = await journal_backend.get_flow("a")
    assert rec is not None
    assert rec.token == 5


async def test_fence_cannot_go_backwards(journal_backend: JournalBackend) -> None:
    await journal_backend.create_flow(_rec("a"), [])
    await journal_backend.fence("a", 10)
    assert await journal_backend.fence("a", 10) == 10
    with pytest.raises(OwnershipLost):
        await journal_backend.fence("a", 9)
    with pytest.raises(FlowNotFound):
        await journal_backend.fence("missing", 1)


async def test_flow_state_entries_update_the_summary(journal_backend: JournalBackend) -> None:
    await journal_backend.create_flow(_rec("f1"), [])
    await journal_backend.create_flow(_rec("f2"), [])
    await journal_backend.append([Entry("f1", 1, EventKind.FLOW_STATE, state="RUNNING")])
    await journal_backend.append([Entry("f1", 2, EventKind.FLOW_STATE, state="SUCCESS")])
    rec = await journal_backend.get_flow("f1")
    assert rec is not None
    assert (rec.name, rec.state) == ("demo", "SUCCESS")
    assert rec.updated_at >= rec.created_at > 0
    assert await journal_backend.get_flow("zzz") is None
    assert [r.flow_id for r in await journal_backend.list_flows(state="SUCCESS")] == ["f1"]
    assert [r.flow_id for r in await journal_backend.list_flows(state="PENDING")] == ["f2"]


async def test_list_flows_pages(journal_backend: JournalBackend) -> None:
    for i in range(7):
        await journal_backend.create_flow(_rec(f"f{i}"), [])
    page1 = await journal_backend.list_flows(limit=3)
    page2 = await journal_backend.list_flows(limit=3, after=page1[-1].flow_id)
    page3 = await journal_backend.list_flows(limit=3, after=page2[-1].flow_id)
    ids = [r.flow_id for r in page1 + page2 + page3]
    assert ids == [f"f{i}" for i in range(7)]


async def test_concurrent_appends_all_land(journal_backend: JournalBackend) -> None:
    for i in range(5):
        await journal_backend.create_flow(_rec(f"f{i}"), [])

    async def writer(flow: str) -> None:
        for seq in range(1, 41, 4):
            await journal_backend.append([_e(flow, s) for s in range(seq, seq + 4)])

    async with anyio.create_task_group() as tg:
        for i in range(5):
            tg.start_soon(writer, f"f{i}")
    for i in range(5):
        assert [e.seq for e in await journal_backend.read(f"f{i}")] == list(range(1, 41))


async def test_create_flows_creates_many_and_skips_taken_ids(
    journal_backend: JournalBackend,
) -> None:
    assert await journal_backend.create_flow(_rec("taken"), [])
    batch = [
        (_rec(f"n{i}"), [Entry(f"n{i}", 0, EventKind.FLOW_CREATED, data=f'{{"i":{i}}}')])
        for i in range(3)
    ]
    batch.append((_rec("taken"), [Entry("taken", 0, EventKind.FLOW_CREATED, data='{"x":1}')]))
    created = await journal_backend.create_flows(batch)
    assert created == frozenset({"n0", "n1", "n2"})
    assert (await journal_backend.read("n2"))[0].data == '{"i":2}'
    assert await journal_backend.read("taken") == []


@pytest.mark.parametrize(
    "task",
    ["", "unit\x1fseparator", "record\x1eseparator", "a,b", "\x1e", "ünïcode ✓", None],
)
async def test_entries_round_trip_exactly(
    journal_backend: JournalBackend, task: str | None
) -> None:
    """Every value comes back as written, separators and empty strings included, whether the
    batch holds one entry or several (PostgreSQL packs batches into texts when it can)."""
    flow = f"flow {task!r}"  # repr: no raw separator, so only the task decides the path
    lone = Entry(flow, 1, EventKind.TASK_STARTED, task, data="", token=0, at=1.0000000000000002)
    many = [
        Entry(flow, 2, EventKind.TASK_SUCCEEDED, task, data='{"s":"\\u001f"}', at=1e-300),
        Entry(flow, 3, EventKind.FLOW_STATE, None, data="{}", state="RUNNING", at=1234567.125),
        Entry(flow, 4, EventKind.TASK_FAILED, "", data="x" * 10_000, at=0.1),
    ]
    first = Entry(flow, 0, EventKind.FLOW_CREATED, task, data='{"name":"demo"}', at=2.5)
    assert await journal_backend.create_flows([(_rec(flow), [first])]) == frozenset({flow})
    assert await journal_backend.append([lone]) == frozenset()
    assert await journal_backend.append(many) == frozenset()
    assert await journal_backend.read(flow) == [first, lone, *many]


async def test_read_for_resume_skips_what_the_newest_checkpoint_sums_up(
    journal_backend: JournalBackend,
) -> None:
    started, succeeded, failed = (
        EventKind.TASK_STARTED,
        EventKind.TASK_SUCCEEDED,
        EventKind.TASK_FAILED,
    )

    def ckpt(seq: int, start: int) -> Entry:
        data = f'{{"from":{start},"tasks":["t1"],"attempts":[1],"results":[null]}}'
        return Entry("f1", seq, EventKind.CHECKPOINT, None, data)

    entries = [
        _e("f1", 1, started), _e("f1", 2, succeeded), _e("f1", 3, failed, data='{"attempt":1}'),
        ckpt(4, 3), _e("f1", 5, started), _e("f1", 6, started), _e("f1", 7, succeeded),
        ckpt(8, 6), _e("f1", 9, succeeded), _e("f1", 10, EventKind.REVERT_DONE),
    ]  # fmt: skip
    await journal_backend.create_flow(_rec("f1"), [Entry("f1", 0, EventKind.FLOW_CREATED)])
    await journal_backend.append(entries)
    everything = await journal_backend.read("f1")
    kept = await journal_backend.read_for_resume("f1")
    assert kept == resume_entries(everything)
    assert [e.seq for e in kept] == [0, 3, 4, 6, 7, 8, 9, 10]
    assert await journal_backend.read_for_resume("nope") == []


# -- newest first -------------------------------------------------------------------------------


def _at(flow_id: str, created_at: float, name: str = "demo", state: str = "PENDING") -> FlowRecord:
    return FlowRecord(flow_id=flow_id, name=name, state=state, created_at=created_at)


async def _ids(backend: JournalBackend, **kw: Any) -> list[str]:
    page = await backend.list_newest(**kw)
    return [r.flow_id for r in page.flows]


async def test_list_newest_orders_by_creation_time_then_flow_id(
    journal_backend: JournalBackend,
) -> None:
    # ids in the opposite order of their times: the listing is by time, not by id
    for k, flow_id in enumerate(["z", "y", "x", "w"]):
        await journal_backend.create_flow(_at(flow_id, 1000.0 + k), [])
    # flows created at the same time: by flow id, descending, in code point order
    for flow_id in ["t-10", "t_10", "T-10", "t-9", "té"]:
        await journal_backend.create_flow(_at(flow_id, 999.5), [])
    page = await journal_backend.list_newest()
    assert [r.flow_id for r in page.flows] == [
        "w", "x", "y", "z", "té", "t_10", "t-9", "t-10", "T-10",
    ]  # fmt: skip
    assert page.next is None
    first = page.flows[0]
    assert (first.name, first.state, first.created_at) == ("demo", "PENDING", 1003.0)
    assert await _ids(journal_backend, limit=0) == []


async def test_list_newest_pages_stay_stable_while_flows_are_added(
    journal_backend: JournalBackend,
) -> None:
    for i in range(10):
        await journal_backend.create_flow(_at(f"f{i:02}", 100.0 + i), [])
    page1 = await journal_backend.list_newest(limit=4)
    assert [r.flow_id for r in page1.flows] == ["f09", "f08", "f07", "f06"]
    assert page1.next is not None
    # flows added between two pages are newer: they do not move the pages after a cursor
    for i in range(10, 15):
        await journal_backend.create_flow(_at(f"f{i:02}", 100.0 + i), [])
    page2 = await journal_backend.list_newest(limit=4, cursor=page1.next)
    assert [r.flow_id for r in page2.flows] == ["f05", "f04", "f03", "f02"]
    # a flow created at the very time of the cursor's flow, with a smaller id, follows it
    await journal_backend.create_flow(_at("f05-", 105.0), [])
    again = await journal_backend.list_newest(limit=4, cursor=page1.next)
    assert [r.flow_id for r in again.flows] == ["f05-", "f05", "f04", "f03"]
    assert again.next is not None
    page3 = await journal_backend.list_newest(limit=4, cursor=page2.next)
    assert [r.flow_id for r in page3.flows] == ["f01", "f00"]
    assert page3.next is None
    # exactly a page's worth left: the next page is empty, no cursor past it
    last = await journal_backend.list_newest(limit=2, cursor=page2.next)
    assert [r.flow_id for r in last.flows] == ["f01", "f00"]
    assert last.next is None
    # paging through everything sees every flow once, newest first
    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = await journal_backend.list_newest(limit=3, cursor=cursor)
        seen += [r.flow_id for r in page.flows]
        if page.next is None:
            break
        cursor = page.next
    assert seen == sorted(seen, key=lambda f: (int(f[1:3]), f), reverse=True)
    assert len(seen) == len(set(seen)) == 16


async def test_list_newest_filters_by_name_states_and_time(
    journal_backend: JournalBackend,
) -> None:
    flows = [
        ("a", 10.0, "provision", "SUCCESS"),
        ("b", 20.0, "provision-vm", "REVERTED"),
        ("c", 30.0, "resize", "RUNNING"),
        ("d", 40.0, "pro%vision", "FAILED"),
        ("e", 50.0, "pro_vision", "SUCCESS"),
        ("f", 60.0, "[provision]", "SUCCESS"),
        ("g", 70.0, "Provision", "SUCCESS"),
    ]
    for flow_id, at, name, state in flows:
        await journal_backend.create_flow(_at(flow_id, at, name, "PENDING"), [])
        await journal_backend.append([Entry(flow_id, 1, EventKind.FLOW_STATE, state=state)])
    lb = journal_backend
    assert await _ids(lb, name="provision") == ["a"]  # exact, case-sensitive
    assert await _ids(lb, name="provision*") == ["b", "a"]
    assert await _ids(lb, name="*vision*") == ["g", "f", "e", "d", "b", "a"]
    assert await _ids(lb, name="p*") == ["e", "d", "b", "a"]  # case-sensitive
    assert await _ids(lb, name="pro?vision") == ["e", "d"]
    assert await _ids(lb, name="pro%vision") == ["d"]  # no wildcard but * and ?
    assert await _ids(lb, name="pro_*") == ["e"]
    assert await _ids(lb, name="[provision]") == ["f"]
    assert await _ids(lb, name="[p*") == ["f"]
    assert await _ids(lb, name="nothing*") == []
    assert await _ids(lb, states=["SUCCESS"]) == ["g", "f", "e", "a"]
    assert await _ids(lb, states=["REVERTED", "FAILED"]) == ["d", "b"]
    assert await _ids(lb, states=[]) == ["g", "f", "e", "d", "c", "b", "a"]
    assert await _ids(lb, since=30.0) == ["g", "f", "e", "d", "c"]  # since <= created_at
    assert await _ids(lb, until=30.0) == ["b", "a"]  # created_at < until
    assert await _ids(lb, since=20.0, until=60.0) == ["e", "d", "c", "b"]
    assert await _ids(lb, since=15.0, states=["SUCCESS"], name="pro*") == ["e"]
    # filters and cursor together: pages of the filtered listing
    page = await lb.list_newest(limit=2, states=["SUCCESS"])
    assert [r.flow_id for r in page.flows] == ["g", "f"]
    rest = await lb.list_newest(limit=2, states=["SUCCESS"], cursor=page.next)
    assert [r.flow_id for r in rest.flows] == ["e", "a"]
    assert rest.next is None
    # a state change moves a flow in or out of a state's listing
    await lb.append([Entry("c", 2, EventKind.FLOW_STATE, state="SUCCESS")])
    assert await _ids(lb, states=["SUCCESS"], until=40.0) == ["c", "a"]
    assert await _ids(lb, states=["RUNNING"]) == []


@pytest.mark.parametrize(
    "cursor", ["", "f1", "c1.", "c1.!!!", "c1.WzEsMl0", "c1.WyJ4IiwiZiJd", "c1." + "A" * 600]
)
async def test_list_newest_refuses_a_cursor_it_did_not_make(
    journal_backend: JournalBackend, cursor: str
) -> None:
    await journal_backend.create_flow(_at("f1", 1.0), [])
    with pytest.raises(ConfigurationError, match="is not a cursor") as info:
        await journal_backend.list_newest(cursor=cursor)
    assert "'next'" in str(info.value.hint)


async def test_an_older_sqlite_journal_gets_the_listing_indexes_on_open(tmp_path: Path) -> None:
    """Schema version 1 as the first release wrote it (no listing indexes): opened, it gets
    them (no version bump: an older flowcoord still opens the file), and keeps its flows."""
    from flowcoord._journal._sqlite import _SCHEMA, SQLiteJournal

    path = tmp_path / "old.sqlite"
    with closing(sqlite3.connect(path)) as conn, conn:
        for stmt in _SCHEMA:
            conn.execute(stmt)
        conn.execute("INSERT INTO flowcoord_meta VALUES ('schema_version', '1')")
        conn.execute("INSERT INTO flows VALUES ('old', 'demo', 'SUCCESS', 0, 5.0, 6.0)")
    async with SQLiteJournal(path) as journal:
        assert await journal.create_flow(_at("new", 7.0), [])
        page = await journal.list_newest(states=["SUCCESS", "PENDING"])
        assert [r.flow_id for r in page.flows] == ["new", "old"]
    with closing(sqlite3.connect(path)) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        assert {"flows_by_created", "flows_by_state_created"} <= names
        plan = " ".join(
            str(r[-1])
            for r in conn.execute(
                "EXPLAIN QUERY PLAN SELECT flow_id FROM flows"
                " ORDER BY created_at DESC, flow_id DESC LIMIT 5"
            )
        )
        assert "flows_by_created" in plan, plan
        assert conn.execute("SELECT value FROM flowcoord_meta").fetchall() == [("1",)]


@pytest.mark.postgres
async def test_a_version_2_postgres_schema_is_migrated_to_the_listing_indexes_and_mailboxes(
    pg_dsn: str,
) -> None:
    import asyncpg

    from flowcoord._journal._postgres import PostgresJournal
    from flowcoord._journal._postgres_sql import SCHEMA_VERSION, Statements

    schema = f"t_{uuid.uuid4().hex[:12]}"
    sql = Statements(schema)
    conn = await asyncpg.connect(pg_dsn)
    try:  # the schema as the release before the listing indexes left it
        for target, statements in sql.migrations(0):
            if target > 2:
                break
            for statement in statements:
                await conn.execute(statement)
            await conn.execute(sql.set_version, str(target))
        await conn.execute(f"INSERT INTO {schema}.flows VALUES ('old', 'demo', 'SUCCESS', 0, 5, 6)")
    finally:
        await conn.close()
    async with PostgresJournal(pg_dsn, schema=schema) as journal:
        assert await journal.create_flow(_at("new", 7.0), [])
        page = await journal.list_newest(limit=1)
        assert [r.flow_id for r in page.flows] == ["new"]
        rest = await journal.list_newest(cursor=page.next)
        assert [(r.flow_id, r.updated_at) for r in rest.flows] == [("old", 6.0)]
        sent = await journal.send_event("old", "note", '"hi"', "k")  # version 4: mailboxes
        assert await journal.sent_events("old", "note") == [sent]
    conn = await asyncpg.connect(pg_dsn)
    try:
        for index in ("flows_created_idx", "flows_state_created_idx", "sent_events"):
            found = await conn.fetchval("SELECT to_regclass($1)::text", f"{schema}.{index}")
            assert found == f"{schema}.{index}"
        version = await conn.fetchval(f"SELECT value FROM {schema}.meta")
        assert version == str(SCHEMA_VERSION) == "4"
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
    finally:
        await conn.close()


class _ListsByIdOnly(MemoryJournal):
    """A backend that does not override ``list_newest``: the contract's default serves it."""

    list_newest = JournalBackend.list_newest


@pytest.mark.parametrize(
    "check",
    [
        test_list_newest_orders_by_creation_time_then_flow_id,
        test_list_newest_pages_stay_stable_while_flows_are_added,
        test_list_newest_filters_by_name_states_and_time,
    ],
)
async def test_the_default_list_newest_keeps_the_contract(check: Any) -> None:
    await check(_ListsByIdOnly())
    await check(RecordingBackend(_ListsByIdOnly()))  # the explorer's backend delegates


async def test_the_recording_backend_delegates_list_newest() -> None:
    inner = MemoryJournal()
    recording = RecordingBackend(inner)
    for k, flow_id in enumerate(["b", "a", "c"]):
        await recording.create_flow(_at(flow_id, 1.0 + k), [])
    page = await recording.list_newest(limit=2, states=["PENDING"])
    assert [r.flow_id for r in page.flows] == ["c", "a"]
    assert page == await inner.list_newest(limit=2, states=["PENDING"])
