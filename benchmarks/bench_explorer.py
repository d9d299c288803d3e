"""The crash explorer: every journal cut of a 20-task flow on SQLite (target: under 10 s).

The baseline is one uncrashed run of the same flow on the same journal, so the ratio says how
many runs' worth of time an exploration costs (it resumes the flow once per cut, and once per
fault with faults on).
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio.lowlevel
import structlog

import flowcoord as fc

from ._harness import Context, Result, Target, quiet_logging

NAME = "explorer"

TARGET_SECONDS = Target("<=", 10.0, on="value")


def _flow(n: int) -> fc.Flow:
    def task(i: int) -> fc.Task:
        async def body(prev: int | None = None) -> int:
            await anyio.lowlevel.checkpoint()
            return i

        async def undo(result: object) -> None:
            await anyio.lowlevel.checkpoint()

        return fc.FunctionTask(
            body,
            f"t{i}",
            provides=f"v{i}",
            rebind={"prev": f"v{i - 1}"} if i else None,
            revert=undo,
        )

    half = n // 2
    return fc.Linear(
        "explored",
        *(task(i) for i in range(half)),
        fc.Unordered("wide", *(task(i) for i in range(half, n))),
    )


async def _one_run(path: Path, n: int) -> float:
    async with fc.Engine(fc.SQLiteJournal(path)) as engine:
        began = time.perf_counter()
        await engine.run(_flow(n))
        return time.perf_counter() - began


async def run(ctx: Context) -> AsyncIterator[Result]:
    # imported here: the runner imports every module, also in A/B runs of older commits
    from flowcoord.testing import CrashExplorer

    n = 20
    quiet_logging()
    # faults make flows log warnings (abandoned by design): not what this measures
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    with tempfile.TemporaryDirectory() as tmp:
        for faults in (False, True):
            key = f"sqlite_{n}_tasks" + ("_with_faults" if faults else "")
            if not ctx.selected(key):
                continue
            ctx.log(f"{key}: one run, then every cut")
            walls: list[float] = []
            cpus: list[float] = []
            singles: list[float] = []
            report = None
            for r in range(ctx.repeat):
                singles.append(await _one_run(Path(tmp) / f"one-{faults}-{r}.sqlite", n))
                journal = fc.SQLiteJournal(Path(tmp) / f"x-{faults}-{r}.sqlite")
                wall, cpu = time.perf_counter(), time.process_time()
                report = await CrashExplorer(
                    lambda: _flow(n), journal=journal, faults=faults
                ).explore()
                walls.append(time.perf_counter() - wall)
                cpus.append(time.process_time() - cpu)
                report.check()
            assert report is not None
            walls.sort()
            median = walls[len(walls) // 2]
            single = sorted(singles)[len(singles) // 2]
            yield Result(
                key,
                median,
                "s",
                baseline=single,
                baseline_name="one uncrashed run of the flow on SQLite",
                target=TARGET_SECONDS,
                stat=f"median of {ctx.repeat}",
                samples=tuple(walls),
                note=(
                    f"{report.entries} entries: {report.cuts} cuts, {report.faults} faults; "
                    f"{report.scenarios / median:.0f} scenarios/s, "
                    f"CPU {1000 * sorted(cpus)[len(cpus) // 2] / report.scenarios:.1f} ms each"
                ),
                extra={"scenarios": report.scenarios, "entries": report.entries},
            )
