"""Crashes with the PostgreSQL journal: kill -9 of an engine process running many flows, then
resume in another process; and PostgreSQL itself crashed and restarted under running flows."""

from __future__ import annotations

import collections
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import anyio
import asyncpg
import pytest

import flowcoord as fc
from flowcoord.testing import TemporaryPostgres

from ._pg_crash_worker import FLOWS, TASKS, flow_ids, run_all, task_names

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]
ALL_TASKS = frozenset(f"{f}/{t}" for f in flow_ids() for t in task_names())
KILLS = 4  # kill -9 rounds before the run that must finish
WORKER_DEADLINE = 60.0  # seconds a worker may take to reach its kill point or finish
SETTLE_DEADLINE = 10.0  # seconds for the server to notice a killed client's connections
_SUCCESS = fc.TaskState.SUCCESS


def _schema() -> str:
    return f"crash_{uuid.uuid4().hex[:12]}"


def _spawn(dsn: str, schema: str, effects: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.faults._pg_crash_worker", dsn, schema, str(effects)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _effects(effects: Path) -> list[tuple[str, int]]:
    """``(flow/task, pid)`` for every task start so far."""
    if not effects.exists():
        return []
    out = []
    for line in effects.read_text().split("\n")[:-1]:  # a line is whole once its \n is there
        key, _, pid = line.partition(" ")
        out.append((key, int(pid)))
    return out


async def _settled_successes(dsn: str, schema: str) -> set[str]:
    """The tasks with a journaled success, read once the server has finished with every
    connection of the killed process: a statement it had sent may still commit until then."""
    conn = await asyncpg.connect(dsn, server_settings={"application_name": "flowcoord-test"})
    try:
        with anyio.fail_after(SETTLE_DEADLINE):
            while True:  # the server is the only witness: poll it (bounded above)
                if not await conn.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid()"
                    " AND application_name = 'flowcoord' AND query LIKE $1",
                    f'%"{schema}"%',
                ):
                    break
                await anyio.sleep(0.01)
    finally:
        await conn.close()
    done: set[str] = set()
    async with fc.PostgresJournal(dsn, schema=schema) as journal:
        for flow_id in flow_ids():
            rep = fc.journal.replay(flow_id, await journal.read(flow_id))
            done |= {f"{flow_id}/{n}" for n, r in rep.tasks.items() if r.state is _SUCCESS}
    return done


async def _final_check(dsn: str, schema: str) -> None:
    """Every flow SUCCESS with each task succeeded once; seqs 0..n-1, each once."""
    async with fc.PostgresJournal(dsn, schema=schema) as journal:
        flows = await journal.list_flows(limit=FLOWS + 1)
        assert {f.flow_id: f.state for f in flows} == dict.fromkeys(flow_ids(), "SUCCESS")
        for flow_id in flow_ids():
            entries = await journal.read(flow_id)
            assert [e.seq for e in entries] == list(range(len(entries))), flow_id
            succeeded = collections.Counter(
                e.task for e in entries if e.kind is fc.journal.EventKind.TASK_SUCCEEDED
            )
            assert succeeded == dict.fromkeys(task_names(), 1), flow_id
            rep = fc.journal.replay(flow_id, entries)
            assert rep.state is fc.FlowState.SUCCESS
            assert {n: r.result for n, r in rep.tasks.items()} == {
                n: f"{flow_id}/{n}" for n in task_names()
            }
            # What a resume reads (checkpoints sum up part of it) restores the same results.
            fast = fc.journal.replay(flow_id, await journal.read_for_resume(flow_id))
            assert {n: r.result for n, r in fast.tasks.items()} == {
                n: r.result for n, r in rep.tasks.items()
            }


async def _checkpoints(dsn: str, schema: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        n: int = await conn.fetchval(
            f"SELECT count(*) FROM \"{schema}\".entries WHERE kind = 'flow.checkpoint'"
        )
        return n
    finally:
        await conn.close()


@dataclass(frozen=True)
class Kill:
    pid: int
    done: frozenset[str]  # journaled successes once the server settled after the kill
    started: frozenset[str]  # tasks this process started


def _kill_at_random_point(
    proc: subprocess.Popen[str], effects: Path, threshold: int, delay: float
) -> bool:
    """Wait until ``proc`` has started ``threshold`` tasks, sleep ``delay``, kill -9 it.
    False when it finished first."""
    deadline = time.monotonic() + WORKER_DEADLINE
    while sum(1 for _, pid in _effects(effects) if pid == proc.pid) < threshold:
        if proc.poll() is not None:
            return False
        assert time.monotonic() < deadline, "the worker made no progress"
        time.sleep(0.002)
    time.sleep(delay)
    if proc.poll() is not None:
        return False
    os.kill(proc.pid, signal.SIGKILL)
    return True


@pytest.mark.parametrize("seed", [1, 2])
def test_kill_9_many_flows_then_resume_in_another_process(
    pg_dsn: str, tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    schema, effects = _schema(), tmp_path / "effects"
    kills: list[Kill] = []
    done: set[str] = set()
    for _ in range(KILLS):
        remaining = len(ALL_TASKS - done)
        proc = _spawn(pg_dsn, schema, effects)
        try:
            killed = _kill_at_random_point(
                proc, effects, rng.randint(1, max(1, remaining * 2 // 3)), rng.uniform(0, 0.03)
            )
        finally:
            out, err = proc.communicate(timeout=WORKER_DEADLINE)
        if not killed:  # it finished before the kill point: nothing left to crash
            assert proc.returncode == 0, err
            break
        assert proc.returncode == -signal.SIGKILL, err
        done = anyio.run(_settled_successes, pg_dsn, schema)
        started = frozenset(k for k, pid in _effects(effects) if pid == proc.pid)
        kills.append(Kill(proc.pid, frozenset(done), started))
        assert kills[-1].done >= (kills[-2].done if len(kills) > 1 else frozenset())

    final = _spawn(pg_dsn, schema, effects)
    out, err = final.communicate(timeout=WORKER_DEADLINE)
    assert final.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1]) == dict.fromkeys(flow_ids(), "SUCCESS")
    anyio.run(_final_check, pg_dsn, schema)
    assert anyio.run(_checkpoints, pg_dsn, schema) >= FLOWS  # resumes went through them

    assert kills, "no worker was killed"
    assert len(kills[0].done) < len(ALL_TASKS), "the first kill came after all the work"
    runs = _effects(effects)
    count = collections.Counter(k for k, _ in runs)
    assert set(count) == ALL_TASKS
    pids = [k.pid for k in kills] + [final.pid]
    for i, kill in enumerate(kills):
        later = {k for k, pid in runs if pid in pids[i + 1 :]}
        # journaled successes never run again
        assert not kill.done & later, sorted(kill.done & later)
        # a task started by the killed process without a journaled success runs again
        assert kill.started - kill.done <= later
    for key, n in count.items():
        in_flight = sum(1 for k in kills if key in k.started - k.done)
        assert n == 1 + in_flight, (key, n, in_flight)


class _Progress:
    """Counts task starts; ``reached(n)`` waits for the n-th."""

    def __init__(self) -> None:
        self.ran: collections.Counter[str] = collections.Counter()
        self._changed = anyio.Event()

    def __call__(self, key: str) -> None:
        self.ran[key] += 1
        self._changed.set()

    async def reached(self, n: int) -> None:
        while self.ran.total() < n:
            await self._changed.wait()
            self._changed = anyio.Event()


@pytest.mark.anyio
async def test_flows_finish_across_postgres_crash_restarts(
    fresh_postgres: TemporaryPostgres,
) -> None:
    schema = _schema()
    progress = _Progress()
    journal = fc.PostgresJournal(fresh_postgres.dsn, schema=schema, max_size=4)
    restarts_at = (FLOWS * TASKS // 6, FLOWS * TASKS // 2)
    with anyio.fail_after(100):
        async with fc.Engine(journal, checkpoint_every=3) as engine:  # checkpoints too
            states: dict[str, str] = {}
            async with anyio.create_task_group() as tg:

                async def run() -> None:
                    states.update(await run_all(engine, progress))

                tg.start_soon(run)
                for n in restarts_at:
                    await progress.reached(n)
                    await anyio.to_thread.run_sync(fresh_postgres.stop, "immediate")
                    assert progress.ran.total() < len(ALL_TASKS)
                    await anyio.to_thread.run_sync(fresh_postgres.start)
        assert states == dict.fromkeys(flow_ids(), "SUCCESS")
        assert progress.ran == dict.fromkeys(ALL_TASKS, 1)  # in one process: never re-run
        await _final_check(fresh_postgres.dsn, schema)
        assert await _checkpoints(fresh_postgres.dsn, schema) >= FLOWS
        conn = await asyncpg.connect(fresh_postgres.dsn)
        try:
            dupes = await conn.fetchval(
                f'SELECT count(*) FROM (SELECT 1 FROM "{schema}".entries'
                " GROUP BY flow_id, seq HAVING count(*) > 1) d"
            )
            started = await conn.fetchval(
                f"SELECT count(*) FROM \"{schema}\".entries WHERE kind = 'task.started'"
            )
        finally:
            await conn.close()
    assert dupes == 0
    assert started == len(ALL_TASKS)
    assert fresh_postgres.log_text().count("database system was interrupted") >= len(restarts_at)
