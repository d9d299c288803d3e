"""The journal front end's group commit: waves of waiters around each flush."""

from __future__ import annotations

from collections.abc import Sequence

import anyio
import pytest

import flowcoord as fc
from flowcoord._journal._events import Entry, EventKind, FlowRecord
from flowcoord._journal._group_commit import GroupCommit

pytestmark = pytest.mark.anyio


class _Flushing(fc.MemoryJournal):
    """The in-memory backend made to flush (not immediate), counting its appends."""

    immediate = False

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    async def append(self, entries: Sequence[Entry]) -> frozenset[str]:
        self.calls += 1
        await anyio.lowlevel.checkpoint()  # the commit takes a moment
        return await super().append(entries)


async def _waves(first_wave_writes_again: bool) -> tuple[list[int], list[int]]:
    """Four flows wait for one flush; what each saw of the backend when it woke, by wave."""
    backend = _Flushing()
    journal = GroupCommit(backend)
    first: list[int] = []
    second: list[int] = []
    async with backend, journal.running():
        writers = []
        for k in range(4):
            await backend.create_flow(FlowRecord(f"f{k}", "x", "RUNNING"), [])
            writers.append(journal.writer(f"f{k}", token=0, next_seq=1))

        async def flow(k: int) -> None:
            await writers[k].write(EventKind.TASK_STARTED, "t")
            (first if k % 2 == 0 else second).append(backend.calls)
            if k % 2 == 0 and first_wave_writes_again:
                await writers[k].write(EventKind.TASK_SUCCEEDED, "t")

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                for k in range(4):
                    tg.start_soon(flow, k)
    return first, second


async def test_the_second_wave_wakes_once_the_first_waves_entries_are_on_their_way() -> None:
    first, second = await _waves(first_wave_writes_again=True)
    assert first == [1, 1]  # woken as soon as the flush returned
    assert second == [2, 2]  # woken once the next flush (the first wave's entries) began


async def test_the_second_wave_is_not_held_when_the_first_queues_nothing() -> None:
    first, second = await _waves(first_wave_writes_again=False)
    assert first == [1, 1]
    assert second == [1, 1]  # no second flush came; woken all the same
