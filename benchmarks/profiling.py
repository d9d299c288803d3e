"""Profile the engine on the benchmark workloads: ``python -m benchmarks.profiling``.

Runs each case once to warm up, then several times under cProfile (or pyinstrument, if
installed and asked for) and prints the hottest functions by own time and by cumulative
time. ``--out DIR`` also writes ``<case>.prof`` files (``python -m pstats``, snakeviz) or
pyinstrument's HTML. Profilers inflate the cost of small Python functions: use the figures
to rank hot spots, and ``python -m benchmarks`` to measure a change.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import pstats
import tempfile
from collections.abc import Callable
from pathlib import Path

import flowcoord as fc
from flowcoord._journal._contract import JournalBackend
from flowcoord._journal._sqlite import SQLiteJournal

from ._harness import quiet_logging
from .bench_core import _yield_once, linear, unordered

#: name → (flow factory, concurrency, journal: "memory" | "sqlite", runs under the profiler)
CASES: dict[str, tuple[Callable[[], fc.Flow], int, str, int]] = {
    "unordered_10k": (lambda: unordered(10_000), 256, "memory", 10),
    "unordered_10k_c10000": (lambda: unordered(10_000), 10_000, "memory", 10),
    "unordered_10k_yielding_c10000": (
        lambda: unordered(10_000, _yield_once),
        10_000,
        "memory",
        5,
    ),
    "linear_1k": (lambda: linear(1_000), 256, "memory", 50),
    "sqlite_unordered_10k": (lambda: unordered(10_000), 256, "sqlite", 3),
    "sqlite_linear_1k": (lambda: linear(1_000), 256, "sqlite", 2),
}
DEFAULT = ("unordered_10k", "linear_1k")


async def _run(flow: fc.Flow, concurrency: int, journal: JournalBackend | None) -> None:
    async with fc.Engine(journal, concurrency=concurrency) as engine:
        outcome = await engine.run(flow)
    if outcome.state is not fc.FlowState.SUCCESS:
        raise RuntimeError(f"profiled flow ended {outcome.state}")


def profile_case(name: str, tool: str, top: int, out: Path | None) -> str:
    make, concurrency, journal, runs = CASES[name]
    flow = make()
    tmp = tempfile.TemporaryDirectory(prefix="flowcoord-profile-")
    counter = iter(range(1_000_000))

    def backend() -> JournalBackend | None:
        if journal == "memory":
            return None
        return SQLiteJournal(Path(tmp.name) / f"p{next(counter)}.sqlite")

    def once() -> None:
        asyncio.run(_run(flow, concurrency, backend()))

    try:
        once()  # warm-up
        gc.collect()
        gc.freeze()
        if tool == "pyinstrument":
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.0002)
            profiler.start()
            for _ in range(runs):
                once()
            profiler.stop()
            if out is not None:
                (out / f"{name}.html").write_text(profiler.output_html(), encoding="utf-8")
            return profiler.output_text(unicode=True, color=False)
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(runs):
            once()
        prof.disable()
    finally:
        gc.unfreeze()
        tmp.cleanup()
    if out is not None:
        prof.dump_stats(str(out / f"{name}.prof"))
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf).strip_dirs()
    n_tasks = len(flow.items) * runs
    buf.write(f"== {name}: {runs} runs, {n_tasks} tasks in all, concurrency {concurrency}\n")
    buf.write(f"   (divide a row's time by {n_tasks} for its cost per task)\n")
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return buf.getvalue()


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.profiling", description=__doc__)
    p.add_argument("cases", nargs="*", metavar="CASE", help=f"one of {', '.join(CASES)}")
    p.add_argument("--tool", choices=["cprofile", "pyinstrument"], default="cprofile")
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--out", type=Path, default=None, help="write .prof / .html files here")
    args = p.parse_args()
    unknown = [c for c in args.cases if c not in CASES]
    if unknown:
        p.error(f"unknown case(s) {unknown}; choose from {', '.join(CASES)}")
    quiet_logging()
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
    for name in args.cases or DEFAULT:
        print(profile_case(name, args.tool, args.top, args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
