"""kill -9 a process running a flow at random moments, again and again, then let one run to
the end: the flow ends as an uncrashed run does, the journal has no hole, no journaled
success ran again without a revert, and every task's work is done (or undone) as there."""

from __future__ import annotations

import random
import signal
import subprocess
import time
from pathlib import Path

import anyio
import pytest

import flowcoord as fc
from flowcoord.testing._invariants import check_journal

from ._kill_worker import command

ROOT = Path(__file__).resolve().parents[2]


def _spawn(tmp: Path, scenario: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        command(tmp, scenario),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _lines(tmp: Path) -> int:
    path = tmp / "effects"
    return len(path.read_text().splitlines()) if path.exists() else 0


def _history(tmp: Path) -> dict[str, list[str]]:
    path = tmp / "effects"
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines() if path.exists() else []:
        op, task = line.split()
        out.setdefault(task, []).append(op)
    return out


async def _journal(tmp: Path) -> list[fc.journal.Entry]:
    async with fc.SQLiteJournal(tmp / "j.sqlite") as backend:
        return await backend.read("kill")


@pytest.mark.parametrize(("scenario", "final"), [("slow", "SUCCESS"), ("slow-fails", "REVERTED")])
@pytest.mark.parametrize("seed", [1, 2])
def test_random_kills_then_resume(tmp_path: Path, scenario: str, final: str, seed: int) -> None:
    rng = random.Random(seed)
    kills = 0
    for _ in range(6):
        before = _lines(tmp_path)
        proc = _spawn(tmp_path, scenario)
        # die after a random number of task bodies and reverts (1..4) did their work, plus a
        # random few milliseconds: anywhere between two journal writes
        wanted = before + rng.randint(1, 4)
        deadline = time.monotonic() + 30
        while proc.poll() is None and _lines(tmp_path) < wanted:
            assert time.monotonic() < deadline, "the worker made no progress"
            time.sleep(0.002)
        time.sleep(rng.uniform(0, 0.02))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.communicate(timeout=30)
    last = _spawn(tmp_path, scenario)
    out, err = last.communicate(timeout=60)
    assert last.returncode == 0, err
    assert out.strip().splitlines()[-1] == final
    assert kills >= 3  # most runs were cut short

    entries = anyio.run(_journal, tmp_path)
    assert check_journal([], entries, {}, "random kills") == []
    history = _history(tmp_path)
    for task, ops in history.items():
        # idempotent effects: the last operation says whether the work stands
        assert ops[-1] == ("run" if final == "SUCCESS" else "revert"), (task, ops)
        if final == "SUCCESS":
            assert "revert" not in ops, (task, ops)  # nothing failed: nothing to undo
