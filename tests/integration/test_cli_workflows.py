"""Workflows through the ``flowcoord`` command (subprocesses): run, resume after a kill -9,
and ``check-compat`` against changed code."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

CODE = textwrap.dedent(
    """
    import os
    from pathlib import Path

    import anyio
    import flowcoord as fc

    HERE = Path(__file__).parent


    async def {first}(size: int) -> str:
        (HERE / "effects").open("a").write(f"allocate {{size}}\\n")
        return f"vm{{size}}"


    async def free(size: int) -> None:
        (HERE / "effects").open("a").write(f"free {{size}}\\n")


    async def hold(vm: str) -> str:
        (HERE / "holding").write_text(str(os.getpid()))
        if os.environ.get("HOLD"):
            await anyio.sleep(30)  # killed here
        return vm + "-held"


    async def publish(vm: str) -> str:
        return vm + "-ip"


    @fc.workflow(name="provision")
    async def provision(ctx: fc.Context, size: int) -> str:
        vm = await ctx.step({first}, size, revert=free)
        await ctx.step(hold, vm)
        return await ctx.step(publish, vm)


    registry = fc.FlowRegistry()
    registry.register("provision", provision)
    """
)


def _write(work: Path, first: str) -> None:
    (work / "wfmod.py").write_text(CODE.format(first=first))
    for cached in (work / "__pycache__").glob("wfmod*"):
        cached.unlink()


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWCOORD_")}
    return {**env, **extra}


def cli(work: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flowcoord", *args],
        cwd=work,
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_a_workflow_runs_is_killed_resumes_and_is_checked_against_new_code(
    tmp_path: Path,
) -> None:
    _write(tmp_path, "allocate")
    journal = str(tmp_path / "j.sqlite")
    done = cli(
        tmp_path,
        "run",
        "wfmod:provision",
        "-i",
        "size=1",
        "--journal",
        journal,
        "--flow-id",
        "w-ok",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["state"] == "SUCCESS"

    # kill -9 inside the second step; the journal has the first
    (tmp_path / "holding").unlink()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flowcoord",
            "run",
            "wfmod:provision",
            "-i",
            "size=2",
            "--journal",
            journal,
            "--flow-id",
            "w-kill",
        ],
        cwd=tmp_path,
        env=_env(HOLD="1"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while not (tmp_path / "holding").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (tmp_path / "holding").exists()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)

    # code that changed the first step's function: check-compat names the flow, exit 1
    _write(tmp_path, "reserve")
    bad = cli(tmp_path, "check-compat", "wfmod:registry", "--journal", journal, "--json")
    assert bad.returncode == 1, bad.stderr
    report = json.loads(bad.stdout)
    assert report["checked"] == 1
    [row] = report["incompatible"]
    assert (row["flow_id"], row["position"]) == ("w-kill", 1)
    assert (row["journaled"], row["called"]) == ("allocate", "reserve")

    # the code it started with: compatible, and the resume finishes it without re-allocating
    _write(tmp_path, "allocate")
    ok = cli(tmp_path, "check-compat", "wfmod:registry", "--journal", journal)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    resumed = cli(
        tmp_path,
        "flows",
        "resume",
        "w-kill",
        "--journal",
        journal,
        "--flow",
        "wfmod:registry",
        "--json",
    )
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["state"] == "SUCCESS"
    effects = (tmp_path / "effects").read_text().split()
    assert effects.count("allocate") == 2  # once per flow: the journaled step did not re-run


def test_graph_of_a_workflow_says_why_not(tmp_path: Path) -> None:
    _write(tmp_path, "allocate")
    out = cli(tmp_path, "graph", "wfmod:provision")
    assert out.returncode == 2
    assert "is a workflow" in out.stderr


@pytest.mark.parametrize("what", ["wfmod:nothing"])
def test_check_compat_with_a_bad_registry_is_a_one_line_error(tmp_path: Path, what: str) -> None:
    _write(tmp_path, "allocate")
    out = cli(tmp_path, "check-compat", what, "--journal", str(tmp_path / "j.sqlite"))
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1
