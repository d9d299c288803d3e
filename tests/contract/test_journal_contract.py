"""The journal backend contract (see ``flowcoord._journal._contract``)."""

from __future__ import annotations

import anyio
import pytest

from flowcoord._journal._contract import JournalBackend
from flowcoord._journal._events import Entry, EventKind, FlowRecord, resume_entries
from flowcoord.errors import FlowNotFound, OwnershipLost

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
