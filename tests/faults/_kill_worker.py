"""Run (or resume) a small flow on a SQLite journal and SIGKILL this process at a chosen
point; used by test_kill_points.py as a subprocess.

usage: python -m tests.faults._kill_worker SCENARIO JOURNAL EFFECTS KILL_AT

Every task body and revert appends a line to EFFECTS ("run t1", "revert t1"), so the test
can count what was done. KILL_AT names the point to die at ("" for none):

- ``revert:t1``  inside t1's revert, after its side effect (issue 9, point 1)
- ``failed:t2``  in the listener that sees t2 enter FAILURE (issue 9, point 2)
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import anyio

import flowcoord as fc


def command(tmp: Path, scenario: str, kill_at: str = "") -> list[str]:
    """The command line that runs ``scenario`` on the journal and effects file in ``tmp``."""
    return [
        sys.executable,
        "-m",
        "tests.faults._kill_worker",
        scenario,
        str(tmp / "j.sqlite"),
        str(tmp / "effects"),
        kill_at,
    ]


def _effect(path: str, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)


def _count(path: str, line: str) -> int:
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        return sum(1 for x in f if x.strip() == line)


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def build(scenario: str, effects: str, kill_at: str) -> fc.Flow:
    def make(name: str, *, fails: bool = False) -> fc.Task:
        async def body() -> str:
            _effect(effects, f"run {name}")
            if fails and (scenario != "times-once" or _count(effects, f"run {name}") == 1):
                raise RuntimeError(f"{name} fails")
            return name

        async def undo() -> None:
            _effect(effects, f"revert {name}")
            if kill_at == f"revert:{name}" and _count(effects, f"revert {name}") == 1:
                _die()

        return fc.FunctionTask(body, name, revert=undo)

    if scenario == "times-once":  # t2 fails on its first run only
        return fc.Linear("k", make("t1"), make("t2", fails=True), retry=fc.Times(4))
    if scenario == "times-always":  # t2 always fails: Times(3) gives up
        return fc.Linear(
            "k", make("t0"), fc.Linear("s", make("t1"), make("t2", fails=True), retry=fc.Times(3))
        )
    if scenario in ("slow", "slow-fails"):  # 3 stages of 4 tasks of ~30 ms each

        def slow(name: str, *, fails: bool = False) -> fc.Task:
            async def body() -> str:
                await anyio.sleep(0.03)
                _effect(effects, f"run {name}")
                if fails:
                    raise RuntimeError(f"{name} fails")
                return name

            async def undo() -> None:
                await anyio.sleep(0.01)
                _effect(effects, f"revert {name}")

            return fc.FunctionTask(body, name, revert=undo)

        stages = [
            fc.Unordered(
                f"stage{s}",
                *(
                    slow(f"s{s}t{i}", fails=scenario == "slow-fails" and (s, i) == (2, 3))
                    for i in range(4)
                ),
            )
            for s in range(3)
        ]
        return fc.Linear("k", *stages)
    if scenario == "no-retry":
        return fc.Linear("k", make("t1"), make("t2", fails=True), make("t3"))
    raise SystemExit(f"unknown scenario {scenario!r}")


async def main(scenario: str, journal: str, effects: str, kill_at: str) -> None:
    def listener(change: fc.StateChange) -> None:
        if kill_at == f"failed:{change.task}" and change.new == "FAILURE":
            _die()

    async with fc.Engine(fc.SQLiteJournal(journal), listeners=[listener]) as engine:
        flow = build(scenario, effects, kill_at)
        try:
            out = await engine.run(flow, flow_id="kill")
            print(out.state.value, flush=True)
        except Exception:
            print((await engine.status("kill")).state.value, flush=True)


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4])
