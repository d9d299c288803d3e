"""An operator's hand on the job board (see ``JobBoard.trash_job``, ``requeue`` and
``purge_trash``), for every board: trash a waiting job nobody holds, never a claimed one
(atomically, against a concurrent claim); requeue a trashed job as it was posted, once;
purge the trash."""

from __future__ import annotations

import time

import anyio
import pytest

from flowcoord._coord._contract import Claim, Job, JobBoard, TrashedJob
from flowcoord._coord._trash import is_trash_id
from flowcoord.errors import JobAlreadyClaimed, JobKeyConflict, JobNotFound

from .conftest import BoardService

pytestmark = pytest.mark.anyio


async def test_an_operator_trashes_a_waiting_job(boards: tuple[JobBoard, JobBoard]) -> None:
    a, b = boards
    await a.declare_queue("bulk")
    job = await a.post("provision", {"size": 3}, flow_id="o-1", queue="bulk", priority=4)
    other = await a.post("provision", {"size": 4}, flow_id="o-2")
    entry = await b.trash_job(job.job_id, "wrong region")
    assert (entry.job.job_id, entry.job.flow_id, entry.reason) == (
        job.job_id,
        "o-1",
        "wrong region",
    )
    assert is_trash_id(entry.trash_id)
    assert entry.trash_id.startswith(job.job_id + "-")
    assert time.time() - 60 < entry.trashed_at <= time.time()
    assert [j.job_id for j in await a.jobs()] == [other.job_id]
    assert [j.job_id for j in await a.claimable()] == [other.job_id]
    with pytest.raises(JobNotFound):
        await a.get(job.job_id)
    (listed,) = await a.trashed()
    assert (listed.trash_id, listed.reason, listed.job.flow_id) == (
        entry.trash_id,
        "wrong region",
        "o-1",
    )
    assert (listed.job.queue, listed.job.priority, dict(listed.job.inputs)) == (
        "bulk",
        4,
        {"size": 3},
    )
    # Its key stays taken: posting it again answers the trashed job.
    again = await b.post("provision", {"size": 3}, flow_id="o-1", queue="bulk", priority=4)
    assert (again.job_id, again.state, again.deduplicated) == (job.job_id, "trashed", True)
    with pytest.raises(JobNotFound):  # ended: not on the board any more
        await a.trash_job(job.job_id, "again")


async def test_a_claimed_job_is_refused_and_keeps_its_claim(
    boards: tuple[JobBoard, JobBoard],
) -> None:
    a, b = boards
    job = await a.post("provision", flow_id="held")
    claim = await a.claim(job, "engine-a")
    with pytest.raises(JobAlreadyClaimed, match="cancel or stop its flow"):
        await b.trash_job(job.job_id, "stuck")
    assert await a.holds(claim)
    assert (await b.get(job.job_id)).owner == "engine-a"
    assert await b.trashed() == []
    await a.abandon(claim)
    entry = await b.trash_job(job.job_id, "stuck")  # released: now it may go
    assert entry.job.claims == 1


async def test_unknown_or_ended_jobs_are_not_found(boards: tuple[JobBoard, JobBoard]) -> None:
    a, b = boards
    done = await a.post("provision", flow_id="done")
    await a.consume(await a.claim(done, "a"))
    for job_id in (done.job_id, "0" * 24, "not-a-job-id", "../../etc"):
        with pytest.raises(JobNotFound):
            await b.trash_job(job_id, "gone")
    for trash_id in ("0" * 24 + "-0000000001", "nope", "../x-0000000001", ""):
        with pytest.raises(JobNotFound):
            await b.requeue(trash_id)


async def test_requeue_posts_the_job_again_as_it_was_and_once(
    boards: tuple[JobBoard, JobBoard],
) -> None:
    a, b = boards
    await a.declare_queue("bulk")
    job = await a.post(
        "provision", {"size": 5}, flow_id="r-1", queue="bulk", priority=7, key="order-77"
    )
    await a.abandon(await a.claim(job, "a"), failed=True)
    await a.abandon(await a.claim(await a.get(job.job_id), "a"), failed=True)
    entry = await b.trash_job(job.job_id, "poison?")
    assert (entry.job.claims, entry.job.failures) == (2, 2)
    back = await b.requeue(entry.trash_id)
    assert (back.job_id, back.flow, back.flow_id, dict(back.inputs)) == (
        job.job_id,
        "provision",
        "r-1",
        {"size": 5},
    )
    assert (back.queue, back.priority, back.key, back.state) == ("bulk", 7, "order-77", "queued")
    assert (back.claims, back.failures, back.owner, back.deduplicated) == (0, 0, None, False)
    assert await a.trashed() == []
    seen = await a.get(job.job_id)
    assert (seen.flow_id, seen.claims, seen.failures, seen.queue, seen.priority) == (
        "r-1",
        0,
        0,
        "bulk",
        7,
    )
    assert [j.job_id for j in await a.claimable(queues=["bulk"])] == [job.job_id]
    with pytest.raises(JobNotFound):  # the entry went with the requeue
        await b.requeue(entry.trash_id)
    # The same key posted again is this job, waiting.
    same = await a.post("provision", {"size": 5}, flow_id="r-1", queue="bulk", key="order-77")
    assert (same.job_id, same.state, same.deduplicated) == (job.job_id, "queued", True)
    # It runs as any job does, and can be trashed again (a new entry).
    claim = await a.claim(await a.get(job.job_id), "a")
    assert claim.job.claims == 1
    await a.trash(claim, "still broken")
    (again,) = await b.trashed()
    assert again.trash_id != entry.trash_id
    assert (again.reason, again.job.claims) == ("still broken", 1)
    assert (await b.requeue(again.trash_id)).flow_id == "r-1"


async def test_a_delayed_job_requeued_stays_delayed(boards: tuple[JobBoard, JobBoard]) -> None:
    a, b = boards
    due = time.time() + 3600
    job = await a.post("provision", flow_id="later", not_before=due)
    entry = await b.trash_job(job.job_id, "not this one")
    back = await b.requeue(entry.trash_id)
    assert back.not_before == pytest.approx(due, abs=0.01)
    assert back.delayed
    assert await a.claimable() == []
    assert [j.job_id for j in await a.jobs()] == [job.job_id]


async def test_a_partitioned_job_requeued_keeps_its_partition_and_headers(
    boards: tuple[JobBoard, JobBoard],
) -> None:
    a, b = boards
    await a.declare_queue("tenants", partition_limit=1)
    job = await a.post(
        "provision",
        flow_id="t-1",
        queue="tenants",
        partition="acme",
        headers={"traceparent": "00-abc-01"},
    )
    entry = await b.trash_job(job.job_id, "hold it")
    back = await b.requeue(entry.trash_id)
    assert (back.partition, dict(back.headers)) == ("acme", {"traceparent": "00-abc-01"})
    (listed,) = await a.claimable(queues=["tenants"])
    assert (listed.job_id, listed.partition) == (job.job_id, "acme")
    claim = await a.claim(listed, "a")
    assert claim.partition_slot is not None  # its partition's limit applies, as posted
    await a.consume(claim)


async def test_requeue_refuses_a_key_taken_again(board_service: BoardService) -> None:
    a = await board_service.board(key_retention=0.0)
    job = await a.post("provision", {"v": 1}, flow_id="k-1")
    entry = await a.trash_job(job.job_id, "retry later")
    newer = await a.post("provision", {"v": 2}, flow_id="k-1")  # the key expired at once
    assert (newer.job_id, newer.deduplicated) == (job.job_id, False)
    with pytest.raises(JobKeyConflict) as caught:
        await a.requeue(entry.trash_id)
    assert caught.value.key == "k-1"
    assert [dict(j.inputs) for j in await a.jobs()] == [{"v": 2}]
    assert [t.trash_id for t in await a.trashed()] == [entry.trash_id]  # kept


async def test_requeue_after_the_key_was_swept(board_service: BoardService) -> None:
    a = await board_service.board(key_retention=0.0)
    job = await a.post("provision", {"v": 1}, flow_id="swept")
    entry = await a.trash_job(job.job_id, "later")
    swept = 0
    for _ in range(256):  # a ZooKeeper board sweeps one key folder of 256 a call
        swept += await a.expire_keys()
    assert swept == 1
    back = await a.requeue(entry.trash_id)
    assert (back.flow_id, dict(back.inputs)) == ("swept", {"v": 1})
    assert [j.job_id for j in await a.claimable()] == [job.job_id]


async def test_purge_before_a_time_or_all(boards: tuple[JobBoard, JobBoard]) -> None:
    a, b = boards
    jobs = [await a.post("provision", flow_id=f"p-{i}") for i in range(4)]
    first = [await a.trash_job(j.job_id, "old") for j in jobs[:2]]
    cut = max(t.trashed_at for t in first) + 0.001
    while time.time() <= cut:  # noqa: ASYNC110 - the wall clock passes the cut: no event says so
        await anyio.sleep(0.005)
    await a.trash(await a.claim(jobs[2], "a"), "newer")
    await a.trash_job(jobs[3].job_id, "newer")
    assert await b.purge_trash(before=cut) == 2
    assert sorted(t.job.flow_id for t in await a.trashed()) == ["p-2", "p-3"]
    assert await b.purge_trash(before=cut) == 0
    assert await b.purge_trash() == 2
    assert await a.trashed() == []
    assert await b.purge_trash() == 0
    # Purged entries cannot be requeued; the keys stay taken (trashed).
    with pytest.raises(JobNotFound):
        await a.requeue(first[0].trash_id)
    again = await a.post("provision", flow_id="p-0")
    assert (again.state, again.deduplicated) == ("trashed", True)


async def _trash_and_claim(a: JobBoard, b: JobBoard, job: Job) -> tuple[str, Claim | None]:
    """Trash ``job`` on ``a`` while ``b`` claims it (from a listing): who won, and the claim."""
    listed = next(j for j in await b.claimable() if j.job_id == job.job_id)
    claims: list[Claim] = []
    won: list[str] = []
    refused: list[str] = []

    async def claim() -> None:
        try:
            claims.append(await b.claim(listed, "b"))
            won.append("claim")
        except JobNotFound:
            refused.append("claim")

    async def trash() -> None:
        try:
            await a.trash_job(job.job_id, "race")
            won.append("trash")
        except JobAlreadyClaimed:
            refused.append("trash")

    async with anyio.create_task_group() as tg:
        tg.start_soon(claim)
        tg.start_soon(trash)
    assert len(won) == 1, (won, refused)
    assert set(won + refused) == {"claim", "trash"}
    return won[0], claims[0] if claims else None


async def test_of_a_trash_and_a_claim_at_once_exactly_one_wins(
    boards: tuple[JobBoard, JobBoard],
) -> None:
    a, b = boards
    for i in range(10):
        job = await a.post("provision", flow_id=f"race-{i}")
        winner, claim = await _trash_and_claim(a, b, job)
        if claim is not None:
            assert winner == "claim"
            assert (await a.get(job.job_id)).owner == "b"
            await b.consume(claim)
        else:
            assert winner == "trash"
            with pytest.raises(JobNotFound):
                await a.get(job.job_id)
    assert await a.jobs() == []


async def test_two_requeues_at_once_post_one_job(boards: tuple[JobBoard, JobBoard]) -> None:
    a, b = boards
    job = await a.post("provision", flow_id="twice")
    entry = await a.trash_job(job.job_id, "oops")
    results: list[str] = []

    async def requeue(board: JobBoard) -> None:
        try:
            await board.requeue(entry.trash_id)
            results.append("requeued")
        except (JobNotFound, JobKeyConflict):
            results.append("refused")

    async with anyio.create_task_group() as tg:
        tg.start_soon(requeue, a)
        tg.start_soon(requeue, b)
    assert sorted(results) == ["refused", "requeued"]
    assert [j.flow_id for j in await a.jobs()] == ["twice"]
    assert await b.trashed() == []


async def test_a_watcher_wakes_on_a_trash_and_a_requeue(
    boards: tuple[JobBoard, JobBoard],
) -> None:
    a, b = boards
    job = await b.post("provision", flow_id="watched")
    entry: list[TrashedJob] = []

    async def trash() -> None:
        entry.append(await b.trash_job(job.job_id, "watch this"))

    async def requeue() -> None:
        await b.requeue(entry[0].trash_id)

    for change in (trash, requeue):
        await a.claimable()  # what a has seen
        with anyio.fail_after(5):  # a hang guard, not a speed check
            async with anyio.create_task_group() as tg:
                tg.start_soon(change)
                await a.wait_changed()
    assert [j.flow_id for j in await a.claimable()] == ["watched"]
