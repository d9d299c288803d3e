"""The engine's ways to write (FlowWriter over GroupCommit), and the promise each one makes:
append and don't wait (``emit``), append and wait until durable (``await write``), append
and be called back once durable (``write(...).then``); on a flushing and an immediate backend,
and when a batch fails."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

import flowcoord as fc
from flowcoord._journal._events import Entry, EventKind, FlowRecord
from flowcoord._journal._group_commit import GroupCommit
from flowcoord._journal._writer import FlowWriter
from flowcoord.errors import JournalUnavailable, OwnershipLost

pytestmark = pytest.mark.anyio

_S = EventKind.TASK_STARTED
_OK = EventKind.TASK_SUCCEEDED


class _Flushing(fc.MemoryJournal):
    """The in-memory backend made to flush (not immediate): it records each append call and
    fails the next one when told to."""

    immediate = False

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[list[tuple[str, int]]] = []
        self.fail_next = False

    async def append(self, entries: Sequence[Entry]) -> frozenset[str]:
        await anyio.lowlevel.checkpoint()  # the commit takes a moment
        self.calls.append([(e.flow_id, e.seq) for e in entries])
        if self.fail_next:
            self.fail_next = False
            raise JournalUnavailable("the disk went away")
        return await super().append(entries)


class _Settled:
    """A writer's ``settle``: what it was told, call by call."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[Any], BaseException | None]] = []

    def __call__(self, items: list[Any], error: BaseException | None) -> None:
        self.calls.append((list(items), error))


@asynccontextmanager
async def _writers(
    backend: fc.MemoryJournal, *flow_ids: str
) -> AsyncIterator[tuple[GroupCommit, list[FlowWriter], list[_Settled]]]:
    journal = GroupCommit(backend)
    async with backend, journal.running():
        writers, settled = [], []
        for flow_id in flow_ids:
            await backend.create_flow(FlowRecord(flow_id, "x", "RUNNING"), [])
            w = journal.writer(flow_id, token=0, next_seq=1)
            w.settle = s = _Settled()
            writers.append(w)
            settled.append(s)
        with anyio.fail_after(5):
            yield journal, writers, settled


async def _seqs(backend: fc.MemoryJournal, flow_id: str) -> list[int]:
    return [e.seq for e in await backend.read(flow_id)]


async def test_write_is_durable_when_awaited() -> None:
    backend = _Flushing()
    async with _writers(backend, "f") as (_, (w,), _):
        durable = w.write(_S, "t")  # appended now ...
        assert await _seqs(backend, "f") == []  # ... durable once its flush returned
        await durable
        assert await _seqs(backend, "f") == [1]


async def test_write_batch_is_waited_for_and_checked_by_its_caller() -> None:
    backend = _Flushing()
    async with _writers(backend, "f") as (_, (w,), _):
        batch = w.write_batch(_S, "t")
        assert batch is not None
        assert await _seqs(backend, "f") == []
        await batch.wait()
        w.check(batch)
        assert await _seqs(backend, "f") == [1]
        backend.fail_next = True
        failing = w.write_batch(_OK, "t")
        assert failing is not None
        await failing.wait()
        with pytest.raises(JournalUnavailable):
            w.check(failing)  # the caller learns it from check, as await write raises
        with pytest.raises(JournalUnavailable):
            w.write_batch(_S, "u")  # nothing above the hole
    immediate = fc.MemoryJournal()
    async with _writers(immediate, "g") as (_, (v,), _):
        assert v.write_batch(_S, "t") is None  # durable already
        assert await _seqs(immediate, "g") == [1]
        await immediate.fence("g", 1)
        with pytest.raises(OwnershipLost):
            v.write_batch(_S, "u")


async def test_emit_does_not_wait_and_rides_along_with_the_next_write() -> None:
    backend = _Flushing()
    async with _writers(backend, "f") as (_, (w,), (settled,)):
        assert w.emit(_S, "a") == 1
        assert w.emit(_S, "b") == 2
        assert backend.calls == []  # nobody waits: it waits for company (lazy_delay)
        await w.write(_OK, "a")
        assert backend.calls == [[("f", 1), ("f", 2), ("f", 3)]]  # one commit for all three
        assert settled.calls == []  # nothing to tell: no item was given


async def test_emit_alone_is_flushed_after_the_lazy_delay() -> None:
    backend = _Flushing()
    async with _writers(backend, "f") as (journal, (w,), _):
        w.emit(_S, "a")
        await anyio.sleep(journal.lazy_delay * 4)
        assert await _seqs(backend, "f") == [1]


async def test_then_calls_back_once_per_flow_and_commit_when_durable() -> None:
    backend = _Flushing()
    async with _writers(backend, "f", "g") as (_, (w, v), (settled, other)):
        w.write(_OK, "a").then("a")
        w.write(_OK, "b").then("b")
        v.write(_OK, "c").then("c")
        assert settled.calls == []  # not durable yet: nothing is told
        await w.write(_S, "x")  # rides in the same commit
        assert backend.calls == [[("f", 1), ("f", 2), ("g", 1), ("f", 3)]]
        assert settled.calls == [(["a", "b"], None)]  # one call for both, in order
        assert other.calls == [(["c"], None)]
        assert await _seqs(backend, "f") == [1, 2, 3]
        w.write(_OK, "d").then("d")  # a new commit: a new call
        await w.write(_S, "y")
        assert settled.calls[1:] == [(["d"], None)]


async def test_then_after_the_commit_returned_settles_at_once() -> None:
    backend = _Flushing()
    async with _writers(backend, "f") as (_, (w,), (settled,)):
        durable = w.write(_OK, "a")
        await durable
        durable.then("a")
        assert settled.calls == [(["a"], None)]


async def test_a_refused_write_raises_and_every_later_one_too() -> None:
    backend = _Flushing()
    async with _writers(backend, "f") as (_, (w,), (settled,)):
        await backend.fence("f", 1)  # a newer owner
        w.write(_OK, "a").then("a")
        with pytest.raises(OwnershipLost):
            await w.write(_S, "b")
        assert settled.calls[0][0] == ["a"]
        assert isinstance(settled.calls[0][1], OwnershipLost)
        with pytest.raises(OwnershipLost):
            w.emit(_S, "c")
        assert await _seqs(backend, "f") == []


async def test_a_failed_batch_stops_every_flow_in_it_and_drops_what_is_queued() -> None:
    backend = _Flushing()
    async with _writers(backend, "f", "g", "h") as (_, (w, v, u), (settled, other, third)):
        await w.write(_S, "a")
        backend.fail_next = True
        first = w.write(_OK, "a")
        v.emit(_S, "b")  # nobody waits for it, but its flow stops all the same
        await anyio.lowlevel.checkpoint()  # the flush has started
        w.emit(_S, "late")  # queued behind the failing batch: dropped, never sent
        u.write(_S, "c").then("c")  # another flow: not concerned
        with pytest.raises(JournalUnavailable):
            await first
        assert [items for items, _ in settled.calls] == [[]]  # told (fail), no item given
        assert isinstance(settled.calls[0][1], JournalUnavailable)
        assert [items for items, _ in other.calls] == [[]]  # told too, though nobody waits
        assert isinstance(other.calls[0][1], JournalUnavailable)
        for writer in (w, v):
            with pytest.raises(JournalUnavailable):
                writer.emit(_S, "more")
        await u.write(_S, "d")
        assert third.calls == [(["c"], None)]
        sent = [key for call in backend.calls for key in call]
        assert ("f", 3) not in sent  # the late entry above the hole
        assert await _seqs(backend, "h") == [1, 2]


async def test_on_an_immediate_backend_every_way_is_durable_at_once() -> None:
    backend = fc.MemoryJournal()
    async with _writers(backend, "f") as (_, (w,), (settled,)):
        w.emit(_S, "a")
        assert await _seqs(backend, "f") == [1]
        durable = w.write(_OK, "a")
        assert await _seqs(backend, "f") == [1, 2]
        await durable  # nothing to wait for
        w.write(_OK, "b").then("b")
        assert settled.calls == [(["b"], None)]
        await backend.fence("f", 1)
        with pytest.raises(OwnershipLost):  # refused: raised as it is appended
            w.write(_S, "c")
        with pytest.raises(OwnershipLost):
            w.emit(_S, "d")
