"""examples/child_flows.py runs: a failed order undoes its finished children newest first."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "child_flows.py", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=EXAMPLES,
    )


def test_a_failed_order_undoes_its_children_and_a_good_one_goes_through(tmp_path: Path) -> None:
    failed = _run(str(tmp_path / "a.sqlite"))
    assert failed.returncode == 1, failed.stderr
    lines = [line.strip() for line in failed.stdout.splitlines() if "[info" not in line]
    undone = ["unpublished vm-4.example.net", "detached the disk of vm-4", "halted vm-4"]
    at = lines.index(undone[0])
    assert lines[at : at + 4] == [*undone, "released gpu-node"]  # newest first
    assert "order failed: card declined" in lines
    assert lines[-3:] == [
        "order-1: REVERTED",
        "order-1.2:provision: CANCELLED",
        "order-1.3:publish: CANCELLED",
    ]
    ok = _run(str(tmp_path / "b.sqlite"), "--bill-ok")
    assert ok.returncode == 0, ok.stderr
    assert "'address': 'vm-4.example.net', 'invoice': 'invoice for 40'" in ok.stdout
    assert "order-1.2:provision: SUCCESS" in ok.stdout
