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

Options: ``-o zk_session_timeout=2`` (seconds), ``-o zk_trials=20`` (5 with --quick).
Standalone: ``python -m benchmarks.bench_zookeeper [--quick]``.
"""

from __future__ import annotations

import os
import signal
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
import anyio.to_thread

import flowcoord as fc
from flowcoord._coord._conductor import Conductor
from flowcoord._coord._zk_board import ZooKeeperJobBoard
from flowcoord.coordination import JobSpec, post_jobs
from flowcoord.testing import ZooKeeperNotInstalled, ZooKeeperServer
from flowcoord.testing._zookeeper import four_letter_word

from ._harness import Context, Result, Target

NAME = "zookeeper"

TARGET_WRITES_PER_FLOW = Target("<=", 3, on="value")
TARGET_WRITES_PER_TASK = Target("<=", 0, on="value")


def _zxid(server: ZooKeeperServer) -> int:
    for line in four_letter_word(server.port(), "srvr").splitlines():
        if line.startswith("Zxid:"):
            return int(line.partition(":")[2].strip(), 16)
    raise RuntimeError("no Zxid in the server's srvr answer")


def _percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


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
