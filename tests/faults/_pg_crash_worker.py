"""Run (or resume) many flows at once on a PostgreSQL journal; the kill -9 test's subprocess.

usage: python -m tests.faults._pg_crash_worker DSN SCHEMA EFFECTS

Every task appends ``FLOW/TASK PID`` to EFFECTS when it starts, so the test can count
executions and tell which process ran each one. When every flow has ended, one JSON line
``{"FLOW_ID": "STATE", ...}`` is printed.
"""

from __future__ import annotations

import json
import logging
import os
import random
import sys
from collections.abc import Callable

import anyio
import structlog

import flowcoord as fc

FLOWS, TASKS = 30, 8
#: Each task sleeps this long (seconds, uniform), so kills land while tasks run.
SLEEP = (0.005, 0.03)

OnRun = Callable[[str], None]


def flow_ids() -> list[str]:
    return [f"f{i:02d}" for i in range(FLOWS)]


def task_names() -> list[str]:
    return [f"t{j}" for j in range(TASKS)]


def build(flow_id: str, on_run: OnRun) -> fc.Flow:
    """Flow ``flow_id``: linear, unordered or two unordered stages in line, by its number.

    ``on_run("FLOW/TASK")`` is called as each task starts; task ``tN`` provides ``tN``.
    """

    def make(name: str) -> fc.FunctionTask:
        key = f"{flow_id}/{name}"

        async def body() -> str:
            on_run(key)
            await anyio.sleep(random.uniform(*SLEEP))
            return key

        return fc.FunctionTask(body, name, provides=name)

    tasks = [make(n) for n in task_names()]
    half = TASKS // 2
    match int(flow_id[1:]) % 3:
        case 0:
            return fc.Linear("linear", *tasks)
        case 1:
            return fc.Unordered("unordered", *tasks)
        case _:
            return fc.Linear(
                "mixed", fc.Unordered("first", *tasks[:half]), fc.Unordered("then", *tasks[half:])
            )


def effects_writer(path: str) -> OnRun:
    pid = os.getpid()

    def on_run(key: str) -> None:
        # One write() on an O_APPEND file: lines from concurrent processes never interleave.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{key} {pid}\n".encode())
        finally:
            os.close(fd)

    return on_run


async def run_all(engine: fc.Engine, on_run: OnRun) -> dict[str, str]:
    """Run (or resume) every flow concurrently; their final states by flow id."""
    states: dict[str, str] = {}

    async def one(flow_id: str) -> None:
        out = await engine.run(build(flow_id, on_run), flow_id=flow_id)
        states[flow_id] = out.state.value

    async with anyio.create_task_group() as tg:
        for flow_id in flow_ids():
            tg.start_soon(one, flow_id)
    return states


async def main(dsn: str, schema: str, effects: str) -> None:
    journal = fc.PostgresJournal(dsn, schema=schema, max_size=4)
    # Checkpoints every 3 successes: resuming after a kill reads what they sum up.
    async with fc.Engine(journal, checkpoint_every=3) as engine:
        states = await run_all(engine, effects_writer(effects))
    print(json.dumps(states, sort_keys=True), flush=True)


if __name__ == "__main__":
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    dsn, schema, effects = sys.argv[1:4]
    anyio.run(main, dsn, schema, effects)
