"""Run twice: the first run is killed (SIGKILL) in step 3; the second resumes the flow."""

import os
import signal
import sys

import anyio

import flowcoord as fc


def build() -> fc.Flow:
    def step(n: int) -> fc.Task:
        async def run(total: int = 0) -> int:
            print(f"step {n} runs in pid {os.getpid()}", flush=True)
            if n == 3 and "--crash" in sys.argv:
                os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no goodbye
            return total + n

        return fc.FunctionTask(
            run, f"step{n}", provides=f"total{n}", rebind={"total": f"total{n - 1}"} if n else None
        )

    return fc.Linear("five-steps", *(step(n) for n in range(5)))


async def main() -> None:
    async with fc.Engine(fc.SQLiteJournal("crash.sqlite")) as engine:
        outcome = await engine.run(build(), flow_id="crash-demo")  # resumes if journaled
    print(f"{outcome.state}: total = {outcome['total4']}")


if __name__ == "__main__":
    anyio.run(main)
