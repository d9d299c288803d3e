"""kill -9 a process running a flow on the SQLite journal; resume it in a new process."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

import flowcoord as fc
from flowcoord._journal._sqlite import SQLiteJournal

from ._crash_worker import STAGES, WIDTH

ROOT = Path(__file__).resolve().parents[2]


def _spawn(journal: Path, effects: Path, flow_id: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.faults._crash_worker", str(journal), str(effects), flow_id],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _lines(effects: Path) -> list[str]:
    return effects.read_text().split() if effects.exists() else []


async def _journaled_successes(journal: Path, flow_id: str) -> set[str]:
    async with SQLiteJournal(journal) as backend:
        rep = fc.journal.replay(flow_id, await backend.read(flow_id))
    return {n for n, r in rep.tasks.items() if r.state is fc.TaskState.SUCCESS}


@pytest.mark.parametrize("kill_after", [2, 6, 14])
def test_kill_9_then_resume_never_reruns_journaled_tasks(tmp_path: Path, kill_after: int) -> None:
    journal, effects = tmp_path / "j.sqlite", tmp_path / "effects"
    proc = _spawn(journal, effects, "crash-1")
    try:
        deadline = time.monotonic() + 30
        while len(_lines(effects)) < kill_after:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "worker made no progress"
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    done = anyio.run(_journaled_successes, journal, "crash-1")
    before = collections.Counter(_lines(effects))
    assert len(done) < STAGES * WIDTH
    if kill_after > WIDTH:
        # stage 1 started, so stage 0's successes were durable before it did
        assert {f"s0t{i}" for i in range(WIDTH)} <= done

    resumed = _spawn(journal, effects, "crash-1")
    out, err = resumed.communicate(timeout=60)
    assert resumed.returncode == 0, err
    assert out.strip().splitlines()[-1].startswith("SUCCESS s4t0<-s3t0")

    after = collections.Counter(_lines(effects))
    for name in done:  # journaled successes were not run again
        assert after[name] == before[name] == 1, name
    assert set(after) == {f"s{s}t{i}" for s in range(STAGES) for i in range(WIDTH)}
    # only tasks that were in flight at the kill ran twice
    twice = {n for n, c in after.items() if c > 1}
    assert twice <= set(before) - done
