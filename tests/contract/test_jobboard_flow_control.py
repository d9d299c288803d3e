"""Flow control on the job board (see ``flowcoord._coord._contract``), for every board:
partition keys with a per-partition limit, rate limits, job headers; exact under concurrent
claims from several boards. The last tests are ZooKeeper's own (layout, writes, reads)."""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

import flowcoord as fc
from flowcoord._coord._conductor import Conductor
from flowcoord._coord._contract import Claim, Job, JobBoard, QueueConfig
from flowcoord._coord._queueing import MAX_HEADERS, MAX_PARTITION, MAX_RATE_COUNT
from flowcoord._coord._zk_board import ZooKeeperJobBoard
from flowcoord._coord._zk_session import ZooKeeperSession
from flowcoord.errors import (
    ConfigurationError,
    CoordinationError,
    JobAlreadyClaimed,
    PartitionLimitReached,
    QueueLimitReached,
    RateLimited,
)

from .conftest import BoardService
from .test_conductor_queues import Calls

pytestmark = pytest.mark.anyio


async def ids(board: JobBoard, **kwargs: Any) -> list[str]:
    return [j.flow_id for j in await board.claimable(**kwargs)]


async def claim_id(board: JobBoard, flow_id: str, owner: str = "me") -> Claim:
    """Claim the job of ``flow_id`` (its key)."""
    for job in await board.jobs():
        if job.flow_id == flow_id:
            return await board.claim(job, owner)
    raise AssertionError(f"no job {flow_id} on the board")


async def wait_until_claimable(board: JobBoard, flow_id: str, queue: str) -> int:
    """Wait (bounded) until ``flow_id`` is claimable; return how often ``wait_changed`` woke."""
    wakeups = 0
    with anyio.fail_after(10):
        while flow_id not in await ids(board, queues=[queue]):
            await board.wait_changed()  # a watch may fire for nothing (ZooKeeper): list again
            wakeups += 1
    return wakeups


# -- partition keys ---------------------------------------------------------------------------


async def test_a_full_partition_waits_without_holding_up_the_others(
    board_service: BoardService,
) -> None:
    a, b, c = [await board_service.board() for _ in range(3)]
    assert await a.declare_queue("tenants", partition_limit=1) == QueueConfig(
        "tenants", partition_limit=1
    )
    assert await b.queue("tenants") == QueueConfig("tenants", partition_limit=1)
    for flow_id, partition in [("a1", "acme"), ("a2", "acme"), ("b1", "bolt"), ("n1", None)]:
        job = await a.post("f", flow_id=flow_id, queue="tenants", partition=partition)
        assert job.partition == partition
    # one of acme's (its room), the others whole: a partition limit without a partition on
    # the job is no limit for that job
    assert await ids(b, queues=["tenants"]) == ["a1", "b1", "n1"]
    held = await claim_id(b, "a1", "b")
    assert (held.job.partition, held.partition_slot) == ("acme", 0)
    assert await ids(c, queues=["tenants"]) == ["b1", "n1"]  # acme's a2 waits, bolt's runs
    with pytest.raises(PartitionLimitReached) as info:
        await claim_id(c, "a2", "c")
    assert (info.value.queue, info.value.partition, info.value.limit) == ("tenants", "acme", 1)
    assert isinstance(info.value, CoordinationError)
    other = await claim_id(c, "b1", "c")
    unlimited = await claim_id(c, "n1", "c")
    assert unlimited.partition_slot is None
    # consumed: acme's slot comes back
    await b.consume(held)
    assert await ids(c, queues=["tenants"]) == ["a2"]
    second = await claim_id(c, "a2", "c")
    # abandoned and trashed claims give their slots back too
    await c.abandon(second)
    second = await claim_id(a, "a2", "a")
    await a.trash(second, "bad")
    await c.abandon(other)
    third = await claim_id(a, "b1", "a")
    await a.post("f", flow_id="b2", queue="tenants", partition="bolt")
    assert await ids(c, queues=["tenants"]) == []
    # a dead owner's slot goes with its session, and a waiter wakes for it
    await board_service.close(a)
    await wait_until_claimable(c, "b1", "tenants")
    assert await ids(c, queues=["tenants"]) == ["b1"]  # first posted first, one at a time
    again = await c.claim(await c.get(third.job.job_id), "c")  # its claim went, not its job
    assert again.job.claims == 3
    with pytest.raises(PartitionLimitReached):
        await claim_id(c, "b2", "c")
    await c.abandon(unlimited)


async def test_two_per_partition_and_a_delayed_job_counts_in_its_partition(
    boards: tuple[JobBoard, JobBoard],
) -> None:
    a, b = boards
    await a.declare_queue("t", partition_limit=2, concurrency=10)
    due = time.time() + 0.4
    await a.post("f", flow_id="late", queue="t", partition="p", not_before=due)
    for i in range(4):
        await a.post("f", flow_id=f"p{i}", queue="t", partition="p")
        await a.post("f", flow_id=f"q{i}", queue="t", partition="q")
    assert await ids(b, queues=["t"]) == ["p0", "q0", "p1", "q1"]
    assert await ids(b, queues=["t"], limit=3) == ["p0", "q0", "p1"]
    first = await claim_id(b, "p0")
    assert await ids(b, queues=["t"]) == ["q0", "p1", "q1"]
    second = await claim_id(a, "p2")  # not in claim order, but the partition has room
    assert {first.partition_slot, second.partition_slot} == {0, 1}
    assert await ids(b, queues=["t"]) == ["q0", "q1"]
    with pytest.raises(PartitionLimitReached) as info:
        await claim_id(b, "p1")
    assert info.value.limit == 2
    await a.consume(second)
    await wait_until_claimable(b, "late", "t")  # due now: first of its priority
    assert await ids(b, queues=["t"]) == ["late", "q0", "q1"]
    late = await claim_id(b, "late")
    assert (late.job.partition, late.partition_slot) == ("p", second.partition_slot)
    assert await ids(a, queues=["t"]) == ["q0", "q1"]
    await b.consume(first)
    await b.consume(late)
    assert await ids(a, queues=["t"]) == ["q0", "p1", "q1", "p3"]


async def test_a_flooding_partition_holds_up_only_its_own_jobs(
    board_service: BoardService,
) -> None:
    a = await board_service.board(shard_size=8)
    await a.declare_queue("t", partition_limit=1)
    for i in range(30):  # several shards of one tenant's jobs
        await a.post("f", flow_id=f"big{i:02d}", queue="t", partition="big")
    await a.post("f", flow_id="small0", queue="t", partition="small")
    await a.post("f", flow_id="small1", queue="t", partition="small")
    await a.post("f", flow_id="none0", queue="t")
    held = await claim_id(a, "big00")
    b = await board_service.board(shard_size=8)
    assert await ids(b, queues=["t"], limit=2) == ["small0", "none0"]
    assert await ids(b, queues=["t"]) == ["small0", "none0"]
    await a.consume(held)
    assert await ids(b, queues=["t"], limit=2) == ["big01", "small0"]


async def test_partition_keys_and_limits_are_checked(boards: tuple[JobBoard, JobBoard]) -> None:
    a, _ = boards
    for bad in ("", "x" * (MAX_PARTITION + 1), 7, b"bytes"):
        with pytest.raises(ConfigurationError, match="partition key"):
            await a.post("f", partition=bad)  # type: ignore[arg-type]
    assert (await a.post("f", flow_id="long", partition="x" * MAX_PARTITION)).partition
    for limit in (0, -1, 1.5, True):
        with pytest.raises(ConfigurationError, match="partition limit"):
            await a.declare_queue("t", partition_limit=limit)  # type: ignore[arg-type]
    assert [j.flow_id for j in await a.jobs()] == ["long"]


# -- rate limits ------------------------------------------------------------------------------


async def test_a_rate_limit_spaces_the_starts_and_a_waiter_wakes_when_one_comes_back(
    boards: tuple[JobBoard, JobBoard],
) -> None:
    a, b = boards
    period = 0.5
    assert await a.declare_queue("emails", rate_limit=(2, period)) == QueueConfig(
        "emails", rate_limit=(2, period)
    )
    assert await b.queue("emails") == QueueConfig("emails", rate_limit=(2, 0.5))
    for i in range(6):
        await a.post("mail", flow_id=f"m{i}", queue="emails")
    await a.post("other", flow_id="d0")
    assert await ids(b, queues=["emails"]) == ["m0", "m1"]  # as many as it has starts left
    assert await ids(b) == ["m0", "m1", "d0"]
    started: list[tuple[float, float]] = []  # (before the claim, after it)
    claims: list[tuple[JobBoard, Claim]] = []

    async def claim(flow_id: str, board: JobBoard) -> None:
        before = time.time()
        claims.append((board, await claim_id(board, flow_id)))
        started.append((before, time.time()))

    await claim("m0", a)
    await claim("m1", b)
    with pytest.raises(RateLimited) as info:
        await claim_id(a, "m2")
    assert info.value.queue == "emails"
    assert 0 < info.value.retry_after <= period
    assert await ids(b, queues=["emails"]) == []  # no start left: the queue is left out
    assert await ids(b) == ["d0"]  # the other queues are not
    wakeups = await wait_until_claimable(b, "m2", "emails")
    assert wakeups <= 3  # woken when a start came back (or by a stray watch), never polled
    assert time.time() >= started[0][0] + period
    await claim("m2", b)
    await wait_until_claimable(a, "m3", "emails")  # m1's start may come back a little later
    await claim("m3", a)
    with pytest.raises(RateLimited):
        await claim_id(b, "m4")
    await wait_until_claimable(a, "m4", "emails")
    await claim("m4", a)
    # any window of the period holds at most 2 starts: the k-th and (k+2)-th are a period apart
    for (before, _), (_, after) in zip(started, started[2:], strict=False):
        assert after - before >= period
    for board, held in claims:
        await board.consume(held)


async def test_rate_limits_are_checked_and_shown_to_every_client(
    boards: tuple[JobBoard, JobBoard],
) -> None:
    a, b = boards
    bad: list[object] = [
        (0, 1.0),
        (MAX_RATE_COUNT + 1, 1.0),
        (1, 0),
        (1, -1.0),
        (1, math.inf),
        (1, math.nan),
        (True, 1.0),
        (1.5, 1.0),
        (1, "1"),
        (1,),
        "10/1",
        10,
    ]
    for rate in bad:
        with pytest.raises(ConfigurationError, match="rate limit") as info:
            await a.declare_queue("r", rate_limit=rate)  # type: ignore[arg-type]
        assert "(count, period)" in str(info.value.hint)
    await a.declare_queue("r", concurrency=3, partition_limit=2, rate_limit=(10, 1))
    want = QueueConfig("r", 3, 2, (10, 1.0))
    assert await b.queue("r") == want
    assert want in await b.queues()
    await b.declare_queue("r", rate_limit=(5, 2.5))  # set again: the others' limits go
    assert await a.queue("r") == QueueConfig("r", rate_limit=(5, 2.5))
    await b.declare_queue("r")
    assert await a.queue("r") == QueueConfig("r")


# -- under contention -------------------------------------------------------------------------


async def race(boards: list[JobBoard], queue: str) -> tuple[list[Claim], Counter[str]]:
    """Every board claims every job of ``queue`` at once; the claims won, the refusals."""
    jobs = [j for j in await boards[0].jobs(queue=queue)]
    won: list[Claim] = []
    refused: Counter[str] = Counter()

    async def claim(board: JobBoard, job: Job, owner: str) -> None:
        try:
            won.append(await board.claim(job, owner))
        except (
            QueueLimitReached,
            PartitionLimitReached,
            RateLimited,
            JobAlreadyClaimed,
        ) as exc:
            refused[type(exc).__name__] += 1

    async with anyio.create_task_group() as tg:
        for i, board in enumerate(boards):
            for job in jobs[i:] + jobs[:i]:  # each starts elsewhere
                tg.start_soon(claim, board, job, f"b{i}")
    return won, refused


async def test_concurrent_claims_never_exceed_a_partition_or_global_limit(
    board_service: BoardService,
) -> None:
    boards = [await board_service.board() for _ in range(4)]
    await boards[0].declare_queue("t", concurrency=5, partition_limit=2)
    for p in "abc":
        for i in range(4):
            await boards[0].post("f", flow_id=f"{p}{i}", queue="t", partition=p)
    won, refused = await race(boards, "t")
    per_partition = Counter(c.job.partition for c in won)
    assert len(won) == 5, (won, refused)
    assert max(per_partition.values()) == 2
    assert len({c.job.job_id for c in won}) == 5
    assert set(refused) <= {"JobAlreadyClaimed", "PartitionLimitReached", "QueueLimitReached"}
    for c in won:
        await boards[int(c.owner[1:])].consume(c)
    won, _ = await race(boards, "t")  # the slots all came back
    assert len(won) == 5
    assert max(Counter(c.job.partition for c in won).values()) == 2


async def test_concurrent_claims_never_exceed_a_rate_limit(board_service: BoardService) -> None:
    boards = [await board_service.board() for _ in range(4)]
    await boards[0].declare_queue("r", rate_limit=(5, 60.0))  # no start comes back meanwhile
    for i in range(12):
        await boards[0].post("f", flow_id=f"r{i}", queue="r")
    for board in boards[1:]:
        assert len(await board.claimable(queues=["r"])) == 5
    won, refused = await race(boards, "r")
    assert len(won) == 5, (won, refused)
    assert refused["RateLimited"] > 0
    assert set(refused) <= {"JobAlreadyClaimed", "RateLimited"}
    for c in won:
        await boards[int(c.owner[1:])].consume(c)
    assert await boards[0].claimable(queues=["r"]) == []  # releases give no start back
    won, _ = await race(boards, "r")
    assert won == []


# -- headers ----------------------------------------------------------------------------------


async def test_headers_travel_with_the_job_and_are_not_what_it_runs(
    boards: tuple[JobBoard, JobBoard],
) -> None:
    a, b = boards
    headers = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    job = await a.post("f", {"n": 1}, flow_id="h1", headers={**headers, "baggage": "k=v"})
    want = {**headers, "baggage": "k=v"}
    assert dict(job.headers) == want
    assert dict((await b.get(job.job_id)).headers) == want
    assert [dict(j.headers) for j in await b.jobs()] == [want]
    assert [dict(j.headers) for j in await b.claimable()] == [want]
    again = await b.post("f", {"n": 1}, flow_id="h1", headers={"traceparent": "other"})
    assert (again.deduplicated, dict(again.headers)) == (True, want)  # the job as posted
    claim = await b.claim(await b.get(job.job_id), "b")
    assert dict(claim.job.headers) == want
    await b.consume(claim, outcome="SUCCESS")
    ended = await a.post("f", {"n": 1}, flow_id="h1")
    assert (ended.state, dict(ended.headers)) == ("consumed", want)
    plain = await a.post("f", flow_id="h2")
    assert dict(plain.headers) == {}
    await a.trash(await a.claim(plain, "a"), "nope")
    traced = await a.post("f", flow_id="h3", headers={"traceparent": "x"})
    await a.trash(await a.claim(traced, "a"), "nope")
    assert [dict(t.job.headers) for t in await b.trashed()] == [{}, {"traceparent": "x"}]


async def test_headers_are_bounded(boards: tuple[JobBoard, JobBoard]) -> None:
    a, _ = boards
    too_many = {f"h{i}": "v" for i in range(MAX_HEADERS + 1)}
    bad: list[object] = [
        too_many,
        {"big": "x" * 4096},
        {"": "v"},
        {"n": 1},
        {1: "v"},
        [("k", "v")],
        "k=v",
    ]
    for headers in bad:
        with pytest.raises(ConfigurationError, match="header") as info:
            await a.post("f", headers=headers)  # type: ignore[arg-type]
        assert "at most" in str(info.value.hint)
    most = {f"h{i}": "v" * 200 for i in range(MAX_HEADERS)}
    assert dict((await a.post("f", flow_id="ok", headers=most)).headers) == most
    assert [j.flow_id for j in await a.jobs()] == ["ok"]


# -- conductors -------------------------------------------------------------------------------


async def test_a_conductor_runs_other_partitions_while_one_is_full(
    board_service: BoardService,
) -> None:
    calls = Calls()
    board, producer = await board_service.board(), await board_service.board()
    await producer.declare_queue("tenants", partition_limit=1)
    posts = [("a-0", "a"), ("a-1", "a"), ("a-2", "a"), ("b-0", "b"), ("b-1", "b"), ("c-0", "c")]
    for fid, partition in posts:  # the flow counts per "queue": here, per partition
        inputs = {"fid": fid, "queue": partition}
        await producer.post("call", inputs, flow_id=fid, queue="tenants", partition=partition)
    async with (
        fc.Engine() as engine,
        Conductor(board, engine, calls.registry(), queues=["tenants"], rescan_interval=60.0),
    ):
        await calls.until(lambda: set(calls.started) == {"a-0", "b-0", "c-0"})
        await anyio.sleep(0.3)  # would anything more start?
        assert set(calls.started) == {"a-0", "b-0", "c-0"}
        calls.release.set()
        await calls.until(lambda: len(calls.started) == 6)
        with anyio.fail_after(10):
            while await producer.jobs(queue="tenants"):  # noqa: ASYNC110
                await anyio.sleep(0.02)
    assert max(calls.peak_queue.values()) == 1


async def test_a_conductor_waits_for_a_rate_limited_queue_by_a_timer(
    board_service: BoardService,
) -> None:
    calls = Calls()
    calls.release.set()
    board, producer = await board_service.board(), await board_service.board()
    await producer.declare_queue("emails", rate_limit=(2, 0.4))
    for i in range(5):
        inputs = {"fid": f"m{i}", "queue": "emails"}
        await producer.post("call", inputs, flow_id=f"m{i}", queue="emails")
    first = time.time()
    async with (
        fc.Engine() as engine,
        Conductor(board, engine, calls.registry(), queues=["emails"], rescan_interval=60.0),
    ):
        await calls.until(lambda: len(calls.started) == 5)  # never the 60 s rescan
    assert calls.started["m4"] >= first + 2 * 0.4  # three periods' starts: two waits


# -- ZooKeeper's own ----------------------------------------------------------------------------


@pytest.fixture
async def session(zk_hosts: str, zk_namespace: str) -> AsyncIterator[ZooKeeperSession]:
    async with ZooKeeperSession(zk_hosts, namespace=zk_namespace, session_timeout=4.0) as s:
        yield s


@pytest.mark.zookeeper
async def test_zk_three_writes_a_flow_under_every_limit_and_no_read_after_a_post(
    session: ZooKeeperSession,
) -> None:
    board = ZooKeeperJobBoard(session)
    await board.declare_queue("t", concurrency=4, partition_limit=2, rate_limit=(100, 1.0))
    assert len(await session.children("/board/rates/t")) == 100
    await board.post("f", flow_id="warm", queue="t", partition="p")  # shards known
    reads: Counter[str] = Counter()
    originals = {name: getattr(session, name) for name in ("get", "exists", "children")}

    def counting(name: str) -> Any:
        async def read(path: str, **kwargs: Any) -> Any:
            reads[name] += 1
            return await originals[name](path, **kwargs)

        return read

    for name in originals:
        setattr(session, name, counting(name))
    before = Counter(board.writes)
    await board.post("f", flow_id="j0", queue="t", partition="p", headers={"h": "v"})
    assert reads == Counter()  # nothing read back after the transaction
    for job in await board.claimable(queues=["t"]):
        claim = await board.claim(job, "me")
        assert (claim.slot is not None, claim.partition_slot is not None) == (True, True)
        assert await board.holds(claim)  # its token is the claim node's czxid
        await board.consume(claim, outcome="SUCCESS")
    for name, original in originals.items():
        setattr(session, name, original)
    assert Counter(board.writes) - before == Counter(post=1, claim=2, consume=2)
    assert await session.children("/board/pslots/t") == []
    assert await session.children("/board/slots/t") == []


@pytest.mark.zookeeper
async def test_zk_a_queue_node_without_the_new_fields_has_no_such_limits(
    session: ZooKeeperSession,
) -> None:
    board = ZooKeeperJobBoard(session)
    await board.declare_queue("old", concurrency=2, rate_limit=(3, 1.0))
    await session.set("/board/queues/old", b'{"concurrency": 2}', -1)  # as an older client
    assert await ZooKeeperJobBoard(session).queue("old") == QueueConfig("old", 2)
    await board.declare_queue("old", concurrency=2, partition_limit=3)
    data, _ = await session.get("/board/queues/old")
    assert json.loads(data) == {"concurrency": 2, "partition_limit": 3, "rate_limit": None}
    await board.declare_queue("old", rate_limit=(3, 0.5))
    data, _ = await session.get("/board/queues/old")
    assert json.loads(data)["rate_limit"] == [3, 0.5]


@pytest.mark.zookeeper
async def test_zk_a_scan_passes_a_full_partition_by_its_entries_names(
    session: ZooKeeperSession,
) -> None:
    board = ZooKeeperJobBoard(session, shard_size=8)
    await board.declare_queue("t", partition_limit=1)
    for i in range(20):
        await board.post("f", flow_id=f"big{i:02d}", queue="t", partition="big")
    await board.post("f", flow_id="small0", queue="t", partition="small")
    await claim_id(board, "big00")
    fresh = ZooKeeperJobBoard(session)
    read: list[str] = []
    get = session.get

    async def counting_get(path: str, *, watch: bool = False) -> tuple[bytes, Any]:
        read.append(path)
        return await get(path, watch=watch)

    session.get = counting_get  # type: ignore[method-assign]
    assert await ids(fresh, queues=["t"]) == ["small0"]
    session.get = get  # type: ignore[method-assign]
    records = [p for p in read if "/keys/" in p]
    assert len(records) == 1, read  # small0's: none of the big ones' records was read
