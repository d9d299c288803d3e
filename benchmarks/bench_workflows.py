"""Resuming a long code-first workflow: a workflow of 10,000 sequential steps on SQLite
(WAL, synchronous=FULL) is cut just before its end, as a crash would leave it, then resumed
by a fresh engine: the resume reads the journal through its checkpoints, replays every step
from it (none runs again) and runs the last one. Target: the resume costs at most 10% of the
first run (``value`` = resume seconds, ``baseline`` = first-run seconds, ratio ≤ 0.10).

CPU per step is given for both (process CPU time over the steps), and the entries read.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import flowcoord as fc
from flowcoord.journal import EventKind, FlowRecord

from ._harness import Context, Result, Target

NAME = "workflows"

TARGET_RESUME = Target("<=", 0.10)


async def _step(i: int) -> int:
    return i


async def _last(n: int) -> int:
    return n


@fc.workflow(name="bench-long")
async def _long(ctx: fc.Context, n: int) -> int:
    total = 0
    for i in range(n):
        total += await ctx.step(_step, i)
    return total + await ctx.step(_last, n)


async def _sample(path: Path, n: int, every: int) -> dict[str, float]:
    flow_id = f"long-{path.stem}"
    async with fc.Engine(fc.SQLiteJournal(path), checkpoint_every=every) as engine:
        c0, t0 = time.process_time(), time.perf_counter()
        out = await engine.run(_long, {"n": n}, flow_id=flow_id)
        first, first_cpu = time.perf_counter() - t0, time.process_time() - c0
        if out.result != sum(range(n)) + n:
            raise RuntimeError(f"benchmark workflow returned {out.result!r}")
        entries = await engine.journal.read(flow_id)
    # the journal as a crash just before the last step would leave it
    cut = [e for e in entries if e.state != "SUCCESS" and e.task != f"{n + 1}:_last"]
    backend = fc.SQLiteJournal(path)
    async with backend:
        await backend.create_flow(
            FlowRecord(f"{flow_id}-cut", "bench-long", "RUNNING"),
            [
                type(e)(f"{flow_id}-cut", e.seq, e.kind, e.task, e.data, e.state, e.token, e.at)
                for e in cut
            ],
        )
    async with fc.Engine(fc.SQLiteJournal(path), checkpoint_every=every) as engine:
        read = len(await engine.journal.read_for_resume(f"{flow_id}-cut"))
        c0, t0 = time.process_time(), time.perf_counter()
        out = await engine.resume(_long, f"{flow_id}-cut")
        resume, resume_cpu = time.perf_counter() - t0, time.process_time() - c0
        if out.result != sum(range(n)) + n:
            raise RuntimeError(f"resumed benchmark workflow returned {out.result!r}")
    return {
        "first": first,
        "first_cpu": first_cpu,
        "resume": resume,
        "resume_cpu": resume_cpu,
        "entries": len(entries),
        "read": read,
        "checkpoints": sum(e.kind is EventKind.CHECKPOINT for e in entries),
    }


async def run(ctx: Context) -> AsyncIterator[Result]:
    n = 2_000 if ctx.quick else 10_000
    key = f"resume_{n // 1000}k"
    if not ctx.selected(key):
        return
    every = 1000
    ctx.log(f"{key}: a workflow of {n} sequential steps on SQLite, cut before its end, resumed")
    got = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(max(1, min(ctx.repeat, 3))):
            got.append(await _sample(Path(tmp) / f"j{k}.sqlite", n, every))
    got.sort(key=lambda g: g["resume"] / g["first"])
    mid = got[len(got) // 2]
    yield Result(
        f"{key}.resume_seconds",
        mid["resume"],
        "s",
        baseline=mid["first"],
        baseline_name=f"first run of the {n + 1} steps (s)",
        target=TARGET_RESUME,
        stat=f"median ratio of {len(got)}",
        samples=tuple(g["resume"] for g in got),
        note=f"checkpoint every {every} successes; the resume reads {mid['read']:.0f} of "
        f"{mid['entries']:.0f} entries ({mid['checkpoints']:.0f} checkpoints), replays {n} "
        "steps without running them and runs the last",
        extra={
            "first_cpu_us_per_step": round(mid["first_cpu"] / (n + 1) * 1e6, 2),
            "resume_cpu_us_per_step": round(mid["resume_cpu"] / (n + 1) * 1e6, 2),
            "entries": mid["entries"],
            "entries_read": mid["read"],
        },
    )
