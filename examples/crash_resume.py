"""Crash and resume: a worker process runs a five-step flow on a SQLite journal and is killed
(kill -9) half-way; a second process resumes the flow from the journal. Steps that the journal
records as done are not run again; their results are restored.

    python examples/crash_resume.py [JOURNAL_PATH]
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import anyio
import structlog

import flowcoord as fc

STEPS = 5


def build() -> fc.Flow:
    def step(n: int) -> fc.Task:
        async def run(prev: int = 0) -> int:
            print(f"step {n} running in pid {os.getpid()}", flush=True)
            await anyio.sleep(0.2)
            return prev + n

        return fc.FunctionTask(
            run, f"step{n}", provides=f"total{n}", rebind={"prev": f"total{n - 1}"} if n else None
        )

    return fc.Linear("five-steps", *(step(n) for n in range(STEPS)))


async def work(journal: str) -> None:
    async with fc.Engine(fc.SQLiteJournal(journal)) as engine:
        out = await engine.run(build(), flow_id="example-flow")
        print(f"finished in pid {os.getpid()}: total = {out[f'total{STEPS - 1}']}", flush=True)


def main(journal: Path) -> int:
    cmd = [sys.executable, __file__, "--work", str(journal)]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert first.stdout is not None
    for line in first.stdout:
        print("worker 1:", line.rstrip(), flush=True)
        if line.startswith("step 2 running"):
            break
    os.kill(first.pid, signal.SIGKILL)
    first.communicate()
    print("worker 1 killed with SIGKILL", flush=True)
    second = subprocess.run(cmd, capture_output=True, text=True, check=True)
    for line in second.stdout.splitlines():
        print("worker 2:", line, flush=True)
    return 0


if __name__ == "__main__":
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    if sys.argv[1:2] == ["--work"]:
        anyio.run(work, sys.argv[2])
        sys.exit(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tmp) / "journal.sqlite"
        sys.exit(main(path))
