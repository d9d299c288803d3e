"""The demo runs on embedded defaults and shows success, rollback and crash + resume."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_demo_runs(tmp_path: Path) -> None:
    env = {**os.environ, "FLOWCOORD_DEMO_SLOW": "0.1"}
    proc = subprocess.run(
        [sys.executable, "-m", "flowcoord._cli._demo", str(tmp_path / "j.sqlite")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "result: web-1 → 10.0.0." in out
    assert "raised to the caller: ConnectionError" in out
    assert out.index("↩ publish_address") < out.index("↩ allocate")
    assert "worker killed (exit -9)" in out
    resumed = out.split("a new engine resumes it")[1]
    assert "allocate" not in resumed  # journaled success: skipped, not re-run
    assert "✓ publish_address  SUCCESS" in resumed
    assert (tmp_path / "j.sqlite").exists()
