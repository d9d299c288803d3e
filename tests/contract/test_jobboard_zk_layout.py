"""What only the ZooKeeper board's layout shows: an older layout is refused, never misread;
folders stay bounded however long a queue grows; a scan reads only as far as it needs; a
flow costs three writes with or without a global limit."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator

import anyio
import pytest

from flowcoord._coord._zk_board import ZooKeeperJobBoard
from flowcoord._coord._zk_session import ZooKeeperSession
from flowcoord.errors import BoardLayoutError

pytestmark = [pytest.mark.anyio, pytest.mark.zookeeper]


@pytest.fixture
async def session(zk_hosts: str, zk_namespace: str) -> AsyncIterator[ZooKeeperSession]:
    async with ZooKeeperSession(zk_hosts, namespace=zk_namespace, session_timeout=4.0) as s:
        yield s


async def test_a_board_of_the_older_layout_is_refused(session: ZooKeeperSession) -> None:
    for folder in ("jobs", "locks", "members", "trash"):  # what flowcoord's first layout made
        await session.ensure_path(f"/board/{folder}")
    await session.create("/board/jobs/job-", b'{"flow": "f", "flow_id": "x"}', sequential=True)
    board = ZooKeeperJobBoard(session)
    for call in (board.jobs, board.claimable, lambda: board.post("f")):
        with pytest.raises(BoardLayoutError) as info:
            await call()
        assert "older flowcoord" in str(info.value)
        assert "1 jobs" in str(info.value)
        assert info.value.path == "/board"
    assert await session.children("/board") == ["jobs", "locks", "members", "trash"]  # untouched


async def test_a_board_of_another_layout_number_is_refused(session: ZooKeeperSession) -> None:
    await session.ensure_path("/board")
    await session.create("/board/layout", b'{"layout": 3}')
    with pytest.raises(BoardLayoutError, match="layout 2 only"):
        await ZooKeeperJobBoard(session).jobs()


async def test_shards_stay_bounded_and_keep_the_order(session: ZooKeeperSession) -> None:
    board = ZooKeeperJobBoard(session, shard_size=8)
    for i in range(40):
        await board.post("f", {"i": i}, flow_id=f"f{i:02d}")
    bucket = "/board/queues/default/p0"
    shards = await session.children(bucket)
    assert len(shards) >= 5
    sizes = [len(await session.children(f"{bucket}/{s}")) for s in shards]
    assert max(sizes) <= 8
    assert sum(sizes) == 40
    listed: list[tuple[str, int]] = []
    children = session.children

    async def counting_children(path: str, *, watch: bool = False) -> list[str]:
        names = await children(path, watch=watch)
        listed.append((path, len(names)))
        return names

    session.children = counting_children  # type: ignore[method-assign]
    head = await board.claimable(limit=3)
    assert [j.flow_id for j in head] == ["f00", "f01", "f02"]
    # claims, the queues' folder, the queue, its bucket, the first shard: nothing further
    assert len(listed) <= 5, listed
    assert max(n for _, n in listed) <= 8
    session.children = children  # type: ignore[method-assign]
    done = []
    while batch := await board.claimable(limit=5):
        for job in batch:
            await board.consume(await board.claim(job, "me"))
            done.append(job.flow_id)
    assert done == [f"f{i:02d}" for i in range(40)]  # first posted, first claimed
    assert len(await session.children(bucket)) == 1  # empty shards went, but the last
    assert board.writes["cleanup"] >= 4


async def test_three_writes_a_flow_with_or_without_a_global_limit(
    session: ZooKeeperSession,
) -> None:
    board = ZooKeeperJobBoard(session)
    await board.declare_queue("api", concurrency=2)
    before = Counter(board.writes)
    for queue in ("default", "api"):
        for i in range(3):
            job = await board.post("f", flow_id=f"{queue}-{i}", queue=queue)
            claim = await board.claim(job, "me")
            assert (claim.slot is None) == (queue == "default")
            await board.consume(claim, outcome="SUCCESS")
    assert Counter(board.writes) - before == Counter(post=6, claim=6, consume=6)
    assert await session.children("/board/slots/api") == []


async def test_posts_in_flight_on_a_fresh_board_set_it_up_once(session: ZooKeeperSession) -> None:
    board = ZooKeeperJobBoard(session)

    async def post(i: int) -> None:
        await board.post("f", flow_id=f"first-{i}")

    async with anyio.create_task_group() as tg:
        for i in range(16):
            tg.start_soon(post, i)
    alone = ZooKeeperJobBoard(session, path="/other")
    await alone.post("f", flow_id="alone")
    # one setup each: 16 posts in flight did not each create the 256 key folders again
    assert board.writes["setup"] == alone.writes["setup"]
    assert board.writes["post"] == 16
    assert len(await board.jobs()) == 16
