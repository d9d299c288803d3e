"""kill -9 at the points issue 9 names, then resume in a new process: the flow ends as the
uncrashed run does, and every task's work is done (or undone) exactly as there."""

from __future__ import annotations

import collections
import signal
import subprocess
from pathlib import Path

from ._kill_worker import command

ROOT = Path(__file__).resolve().parents[2]


def _run(tmp: Path, scenario: str, kill_at: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(tmp, scenario, kill_at),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _effects(tmp: Path) -> collections.Counter[str]:
    path = tmp / "effects"
    return collections.Counter(path.read_text().splitlines() if path.exists() else [])


def _crash_then_resume(tmp: Path, scenario: str, kill_at: str, kills: int = 1) -> str:
    for _ in range(kills):
        died = _run(tmp, scenario, kill_at)
        assert died.returncode == -signal.SIGKILL, died.stderr
    resumed = _run(tmp, scenario, "")
    assert resumed.returncode == 0, resumed.stderr
    return resumed.stdout.strip().splitlines()[-1]


def _net(effects: collections.Counter[str], task: str) -> int:
    return effects[f"run {task}"] - effects[f"revert {task}"]


def _history(tmp: Path, task: str) -> list[str]:
    lines = (tmp / "effects").read_text().splitlines()
    return [line.split()[0] for line in lines if line.split()[1] == task]


def test_crash_inside_a_revert_in_a_retry_scope_reverts_again(tmp_path: Path) -> None:
    """Point 1: t2 fails on attempt 1; the process dies in t1's revert after its effect."""
    assert _crash_then_resume(tmp_path, "times-once", "revert:t1") == "SUCCESS"
    # uncrashed: t1 runs, t2 fails, both reverted, both run again. Here t1's revert, cut
    # short by the crash, is done again (reverts are idempotent), then t1 runs again.
    assert _history(tmp_path, "t1") == ["run", "revert", "revert", "run"]
    assert _history(tmp_path, "t2") == ["run", "revert", "run"]


def test_crash_right_after_a_failure_reverts_the_flow(tmp_path: Path) -> None:
    """Point 2, no retry: killed by the listener that sees t2 fail; the flow must end
    REVERTED as the uncrashed run does, not run t2 again."""
    assert _crash_then_resume(tmp_path, "no-retry", "failed:t2") == "REVERTED"
    effects = _effects(tmp_path)
    assert effects["run t2"] == 1, effects  # not run again
    assert effects["run t3"] == 0, effects
    assert _net(effects, "t1") == 0, effects
    assert _net(effects, "t2") == 0, effects


def test_crashes_after_failures_do_not_bypass_times(tmp_path: Path) -> None:
    """Point 2, Times(3): killed at every failure, the scope still runs 3 times in all and
    both of its tasks are reverted each time."""
    assert _crash_then_resume(tmp_path, "times-always", "failed:t2", kills=3) == "REVERTED"
    effects = _effects(tmp_path)
    assert effects["run t2"] == 3, effects
    assert effects["run t1"] == 3, effects
    assert _net(effects, "t0") == _net(effects, "t1") == _net(effects, "t2") == 0, effects
