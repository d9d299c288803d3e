"""Measure the memory an unordered flow of ``n`` no-op tasks costs; run in a fresh process.

``python benchmarks/_memory_probe.py --n 100000 --concurrency 256`` prints one JSON object
(bytes, whole flow): ``definition`` (the ``Unordered`` of ``FunctionTask`` objects, traced by
tracemalloc), ``engine_peak`` (tracemalloc peak above the level before ``engine.run`` —
compiling, the run's state, the in-memory journal's entries — for a definition built before
tracing started) and ``rss_peak_delta`` (the OS's peak resident set during an untraced run
minus the resident set just before it; the peak mark is reset through
``/proc/self/clear_refs`` where Linux allows it). A fresh process keeps earlier benchmarks'
heaps out of the figures and keeps tracemalloc's own cost out of the RSS run.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import re
import tracemalloc
from pathlib import Path

import structlog

import flowcoord as fc

_STATUS = Path("/proc/self/status")


@fc.task
async def _noop() -> None:
    return None


def _status_kib(field: str) -> int | None:
    try:
        m = re.search(rf"^{field}:\s+(\d+) kB", _STATUS.read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(m.group(1)) if m else None


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _flow(n: int, name: str) -> fc.Unordered:
    return fc.Unordered(name, *(_noop.with_options(name=f"t{i}") for i in range(n)))


async def _run(flow: fc.Flow, concurrency: int) -> None:
    async with fc.Engine(concurrency=concurrency) as engine:
        outcome = await engine.run(flow)
    assert outcome.state is fc.FlowState.SUCCESS


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--concurrency", type=int, default=256)
    args = p.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    n = args.n

    asyncio.run(_run(_flow(100, "warm"), args.concurrency))  # imports and first-use caches

    # RSS: untraced run.
    flow = _flow(n, "rss")
    gc.collect()
    reset = _reset_peak_rss()
    rss_before = _status_kib("VmRSS")
    asyncio.run(_run(flow, args.concurrency))
    hwm = _status_kib("VmHWM")
    del flow
    gc.collect()

    # tracemalloc: the definition, then the engine's peak above it.
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    flow = _flow(n, "traced")
    gc.collect()
    definition = tracemalloc.get_traced_memory()[0] - base
    before_run = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    asyncio.run(_run(flow, args.concurrency))
    peak = tracemalloc.get_traced_memory()[1] - before_run
    gc.collect()
    retained = tracemalloc.get_traced_memory()[0] - before_run
    tracemalloc.stop()

    rss_delta = None if rss_before is None or hwm is None else (hwm - rss_before) * 1024
    print(
        json.dumps(
            {
                "n": n,
                "concurrency": args.concurrency,
                "definition": definition,
                "engine_peak": peak,
                "retained_after_run": retained,
                "rss_before": None if rss_before is None else rss_before * 1024,
                "rss_peak_delta": rss_delta,
                "rss_peak_reset": reset,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
