"""The journal's mailbox contract, on every backend: events numbered per flow and topic in
the order sent, idempotent by key, only to flows that exist, read in order after a number."""

from __future__ import annotations

import anyio
import pytest

from flowcoord.errors import FlowNotFound
from flowcoord.journal import FlowRecord, JournalBackend

pytestmark = pytest.mark.anyio


async def test_events_are_numbered_per_flow_and_topic_and_read_in_order(
    journal_backend: JournalBackend,
) -> None:
    j = journal_backend
    for fid in ("f1", "f2"):
        assert await j.create_flow(FlowRecord(fid, "wf", "RUNNING"), [])
    a = await j.send_event("f1", "approve", '"yes"', "k1")
    b = await j.send_event("f1", "approve", '{"by": "ann"}', "k2")
    other = await j.send_event("f1", "reject", "null", "k1")  # keys are per topic
    elsewhere = await j.send_event("f2", "approve", "1", "k1")
    assert (a.seq, b.seq, other.seq, elsewhere.seq) == (1, 2, 1, 1)
    assert (a.flow_id, a.topic, a.data, a.key) == ("f1", "approve", '"yes"', "k1")
    assert a.sent_at <= b.sent_at
    assert await j.sent_events("f1", "approve") == [a]
    assert await j.sent_events("f1", "approve", after=1) == [b]
    assert await j.sent_events("f1", "approve", after=0, limit=5) == [a, b]
    assert await j.sent_events("f1", "approve", after=2) == []
    assert await j.sent_events("f1", "nothing") == []
    assert await j.sent_events("nobody", "approve") == []


async def test_a_key_sends_once(journal_backend: JournalBackend) -> None:
    j = journal_backend
    assert await j.create_flow(FlowRecord("f1", "wf", "RUNNING"), [])
    first = await j.send_event("f1", "t", '"a"', "same")
    again = await j.send_event("f1", "t", '"other data"', "same")
    assert again == first  # the event the key names, nothing written
    assert await j.sent_events("f1", "t", limit=10) == [first]


async def test_events_go_only_to_flows_that_exist(journal_backend: JournalBackend) -> None:
    with pytest.raises(FlowNotFound):
        await journal_backend.send_event("nobody", "t", "1", "k")


async def test_concurrent_sends_get_distinct_numbers(journal_backend: JournalBackend) -> None:
    j = journal_backend
    assert await j.create_flow(FlowRecord("f1", "wf", "RUNNING"), [])
    async with anyio.create_task_group() as tg:
        for i in range(20):
            tg.start_soon(j.send_event, "f1", "t", str(i), f"k{i}")
    events = await j.sent_events("f1", "t", limit=100)
    assert [e.seq for e in events] == list(range(1, 21))
    assert sorted(int(e.data) for e in events) == list(range(20))
