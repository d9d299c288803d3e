"""Core engine: throughput, per-task cost and memory, against asyncio and TaskFlow baselines.

Every flowcoord sample times ``engine.compile(flow)`` plus ``engine.run(flow)`` on a fresh
:class:`~flowcoord.Engine` (so compilation and validation are always included; they are
also reported apart as ``compile``); opening and closing the engine and building the flow
definition are not timed. Baselines run the same number of no-op coroutines. Figures are
medians of ``ctx.repeat`` samples taken after one warm-up, interleaved with their baseline.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from time import perf_counter
from typing import Any

import flowcoord as fc
from flowcoord._journal._contract import JournalBackend
from flowcoord._journal._sqlite import SQLiteJournal

from ._harness import (
    Case,
    Context,
    Phases,
    Result,
    Samples,
    Target,
    alternate,
    contention_note,
    cpu_share,
)

NAME = "core"

HERE = Path(__file__).resolve().parent
#: Anchor figure, measured once (not in this run) on the reference machine (2 cores): TaskFlow
#: 6.5's serial engine, linear flow of 1,000 no-op tasks. Used only when TaskFlow cannot run.
ANCHOR_TASKFLOW_SERIAL = 89.0

TARGET_VS_TASKGROUP = Target(">=", 0.5)
TARGET_VS_TASKFLOW = Target(">=", 200)
TARGET_SCALING = Target("<=", 1.5)
TARGET_MEMORY = Target("<=", 2048, on="value")
TARGET_WORKFLOW = Target(">=", 0.5)  # a workflow step costs at most 2x a pattern task


@dataclass(frozen=True)
class Sizes:
    unordered: int
    linear: int
    cost: tuple[int, ...]
    memory: int
    taskflow_parallel: tuple[int, ...]
    taskflow_repeat: int


FULL = Sizes(10_000, 1_000, (1_000, 10_000, 100_000), 100_000, (1_000, 5_000), 3)
QUICK = Sizes(2_000, 1_000, (1_000, 10_000), 10_000, (1_000,), 1)


def _k(n: int) -> str:
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


# -- workloads --------------------------------------------------------------------------------


@fc.task
async def _noop() -> None:
    return None


async def _noop_coro() -> None:
    return None


@fc.task
async def _yield_once() -> None:
    await asyncio.sleep(0)


async def _yield_coro() -> None:
    await asyncio.sleep(0)


def unordered(n: int, task: fc.FunctionTask = _noop) -> fc.Unordered:
    return fc.Unordered(f"unordered-{n}", *(task.with_options(name=f"t{i}") for i in range(n)))


def linear(n: int) -> fc.Linear:
    return fc.Linear(f"linear-{n}", *(_noop.with_options(name=f"t{i}") for i in range(n)))


def taskgroup_case(n: int, coro: Callable[[], Coroutine[Any, Any, None]] = _noop_coro) -> Case:
    async def case() -> Phases:
        t0 = perf_counter()
        async with asyncio.TaskGroup() as tg:
            for _ in range(n):
                tg.create_task(coro())
        return {"total": perf_counter() - t0}

    return case


def gather_case(n: int) -> Case:
    async def case() -> Phases:
        t0 = perf_counter()
        await asyncio.gather(*[_noop_coro() for _ in range(n)])
        return {"total": perf_counter() - t0}

    return case


def engine_case(
    flow: fc.Flow,
    *,
    concurrency: int = 256,
    journal: Callable[[], JournalBackend] | None = None,
    stats: list[dict[str, Any]] | None = None,
) -> Case:
    """A fresh engine per sample; times compile and run (not opening/closing the journal)."""

    async def case() -> Phases:
        backend = journal() if journal is not None else None
        async with fc.Engine(backend, concurrency=concurrency) as engine:
            t0 = perf_counter()
            engine.compile(flow)
            t1 = perf_counter()
            outcome = await engine.run(flow)
            t2 = perf_counter()
            if stats is not None:
                j = engine.journal
                stats.append({"flushes": j.flushes, "appended": j.appended})
        if outcome.state is not fc.FlowState.SUCCESS:
            raise RuntimeError(f"benchmark flow ended {outcome.state}")
        return {"total": t2 - t0, "compile": t1 - t0, "run": t2 - t1}

    return case


async def _step(i: int) -> int:
    return i


@fc.workflow(name="bench-sequential")
async def _sequential(ctx: fc.Context, n: int) -> int:
    for i in range(n):
        await ctx.step(_step, i)
    return n


def workflow_case(n: int) -> Case:
    """A fresh engine per sample; times one workflow of ``n`` sequential steps."""

    async def case() -> Phases:
        async with fc.Engine() as engine:
            t0 = perf_counter()
            outcome = await engine.run(_sequential, {"n": n})
            t1 = perf_counter()
        if outcome.state is not fc.FlowState.SUCCESS:
            raise RuntimeError(f"benchmark workflow ended {outcome.state}")
        return {"total": t1 - t0}

    return case


def _load(result: Result, got: Mapping[str, Mapping[str, Samples]]) -> Result:
    """``result`` with the CPU share of the samples behind it, and a warning note when
    another process competed for the CPU (this machine has 2 cores and may be shared)."""
    share = cpu_share(*got.values())
    warn = contention_note(share)
    note = "; ".join(x for x in (result.note, warn) if x)
    return replace(result, note=note, extra={**result.extra, "cpu_share": round(share, 3)})


def rate(n: int, s: Samples) -> float:
    return n / s.median


def per_task_us(n: int, s: Samples) -> float:
    return s.median / n * 1e6


# -- peers in subprocesses --------------------------------------------------------------------


async def _script(python: str, script: str, *args: str, time_limit: float) -> dict[str, Any]:
    try:
        proc = await asyncio.create_subprocess_exec(
            python,
            str(HERE / script),
            *args,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    except OSError as exc:
        return {"error": f"cannot start {python}: {exc}"}
    try:
        out, err = await asyncio.wait_for(proc.communicate(), time_limit)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return {"error": f"{script} did not finish within {time_limit:.0f}s"}
    try:
        data: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        tail = err.decode(errors="replace").strip().splitlines()[-3:]
        return {"error": f"{script} exited {proc.returncode}: {' | '.join(tail)}"}
    return data


async def taskflow(
    ctx: Context, pattern: str, engine: str, sizes: tuple[int, ...], repeat: int
) -> dict[str, Any]:
    """TaskFlow samples by size (seconds), or ``{"error": ...}``."""
    python = ctx.option("taskflow_python", sys.executable) or sys.executable
    ctx.log(f"TaskFlow {engine} engine, {pattern} {sizes}, {repeat} samples (in {python})")
    return await _script(
        python,
        "_taskflow_peer.py",
        f"--pattern={pattern}",
        f"--engine={engine}",
        f"--sizes={','.join(map(str, sizes))}",
        f"--repeat={repeat}",
        time_limit=1800,
    )


# -- the measures -----------------------------------------------------------------------------


async def run(ctx: Context) -> AsyncIterator[Result]:
    sizes = QUICK if ctx.quick else FULL
    rep = ctx.repeat
    stat = f"median of {rep}"

    # 1. unordered flow vs asyncio.TaskGroup / gather, at the default and at one worker/task.
    n = sizes.unordered
    key = f"unordered_{_k(n)}"
    if ctx.selected(key):
        ctx.log(f"{key}: TaskGroup, gather, engine at concurrency 256 and {n}")
        flow = unordered(n)
        got = await alternate(
            {
                "taskgroup": taskgroup_case(n),
                "gather": gather_case(n),
                "c256": engine_case(flow, concurrency=256),
                "cn": engine_case(flow, concurrency=n),
            },
            repeat=rep,
            log=ctx.log,
        )
        tg = rate(n, got["taskgroup"]["total"])
        ga = rate(n, got["gather"]["total"])
        yield _load(
            Result(
                f"{key}.asyncio_taskgroup",
                tg,
                "tasks/s",
                stat=stat,
                samples=got["taskgroup"]["total"].rates(n),
                note=f"baseline: {n} no-op coroutines in one asyncio.TaskGroup",
            ),
            got,
        )
        yield Result(
            f"{key}.asyncio_gather",
            ga,
            "tasks/s",
            stat=stat,
            samples=got["gather"]["total"].rates(n),
        )
        for case, conc in (("c256", 256), ("cn", n)):
            s = got[case]
            extra = {
                "best": n / s["total"].best,
                "compile_us_per_task": per_task_us(n, s["compile"]),
                "concurrency": conc,
            }
            label = f"{key}.concurrency_{conc}"
            yield Result(
                label,
                rate(n, s["total"]),
                "tasks/s",
                baseline=tg,
                baseline_name="asyncio.TaskGroup",
                target=TARGET_VS_TASKGROUP,
                stat=stat,
                samples=s["total"].rates(n),
                extra=extra,
                note=(
                    "one worker coroutine per task (concurrency = flow size)"
                    if conc == n
                    else "default concurrency: 256 worker coroutines pull ready tasks"
                ),
            )
            yield Result(
                f"{label}.vs_gather",
                rate(n, s["total"]),
                "tasks/s",
                baseline=ga,
                baseline_name="asyncio.gather",
                stat=stat,
            )
        del flow

    # 1b. the same with tasks that yield once: workers really run side by side, so the
    # worker pool's cost shows (no-op tasks never suspend, so one worker drains the queue).
    n = sizes.unordered
    key = f"unordered_{_k(n)}_yielding"
    if ctx.selected(key):
        ctx.log(f"{key}: tasks awaiting asyncio.sleep(0) once")
        flow = unordered(n, _yield_once)
        got = await alternate(
            {
                "taskgroup": taskgroup_case(n, _yield_coro),
                "c256": engine_case(flow, concurrency=256),
                "cn": engine_case(flow, concurrency=n),
            },
            repeat=rep,
            log=ctx.log,
        )
        tg = rate(n, got["taskgroup"]["total"])
        yield _load(
            Result(
                f"{key}.asyncio_taskgroup",
                tg,
                "tasks/s",
                stat=stat,
                samples=got["taskgroup"]["total"].rates(n),
                note="baseline: coroutines that await asyncio.sleep(0) once",
            ),
            got,
        )
        for case, conc in (("c256", 256), ("cn", n)):
            yield Result(
                f"{key}.concurrency_{conc}",
                rate(n, got[case]["total"]),
                "tasks/s",
                baseline=tg,
                baseline_name="asyncio.TaskGroup",
                target=TARGET_VS_TASKGROUP,
                stat=stat,
                samples=got[case]["total"].rates(n),
                extra={"best": n / got[case]["total"].best},
            )
        del flow

    # 2. linear flow vs TaskFlow's serial engine (or the anchor figure).
    n = sizes.linear
    key = f"linear_{_k(n)}"
    if ctx.selected(key):
        ctx.log(f"{key}: engine")
        lrep = rep * 3  # a 1k-task linear run is short: take more samples
        got = await alternate({"fc": engine_case(linear(n))}, repeat=lrep, log=ctx.log)
        ours = rate(n, got["fc"]["total"])
        tf = await taskflow(ctx, "linear", "serial", (n,), sizes.taskflow_repeat)
        if "error" not in tf:
            tf_samples = Samples(tuple(tf["samples"][str(n)]))
            tf_rate = rate(n, tf_samples)
            yield Result(
                f"{key}.taskflow_serial",
                tf_rate,
                "tasks/s",
                stat=f"median of {len(tf_samples.values)}",
                samples=tf_samples.rates(n),
                note=f"TaskFlow {tf['taskflow']} serial engine, in a subprocess",
            )
            baseline, baseline_name, note = tf_rate, "TaskFlow serial", ""
        else:
            baseline, baseline_name = ANCHOR_TASKFLOW_SERIAL, "ANCHOR TaskFlow serial"
            note = (
                f"TaskFlow not measured ({tf['error']}); baseline is the anchor figure "
                f"{ANCHOR_TASKFLOW_SERIAL:g} tasks/s (1,000 tasks), not measured in this run"
            )
        yield _load(
            Result(
                f"{key}.flowcoord",
                ours,
                "tasks/s",
                baseline=baseline,
                baseline_name=baseline_name,
                target=TARGET_VS_TASKFLOW,
                stat=f"median of {lrep}",
                samples=got["fc"]["total"].rates(n),
                extra={"best": n / got["fc"]["total"].best},
                note=note,
            ),
            got,
        )

    # 2b. a code-first workflow of n sequential steps vs the pattern engine's linear n, same
    # run: the per-step cost against the per-task cost (issue target: at most 2x).
    n = sizes.linear
    key = f"workflow_{_k(n)}"
    if ctx.selected(key):
        ctx.log(f"{key}: workflow of {n} sequential steps vs linear {n}")
        lrep = rep * 3
        got = await alternate(
            {"linear": engine_case(linear(n)), "workflow": workflow_case(n)},
            repeat=lrep,
            log=ctx.log,
        )
        lin = rate(n, got["linear"]["total"])
        yield _load(
            Result(
                f"{key}.sequential_steps",
                rate(n, got["workflow"]["total"]),
                "steps/s",
                baseline=lin,
                baseline_name=f"pattern linear {n} (tasks/s)",
                target=TARGET_WORKFLOW,
                stat=f"median of {lrep}",
                samples=got["workflow"]["total"].rates(n),
                note="in-memory journal; a step without a compensation journals one entry "
                "(task.succeeded: result, attempt, start time); ratio = per-task cost / "
                "per-step cost",
            ),
            got,
        )

    # 3. per-task cost as flows grow, compile reported apart.
    costs: dict[int, float] = {}
    for n in sizes.cost:
        key = f"cost_{_k(n)}"
        if not ctx.selected("cost") and not ctx.selected(key):
            continue
        r = rep if n < 100_000 else min(rep, 3)
        ctx.log(f"{key}: TaskGroup and engine, {r} samples")
        flow = unordered(n)
        got = await alternate(
            {"taskgroup": taskgroup_case(n), "fc": engine_case(flow)}, repeat=r, log=ctx.log
        )
        del flow
        costs[n] = per_task_us(n, got["fc"]["total"])
        yield _load(
            Result(
                f"{key}.per_task",
                costs[n],
                "µs/task",
                baseline=per_task_us(n, got["taskgroup"]["total"]),
                baseline_name="asyncio.TaskGroup",
                stat=f"median of {r}",
                samples=tuple(v / n * 1e6 for v in got["fc"]["total"].values),
                note="compile + run; ratio = how many times a TaskGroup's per-task cost"
                if n == sizes.cost[0]
                else "",
            ),
            got,
        )
        yield Result(
            f"{key}.compile",
            per_task_us(n, got["fc"]["compile"]),
            "µs/task",
            stat=f"median of {r}",
            samples=tuple(v / n * 1e6 for v in got["fc"]["compile"].values),
        )
    small, large = sizes.cost[0], sizes.cost[-1]
    if small in costs and large in costs:
        yield Result(
            f"cost_{_k(large)}_vs_{_k(small)}",
            costs[large],
            "µs/task",
            baseline=costs[small],
            baseline_name=f"cost at {_k(small)}",
            target=TARGET_SCALING,
            stat=stat,
        )

    # 4. memory per pending task, in a fresh process.
    n = sizes.memory
    key = f"memory_{_k(n)}"
    if ctx.selected(key):
        ctx.log(f"{key}: probe process (tracemalloc, then RSS)")
        mem = await _script(
            sys.executable, "_memory_probe.py", f"--n={n}", "--concurrency=256", time_limit=900
        )
        if "error" in mem:
            raise RuntimeError(mem["error"])
        yield Result(
            f"{key}.tracemalloc_peak",
            mem["engine_peak"] / n,
            "B/task",
            target=TARGET_MEMORY,
            stat="1 run",
            note="tracemalloc peak during compile + run (plan, run state, in-memory journal "
            "entries) ÷ tasks; flow definition built before tracing",
            extra=mem,
        )
        if mem["rss_peak_delta"] is not None:
            yield Result(
                f"{key}.rss_peak_delta",
                mem["rss_peak_delta"] / n,
                "B/task",
                target=TARGET_MEMORY,
                stat="1 run",
                note="peak RSS (VmHWM, reset before the run) minus RSS before it, ÷ tasks"
                + ("" if mem["rss_peak_reset"] else "; the peak mark could not be reset"),
            )
        yield Result(
            f"{key}.definition",
            mem["definition"] / n,
            "B/task",
            stat="1 run",
            note="the Unordered of FunctionTask objects (with_options), not counted above",
        )

    # 5. the durable journal: SQLite (WAL, synchronous=FULL), report only.
    for kind, n in (("unordered", sizes.unordered), ("linear", sizes.linear)):
        key = f"sqlite.{kind}_{_k(n)}"
        if not ctx.selected(key):
            continue
        ctx.log(f"{key}: memory journal and SQLite journal")
        sflow: fc.Flow = unordered(n) if kind == "unordered" else linear(n)
        with tempfile.TemporaryDirectory(prefix="flowcoord-bench-") as tmp:
            files = iter(range(1_000_000))
            stats: list[dict[str, Any]] = []

            def sqlite(tmp: str = tmp, files: Any = files) -> JournalBackend:
                return SQLiteJournal(Path(tmp) / f"j{next(files)}.sqlite")

            got = await alternate(
                {
                    "memory": engine_case(sflow),
                    "sqlite": engine_case(sflow, journal=sqlite, stats=stats),
                },
                repeat=rep,
                log=ctx.log,
            )
        last = stats[-1]
        yield Result(
            key,
            rate(n, got["sqlite"]["total"]),
            "tasks/s",
            baseline=rate(n, got["memory"]["total"]),
            baseline_name="memory journal",
            stat=stat,
            samples=got["sqlite"]["total"].rates(n),
            extra={**last, "entries_per_flush": last["appended"] / max(1, last["flushes"])},
            note=f"durable: WAL, synchronous=FULL, fsync per group commit; "
            f"{last['appended'] / max(1, last['flushes']):.1f} entries per flush",
        )

    # 6. TaskFlow's parallel engine on unordered flows, report only.
    key = "taskflow_parallel"
    if ctx.selected(key):
        sz = sizes.taskflow_parallel
        ours_by_n: dict[int, Samples] = {}
        for n in sz:
            ctx.log(f"{key}: engine on unordered {n}")
            got = await alternate({"fc": engine_case(unordered(n))}, repeat=rep, log=ctx.log)
            ours_by_n[n] = got["fc"]["total"]
        tf = await taskflow(ctx, "unordered", "parallel", sz, sizes.taskflow_repeat)
        for n in sz:
            tfp = None if "error" in tf else Samples(tuple(tf["samples"][str(n)]))
            yield Result(
                f"{key}.unordered_{_k(n)}",
                rate(n, ours_by_n[n]),
                "tasks/s",
                baseline=None if tfp is None else rate(n, tfp),
                baseline_name="TaskFlow parallel (16 thr)",
                stat=stat,
                samples=ours_by_n[n].rates(n),
                extra={} if tfp is None else {"taskflow_samples_s": tfp.values},
                note=(
                    f"TaskFlow not measured: {tf['error']}"
                    if tfp is None
                    else f"TaskFlow {tf['taskflow']}, median of {len(tfp.values)}"
                    if n == sz[0]
                    else ""
                ),
            )
