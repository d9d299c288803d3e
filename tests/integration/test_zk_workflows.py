"""Workflows posted to a ZooKeeper job board and run by conductors, against a real server.

Two conductors, each with its own session, board and engine, share one journal (a SQLite
file, or a PostgreSQL schema) as separate worker processes would. Outcomes are read back from
the journal: results, compensations (a failed step's workflow undoes its earlier steps, newest
first), a failed compensation, one owner per flow. A conductor whose connection is
black-holed (FaultProxy) suspends its workflow between steps, loses its session, and the other
conductor resumes the workflow from the journal. Sessions are 2 s (tickTime 1000).
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

import flowcoord as fc
from flowcoord._codec import Codec
from flowcoord._coord._conductor import Conductor
from flowcoord._coord._zk_board import ZooKeeperJobBoard
from flowcoord._coord._zk_session import ZooKeeperSession
from flowcoord._engine._wf_journal import WorkflowJournal
from flowcoord._journal._contract import JournalBackend
from flowcoord._journal._events import Entry, EventKind
from flowcoord.coordination import SessionState
from flowcoord.errors import StepFailed
from flowcoord.testing import FaultProxy, ZooKeeperServer

pytestmark = [pytest.mark.anyio, pytest.mark.zookeeper]

T = 2.0  # session timeout (s)
K = EventKind


@asynccontextmanager
async def board(hosts: str, namespace: str) -> AsyncIterator[ZooKeeperJobBoard]:
    async with ZooKeeperSession(hosts, namespace=namespace, session_timeout=T) as session:
        yield ZooKeeperJobBoard(session)


async def until(pred: Callable[[], bool], within: float = 10) -> None:
    with anyio.fail_after(within):
        while not pred():  # noqa: ASYNC110 - polling a plain predicate, bounded
            await anyio.sleep(0.01)


def fold(fid: str, entries: list[Entry]) -> WorkflowJournal:
    return WorkflowJournal.fold(fid, entries, Codec())


# -- the shop: workflows and what their steps did ---------------------------------------------


class Declined(Exception):
    pass


class Unavailable(Exception):
    pass


PRICES = {"book": 12, "lamp": 30, "desk": 150, "cursed": 5}


class Shop:
    """A registry of workflows whose steps record, in call order, what they did."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.registry = fc.FlowRegistry()

        async def reserve(oid: str, sku: str) -> str:
            self.calls.append(("reserve", oid, sku))
            await anyio.sleep(0.05)  # long enough for both conductors to take jobs
            return f"{sku}@{oid}"

        async def release(oid: str, sku: str, result: str | None) -> None:
            self.calls.append(("release", oid, sku))
            if sku == "cursed":
                raise RuntimeError(f"{sku} cannot be released")

        async def charge(oid: str, amount: int, budget: int) -> str:
            self.calls.append(("charge", oid))
            if amount > budget:
                raise Declined(f"{oid}: {amount} > {budget}")
            return f"paid-{oid}-{amount}"

        async def ship(oid: str, carrier: str, express_ok: bool) -> str:
            self.calls.append(("ship", oid, carrier))
            if carrier == "express" and not express_ok:
                raise Unavailable("no express today")
            return f"{carrier}-{oid}"

        @fc.workflow
        async def order(
            ctx: fc.Context, oid: str, items: list[str], budget: int, express_ok: bool = True
        ) -> dict[str, Any]:
            reserved = await ctx.gather(
                *(ctx.step(reserve, oid, sku, revert=release) for sku in items)
            )
            receipt = await ctx.step(charge, oid, sum(PRICES[s] for s in items), budget)
            try:  # a failure handled in code: no compensation
                parcel = await ctx.step(ship, oid, "express", express_ok)
            except StepFailed as exc:
                if not exc.failure.matches(Unavailable):
                    raise
                parcel = await ctx.step(ship, oid, "ground", express_ok)
            return {"reserved": reserved, "receipt": receipt, "parcel": parcel}

        self.order = order
        self.registry.register("order", order)

        self.gate = anyio.Event()  # `tick` at position `hold` waits for it
        self.reached = anyio.Event()
        self.hold = 0
        self.ticks: Counter[int] = Counter()

        async def tick(i: int) -> int:
            self.ticks[i] += 1
            if i == self.hold:
                self.reached.set()
                await self.gate.wait()
            return i

        @fc.workflow
        async def ticks(ctx: fc.Context, n: int) -> int:
            total = 0
            for i in range(1, n + 1):
                total += await ctx.step(tick, i)
            return total

        self.registry.register("ticks", ticks)


# -- journals -------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def journal_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], JournalBackend]:
    """A new journal object on one shared journal per call (one per engine, as if each
    conductor were its own process)."""
    if request.param == "sqlite":
        path = tmp_path / "journal.sqlite"
        return lambda: fc.SQLiteJournal(path)
    dsn: str = request.getfixturevalue("pg_dsn")
    schema = f"wf_{uuid.uuid4().hex[:12]}"
    return lambda: fc.PostgresJournal(dsn, schema=schema, max_size=4)


# -- two conductors, several workflows --------------------------------------------------------

ORDERS: dict[str, dict[str, Any]] = {
    "o0": {"items": ["book"], "budget": 100},
    "o1": {"items": ["book", "lamp"], "budget": 100, "express_ok": False},
    "o2": {"items": ["lamp", "lamp", "book"], "budget": 100},
    "o3": {"items": ["desk"], "budget": 200, "express_ok": False},
    "o4": {"items": ["book", "book"], "budget": 100},
    "o5": {"items": ["desk", "lamp"], "budget": 100},  # declined: reservations released
    "o6": {"items": ["desk", "book", "lamp"], "budget": 50},  # declined
    "o7": {"items": ["cursed", "desk"], "budget": 10},  # declined, a release fails
}
DECLINED = {"o5", "o6", "o7"}


async def test_two_conductors_run_workflows_and_compensate_those_that_fail(
    zk_hosts: str, zk_namespace: str, journal_factory: Callable[[], JournalBackend]
) -> None:
    shop = Shop()
    async with AsyncExitStack() as stack:
        conductors: list[Conductor] = []
        boards: list[ZooKeeperJobBoard] = []
        for name in ("one", "two"):
            b = await stack.enter_async_context(board(zk_hosts, zk_namespace))
            engine = await stack.enter_async_context(fc.Engine(journal_factory()))
            c = Conductor(b, engine, shop.registry, name=name, capacity=2)
            conductors.append(await stack.enter_async_context(c))
            boards.append(b)
        with anyio.fail_after(10):
            while len(await boards[0].members()) < 2:  # noqa: ASYNC110 - bounded
                await anyio.sleep(0.02)
        for oid, inputs in ORDERS.items():
            await boards[0].post("order", {"oid": oid, **inputs}, flow_id=oid)
        for c in conductors:
            with anyio.fail_after(15):
                await c.wait_idle()
        assert await boards[1].jobs() == []
        assert await boards[1].trashed() == []
        async with journal_factory() as journal:
            entries = {oid: await journal.read(oid) for oid in ORDERS}

    # every job claimed once and consumed once, by one of the two, both of which ran some
    # (a claim write can lose a race with the other conductor's: only stats count claims)
    writes = sum((Counter(b.writes) for b in boards), Counter())
    assert (writes["post"], writes["consume"]) == (8, 8)
    assert sum(c.stats.claimed for c in conductors) == 8
    assert [c.stats.consumed > 0 for c in conductors] == [True, True]
    assert sum(c.stats.consumed for c in conductors) == 8
    assert sum(c.stats.failed for c in conductors) == 3
    assert sum(c.stats.lost + c.stats.abandoned for c in conductors) == 0

    for oid, inputs in ORDERS.items():
        es = entries[oid]
        j = fold(oid, es)
        items = inputs["items"]
        assert len({e.token for e in es}) == 1, oid  # one owner, its claim's token
        assert es[0].token > 0, oid
        reserve_keys = [f"{pos}:reserve" for pos in range(1, len(items) + 1)]
        if oid not in DECLINED:
            assert j.state is fc.FlowState.SUCCESS, oid
            total = sum(PRICES[s] for s in items)
            carrier = "express" if inputs.get("express_ok", True) else "ground"
            assert j.result == {
                "reserved": [f"{sku}@{oid}" for sku in items],
                "receipt": f"paid-{oid}-{total}",
                "parcel": f"{carrier}-{oid}",
            }
            assert not [e for e in es if e.kind in (K.REVERT_STARTED, K.REVERT_DONE)], oid
            continue
        # declined: charge failed, the gathered reservations were compensated (at once)
        assert j.failure is not None
        assert j.failure.cause is not None
        assert j.failure.cause.matches(Declined), oid
        charge = len(items) + 1
        assert fc.journal.replay(oid, es).failures[f"{charge}:charge"].matches(Declined)
        assert j.steps[charge].failure is not None
        assert charge + 1 not in j.steps, oid  # nothing ran after the failed step
        started = [str(e.task) for e in es if e.kind is K.REVERT_STARTED]
        assert sorted(started) == reserve_keys, oid
        done = {e.task for e in es if e.kind is K.REVERT_DONE}
        bad = {e.task for e in es if e.kind is K.REVERT_FAILED}
        if oid == "o7":  # the cursed item's release failed: FAILED, the rest still released
            assert j.state is fc.FlowState.FAILED
            assert (done, bad) == ({"2:reserve"}, {"1:reserve"})
        else:
            assert j.state is fc.FlowState.REVERTED, oid
            assert (done, bad) == (set(reserve_keys), set()), oid

    # what the steps did, per order: once each, as the journal says
    per_order = Counter(shop.calls)
    for oid, inputs in ORDERS.items():
        for sku in set(inputs["items"]):
            n = inputs["items"].count(sku)
            assert per_order["reserve", oid, sku] == n
            assert per_order["release", oid, sku] == (n if oid in DECLINED else 0)
        assert per_order["charge", oid] == 1
        shipped = per_order["ship", oid, "express"], per_order["ship", oid, "ground"]
        if oid in DECLINED:
            assert shipped == (0, 0)
        else:
            assert shipped == (1, 0 if inputs.get("express_ok", True) else 1)


# -- a session lost mid-workflow --------------------------------------------------------------


async def test_a_suspended_workflow_starts_no_step_and_the_other_conductor_resumes_it(
    zk_server: ZooKeeperServer, zk_namespace: str, tmp_path: Path
) -> None:
    """One's connection is black-holed while step 2 runs: SUSPENDED, so step 2 finishes (and
    is journaled) but step 3 does not start; LOST, so the workflow is aborted, writing
    nothing more; two claims the job once the server expired one's session, and resumes after
    step 2: every step ran exactly once."""
    shop, fid, n = Shop(), "ticks-1", 5
    shop.hold = 2
    path = tmp_path / "journal.sqlite"
    states: list[SessionState] = []
    async with (
        FaultProxy("127.0.0.1", zk_server.port()) as proxy,
        board(f"127.0.0.1:{proxy.port}", zk_namespace) as b1,
    ):
        b1.session.add_listener(lambda ch: states.append(ch.state))
        job = await b1.post("ticks", {"n": n}, flow_id=fid)
        async with (
            fc.Engine(fc.SQLiteJournal(path)) as e1,
            Conductor(b1, e1, shop.registry, name="one") as c1,
        ):
            with anyio.fail_after(5):
                await shop.reached.wait()  # one is inside step 2
            proxy.pause()
            await until(lambda: SessionState.SUSPENDED in states, 2 * T)
            shop.gate.set()  # step 2 finishes while suspended
            async with fc.SQLiteJournal(path) as reader:

                async def step_2_journaled() -> bool:
                    es = await reader.read(fid)
                    return any(e.kind is K.TASK_SUCCEEDED and e.task == "2:tick" for e in es)

                with anyio.fail_after(T):
                    while not await step_2_journaled():  # noqa: ASYNC110 - the journal file
                        await anyio.sleep(0.01)
                await until(lambda: SessionState.LOST in states, 2 * T)
                await until(lambda: not c1.running)
                before = await reader.read(fid)
            assert c1.stats.lost == 1
            assert shop.ticks == Counter({1: 1, 2: 1})  # step 3 never started on one
            async with (
                board(zk_server.hosts, zk_namespace) as b2,
                fc.Engine(fc.SQLiteJournal(path)) as e2,
                Conductor(b2, e2, shop.registry, name="two") as c2,
            ):
                with anyio.fail_after(15):
                    await c2.wait_idle()  # claims once the server expired one's session
                assert c2.stats.consumed == 1
                assert job.job_id not in {j.job_id for j in await b2.jobs()}
            proxy.resume()
    async with fc.SQLiteJournal(path) as reader:
        es = await reader.read(fid)
    j = fold(fid, es)
    assert j.state is fc.FlowState.SUCCESS
    assert j.result == sum(range(1, n + 1))
    assert shop.ticks == Counter(dict.fromkeys(range(1, n + 1), 1))  # every step ran once
    old, new = sorted({e.token for e in es})
    assert [e.token for e in es[: len(before)]] == [old] * len(before)
    assert [e.token for e in es[len(before) :]] == [new] * (len(es) - len(before))
    assert {e.task for e in es if e.token == new and e.kind is K.TASK_SUCCEEDED} == {
        f"{i}:tick" for i in range(3, n + 1)
    }
    # one journaled the suspension, and two ran it again from there
    assert [e.state for e in before if e.kind is K.FLOW_STATE][-1] == "SUSPENDED"


# -- a long sleep handed back to the board -----------------------------------------------------


async def test_a_sleeping_workflow_is_handed_back_and_the_other_conductor_wakes_it(
    zk_hosts: str, zk_namespace: str, journal_factory: Callable[[], JournalBackend]
) -> None:
    """Conductor "one" stops a workflow that sleeps 3 s (hand-back after 1 s) and releases
    its job until it wakes; "one" then leaves, "two" (hand-back off) claims the job when it
    falls due, with a newer token, and finishes the workflow: each step ran once, the
    wake-up time was journaled once, and nothing counted the hand-back as a failed claim."""
    calls: list[tuple[str, float]] = []

    async def note(what: str) -> str:
        calls.append((what, time.time()))
        return what

    @fc.workflow(name="nap")
    async def nap(ctx: fc.Context) -> list[str]:
        first = await ctx.step(note, "before")
        await ctx.sleep(3.0)
        return [first, await ctx.step(note, "after")]

    registry = fc.FlowRegistry()
    registry.register("nap", nap)
    async with AsyncExitStack() as stack:
        b1 = await stack.enter_async_context(board(zk_hosts, zk_namespace))
        b2 = await stack.enter_async_context(board(zk_hosts, zk_namespace))
        job = await b1.post("nap", flow_id="nap-1", priority=1)
        async with (
            fc.Engine(journal_factory()) as e1,
            Conductor(b1, e1, registry, name="one", hand_back_after=1.0) as one,
        ):
            await until(lambda: one.stats.handed_back == 1)
            assert one.running == {}
        seen = await b2.get(job.job_id)
        assert (seen.owner, seen.claims, seen.priority) == (None, 0, 1)
        assert await b2.claimable() == []  # not due yet: in its delayed window
        async with journal_factory() as journal:
            entries = await journal.read("nap-1")
        (slept,) = [e for e in entries if e.kind is K.TASK_SUCCEEDED and e.task == "2:sleep"]
        wake = json.loads(slept.data)["result"]
        assert seen.not_before == pytest.approx(wake)
        assert fold("nap-1", entries).state is fc.FlowState.SUSPENDED
        async with (
            fc.Engine(journal_factory()) as e2,
            Conductor(b2, e2, registry, name="two", hand_back_after=None) as two,
        ):
            with anyio.fail_after(15):
                await until(lambda: two.stats.consumed == 1, within=15)
        assert (two.stats.claimed, two.stats.quarantined, two.stats.failed) == (1, 0, 0)
        assert await b2.jobs() == []
        async with journal_factory() as journal:
            entries = await journal.read("nap-1")
    j = fold("nap-1", entries)
    assert j.state is fc.FlowState.SUCCESS
    assert j.result == ["before", "after"]
    assert [what for what, _ in calls] == ["before", "after"]
    assert calls[1][1] >= wake  # it slept its whole sleep
    assert len([e for e in entries if e.task == "2:sleep"]) == 1
    tokens = [e.token for e in entries]
    assert tokens == sorted(tokens)
    assert len(set(tokens)) == 2  # one owner, then the other, with a newer token
    assert one.stats.released == 1
    assert one.stats.abandoned == 0
