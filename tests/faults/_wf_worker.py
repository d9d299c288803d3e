"""A conductor process running workflows, for the ZooKeeper workflow fail-over tests.

usage: python -m tests.faults._wf_worker --zk HOSTS --namespace NS --journal FILE
       --effects FILE --name NAME [--capacity N] [--session-timeout S] [--max-claims N]

The same process as :mod:`tests.faults._zk_worker` (same options, same effects file, same
``ready`` / ``session`` / ``lost`` / ``stopped`` lines) with a registry of workflows instead of
pattern flows. Lines the workflows add::

    run <flow_id> <pid>                  the workflow's code was called (from the top)
    tag <flow_id> <tag> <pid>            the value ctx.uuid() returned to it
    task <flow_id> <step> <pid>          a step body started (a pipeline's: its number)
    done <flow_id> <step> <pid>          a step body finished (its result is not journaled yet)
    undo <flow_id> <what> <pid>          a compensation started
    undone <flow_id> <what> <pid>        a compensation finished

Workflows:

- ``pipeline`` (inputs ``fid``, ``steps``, ``pause``, ``hold_at``, ``hold_file``): draws a
  ``ctx.uuid()``, then runs ``steps`` sequential steps ``step1`` … (``stepN`` returns N², after
  sleeping ``pause`` s); step ``hold_at`` waits, after its ``task`` line, for as long as the file
  ``hold_file`` exists. Returns ``{"total": sum of N², "tag": the uuid}``.
- ``saga`` (inputs ``fid``, ``hold_undo``, ``hold_file``): books ``hotel``, ``flight`` and ``car``
  (each a step whose compensation cancels it), then ``charge`` fails: the bookings are
  cancelled newest first, and the flow ends REVERTED. The compensation of ``hold_undo`` waits
  for as long as ``hold_file`` exists.

Every wait is bounded (:data:`HOLD_LIMIT`): a test that forgets its file fails, it never hangs.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import anyio

import flowcoord as fc
from flowcoord._coord._conductor import Conductor
from flowcoord.coordination import run_worker

from ._zk_worker import Effects, configure_logging, parse

STEPS = 6
BOOKINGS = ("hotel", "flight", "car")
HOLD_LIMIT = 30.0


class Declined(Exception):
    """The saga's payment is always declined."""


async def held(path: str) -> None:
    """Wait while the file ``path`` exists (not at all for ``""``), at most HOLD_LIMIT s."""
    if not path:
        return
    with anyio.fail_after(HOLD_LIMIT):
        while await anyio.Path(path).exists():  # noqa: ASYNC110 - another process removes it
            await anyio.sleep(0.02)


def registry(effects: Effects) -> fc.FlowRegistry:
    pid = effects.pid

    async def work(fid: str, n: int, pause: float, hold: str) -> int:
        effects.write("task", fid, n, pid)
        await anyio.sleep(pause)
        await held(hold)
        effects.write("done", fid, n, pid)
        return n * n

    @fc.workflow
    async def pipeline(
        ctx: fc.Context,
        fid: str,
        steps: int = STEPS,
        pause: float = 0.0,
        hold_at: int = 0,
        hold_file: str = "",
    ) -> dict[str, Any]:
        effects.write("run", fid, pid)
        tag = ctx.uuid()
        effects.write("tag", fid, tag, pid)
        total = 0
        for n in range(1, steps + 1):
            hold = hold_file if n == hold_at else ""
            total += await ctx.step(work, fid, n, pause, hold, name=f"step{n}")
        return {"total": total, "tag": tag}

    async def book(fid: str, what: str, hold: str) -> str:
        effects.write("task", fid, what, pid)
        effects.write("done", fid, what, pid)
        return f"{what}-{fid}"

    async def cancel(fid: str, what: str, hold: str, result: str | None) -> None:
        effects.write("undo", fid, what, pid)
        await held(hold)
        effects.write("undone", fid, what, pid)

    async def charge(fid: str) -> None:
        effects.write("task", fid, "charge", pid)
        raise Declined(f"card declined for {fid}")

    @fc.workflow
    async def saga(ctx: fc.Context, fid: str, hold_undo: str = "", hold_file: str = "") -> str:
        effects.write("run", fid, pid)
        for what in BOOKINGS:
            hold = hold_file if what == hold_undo else ""
            await ctx.step(book, fid, what, hold, name=f"book-{what}", revert=cancel)
        await ctx.step(charge, fid)
        return "charged"

    reg = fc.FlowRegistry()
    reg.register("pipeline", pipeline)
    reg.register("saga", saga)
    return reg


async def main(args: argparse.Namespace) -> None:
    effects = Effects(args.effects)
    configure_logging(effects)

    def ready(conductor: Conductor) -> None:
        conductor.board.session.add_listener(
            lambda change: effects.write("session", change.state.value, effects.pid)
        )
        effects.write("ready", effects.pid, args.name)

    await run_worker(
        zk_hosts=args.zk,
        namespace=args.namespace,
        journal=fc.SQLiteJournal(args.journal),
        registry=registry(effects),
        name=args.name,
        capacity=args.capacity,
        session_timeout=args.session_timeout,
        shutdown_timeout=5.0,
        max_claims=args.max_claims,
        on_ready=ready,
    )
    effects.write("stopped", effects.pid)


if __name__ == "__main__":
    anyio.run(main, parse(sys.argv[1:]))
