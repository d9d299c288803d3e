"""``flowcoord flows prune`` (a subprocess) on a SQLite journal: a dry run lists what would
go, a real run deletes the ended flows and keeps the unfinished one, ``--json`` says both,
and a time it cannot read is refused before the journal is opened."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import anyio
import pytest

import flowcoord as fc

pytestmark = pytest.mark.anyio


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flowcoord", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def _journal(path: Path) -> None:
    """Two ended workflows and one stopped (SUSPENDED: unfinished) in ``path``."""
    gate = anyio.Event()

    async def step(hold: bool) -> int:
        if hold:
            await gate.wait()
        return 1

    @fc.workflow(name="w")
    async def w(ctx: fc.Context, hold: bool) -> int:
        first = await ctx.step(step, hold)
        return first + await ctx.step(step, False)  # a stopped run ends before it

    async with fc.Engine(fc.SQLiteJournal(path)) as engine:
        for flow_id in ("a", "b"):
            await engine.run(w, {"hold": False}, flow_id=flow_id)
        handle = await engine.start(w, {"hold": True}, flow_id="held")
        await anyio.sleep(0.05)
        handle.stop()
        gate.set()
        await handle.wait()


async def test_prune_deletes_the_ended_flows_and_a_dry_run_nothing(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    await _journal(path)
    later = (datetime.now() + timedelta(minutes=1)).isoformat(timespec="seconds")
    dry = _cli("flows", "prune", "--journal", str(path), "--ended-before", later, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    assert lines[0].startswith(f"would delete 2 flows of {path} that ended before ")
    assert lines[1:] == ["  a", "  b"]
    none = _cli("flows", "prune", "--journal", str(path), "--ended-before", "1d")
    assert none.returncode == 0, none.stderr
    assert none.stdout.startswith("deleted 0 flows")  # none ended a day ago
    real = _cli("flows", "prune", "--journal", str(path), "--ended-before", later, "--json")
    assert real.returncode == 0, real.stderr
    out = json.loads(real.stdout)
    assert (out["deleted"], out["kept"], out["dry_run"]) == (["a", "b"], [], False)
    listed = _cli("flows", "list", "--journal", str(path), "--json")
    assert [f["flow_id"] for f in json.loads(listed.stdout)["flows"]] == ["held"]
    for bad in ("soon", "3 days"):
        refused = _cli("flows", "prune", "--journal", str(path), "--ended-before", bad)
        assert refused.returncode == 2
        assert "is not a time" in refused.stderr
    missing = _cli(
        "flows", "prune", "--journal", str(tmp_path / "no.sqlite"), "--ended-before", "1d"
    )
    assert missing.returncode == 2
    assert not (tmp_path / "no.sqlite").exists()  # never created
