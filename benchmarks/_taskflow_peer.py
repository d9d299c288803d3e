"""Time OpenStack TaskFlow on flows of no-op tasks; run as a script in its own process.

``python benchmarks/_taskflow_peer.py --pattern linear --engine serial --sizes 1000``
prints one JSON object: ``{"taskflow": version, "samples": {"1000": [seconds, ...]}}``, or
``{"error": ...}`` with exit status 3 when TaskFlow cannot be imported. TaskFlow is
synchronous and thread-based, so it runs here, away from the asyncio benchmarks (and from
their memory figures). Each sample times ``engines.load(flow, ...)`` plus ``engine.run()``
(TaskFlow compiles and validates inside them); building the flow object is not timed.
Standalone on purpose: it imports nothing from the harness or from flowcoord.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import sys
import time
from typing import Any


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--pattern", choices=["linear", "unordered"], required=True)
    p.add_argument("--engine", choices=["serial", "parallel"], required=True)
    p.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], required=True)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--workers", type=int, default=16, help="parallel engine threads")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    try:
        from importlib.metadata import version

        from taskflow import engines, task
        from taskflow.patterns import linear_flow, unordered_flow
    except ImportError as exc:
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return 3

    class Noop(task.Task):  # type: ignore[misc]
        def execute(self) -> None:
            return None

    pattern: Any = linear_flow if args.pattern == "linear" else unordered_flow
    options: dict[str, Any] = {}
    if args.engine == "parallel":
        options = {"executor": "threaded", "max_workers": args.workers}

    def once(n: int) -> float:
        flow = pattern.Flow(f"{args.pattern}-{n}")
        flow.add(*(Noop(name=f"t{i}") for i in range(n)))
        gc.collect()
        t0 = time.perf_counter()
        engine = engines.load(flow, engine=args.engine, **options)
        engine.run()
        return time.perf_counter() - t0

    once(50)  # warm-up: imports, plugin loading, first compilation
    samples = {str(n): [once(n) for _ in range(args.repeat)] for n in args.sizes}
    print(
        json.dumps(
            {
                "taskflow": version("taskflow"),
                "python": sys.version.split()[0],
                "engine": args.engine,
                "workers": args.workers if args.engine == "parallel" else 1,
                "samples": samples,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
