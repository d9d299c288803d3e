"""Run (or resume) a flow on a SQLite journal; used by the kill -9 tests as a subprocess.

usage: python -m tests.faults._crash_worker JOURNAL EFFECTS FLOW_ID
Every task appends its name to EFFECTS when it runs, so the test can count executions.
"""

from __future__ import annotations

import os
import sys

import anyio

import flowcoord as fc
from flowcoord._journal._sqlite import SQLiteJournal

STAGES, WIDTH = 5, 4


def build(effects: str) -> fc.Flow:
    def make(name: str, dep: str | None) -> fc.Task:
        async def body(dep: str | None = None) -> str:
            fd = os.open(effects, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, f"{name}\n".encode())
            finally:
                os.close(fd)
            await anyio.sleep(0.03)
            return f"{name}<-{dep}"

        return fc.FunctionTask(body, name, provides=name, rebind={"dep": dep} if dep else None)

    stages = []
    for s in range(STAGES):
        tasks = [make(f"s{s}t{i}", f"s{s - 1}t{i}" if s else None) for i in range(WIDTH)]
        stages.append(fc.Unordered(f"stage{s}", *tasks))
    return fc.Linear("crashy", *stages)


async def main(journal: str, effects: str, flow_id: str) -> None:
    async with fc.Engine(SQLiteJournal(journal)) as engine:
        out = await engine.run(build(effects), flow_id=flow_id)
        print(out.state.value, out[f"s{STAGES - 1}t0"], flush=True)


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2], sys.argv[3])
