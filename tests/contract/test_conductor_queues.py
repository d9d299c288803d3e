"""Conductors serving queues, on every board: which queues, per-worker and global limits,
delayed jobs claimed when due (by a timer, not by polling), outcomes kept under the key."""

from __future__ import annotations

import time
from collections import Counter

import anyio
import pytest

import flowcoord as fc
from flowcoord._coord._conductor import Conductor
from flowcoord.errors import ConfigurationError, UnknownQueue

from .conftest import BoardService

pytestmark = pytest.mark.anyio


class Calls:
    """A flow ``call`` whose task runs until released, counting what runs where at once."""

    def __init__(self) -> None:
        self.running: Counter[tuple[str, str]] = Counter()  # (queue, conductor) -> running
        self.peak: Counter[tuple[str, str]] = Counter()
        self.peak_queue: Counter[str] = Counter()
        self.started: dict[str, float] = {}
        self.release = anyio.Event()

    def registry(self, who: str = "") -> fc.FlowRegistry:
        """The flows of conductor ``who``."""

        async def call(fid: str, queue: str) -> str:
            self.started[fid] = time.time()
            self.running[queue, who] += 1
            self.peak[queue, who] = max(self.peak[queue, who], self.running[queue, who])
            total = sum(n for (q, _), n in self.running.items() if q == queue)
            self.peak_queue[queue] = max(self.peak_queue[queue], total)
            await self.release.wait()
            self.running[queue, who] -= 1
            return fid

        reg = fc.FlowRegistry()
        reg.register("call", lambda: fc.Linear("call", fc.FunctionTask(call, "call")))
        return reg

    async def until(self, pred: object, within: float = 10) -> None:
        with anyio.fail_after(within):
            while not pred():  # type: ignore[operator]  # noqa: ASYNC110 - a plain predicate
                await anyio.sleep(0.01)


async def test_conductors_keep_to_the_global_and_their_own_limits(
    board_service: BoardService,
) -> None:
    calls = Calls()
    a, b, producer = [await board_service.board() for _ in range(3)]
    await producer.declare_queue("api", concurrency=3)
    await producer.declare_queue("bulk")
    for i in range(6):
        await producer.post(
            "call", {"fid": f"api-{i}", "queue": "api"}, flow_id=f"api-{i}", queue="api"
        )
        await producer.post(
            "call", {"fid": f"bulk-{i}", "queue": "bulk"}, flow_id=f"bulk-{i}", queue="bulk"
        )
    await producer.post("call", {"fid": "d-0", "queue": "default"}, flow_id="d-0")
    limits = {"api": 2, "bulk": 1}
    async with (
        fc.Engine() as ea,
        fc.Engine() as eb,
        Conductor(
            a, ea, calls.registry("a"), name="a", queues=["api", "bulk"], worker_limits=limits
        ),
        Conductor(
            b, eb, calls.registry("b"), name="b", queues=["api", "bulk"], worker_limits=limits
        ),
    ):
        # 3 of api (the global limit, though 4 would fit the two workers), 1 bulk each
        await calls.until(lambda: sum(calls.running.values()) == 5)
        await anyio.sleep(0.3)  # would anything more start?
        assert sum(calls.running.values()) == 5
        assert calls.peak_queue["api"] == 3
        assert max(calls.peak["api", w] for w in "ab") == 2
        assert (calls.peak["bulk", "a"], calls.peak["bulk", "b"]) == (1, 1)
        assert "d-0" not in calls.started  # nobody serves the default queue
        calls.release.set()
        await calls.until(lambda: len(calls.started) == 12)
        with anyio.fail_after(10):  # the last ones consumed before the conductors stop
            while [j.flow_id for j in await producer.jobs()] != ["d-0"]:  # noqa: ASYNC110
                await anyio.sleep(0.02)
    assert calls.peak_queue["api"] == 3
    assert max(calls.peak["bulk", w] for w in "ab") == 1
    again = await producer.post(
        "call", {"fid": "api-0", "queue": "api"}, flow_id="api-0", queue="api"
    )
    assert (again.state, again.outcome) == ("consumed", "SUCCESS")
    assert [j.flow_id for j in await producer.jobs()] == ["d-0"]


async def test_a_delayed_job_starts_when_due_without_polling(board_service: BoardService) -> None:
    calls = Calls()
    calls.release.set()
    board, producer = await board_service.board(), await board_service.board()
    async with (
        fc.Engine() as engine,
        Conductor(board, engine, calls.registry(), rescan_interval=60.0),
    ):
        due = time.time() + 1.0
        await producer.post(
            "call", {"fid": "later", "queue": "default"}, flow_id="later", not_before=due
        )
        await producer.post("call", {"fid": "now", "queue": "default"}, flow_id="now")
        await calls.until(lambda: "later" in calls.started, within=5)
    assert calls.started["now"] < due
    assert due <= calls.started["later"] < due + 1.0  # its timer, not the 60 s rescan


async def test_a_conductor_refuses_an_unknown_queue_or_a_bad_limit(
    board_service: BoardService,
) -> None:
    board = await board_service.board()
    calls = Calls()
    async with fc.Engine() as engine:
        with pytest.raises(UnknownQueue, match="nowhere"):
            async with Conductor(board, engine, calls.registry(), queues=["default", "nowhere"]):
                pass
        cases: list[tuple[list[str], dict[str, int]]] = [
            ([], {}),
            (["a"], {"a": 0}),
            (["a"], {"b": 1}),
            (["a b"], {}),
        ]
        for queues, limits in cases:
            with pytest.raises(ConfigurationError):
                Conductor(board, engine, calls.registry(), queues=queues, worker_limits=limits)
