"""Time DBOS Transact on the benchmark's PostgreSQL; run as a script in its own process.

``python benchmarks/_dbos_peer.py --dsn postgresql://postgres@127.0.0.1:PORT/postgres``
prints one JSON object ``{"dbos": version, "sequential": [s, ...], "concurrent": [s, ...],
"steps": N, "workflows": M}`` (seconds per sample), or ``{"error": ...}`` with exit status 3
when DBOS cannot be imported. Two workloads (those of the ``ANCHOR_DBOS`` figures in
``bench_postgres.py``): one async workflow running ``--steps`` no-op steps one after the
other, and ``--workflows`` concurrent async workflows of one no-op step each. DBOS keeps
global state (a singleton, threads), so it runs here, away from the asyncio benchmarks; its
system tables live in a database of their own (``--database``, created if missing) on the
same server. Standalone on purpose: it imports nothing from the harness or from flowcoord.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit


def _with_database(dsn: str, database: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{database}"))


async def _ensure_database(dsn: str, database: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database):
            await conn.execute(f'CREATE DATABASE "{database}"')
    finally:
        await conn.close()


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--dsn", required=True, help="a PostgreSQL server (any database on it)")
    p.add_argument("--database", default="dbos_bench")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--workflows", type=int, default=200)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    try:
        from importlib.metadata import version

        from dbos import DBOS, DBOSConfig
    except ImportError as exc:
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return 3

    asyncio.run(_ensure_database(args.dsn, args.database))
    config: DBOSConfig = {
        "name": "flowcoord-bench",
        "system_database_url": _with_database(args.dsn, args.database),
        "log_level": "WARNING",
    }
    DBOS(config=config)

    @DBOS.step()
    async def noop_step(i: int) -> int:
        return i

    @DBOS.workflow()
    async def sequential(n: int) -> int:
        total = 0
        for i in range(n):
            total += await noop_step(i)
        return total

    @DBOS.workflow()
    async def one_step(i: int) -> int:
        return await noop_step(i)

    async def measure() -> dict[str, Any]:
        seq: list[float] = []
        conc: list[float] = []
        for r in range(args.repeat + 1):  # the first round warms up, untimed
            t0 = time.perf_counter()
            await sequential(args.steps)
            t1 = time.perf_counter()
            await asyncio.gather(*(one_step(i) for i in range(args.workflows)))
            t2 = time.perf_counter()
            if r:
                seq.append(t1 - t0)
                conc.append(t2 - t1)
        return {"sequential": seq, "concurrent": conc}

    DBOS.launch()
    try:
        out = asyncio.run(measure())
    finally:
        DBOS.destroy()
    out.update(dbos=version("dbos"), steps=args.steps, workflows=args.workflows)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
