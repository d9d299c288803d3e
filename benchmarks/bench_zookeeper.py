"""ZooKeeper job board: fail-over time after kill -9 vs the session timeout; writes per flow/task.

Starts its own standalone ZooKeeper server (tickTime 1000) on loopback.

- ``writes.per_flow`` / ``writes.per_task``: ZooKeeper writes counted by the *server* (its
  ``Zxid`` from ``srvr`` before and after; reads, pings and watches do not move it) while one
  conductor runs N one-task flows, then N flows of K tasks. Per flow = writes of the one-task
  run ÷ N; per task = the extra writes of the K-task run ÷ (N·(K-1)). The board's own counter
  (``ZooKeeperJobBoard.writes``) is reported beside it.
- ``failover.p50`` / ``failover.p95``: conductor processes (``tests.faults._zk_worker``) on a
  shared SQLite journal; each trial posts a flow, kill -9s the process that claimed it, and
  measures from the kill to the first journal entry written by the new owner (the entry's own
  timestamp). Baseline: the session timeout; the server expires a session between T and
  T + tickTime after its last ping, so that is the floor of any ZooKeeper fail-over.

- ``queue.*``: the job board's queues at scale. One namespace per queue size (default 1k and
  100k queued jobs; 1k and 10k with --quick), filled by one producer (64 posts in flight:
  ``queue.post_<n>``, jobs/s). Then rounds of claims, the sizes alternated round by round so
  that drift hits both alike: 4 claimers, each on its own session, scan for the first 4 free
  jobs (``claimable(limit=4)``), claim one (claimer ``i`` tries the ``i``-th first, then the
  next: the 4 seldom collide), consume it. ``queue.claim_<n>.p50/p99``: from the scan to the
  claim, ms; ``queue.claims_per_s_<n>``: claims (with their consumes) per second, the median
  round; ``queue.cost_ratio``: per-claim cost at the largest size ÷ at the smallest (target
  ≤ 1.5x). Each queue stays at its size (it was filled with the rounds' jobs on top).
  ``queue.max_listing_bytes``: the largest ``getChildren`` answer any claimer got (names and
  their length prefixes), vs the default ``jute.maxbuffer`` (1 MiB). ``queue.writes_per_job``
  and ``queue.writes_per_job_limited``: server-counted writes (zxid) per job over post, claim
  and consume of 300 jobs by one claimer, without and with a global limit (targets ≤ 3, ≤ 4).
  ``-o zk_queue_drain=1`` also drains the largest queue to empty with the 4 claimers
  (``queue.drain_<n>``, claims/s): every job posted, claimed and consumed.

- ``queue.peer_kazoo_*`` / ``queue.peer_taskflow_*``: the same figures for kazoo's
  ``LockingQueue`` and TaskFlow's ZooKeeper job board, each in ``_zk_board_peer.py`` in an
  interpreter of its own (``-o zk_peer_python=``, default this one; it must import kazoo, and
  taskflow for TaskFlow), filled after flowcoord's queues (64 posting threads on one client)
  with the size plus one round's jobs and topped up after each round (untimed: their cost
  grows with the queue, so every round starts at the same length), then driven a round at a
  time: flowcoord's rounds and the peers' alternate, so that drift hits all alike. Default
  sizes 1k and 10k (``-o zk_peer_sizes``; flowcoord is measured at them too); a claim budget
  per size (``-o zk_peer_budget``, 40 s, 16 with --quick, spread over the rounds) and a
  posting budget (``-o zk_peer_fill_budget``, 600 s) bound a peer that cannot keep up, and
  the row says when they cut it short. ``queue.vs_<peer>_claims_<n>`` /
  ``queue.vs_<peer>_post_<n>``: flowcoord's claims/s and posts/s ÷ the peer's; these rows
  are there even when the peer measured nothing, with "NOT MEASURED" and the reason (not
  installed, failed at that size, over budget).
  ``queue.peer_<peer>_max_listing_bytes``: both peers list the whole queue folder, so their
  largest answer grows with the queue; the note says at about what size it reaches 1 MiB.

Options: ``-o zk_session_timeout=2`` (seconds), ``-o zk_trials=20`` (5 with --quick),
``-o zk_queue_sizes=1000,100000``, ``-o zk_queue_rounds=8``, ``-o zk_queue_drain=0``,
``-o zk_peers=kazoo,taskflow`` (``none``: no peers), ``-o zk_peer_python=PATH``,
``-o zk_peer_sizes=1000,10000``, ``-o zk_peer_budget=40``, ``-o zk_peer_fill_budget=600``.
Standalone: ``python -m benchmarks.bench_zookeeper [--quick]``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
import anyio.abc
import anyio.to_thread

import flowcoord as fc
from flowcoord._coord._conductor import Conductor
from flowcoord._coord._zk_board import ZooKeeperJobBoard
from flowcoord._coord._zk_session import ZooKeeperSession
from flowcoord.coordination import JobSpec, post_jobs
from flowcoord.errors import JobAlreadyClaimed, JobNotFound
from flowcoord.testing import ZooKeeperNotInstalled, ZooKeeperServer
from flowcoord.testing._zookeeper import four_letter_word

from ._harness import Context, Result, Target
from ._zk_peers import _asks, _label, _Peer, _peer_names, _peer_results, _percentile

NAME = "zookeeper"

TARGET_WRITES_PER_FLOW = Target("<=", 3, on="value")
TARGET_WRITES_PER_TASK = Target("<=", 0, on="value")
TARGET_WRITES_LIMITED = Target("<=", 4, on="value")
TARGET_COST_RATIO = Target("<=", 1.5, on="value")
JUTE_MAXBUFFER = 1024 * 1024  # ZooKeeper's default bound on one response
HERE = Path(__file__).resolve().parent


def _zxid(server: ZooKeeperServer) -> int:
    for line in four_letter_word(server.port(), "srvr").splitlines():
        if line.startswith("Zxid:"):
            return int(line.partition(":")[2].strip(), 16)
    raise RuntimeError("no Zxid in the server's srvr answer")


async def _writes(ctx: Context, server: ZooKeeperServer, n: int, k: int) -> list[Result]:
    registry = fc.FlowRegistry()

    @fc.task
    async def noop() -> None:
        return None

    def flow(width: int) -> fc.Flow:
        return fc.Unordered(f"w{width}", *(fc.FunctionTask(noop.fn, f"t{i}") for i in range(width)))

    registry.register("one", lambda: flow(1))
    registry.register("wide", lambda: flow(k))
    namespace = f"/bench-{os.getpid()}-{time.monotonic_ns()}"
    async with (
        fc.coordination.ZooKeeperSession(
            server.hosts, namespace=namespace, session_timeout=4.0
        ) as zk,
        fc.Engine() as engine,
    ):
        board = ZooKeeperJobBoard(zk)
        async with Conductor(board, engine, registry) as conductor:
            with anyio.fail_after(10):
                while not board.writes["register"]:  # noqa: ASYNC110 - bounded start-up
                    await anyio.sleep(0.01)
            deltas, counted = [], []
            for name in ("one", "wide"):
                before, z0 = Counter(board.writes), await anyio.to_thread.run_sync(_zxid, server)
                for i in range(n):
                    await board.post(name, flow_id=f"{name}-{i}")
                with anyio.fail_after(60):
                    await conductor.wait_idle()
                deltas.append(await anyio.to_thread.run_sync(_zxid, server) - z0)
                counted.append(Counter(board.writes) - before)
    per_flow = deltas[0] / n
    per_task = (deltas[1] - deltas[0]) / (n * (k - 1))
    ctx.log(f"writes: {deltas} server, {counted} board")
    extra = {"server_writes": deltas, "board_writes": [dict(c) for c in counted], "n": n, "k": k}
    return [
        Result(
            "writes.per_flow",
            per_flow,
            "writes/flow",
            target=TARGET_WRITES_PER_FLOW,
            stat=f"server zxid delta over {n} one-task flows",
            note="ZooKeeper writes per flow (post + claim + consume), counted by the server",
            extra=extra,
        ),
        Result(
            "writes.per_task",
            per_task,
            "writes/task",
            target=TARGET_WRITES_PER_TASK,
            stat=f"extra writes of {n} flows of {k} tasks",
            extra=extra,
        ),
    ]


def _runs(fid: str) -> Callable[[list[list[str]]], bool]:
    return lambda events: any(e[:2] == ["task", fid] for e in events)


async def _failover(
    ctx: Context, server: ZooKeeperServer, trials: int, session_timeout: float
) -> list[float]:
    from tests.faults._zk_cluster import Cluster

    times: list[float] = []
    with tempfile.TemporaryDirectory(prefix="flowcoord-bench-zk-") as tmp:
        namespace = f"/bench-failover-{os.getpid()}"
        cluster = Cluster(Path(tmp), server.hosts, namespace, session_timeout)
        try:
            with cluster.dump_on_failure():
                live = [await cluster.start("w0"), await cluster.start("w1")]
                for trial in range(trials):
                    fid = f"fo-{trial}"
                    spec = JobSpec("chain", {"fid": fid, "pause": 0.3}, flow_id=fid)
                    await post_jobs(
                        [spec], zk_hosts=server.hosts, namespace=namespace, session_timeout=4
                    )
                    events = await cluster.wait_for(_runs(fid), f"{fid} runs")
                    owner = next(int(e[3]) for e in events if e[:2] == ["task", fid])
                    old = max(e.token for e in (await cluster.entries([fid]))[fid])
                    victim = next(w for w in live if w.pid == owner)
                    killed_at = time.time()
                    os.kill(victim.pid, signal.SIGKILL)
                    with anyio.fail_after(10 * session_timeout):
                        while True:
                            new = [e for e in (await cluster.entries([fid]))[fid] if e.token > old]
                            if new:
                                break
                            await anyio.sleep(0.01)
                    times.append(min(e.at for e in new) - killed_at)
                    ctx.log(f"trial {trial + 1}/{trials}: fail-over {times[-1]:.2f} s")
                    live.remove(victim)
                    live.append(await cluster.start(f"w{trial + 2}"))
        finally:
            cluster.stop_all()
    return times


# -- queues at scale --------------------------------------------------------------------------


class _Listings:
    """Records the largest ``getChildren`` answer a session gets (bytes of names and their
    4-byte length prefixes, plus the list's own)."""

    def __init__(self) -> None:
        self.largest = 0

    def watch(self, session: ZooKeeperSession) -> None:
        children = session.children

        async def recorded(path: str, *, watch: bool = False) -> list[str]:
            names = await children(path, watch=watch)
            self.largest = max(self.largest, 4 + sum(4 + len(n.encode()) for n in names))
            return names

        session.children = recorded  # type: ignore[method-assign]


async def _fill(board: ZooKeeperJobBoard, n: int, start: int, queue: str = "default") -> float:
    """Post jobs ``start`` … ``start + n - 1`` (64 in flight); the seconds it took."""
    limit = anyio.CapacityLimiter(64)

    async def post(i: int) -> None:
        async with limit:
            await board.post("noop", {"i": i}, flow_id=f"q-{i:07d}", queue=queue)

    began = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for i in range(start, start + n):
            tg.start_soon(post, i)
    return time.perf_counter() - began


async def _claim_round(
    claimers: list[ZooKeeperJobBoard], count: int, queue: str = "default"
) -> tuple[list[float], float]:
    """``count`` claims (each consumed) by the claimers together: latencies (scan to claim),
    and the seconds the round took."""
    left = [count]
    latencies: list[float] = []

    async def claimer(i: int, board: ZooKeeperJobBoard) -> None:
        while left[0] > 0:
            left[0] -= 1
            began = time.perf_counter()
            claim = None
            while claim is None:
                jobs = await board.claimable(queues=[queue], limit=len(claimers))
                if not jobs:
                    return
                for job in jobs[i % len(jobs) :] + jobs[: i % len(jobs)]:
                    try:
                        claim = await board.claim(job, f"c{i}")
                        break
                    except (JobAlreadyClaimed, JobNotFound):
                        continue
            latencies.append(time.perf_counter() - began)
            await board.consume(claim, outcome="SUCCESS")

    began = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for i, board in enumerate(claimers):
            tg.start_soon(claimer, i, board)
    return latencies, time.perf_counter() - began


def _sizes(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


async def _queue_writes(ctx: Context, server: ZooKeeperServer, n: int) -> list[Result]:
    """Server-counted writes per job (post, claim, consume by one claimer), without and
    with a global limit on the queue."""
    out = []
    namespace = f"/bench-qw-{os.getpid()}-{time.monotonic_ns()}"
    async with ZooKeeperSession(server.hosts, namespace=namespace, session_timeout=10) as zk:
        board = ZooKeeperJobBoard(zk)
        await board.declare_queue("limited", concurrency=4)
        for queue, name, target in (
            ("default", "writes_per_job", TARGET_WRITES_PER_FLOW),
            ("limited", "writes_per_job_limited", TARGET_WRITES_LIMITED),
        ):
            before, z0 = Counter(board.writes), await anyio.to_thread.run_sync(_zxid, server)
            await _fill(board, n, 0 if queue == "default" else n, queue)
            latencies, _ = await _claim_round([board], n, queue)
            assert len(latencies) == n, (queue, len(latencies))
            delta = await anyio.to_thread.run_sync(_zxid, server) - z0
            counted = dict(Counter(board.writes) - before)
            ctx.log(f"{name}: {delta} server writes for {n} jobs; board: {counted}")
            out.append(
                Result(
                    f"queue.{name}",
                    delta / n,
                    "writes/job",
                    target=target,
                    stat=f"server zxid delta over {n} jobs (post + claim + consume)",
                    note="a global limit adds a slot node to the claim's and the consume's "
                    "transactions, no write of its own"
                    if queue == "limited"
                    else "",
                    extra={"server_writes": delta, "board_writes": counted, "n": n},
                )
            )
    return out


async def _queues(
    ctx: Context,
    server: ZooKeeperServer,
    sizes: list[int],
    rounds: int,
    per_round: int,
    peers: list[_Peer],
) -> list[Result]:
    out: list[Result] = []
    listings = _Listings()
    async with contextlib.AsyncExitStack() as stack:
        boards: dict[int, list[ZooKeeperJobBoard]] = {}
        post_rates: dict[int, float] = {}
        for n in sizes:
            namespace = f"/bench-q{_label(n)}-{os.getpid()}-{time.monotonic_ns()}"
            sessions = [
                await stack.enter_async_context(
                    ZooKeeperSession(server.hosts, namespace=namespace, session_timeout=10)
                )
                for _ in range(5)
            ]
            for session in sessions[1:]:
                listings.watch(session)
            producer = ZooKeeperJobBoard(sessions[0])
            total = n + rounds * per_round
            # the board's folders first, untimed: the posts' figure is that of posting (the
            # first posts in flight on a fresh board would each create them)
            await producer.layout.setup()
            seconds = await _fill(producer, total, 0)
            ctx.log(f"queue {_label(n)}: posted {total} jobs in {seconds:.1f} s")
            post_rates[n] = total / seconds
            out.append(
                Result(
                    f"queue.post_{_label(n)}",
                    total / seconds,
                    "jobs/s",
                    stat=f"{total} posts, 64 in flight, one session, board set up",
                    note="one transaction each (record + entry), nothing read back",
                )
            )
            boards[n] = [ZooKeeperJobBoard(s) for s in sessions[1:]]
        for peer in peers:  # one at a time: each fills alone
            stack.push_async_callback(peer.aclose)
            ctx.log(f"{peer.name}: filling {peer.sizes} (in {peer.python})")
            failed = await peer.start(within=1800)
            ctx.log(f"{peer.name}: {peer.error or failed or 'filled, claimers open'}")
        latencies: dict[int, list[float]] = {n: [] for n in sizes}
        per_round_rates: dict[int, list[float]] = {n: [] for n in sizes}
        runners: list[_Peer | None] = [None, *peers]  # None: flowcoord
        for r in range(rounds):
            for runner in runners if r % 2 == 0 else reversed(runners):
                if runner is not None:
                    did = await runner.round(within=len(runner.sizes) * (runner.budget + 60) + 60)
                    ctx.log(f"round {r + 1}/{rounds}: {runner.name} claims {did}")
                    continue
                for n in sizes if r % 2 == 0 else reversed(sizes):
                    got, seconds = await _claim_round(boards[n], per_round)
                    latencies[n] += got
                    per_round_rates[n].append(len(got) / seconds)
            rates_now = ", ".join(f"{_label(n)} {per_round_rates[n][-1]:.0f}/s" for n in sizes)
            ctx.log(f"round {r + 1}/{rounds}: claims {rates_now}")
        for peer in peers:
            await peer.finish(within=120)
            ctx.log(f"{peer.name}: {peer.error or 'done'}")
        # the median round: one round hit by a server snapshot or GC does not decide it
        rates = {n: statistics.median(per_round_rates[n]) for n in sizes}
        for n in sizes:
            ms = [x * 1000 for x in latencies[n]]
            for q in (50, 99):
                out.append(
                    Result(
                        f"queue.claim_{_label(n)}.p{q}",
                        _percentile(ms, q),
                        "ms",
                        stat=f"p{q} of {len(ms)} claims, 4 claimers, {_label(n)} queued",
                        note="scan (claimable(limit=4)) to a won claim, lost races included",
                    )
                )
            out.append(
                Result(
                    f"queue.claims_per_s_{_label(n)}",
                    rates[n],
                    "claims/s",
                    stat=f"median of {rounds} rounds of {per_round} claims + consumes, 4 claimers",
                    samples=tuple(per_round_rates[n]),
                )
            )
        small, large = min(sizes), max(sizes)
        out.append(
            Result(
                "queue.cost_ratio",
                rates[small] / rates[large],
                "x",
                target=TARGET_COST_RATIO,
                stat=f"per-claim cost at {_label(large)} ÷ at {_label(small)} queued",
                note="median claims/s at the small size ÷ at the large one, rounds alternated",
                extra={"claims_per_s": {str(n): rates[n] for n in sizes}},
            )
        )
        if (ctx.option("zk_queue_drain", "0") or "0") != "0":
            seconds = 0.0
            drained = 0
            while True:
                got, took = await _claim_round(boards[large], 2000)
                drained += len(got)
                seconds += took
                ctx.log(f"drain {_label(large)}: {drained} claimed and consumed")
                if len(got) < 2000:
                    break
            out.append(
                Result(
                    f"queue.drain_{_label(large)}",
                    drained / seconds,
                    "claims/s",
                    stat=f"{drained} jobs claimed and consumed to an empty queue, 4 claimers",
                )
            )
        for peer in peers:
            out += _peer_results(peer, post_rates, rates)
    out.append(
        Result(
            "queue.max_listing_bytes",
            listings.largest,
            "bytes",
            baseline=JUTE_MAXBUFFER,
            baseline_name="jute.maxbuffer",
            target=Target("<=", 1.0),
            stat="largest getChildren answer the claimers got",
        )
    )
    return out


async def run(ctx: Context) -> AsyncIterator[Result]:
    timeout = float(ctx.option("zk_session_timeout", "2") or 2)
    trials = int(ctx.option("zk_trials", "5" if ctx.quick else "20") or 20)
    server = ZooKeeperServer()
    try:
        await anyio.to_thread.run_sync(server.open)
    except ZooKeeperNotInstalled as exc:
        ctx.skip(str(exc))
    try:
        if ctx.selected("writes"):
            for result in await _writes(ctx, server, n=10 if ctx.quick else 20, k=50):
                yield result
        peer_names = _peer_names(ctx)
        if _asks(ctx, "queue") or peer_names:
            sizes = _sizes(
                ctx.option("zk_queue_sizes") or ("1000,10000" if ctx.quick else "1000,100000")
            )
            rounds = int(ctx.option("zk_queue_rounds", "4" if ctx.quick else "8") or 8)
            per_round = 100 if ctx.quick else 250
            peer_sizes = _sizes(ctx.option("zk_peer_sizes") or "1000,10000") if peer_names else []
            budget = float(ctx.option("zk_peer_budget") or (16 if ctx.quick else 40))
            python = ctx.option("zk_peer_python") or sys.executable
            argv = ["--hosts", server.hosts, "--claimers", "4", "--jobs-per-round",
                    str(per_round), "--rounds", str(rounds), "--claim-budget", str(budget),
                    "--fill-budget", ctx.option("zk_peer_fill_budget") or "600"]  # fmt: skip
            peers = [_Peer(name, python, peer_sizes, argv, budget) for name in peer_names]
            if _asks(ctx, "queue.writes_per_job"):
                for result in await _queue_writes(ctx, server, 300):
                    yield result
            # flowcoord is measured at the peers' sizes too, in the same rounds
            all_sizes = sorted(set(sizes) | set(peer_sizes))
            for result in await _queues(ctx, server, all_sizes, rounds, per_round, peers):
                yield result
        if ctx.selected("failover"):
            times = await _failover(ctx, server, trials, timeout)
            for name, value, target in (
                ("failover.p50", statistics.median(times), None),
                ("failover.p95", _percentile(times, 95), Target("<=", timeout + 1.0, on="value")),
            ):
                yield Result(
                    name,
                    value,
                    "s",
                    baseline=timeout,
                    baseline_name="session timeout",
                    target=target,
                    stat=f"{name.rpartition('.')[2]} of {trials} kill -9 trials",
                    note="kill -9 → first journal entry of the new owner; target: session "
                    "timeout + 1 s (tickTime 1000: the server expires a session 1 tick late "
                    "at most)"
                    if target
                    else "",
                    samples=tuple(times),
                    extra={"min": min(times), "max": max(times)},
                )
    finally:
        await anyio.to_thread.run_sync(server.close)


if __name__ == "__main__":
    import sys

    from ._runner import main

    argv = sys.argv[1:]
    raise SystemExit(main(argv if "--only" in argv else ["--only", NAME, *argv]))
