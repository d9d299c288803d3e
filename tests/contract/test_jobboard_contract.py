"""The job board contract (see ``flowcoord._coord._contract``), for every board."""

from __future__ import annotations

import anyio
import pytest

from flowcoord._coord._contract import Claim, JobBoard
from flowcoord._coord._memory import MemoryCoordinator
from flowcoord._coord._zk_board import ZooKeeperJobBoard
from flowcoord._coord._zk_session import ZooKeeperSession
from flowcoord.errors import JobAlreadyClaimed, JobNotFound, OwnershipLost

pytestmark = pytest.mark.anyio


async def test_post_and_list_by_priority_then_age(boards: tuple[JobBoard, JobBoard]) -> None:
    a, b = boards
    j1 = await a.post("provision", {"size": 1})
    j2 = await a.post("provision", {"size": 2}, priority=5, flow_id="f-2")
    j3 = await b.post("teardown", {"vm": "x"})
    listed = await b.jobs()
    assert [j.job_id for j in listed] == [j2.job_id, j1.job_id, j3.job_id]
    got = await b.get(j2.job_id)
    assert (got.flow, got.flow_id, dict(got.inputs), got.priority) == (
        "provision",
        "f-2",
        {"size": 2},
        5,
    )
    assert got.owner is None
    assert len({j.flow_id for j in listed}) == 3
    with pytest.raises(JobNotFound):
        await a.get("job-9999999999")


async def test_one_claim_wins(boards: tuple[JobBoard, JobBoard]) -> None:
    a, b = boards
    job = await a.post("provision")
    results: list[str] = []

    async def claim(board: JobBoard, who: str) -> None:
        try:
            await board.claim(job, who)
            results.append(who)
        except JobAlreadyClaimed:
            results.append("refused")

    async with anyio.create_task_group() as tg:
        tg.start_soon(claim, a, "a")
        tg.start_soon(claim, b, "b")
    assert sorted(results) in (["a", "refused"], ["b", "refused"])
    winner = results[0] if results[0] != "refused" else results[1]
    seen = await a.get(job.job_id)
    assert seen.owner == winner
    assert seen.claims == 1


async def test_tokens_grow_and_claims_are_counted(boards: tuple[JobBoard, JobBoard]) -> None:
    a, b = boards
    job = await a.post("provision")
    c1 = await a.claim(job, "a")
    assert await a.holds(c1)
    await a.abandon(c1)
    assert not await a.holds(c1)
    c2 = await b.claim(await b.get(job.job_id), "b")
    assert c2.token > c1.token
    assert c2.job.claims == 2
    with pytest.raises(OwnershipLost):
        await a.consume(c1)  # a stale claim cannot consume
    await b.consume(c2)
    assert await a.jobs() == []
    with pytest.raises(JobNotFound):
        await a.claim(job, "a")


async def test_abandon_counts_failures(boards: tuple[JobBoard, JobBoard]) -> None:
    a, _ = boards
    job = await a.post("provision")
    await a.abandon(await a.claim(job, "a"), failed=True)
    await a.abandon(await a.claim(job, "a"), failed=False)
    seen = await a.get(job.job_id)
    assert (seen.claims, seen.failures, seen.owner) == (2, 1, None)


async def test_trash_keeps_the_reason(boards: tuple[JobBoard, JobBoard]) -> None:
    a, b = boards
    job = await a.post("provision", {"k": 1})
    await a.trash(await a.claim(job, "a"), "bad inputs")
    assert await b.jobs() == []
    trashed = await b.trashed()
    assert [(t.job.job_id, t.reason) for t in trashed] == [(job.job_id, "bad inputs")]
    assert dict(trashed[0].job.inputs) == {"k": 1}


async def test_members_list_who_owns_what(boards: tuple[JobBoard, JobBoard]) -> None:
    a, b = boards
    await a.register("engine-a", {"host": "h1"})
    await b.register("engine-b", {"host": "h2"})
    job = await a.post("provision")
    await b.claim(job, "engine-b")
    members = {m.name: m for m in await a.members()}
    assert set(members) == {"engine-a", "engine-b"}
    assert members["engine-b"].claims == (job.job_id,)
    assert members["engine-a"].info["host"] == "h1"


async def test_wait_changed_wakes_on_a_post(boards: tuple[JobBoard, JobBoard]) -> None:
    a, b = boards
    await a.jobs()  # arm
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(b.post, "provision")
            await a.wait_changed()


async def test_wait_changed_wakes_on_a_claim_and_a_release(
    boards: tuple[JobBoard, JobBoard],
) -> None:
    a, b = boards
    job = await b.post("provision")
    claims: list[Claim] = []

    async def claim() -> None:
        claims.append(await b.claim(job, "b"))

    await a.jobs()
    with anyio.move_on_after(0.3) as idle:
        await a.wait_changed()  # nothing changed: it must not return
    assert idle.cancelled_caught
    for change in (claim, lambda: b.abandon(claims[0])):
        await a.jobs()  # what a has seen; any change after this wakes it
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(change)
                await a.wait_changed()
    (seen,) = await a.jobs()
    assert seen.owner is None
    assert seen.claims == 1


async def test_wait_changed_sees_a_change_made_before_the_call(
    boards: tuple[JobBoard, JobBoard],
) -> None:
    """A change made after the caller last listed the board, but before it calls
    wait_changed (a conductor lists, claims, then waits), wakes it at once: it is not
    lost because no watch was armed yet."""
    a, b = boards
    claims: list[Claim] = []

    async def post() -> None:
        await b.post("provision")

    async def claim() -> None:
        claims.append(await b.claim((await b.jobs())[0], "b"))

    async def abandon() -> None:
        await b.abandon(claims.pop())

    async def consume() -> None:
        claims.append(await b.claim((await b.jobs())[0], "b"))
        await b.consume(claims.pop())

    for read in (a.jobs, a.claimable):
        for change in (post, claim, abandon, consume):
            await read()  # what a has seen
            await change()  # done and over before a waits
            with anyio.fail_after(5):  # a hang guard, not a speed check
                await a.wait_changed()
    assert await a.jobs() == [] == await b.jobs()
    with anyio.move_on_after(0.3) as idle:
        await a.wait_changed()  # nothing changed since: it must not return
    assert idle.cancelled_caught


async def test_a_stale_claim_cannot_release(boards: tuple[JobBoard, JobBoard]) -> None:
    a, b = boards
    job = await a.post("provision")
    old = await a.claim(job, "a")
    await a.abandon(old, failed=True)
    new = await b.claim(await b.get(job.job_id), "b")
    for release in (a.consume(old), a.abandon(old), a.trash(old, "stale")):
        with pytest.raises(OwnershipLost):
            await release
    assert await b.holds(new)
    assert not await a.holds(old)
    seen = await a.get(job.job_id)
    assert (seen.owner, seen.claims, seen.failures) == ("b", 2, 1)
    await b.trash(new, "done with it")
    assert [t.job.claims for t in await a.trashed()] == [2]


async def test_claimable_lists_free_jobs_and_a_stale_listing_still_claims_right(
    boards: tuple[JobBoard, JobBoard],
) -> None:
    a, b = boards
    first = await a.post("one", priority=1)
    second = await a.post("two")
    assert [j.job_id for j in await a.claimable()] == [first.job_id, second.job_id]
    held = await b.claim(first, "b")
    assert [j.job_id for j in await a.claimable()] == [second.job_id]
    # Claimed and released elsewhere between two listings: the listing may lag...
    await b.abandon(await b.claim(second, "b"), failed=True)
    (listed,) = await a.claimable()
    # ...but a claim from it counts from the board's current data.
    claim = await a.claim(listed, "a")
    assert (claim.job.claims, claim.job.failures) == (2, 1)
    await b.abandon(held)
    assert [j.job_id for j in await a.claimable()] == [first.job_id]
    await a.consume(claim)
    assert [j.job_id for j in await b.claimable()] == [first.job_id]


@pytest.mark.zookeeper
async def test_a_zookeeper_scan_reads_only_jobs_it_has_not_seen_free(
    zk_hosts: str, zk_namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with ZooKeeperSession(zk_hosts, namespace=zk_namespace) as session:
        board = ZooKeeperJobBoard(session)
        for i in range(30):
            await board.post("f", {"i": i})
        reads: list[str] = []
        get = session.get

        async def counting_get(path: str, *, watch: bool = False) -> object:
            reads.append(path)
            return await get(path, watch=watch)

        monkeypatch.setattr(session, "get", counting_get)
        assert len(await board.claimable()) == 30
        assert len(reads) == 30
        reads.clear()
        await board.post("f", {"i": 30})
        assert len(await board.claimable()) == 31
        assert len(reads) == 1  # the new job only
        assert len(await board.jobs()) == 31  # jobs() reads them all, exactly


async def test_claimed_job_finds_the_flow_a_live_owner_holds(
    boards: tuple[JobBoard, JobBoard],
) -> None:
    a, b = boards
    job = await a.post("provision", flow_id="held-1")
    await a.post("provision", flow_id="free-1")
    assert await a.claimed_job("held-1") is None  # posted, not claimed
    claim = await b.claim(job, "engine-b")
    seen = await a.claimed_job("held-1")
    assert seen is not None
    assert (seen.job_id, seen.flow_id, seen.owner, seen.claims) == (
        job.job_id,
        "held-1",
        "engine-b",
        1,
    )
    assert await a.claimed_job("free-1") is None
    assert await a.claimed_job("nowhere") is None
    await b.abandon(claim)
    assert await a.claimed_job("held-1") is None  # released
    await b.consume(await b.claim(await b.get(job.job_id), "engine-b"))
    assert await a.claimed_job("held-1") is None  # gone


async def test_claimed_job_forgets_a_claim_whose_session_is_gone() -> None:
    coord = MemoryCoordinator()
    a, b = coord.board(), coord.board()
    await b.claim(await a.post("provision", flow_id="f"), "engine-b")
    assert (await a.claimed_job("f")) is not None
    b.session.expire()  # its claims vanish with it
    assert await a.claimed_job("f") is None


@pytest.mark.zookeeper
async def test_a_zookeeper_claim_lookup_reads_only_the_claimed_jobs(
    zk_hosts: str, zk_namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with ZooKeeperSession(zk_hosts, namespace=zk_namespace) as session:
        board = ZooKeeperJobBoard(session)
        async with ZooKeeperSession(zk_hosts, namespace=zk_namespace) as other:
            owner = ZooKeeperJobBoard(other)
            for i in range(30):
                await board.post("f", {"i": i}, flow_id=f"f-{i}")
            await owner.claim(await board.get((await board.jobs())[7].job_id), "engine-o")
            reads: list[str] = []
            get = session.get

            async def counting_get(path: str, *, watch: bool = False) -> object:
                reads.append(path)
                return await get(path, watch=watch)

            monkeypatch.setattr(session, "get", counting_get)
            seen = await board.claimed_job("f-7")
            assert seen is not None
            assert seen.owner == "engine-o"
            assert len(reads) == 2  # the claimed job and its lock, not the 30 jobs
            assert await board.claimed_job("f-8") is None
        # the owner's session closed: its ephemeral lock went with it
        assert await board.claimed_job("f-7") is None
