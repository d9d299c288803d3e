"""The job board's queues (see ``flowcoord._coord._contract``), for every board: idempotent
posts under a key, named queues, priorities, delayed jobs and global concurrency limits."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import anyio
import pytest

from flowcoord._coord._contract import JobBoard, QueueConfig
from flowcoord._coord._queueing import MAX_PRIORITY, MIN_PRIORITY, job_id_for
from flowcoord.errors import (
    ConfigurationError,
    JobKeyConflict,
    JobNotDue,
    JobNotFound,
    OwnershipLost,
    QueueLimitReached,
    UnknownQueue,
)

from .conftest import BoardService

pytestmark = pytest.mark.anyio


async def ids(board: JobBoard, **kwargs: object) -> list[str]:
    return [j.flow_id for j in await board.claimable(**kwargs)]  # type: ignore[arg-type]


# -- idempotent posts -------------------------------------------------------------------------


async def test_a_key_posted_twice_is_one_job(boards: tuple[JobBoard, JobBoard]) -> None:
    a, b = boards
    first = await a.post("provision", {"size": 1}, flow_id="order-1")
    assert (first.key, first.deduplicated) == ("order-1", False)
    assert first.job_id == job_id_for("order-1")
    again = await b.post("provision", {"size": 1}, flow_id="order-1")  # from another client
    assert (again.job_id, again.flow_id, again.state, again.deduplicated) == (
        first.job_id,
        "order-1",
        "queued",
        True,
    )
    keyed = await a.post("provision", {"size": 1}, flow_id="order-1b", key="req-7")
    assert (keyed.key, keyed.flow_id) == ("req-7", "order-1b")
    same = await b.post("provision", {"size": 1}, flow_id="other-id", key="req-7")
    assert (same.job_id, same.flow_id, same.deduplicated) == (keyed.job_id, "order-1b", True)
    assert sorted(j.flow_id for j in await b.jobs()) == ["order-1", "order-1b"]
    claim = await a.claim(first, "a")
    held = await b.post("provision", {"size": 1}, flow_id="order-1")
    assert (held.job_id, held.owner, held.claims) == (first.job_id, "a", 1)
    await a.consume(claim)


async def test_another_flow_or_other_inputs_under_a_taken_key_conflict(
    boards: tuple[JobBoard, JobBoard],
) -> None:
    a, b = boards
    job = await a.post("provision", {"size": 1, "zone": "x"}, flow_id="k1")
    assert (await b.post("provision", {"zone": "x", "size": 1}, flow_id="k1")).deduplicated
    for flow, inputs in (("provision", {"size": 2, "zone": "x"}), ("teardown", {"size": 1})):
        with pytest.raises(JobKeyConflict) as info:
            await b.post(flow, inputs, flow_id="k1")
        assert (info.value.key, info.value.job_id, info.value.existing_flow) == (
            "k1",
            job.job_id,
            "provision",
        )
    assert [j.flow_id for j in await a.jobs()] == ["k1"]
    with pytest.raises(ConfigurationError):
        await a.post("provision", key="")


async def test_an_ended_job_is_returned_within_the_key_retention_then_forgotten(
    board_service: BoardService,
) -> None:
    a = await board_service.board(key_retention=1.0)
    job = await a.post("provision", {"n": 1}, flow_id="done-1")
    await a.consume(await a.claim(job, "a"), outcome="SUCCESS")
    trash = await a.post("provision", flow_id="bad-1")
    await a.trash(await a.claim(trash, "a"), "poison")
    assert await a.jobs() == []
    again = await a.post("provision", {"n": 1}, flow_id="done-1")
    assert (again.job_id, again.state, again.outcome, again.deduplicated) == (
        job.job_id,
        "consumed",
        "SUCCESS",
        True,
    )
    assert dict(again.inputs) == {"n": 1}
    assert (await a.post("provision", flow_id="bad-1")).state == "trashed"
    with pytest.raises(JobKeyConflict):
        await a.post("provision", {"n": 2}, flow_id="done-1")  # still its key
    with pytest.raises(JobNotFound):
        await a.get(job.job_id)
    assert await a.jobs() == []
    await anyio.sleep(1.1)  # past the retention: the key is free again
    fresh = await a.post("provision", {"n": 2}, flow_id="done-1")
    assert (fresh.state, fresh.deduplicated, fresh.claims) == ("queued", False, 0)
    assert [j.flow_id for j in await a.jobs()] == ["done-1"]
    forgotten = 0
    for _ in range(256):  # a ZooKeeper board sweeps one of 256 folders a call
        forgotten += await a.expire_keys()
    assert forgotten == 1  # bad-1's; done-1's key names a job again
    assert (await a.post("provision", flow_id="bad-1")).state == "queued"


# -- queues and priorities --------------------------------------------------------------------


async def test_named_queues_must_be_declared_and_are_served_apart(
    boards: tuple[JobBoard, JobBoard],
) -> None:
    a, b = boards
    with pytest.raises(UnknownQueue) as info:
        await a.post("mail", queue="email")
    assert info.value.queue == "email"
    assert await a.declare_queue("email") == QueueConfig("email", None)
    assert await b.declare_queue("email") == QueueConfig("email", None)  # idempotent
    await b.declare_queue("bulk", concurrency=5)
    assert await a.queues() == [
        QueueConfig("bulk", 5),
        QueueConfig("default", None),
        QueueConfig("email", None),
    ]
    assert await b.queue("bulk") == QueueConfig("bulk", 5)
    with pytest.raises(UnknownQueue):
        await b.queue("nope")
    await a.post("mail", flow_id="m1", queue="email")
    await a.post("work", flow_id="d1")
    await a.post("mail", flow_id="m2", queue="email", priority=3)
    await a.post("crunch", flow_id="c1", queue="bulk", priority=9)
    assert await ids(b, queues=["email"]) == ["m2", "m1"]
    assert await ids(b, queues=["default"]) == ["d1"]
    assert await ids(b, queues=["email", "default"]) == ["m2", "m1", "d1"]
    assert await ids(b) == ["c1", "m2", "m1", "d1"]
    assert await ids(b, queues=["bulk", "email"], limit=2) == ["c1", "m2"]
    assert [j.queue for j in await b.jobs(queue="email")] == ["email", "email"]
    with pytest.raises(UnknownQueue):
        await b.claimable(queues=["nope"])
    for bad in ("", "a/b", "x" * 65, "-lead"):
        with pytest.raises(ConfigurationError):
            await a.declare_queue(bad)
        with pytest.raises(ConfigurationError):
            await a.post("f", queue=bad)


async def test_higher_priority_first_then_first_posted_first(
    boards: tuple[JobBoard, JobBoard],
) -> None:
    a, b = boards
    order = [("p0-a", 0), ("p5-a", 5), ("n3-a", -3), ("p0-b", 0), ("p5-b", 5), ("top", 1000)]
    for flow_id, priority in order:
        await (a if len(flow_id) % 2 else b).post("f", flow_id=flow_id, priority=priority)
    expected = ["top", "p5-a", "p5-b", "p0-a", "p0-b", "n3-a"]
    assert await ids(a) == expected
    assert [j.flow_id for j in await b.jobs()] == expected
    assert await ids(a, limit=3) == expected[:3]
    held = await a.claim((await a.claimable(limit=1))[0], "a")
    assert await ids(b, limit=2) == ["p5-a", "p5-b"]  # the claimed one is skipped
    await a.consume(held)
    for bad in (MAX_PRIORITY + 1, MIN_PRIORITY - 1, 1.5, "3", True):
        with pytest.raises(ConfigurationError, match="priority"):
            await a.post("f", priority=bad)  # type: ignore[arg-type]
    assert await ids(a) == expected[1:]


# -- delayed jobs -----------------------------------------------------------------------------


async def test_a_delayed_job_is_not_claimed_before_it_is_due(
    boards: tuple[JobBoard, JobBoard],
) -> None:
    a, b = boards
    due = time.time() + 0.8
    later = await a.post("f", flow_id="later", not_before=due)
    assert later.not_before == pytest.approx(due)
    await a.post("f", flow_id="now")
    past = datetime.now(UTC) - timedelta(hours=1)
    await a.post("f", flow_id="past", not_before=past)  # a time past: runs at once
    assert await ids(b) == ["now", "past"]
    with pytest.raises(JobNotDue) as info:
        await b.claim(await b.get(later.job_id), "b")
    assert info.value.not_before == pytest.approx(due)
    assert {j.flow_id for j in await b.jobs()} == {"later", "now", "past"}
    await b.claimable()  # what b saw; it wakes when "later" falls due, without polling
    wakeups = 0
    with anyio.fail_after(5):
        while True:  # a watch may fire for nothing (ZooKeeper): a waiter lists again
            await b.wait_changed()
            wakeups += 1
            if time.time() >= due - 0.05:
                break
            await b.claimable()
    assert wakeups <= 3  # woken when due (or by a stray watch), never polled
    # due now: ahead of the ready jobs of its priority (it has waited already)
    assert await ids(b) == ["later", "now", "past"]
    claim = await b.claim((await b.claimable(limit=1))[0], "b")
    assert claim.job.flow_id == "later"
    await b.consume(claim)
    for bad in (float("nan"), -1.0, "soon"):
        with pytest.raises(ConfigurationError, match="not_before"):
            await a.post("f", not_before=bad)  # type: ignore[arg-type]


async def test_a_waiter_sees_a_delayed_post_that_falls_due_before_its_next_wake(
    boards: tuple[JobBoard, JobBoard],
) -> None:
    a, b = boards
    await a.post("f", flow_id="far", not_before=time.time() + 3600)
    assert await ids(b) == []
    await a.post("f", flow_id="soon", not_before=time.time() + 0.5)
    with anyio.fail_after(5):
        while "soon" not in await ids(b):  # wakes on the post, then when it falls due
            await b.wait_changed()
    assert await ids(b) == ["soon"]


# -- a clean release (a stopped flow given back), due later or not ----------------------------


async def test_a_release_does_not_count_the_claim_and_can_make_the_job_due_later(
    board_service: BoardService,
) -> None:
    a, b = await board_service.board(), await board_service.board()
    await a.declare_queue("naps", concurrency=1, partition_limit=1)
    job = await a.post("f", flow_id="nap", queue="naps", partition="t1", priority=3)
    await a.post("f", flow_id="other", queue="naps", partition="t2")
    first = await a.claim(job, "a")
    assert first.job.claims == 1
    due = time.time() + 0.8
    await a.release(first, not_before=due)
    assert not await a.holds(first)
    seen = await b.get(job.job_id)
    assert (seen.owner, seen.claims, seen.failures) == (None, 0, 0)  # no suspect, no failure
    assert seen.not_before == pytest.approx(due)
    assert (seen.priority, seen.partition, seen.queue) == (3, "t1", "naps")
    with pytest.raises(JobNotDue):
        await b.claim(seen, "b")
    # its slots came back at once: the queue's one slot runs the other job meanwhile
    assert await ids(b, queues=["naps"]) == ["other"]
    other = await b.claim((await b.claimable(queues=["naps"], limit=1))[0], "b")
    await b.consume(other)
    with anyio.fail_after(5):
        while "nap" not in await ids(b, queues=["naps"]):  # woken when it falls due
            await b.wait_changed()
    again = await b.claim((await b.claimable(queues=["naps"], limit=1))[0], "b")
    assert (again.job.flow_id, again.job.claims) == ("nap", 1)
    assert again.token > first.token
    await b.release(again)  # no due time: claimable at once, its due time kept
    assert await ids(a, queues=["naps"]) == ["nap"]
    last = await a.claim((await a.claimable(queues=["naps"], limit=1))[0], "a")
    assert last.job.claims == 1
    with pytest.raises(OwnershipLost):
        await b.release(again)  # a stale claim cannot release
    with pytest.raises(OwnershipLost):
        await b.release(again, not_before=time.time() + 60)
    assert await a.holds(last)
    await a.consume(last)
    assert await a.jobs() == []


# -- global concurrency limits ----------------------------------------------------------------


async def test_a_global_limit_holds_across_boards_and_slots_come_back(
    board_service: BoardService,
) -> None:
    a, b, c = [await board_service.board() for _ in range(3)]
    await a.declare_queue("api", concurrency=2)
    for i in range(5):
        await a.post("call", flow_id=f"call-{i}", queue="api")
    first = await a.claim((await a.claimable(queues=["api"], limit=1))[0], "a")
    second = await b.claim((await b.claimable(queues=["api"], limit=1))[0], "b")
    assert {first.slot, second.slot} == {0, 1}
    assert await c.claimable(queues=["api"]) == []  # used up: nothing to claim there
    with pytest.raises(QueueLimitReached) as info:
        await c.claim(await c.get(job_id_for("call-2")), "c")
    assert (info.value.queue, info.value.limit) == ("api", 2)
    await a.consume(first)  # its slot comes back
    third = await c.claim((await c.claimable(queues=["api"], limit=1))[0], "c")
    assert third.job.flow_id == "call-2"
    await board_service.close(b)  # b dies: its claim and slot go with its session
    with anyio.fail_after(5):
        while not await c.claimable(queues=["api"]):
            await c.wait_changed()
    fourth = await c.claim((await c.claimable(queues=["api"]))[0], "c")
    assert fourth.job.flow_id == "call-1"  # b's job, back at the head of the queue
    with pytest.raises(OwnershipLost):
        await a.consume(first)
    await a.declare_queue("api", concurrency=1)  # lowered: no new claim until under it
    assert await a.claimable(queues=["api"]) == []
    await c.consume(third)
    assert await a.claimable(queues=["api"]) == []  # c still runs one, the new limit
    await c.abandon(fourth)
    assert await ids(a, queues=["api"]) == ["call-1", "call-3", "call-4"]
    for bad in (0, -1, 1.5):
        with pytest.raises(ConfigurationError, match="at least 1"):
            await a.declare_queue("api", concurrency=bad)  # type: ignore[arg-type]


async def test_a_claim_race_for_the_last_slot_has_one_winner(
    board_service: BoardService,
) -> None:
    boards = [await board_service.board() for _ in range(4)]
    await boards[0].declare_queue("one", concurrency=1)
    for i in range(4):
        await boards[0].post("f", flow_id=f"j{i}", queue="one")
    listed = [await b.claimable(queues=["one"]) for b in boards]  # all see 4 free jobs
    won: list[str] = []
    refused: list[type[Exception]] = []

    async def claim(i: int) -> None:
        try:
            await boards[i].claim(listed[i][i], f"b{i}")  # four jobs, one slot
            won.append(f"b{i}")
        except QueueLimitReached as exc:
            refused.append(type(exc))

    async with anyio.create_task_group() as tg:
        for i in range(4):
            tg.start_soon(claim, i)
    assert len(won) == 1
    assert refused == [QueueLimitReached] * 3
